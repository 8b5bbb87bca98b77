// WirePlane: offloadd's path to the wire. It owns the offloaded network
// interface (NIC driver, XDP steering), the engine threads with one protocol
// stack each, and the netlink view that keeps those stacks' addresses and
// neighbours equal to the kernel's: offload routing is the OS routing, and
// the kernel does ARP.
//
// Start-up (Create): for the configured interface, in the calling thread's
// network namespace,
//   1. privileges (CAP_NET_ADMIN) and the interface's existence are checked
//      first, so the error says what to fix rather than which syscall failed;
//   2. nic::OpenDriver opens its queues (af_xdp: XDP program + AF_XDP sockets;
//      verbs: raw-packet QPs);
//   3. the IPv4 address / prefix, default gateway and MTU come from netlink,
//      the MAC from the driver;
//   4. an EngineSet of num_cores engines is created, engine e owning queue e
//      (and e + num_cores, ...), each with a StackProcessor around its own
//      stack::Stack driven by the engine's CLOCK_MONOTONIC clock;
//   5. each stack is seeded with the kernel's usable neighbours and routes of
//      the interface, and every later change is posted to the engines; the
//      namespace's TCP sysctls (stack/sysctl.h) configure the stacks, and are
//      re-read before new flows (RefreshSysctls).
// Only one interface is supported for now (a stack has one address): a
// config naming more is refused at start-up with that reason.
//
// Routing query (RouteTo): whether a connection to an IPv4 address leaves
// through the offloaded interface per the kernel's main table, and if so the
// local address, next hop and engine that serve it. The stacks follow the
// kernel's routes through the interface and its default gateway live
// (SyncRoutes, on every netlink change), and resolve next hops through the
// kernel's neighbour table (KernelNeighbours: NTF_USE, never ARP of their
// own). Destinations the engine cannot serve as the kernel would (another
// interface, a preferred source address that is not the interface's, a
// local or broadcast address) are reported as not offloaded with the
// reason, so the caller falls back to the kernel (DESIGN: never worse).
//
// ---------------------------------------------------------------------------
// Opening an engine flow for a client socket (the session manager's side;
// the engine side is implemented below by ConnectTcp/Send/ReceiveCredit/Close)
//
//   app: connect(fd, 198.18.0.2:80)           liboffload: rules say offload
//     1. The client binds its shadow kernel socket to (0.0.0.0, 0) if it is
//        unbound and reads the port the kernel chose (getsockname): the
//        kernel reserves the ephemeral port, so a kernel socket and an engine
//        flow never share a 4-tuple. It then sends CONNECT(shadow inode,
//        dst) on its control ring.
//     2. The session manager calls RouteTo(dst). NotFound: the socket stays
//        with the kernel (the client connects the shadow; stats record why).
//        Otherwise it re-binds nothing: the shadow's port is the flow's
//        local port on route.local_ip (a shadow bound to a specific other
//        address is not offloaded).
//     3. It carves the socket's TX and RX byte rings from the process arena
//        (shm::ByteRing views with the app as TX producer / RX consumer) and
//        calls ConnectTcp({dst, local_port, tx ring, rx ring, listener}).
//        ConnectTcp steers the 5-tuple to the engine's queue (Steer on the
//        driver: the XDP flow map / ibv_create_flow) BEFORE the SYN can
//        leave, asks the kernel to resolve the next hop if it has no usable
//        neighbour, and posts Stack::TcpConnect to the engine's command queue
//        (Engine::Post rings the engine's doorbell).
//     4. Events: the engine drains its stack's events every loop iteration
//        (StackProcessor -> FlowEventSink) and calls the flow's
//        FlowListener::OnTcpEvents on the engine thread: connected,
//        readable, writable, peer FIN, error, closed. The session manager's
//        listener writes one control-ring message per event and kicks the
//        client's per-thread eventfd/futex only if the client set its
//        need-wake-up flag (DESIGN "Wake-ups"): no allocation, no syscall
//        when the client is polling.
//     5. Data: send() copies into the TX ring and posts a credit message;
//        the session manager (or the engine polling the app's ring) calls
//        Send(); recv() copies out of the RX ring and returns window credit
//        -> ReceiveCredit(). The stack reads and validates the app-written
//        ring indices itself (tcp::TxRing/RxRing: untrusted input).
//     6. close(): Close() releases the stack handle; the protocol finishes
//        in the background (FIN, TIME-WAIT) and the flow stays steered until
//        the connection is really gone, then it is unsteered. The rings must
//        stay mapped until the listener sees kEventClosed or the plane's
//        Released callback (the arena outlives the session's flows).
//   Passive opens follow the same shape: ListenTcp steers a listener key
//   (FlowKey::Listener) and posts TcpListen; the engine gives each SYN's
//   child a slot of the listener's engine channel (the stack's
//   BufferProvider), and on kEventAcceptable accepts it, steers its
//   5-tuple and queues it in the offloaded listener's accept queue, waking
//   its acceptors: no control-plane thread between the handshake and
//   accept().
//
// Application pipes (AppPipe, app_pipe.h): a flow opened with an AppPipe is
// served entirely by its engine: every loop iteration the engine looks at
// the application's indices (new data -> TcpSend, consumed data ->
// TcpReceiveCredit, shutdown -> TcpShutdown, its end closed -> close or
// abort), and stack events become ring state and wake-ups (connect_status,
// shut, reader_closed; futex and doorbell wake-ups through the AppWaker).
// Before sleeping the engine arms the rings it reads (shm/ring.h), listing
// its own doorbell, so an application's send or receive rings the engine's
// doorbell (DoorbellFd). No control-plane thread is on the data path;
// Send/ReceiveCredit are for raw-ring flows only.
//
// UDP sockets (BindUdp, engine_udp.h): an application's UDP socket whose
// shadow is bound to INADDR_ANY or the interface's address gets an engine
// endpoint on the same port (the kernel keeps the port reserved for the
// shadow) and an AppDgram: the engine sends what the application appends
// to the TX ring and delivers what the stack receives into the RX ring.
// Unicast to the interface's address is steered to the engine
// (FlowKey::Listener(kUdp, interface address, port)); broadcast and
// fragments keep reaching the shadow through the kernel. A socket bound to
// a multicast group address gets no unicast key.
//
// Multicast (JoinUdpGroup/LeaveUdpGroup): when an application's socket
// joins a group on the offloaded interface (its kernel socket has joined
// already, so the kernel sends the IGMP reports), the engine endpoint joins
// too and FlowKey::MulticastGroup(group, port) is steered to the engine (the
// af_xdp driver also holds a membership of its own for the NIC's filter).
// Every member endpoint on the port gets a copy (udp::UdpTable). Steering
// is reference-counted per (group, port): the last member's leave or close
// unsteers it, and the group's datagrams reach the kernel sockets again.
// While a (group, port) is steered, kernel sockets of this namespace that
// are not offloaded and receive the same group and port get nothing (XDP
// redirects, it cannot copy). Sending to a group (RouteMulticast) is
// offloaded when the socket's IP_MULTICAST_IF, or the kernel's route for
// the group, is the offloaded interface; the engine sends to the group's
// MAC with the record's TTL.
// ---------------------------------------------------------------------------
//
// Thread safety: Create/Stop/destruction from one controlling thread. The
// status/statistics methods, RouteTo and the flow calls are safe from any
// thread (control plane, gRPC threads). FlowListener callbacks run on the
// engine thread of the flow.

#ifndef OFFLOAD_DAEMON_WIRE_WIRE_PLANE_H_
#define OFFLOAD_DAEMON_WIRE_WIRE_PLANE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/engine/engine_set.h"
#include "daemon/netlink/netlink_view.h"
#include "daemon/nic/nic.h"
#include "daemon/tcp/byte_ring.h"
#include "daemon/stack/sysctl.h"
#include "daemon/tcp/socket_options.h"
#include "daemon/tcp/tcb.h"
#include "daemon/wire/app_dgram.h"
#include "daemon/wire/app_pipe.h"
#include "daemon/wire/app_waker.h"
#include "shm/listener.h"
#include "offload/v1/config.pb.h"
#include "offload/v1/control.pb.h"

namespace offload::wire {

class EngineFlows;  // per-engine flow table, engine_flows.h

// Where a connection to a remote address leaves, per the kernel's routes.
struct WireRoute {
  std::string interface;  // offloaded interface name
  int ifindex = 0;
  uint32_t local_ip = 0;  // source address the stack uses (host order)
  uint32_t next_hop = 0;  // gateway, or the destination if on-link
  uint32_t engine = 0;    // engine that would serve the flow
  uint32_t queue = 0;     // NIC queue the flow is steered to
};

// Receives a flow's events on its engine thread. Must not block.
class FlowListener {
 public:
  virtual ~FlowListener() = default;
  // `events`: tcp::TcpEvent bits; `error`: errno with kEventError /
  // kEventClosed (0 for an orderly close).
  virtual void OnTcpEvents(uint32_t events, int error) = 0;
};

struct TcpConnectParams {
  uint32_t remote_ip = 0;  // host order
  uint16_t remote_port = 0;
  // Reserved in the kernel by the caller (a bound shadow socket); required.
  uint16_t local_port = 0;
  // Either an application pipe (app_end 0, connect_status kConnectPending:
  // the engine serves it and publishes the outcome there) ...
  std::shared_ptr<AppPipe> pipe;
  // ... or raw rings: views that must stay valid until the flow is released
  // (see Close), driven with Send/ReceiveCredit.
  tcp::RingMemory tx;
  tcp::RingMemory rx;
  // Required with raw rings, optional with a pipe. Must outlive the flow
  // (until Close's release or kEventClosed).
  FlowListener* listener = nullptr;
  // The socket's options set before connect() (TCP_MAXSEG and SO_RCVBUF
  // shape the SYN); the application's later changes come through the pipe.
  tcp::SocketOptions options;
};

// A TCP flow opened by ConnectTcp or accepted. Plain value; valid until Close().
struct WireFlow {
  uint32_t engine = 0;
  uint64_t cookie = 0;  // unique per plane
};

// A connection accepted on the wire for a listener (addresses host order).
struct AcceptedConnection {
  WireFlow flow;
  std::shared_ptr<AppPipe> pipe;  // app_end 1, connected
  uint32_t local_ip = 0;
  uint16_t local_port = 0;
  uint32_t remote_ip = 0;
  uint16_t remote_port = 0;
};

// Receives accepted connections on the listener's engine thread. Must not
// block; takes over the flow (it must Close() it eventually).
class AcceptSink {
 public:
  virtual ~AcceptSink() = default;
  virtual void OnAccepted(uint64_t token, const AcceptedConnection& conn) = 0;
};

// Where an engine puts the connections it accepts for an offloaded
// listener: a slot of `channel` each, queued in the listener's accept
// queue (shm/listener.h), acceptors woken. `keep` holds the mapping of
// `listener` alive.
struct AcceptTarget {
  shm::ListenerHeader* listener = nullptr;
  std::shared_ptr<void> keep;
  std::shared_ptr<EngineChannel> channel;
};

struct TcpListenParams {
  uint32_t local_ip = 0;  // host order; 0 = any address of the interface
  uint16_t port = 0;      // host order, required
  int backlog = 128;
  // Accepted connections go to `target` (an offloaded listener) when it
  // has a listener, else to `sink` (raw consumers, tests); one is
  // required, and `target->channel` always (the children's rings).
  std::shared_ptr<AcceptTarget> target;
  AcceptSink* sink = nullptr;         // must outlive the listener
  uint64_t token = 0;                 // passed back to the sink
  // The listening socket's options at listen(): the SYN,ACK's MSS and
  // window scale; children inherit them (Linux clones the listener).
  tcp::SocketOptions options;
};

struct WireListener {
  uint32_t engine = 0;
  uint64_t cookie = 0;
};

struct UdpBindParams {
  // host order; 0 = INADDR_ANY, else the interface's address or a
  // multicast group (the socket receives only that group's datagrams)
  uint32_t local_ip = 0;
  uint16_t port = 0;      // host order; reserved in the kernel by the caller (bound shadow)
  bool reuse = false;     // SO_REUSEADDR/SO_REUSEPORT on the shadow
  std::shared_ptr<AppDgram> rings;  // required
};

// A UDP endpoint served by an engine. Plain value; valid until CloseUdp().
struct WireUdp {
  uint32_t engine = 0;
  uint64_t cookie = 0;
  uint32_t steer_ip = 0;  // the steered unicast key (host order); 0: none (bound to a group)
  uint16_t port = 0;
};

class WirePlane {
 public:
  // Starts the wire path for `config.interfaces` (see the file comment).
  // REQUIRES: config validated and defaulted (config::ApplyDefaults).
  // Errors, each naming the interface and what to do: InvalidArgument (bad
  // queue/cpu settings, more than one interface), PermissionDenied (no
  // CAP_NET_ADMIN), NotFound (no such interface; verbs without an RDMA
  // device), FailedPrecondition (no IPv4 address; interface owned by another
  // offloadd; zero-copy unavailable), Internal (kernel errors).
  static absl::StatusOr<std::unique_ptr<WirePlane>> Create(
      const v1::DaemonConfig& config);

  WirePlane(const WirePlane&) = delete;
  WirePlane& operator=(const WirePlane&) = delete;
  // Stop().
  ~WirePlane();

  // Stops following netlink, stops the engines, unsteers every flow and
  // detaches the interfaces (XDP program removed). Idempotent.
  void Stop();

  // --- control plane (any thread) ---
  std::vector<v1::InterfaceStatus> Interfaces() const;
  std::vector<v1::EngineStats> EngineStats() const;
  std::vector<v1::NicStats> NicStats() const;

  // Whether a TCP/UDP connection to `remote_ip`:`remote_port` would leave
  // through an offloaded interface. NotFound with the reason if not
  // (unroutable, another interface, local address, ...).
  absl::StatusOr<WireRoute> RouteTo(uint32_t remote_ip,
                                    uint16_t remote_port = 0) const;

  // --- engine flows (any thread) ---
  // Active open (see the file comment, step 3). Returns once the flow is
  // steered and the connect is queued on the engine; the outcome arrives as
  // kEventConnected or kEventError|kEventClosed on the listener.
  // Errors: NotFound (not routed through an offloaded interface),
  // InvalidArgument (missing port/rings/listener), the driver's Steer errors.
  absl::StatusOr<WireFlow> ConnectTcp(const TcpConnectParams& params);
  // The application appended to the TX ring (`more`: MSG_MORE).
  void Send(const WireFlow& flow, bool more = false);
  // The application consumed from the RX ring.
  void ReceiveCredit(const WireFlow& flow);
  // Orderly close: FIN after the queued bytes (`abort`: RST, RFC 9293
  // 3.10.4 ABORT). The listener gets no events after this call; the rings
  // stay in use until the connection is gone (ReleasedFlowsForTest counts
  // those), then the flow is unsteered. A flow that is already gone is
  // ignored.
  void Close(const WireFlow& flow, bool abort = false);

  // Passive open: steers the listener's port to an engine and listens
  // there; accepted connections go to params.sink. Errors: InvalidArgument
  // (no port or sink), AlreadyExists (the engine already listens there),
  // the driver's Steer errors, FailedPrecondition (stopped).
  absl::StatusOr<WireListener> ListenTcp(const TcpListenParams& params);
  // Stops listening: unaccepted children are reset, the port is unsteered.
  void CloseListener(const WireListener& listener);
  // Accepted connections of `listener` go to `target` from now on (another
  // offloaded listener took the port over).
  void SetAcceptTarget(const WireListener& listener, std::shared_ptr<AcceptTarget> target);
  // The listening socket's options changed (setsockopt after listen(), or
  // another listener took the port over): later SYN,ACKs and children use
  // `options`.
  void SetListenerOptions(const WireListener& listener, const tcp::SocketOptions& options);

  // Who wakes application threads sleeping in poll/epoll (their doorbells).
  // Set once before connections are opened; must outlive the plane.
  void SetAppWaker(AppWaker* waker) { waker_.store(waker, std::memory_order_release); }
  AppWaker* app_waker() const { return waker_.load(std::memory_order_acquire); }

  // Serves an application's UDP socket on the wire (see the file comment):
  // binds the stack endpoint, then steers unicast to the interface's
  // address and `params.port` to the engine. Errors: InvalidArgument (no
  // port or rings, a local address that is not the interface's),
  // AlreadyExists (the engine already has the port and one of the sockets
  // did not ask for reuse), FailedPrecondition (stopped), Internal (steering
  // failed; nothing stays bound).
  absl::StatusOr<WireUdp> BindUdp(const UdpBindParams& params);
  // Closes the endpoint; the port is unsteered when its last endpoint goes.
  void CloseUdp(const WireUdp& udp);
  // Multicast membership of an engine endpoint (see the file comment):
  // the endpoint joins `group` (host order) on its engine, then
  // (group, udp.port) is steered to the engine. Errors: InvalidArgument
  // (not a multicast group), AlreadyExists (already a member),
  // ResourceExhausted (20 groups, Linux IP_MAX_MEMBERSHIPS),
  // FailedPrecondition (stopped, endpoint gone), Internal (steering or the
  // driver's join failed; nothing stays joined).
  absl::Status JoinUdpGroup(const WireUdp& udp, uint32_t group);
  // Drops a membership; the last member of (group, port) unsteers it.
  // NotFound if the endpoint is not a member.
  absl::Status LeaveUdpGroup(const WireUdp& udp, uint32_t group);
  // Whether multicast on the interface named by `if_addr` (host order, 0:
  // any) and `ifindex` (0: any) -- an IP_ADD_MEMBERSHIP or IP_MULTICAST_IF
  // -- is on the offloaded interface; with neither, whether the kernel
  // routes `group` through it. NotFound with the reason otherwise.
  absl::Status RouteMulticast(uint32_t group, uint32_t if_addr, int ifindex) const;
  // RouteTo for a UDP destination an engine endpoint is about to send to;
  // also asks the kernel to resolve the next hop if it has no usable
  // neighbour (the engine learns it through the neighbour feed).
  absl::StatusOr<WireRoute> RouteUdpTo(uint32_t remote_ip, uint16_t remote_port);
  // The largest UDP payload the engines send or receive (MTU - 28).
  uint16_t max_udp_payload() const;

  // The eventfd an application kicks to wake `engine` (shm::Kick); valid
  // while the plane runs.
  int DoorbellFd(uint32_t engine) const;
  // The offloaded interface's IPv4 address (host order).
  uint32_t local_ip() const;

  size_t num_engines() const;
  // Flows fully released (connection gone and unsteered) since start.
  uint64_t ReleasedFlowsForTest() const;
  engine::EngineSet* EnginesForTest() { return engines_.get(); }

 private:
  friend class EngineFlows;
  struct Interface;

  WirePlane();
  absl::Status Open(const v1::DaemonConfig& config);
  // Netlink change callback (netlink event thread): pushes new or changed
  // usable neighbours of the interface to every engine.
  void SyncNeighbours();
  // Called by EngineFlows on its engine thread when a closed flow is gone.
  void FlowGone(uint32_t queue, const nic::FlowKey& key);
  // Asks the kernel to resolve route.next_hop unless it has a usable entry.
  void EnsureNeighbour(const WireRoute& route);
  // Steers `key` to `queue` and counts it; false (logged) on failure.
  bool SteerFlow(uint32_t queue, const nic::FlowKey& key);

  std::unique_ptr<netlink::NetlinkView> netlink_;
  std::unique_ptr<Interface> interface_;
  std::vector<std::unique_ptr<EngineFlows>> flows_;  // one per engine
  std::unique_ptr<engine::EngineSet> engines_;
  std::atomic<uint64_t> next_cookie_{1};
  std::atomic<AppWaker*> waker_{nullptr};
  std::atomic<uint64_t> released_flows_{0};
  bool stopped_ = false;

  // Drops one reference to the steered multicast key (group, port).
  // REQUIRES: udp_mu_ held.
  void ReleaseGroupSteer(uint32_t queue, uint32_t group, uint16_t port);

  // Steered UDP receive keys (ip, port; host order) -> endpoints using
  // them; multicast keys (group, port) likewise; each engine endpoint's
  // groups (by cookie). All guarded by udp_mu_.
  std::mutex udp_mu_;
  std::map<std::pair<uint32_t, uint16_t>, int> udp_steer_refs_;
  std::map<std::pair<uint32_t, uint16_t>, int> group_steer_refs_;
  std::map<uint64_t, std::vector<uint32_t>> udp_groups_;

  std::mutex neigh_mu_;  // serialises SyncNeighbours (netlink thread + Create)
  bool engines_started_ = false;  // guarded by neigh_mu_

  // Routes and sysctls followed live (routing/neighbour part of the plane).
  class KernelNeighbours;  // stack::NeighborRequester over netlink
  std::unique_ptr<KernelNeighbours> kernel_neighbours_;
  // Pushes the kernel's routes through the interface to every engine when
  // they changed. REQUIRES: neigh_mu_ held.
  void SyncRoutes();
  // Re-reads the namespace's TCP sysctls (at most every 100 ms) and posts a
  // changed TCP configuration to every engine before a new flow.
  void RefreshSysctls();
  std::mutex sysctl_mu_;
  uint64_t sysctl_read_ns_ = 0;         // guarded by sysctl_mu_
  stack::TcpSysctls sysctl_last_;       // values last applied, sysctl_mu_
  tcp::TcpConfig tcp_config_;           // the engines' TCP config, sysctl_mu_
};

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_WIRE_PLANE_H_
