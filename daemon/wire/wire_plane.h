// WirePlane: offloadd's path to the wire, and the one door the session
// manager (daemon/session) uses to reach it. It composes
//   * the offloaded interface (interface.h: privileges, address, the NIC
//     driver's queues and XDP program), one interface for now (a stack has
//     one address; a config naming more is refused at start-up);
//   * the kernel feed (kernel_feed.h): the kernel's routes, neighbours and
//     TCP sysctls pushed to the stacks, and the routing queries (RouteTo,
//     RouteMulticast). Offload routing is the OS routing and the kernel is
//     the only ARP resolver: a stack asks it to resolve a next hop and waits
//     for the neighbour to arrive through netlink;
//   * steering (steering.h): which 5-tuples, listener ports, UDP ports and
//     multicast (group, port) keys the NIC hands to an engine's queue;
//   * an engine::EngineSet of num_cores engines, engine e owning queue e (and
//     e + num_cores, ...), each with a StackProcessor around its own
//     stack::Stack on the engine's CLOCK_MONOTONIC clock, and an EngineFlows
//     (engine_flows.h) that serves that engine's flows: the application pipes
//     (app_pipe.h) of TCP connections, listeners and their accept queues, and
//     the UDP endpoints (engine_udp.h, app_dgram.h).
// Statistics are reported as plain values (wire_stats.h); their mapping to
// the control protocol is daemon/control/wire_stats.h.
//
// Every flow call posts a command to the flow's engine (Engine::Post rings
// its doorbell) or runs one there (RunSync), so a stack is only ever touched
// by its engine thread. The data path needs no call at all: an engine polls
// the application pipes of its flows itself and sleeps only after arming
// their wake-up flags (shm/ring.h), so an application's send or receive rings
// the engine's doorbell (DoorbellFd). docs/design.md follows one send and one
// receive through these pieces.
//
// Life of a connected flow: the session manager routes it (RouteTo), then
// ConnectTcp steers its 5-tuple to the engine's queue BEFORE the SYN can
// leave (the kernel would reset the SYN,ACK), asks the kernel to resolve the
// next hop, and posts Stack::TcpConnect. The engine publishes the outcome in
// the pipe (connect_status) and every later event as ring state. After
// Close the protocol finishes in the background (FIN, TIME-WAIT); the flow
// stays steered until the connection is really gone. A listener (ListenTcp)
// steers its port; the engine gives each SYN's child a slot of the
// listener's engine channel and queues accepted children in the offloaded
// listener's accept queue itself, waking its acceptors: no control-plane
// thread between the handshake and accept(). UDP sockets (BindUdp) get an
// engine endpoint on their port; unicast to the interface's address is
// steered, broadcast keeps reaching the shadow socket through the kernel,
// and multicast (JoinUdpGroup) is steered per (group, port), reference-counted
// over the members; while it is steered, kernel sockets of this namespace on
// the same group and port get nothing (XDP redirects, it cannot copy).
//
// Thread safety: Create/Stop/destruction from one controlling thread. The
// statistics, the routing queries and the flow calls are safe from any
// thread (control plane, gRPC threads). FlowListener and AcceptSink
// callbacks run on the engine thread of the flow.

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
#include "daemon/nic/nic.h"
#include "daemon/tcp/byte_ring.h"
#include "daemon/tcp/socket_options.h"
#include "daemon/tcp/tcb.h"
#include "daemon/wire/app_dgram.h"
#include "daemon/wire/app_pipe.h"
#include "daemon/wire/app_waker.h"
#include "daemon/wire/kernel_feed.h"
#include "daemon/wire/route_source.h"
#include "daemon/wire/wire_stats.h"
#include "shm/listener.h"
#include "offload/v1/config.pb.h"

namespace offload::wire {

class EngineFlows;  // per-engine flow table, engine_flows.h
class Steering;     // steering.h
struct OffloadedInterface;  // interface.h

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
  // IPv6 peer: `ipv6` set and the address in remote_ip6 (remote_ip unused).
  bool ipv6 = false;
  net::Ip6Addr remote_ip6;
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
  bool ipv6 = false;  // IPv6 child: addresses in local_ip6 / remote_ip6
  net::Ip6Addr local_ip6;
  net::Ip6Addr remote_ip6;
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
  // An AF_INET6 listener: `ipv6` set, its address in local_ip6 (all zero:
  // any), and unless `v6only` also IPv4 clients (dual stack, two keys).
  bool ipv6 = false;
  bool v6only = false;
  net::Ip6Addr local_ip6;
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
  // An AF_INET6 socket: `ipv6` set, bound to local_ip6 (all zero: ::, then
  // dual-stack unless v6only; else the interface's IPv6 address). A
  // v4-mapped address binds as IPv4 (local_ip).
  bool ipv6 = false;
  net::Ip6Addr local_ip6;
  bool v6only = false;
};

// A UDP endpoint served by an engine. Plain value; valid until CloseUdp().
struct WireUdp {
  uint32_t engine = 0;
  uint64_t cookie = 0;
  uint32_t steer_ip = 0;  // the steered unicast key (host order); 0: none (bound to a group)
  uint16_t port = 0;
  bool ipv6 = false;          // an AF_INET6 socket's (not v4-mapped)
  bool v6only = false;        // ipv6: no IPv4 peers
  net::Ip6Addr steer_ip6;     // ipv6: the steered IPv6 unicast key (all zero: none)
};

// What WirePlane::Create opens itself unless given one: the seam that lets
// tests run the plane over a fake driver (tests/testing/fake_nic.h) and a
// fake route source (tests/testing/fake_route_source.h) without root or a
// real interface. Production passes none (Create(config)).
struct WireSeams {
  // The kernel's addresses, links, routes and neighbours. Null: the
  // netlink view of the calling thread's namespace (NetlinkRouteSource).
  std::unique_ptr<RouteSource> routes;
  // The interface's driver, queues open. Null: nic::OpenDriver per the
  // config, after the privilege check (BringUpInterface). Given: neither.
  // Its info() stands for the interface's (MAC, MTU, queues); the
  // interface's index and address still come from `routes`.
  std::unique_ptr<nic::NicDriver> driver;
};

class WirePlane {
 public:
  // Starts the wire path for `config.interfaces`, in the calling thread's
  // network namespace: the interface is brought up (BringUpInterface), the
  // engines' stacks are created and seeded with the kernel's routes,
  // neighbours and sysctls, the engines start, and netlink changes are
  // followed from then on.
  // REQUIRES: config validated and defaulted (config::ApplyDefaults).
  // Errors, each naming the interface and what to do: InvalidArgument (bad
  // queue/cpu settings, more than one interface), PermissionDenied (no
  // CAP_NET_ADMIN), NotFound (no such interface; verbs without an RDMA
  // device), FailedPrecondition (no IPv4 address; interface owned by another
  // offloadd; zero-copy unavailable), Internal (kernel errors).
  static absl::StatusOr<std::unique_ptr<WirePlane>> Create(
      const v1::DaemonConfig& config);
  // The same over what `seams` gives (see WireSeams); the rest as above.
  static absl::StatusOr<std::unique_ptr<WirePlane>> Create(
      const v1::DaemonConfig& config, WireSeams seams);

  WirePlane(const WirePlane&) = delete;
  WirePlane& operator=(const WirePlane&) = delete;
  // Stop().
  ~WirePlane();

  // Stops following netlink, stops the engines, unsteers every flow and
  // detaches the interfaces (XDP program removed). Idempotent.
  void Stop();

  // --- control plane (any thread) ---
  std::vector<InterfaceReport> Interfaces() const;
  std::vector<EngineReport> EngineStats() const;
  std::vector<QueueReport> NicStats() const;

  // Whether a TCP/UDP connection to `remote_ip`:`remote_port` would leave
  // through an offloaded interface. NotFound with the reason if not
  // (unroutable, another interface, local address, ...).
  absl::StatusOr<WireRoute> RouteTo(uint32_t remote_ip,
                                    uint16_t remote_port = 0) const;
  // The same for an IPv6 destination (wire_plane6.cc).
  absl::StatusOr<WireRoute> RouteTo6(const net::Ip6Addr& remote_ip,
                                     uint16_t remote_port = 0) const;

  // --- engine flows (any thread) ---
  // Active open (see the file comment). Returns once the flow is
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
  // failed; nothing stays bound). An AF_INET6 socket (params.ipv6) is
  // steered on the interface's IPv6 address (the one the engine serves
  // when it binds), and a dual-stack one on the IPv4 address too. Without
  // a global IPv6 address on the interface a dual-stack socket is steered
  // for IPv4 only, any other AF_INET6 socket is FailedPrecondition.
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
  // The same for an IPv6 destination (RouteTo6; the neighbour is asked of
  // the kernel's neighbour discovery).
  absl::StatusOr<WireRoute> RouteUdpTo6(const net::Ip6Addr& remote_ip, uint16_t remote_port);
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
  // The stack of `engine` (use it on that engine's thread: RunSync).
  stack::Stack* StackForTest(uint32_t engine);
  // The flows of `engine` (use them on that engine's thread: RunSync).
  EngineFlows* FlowsForTest(uint32_t engine);

 private:
  // BindUdp for an AF_INET6 socket (not v4-mapped; wire_plane_udp.cc).
  absl::StatusOr<WireUdp> BindUdp6(const UdpBindParams& p);
  // Binds the engine's endpoint `cookie` (BindUdp, BindUdp6): OK, or why
  // not (the port served without reuse, the stack's errno).
  absl::Status BindUdpOnEngine(uint32_t engine, uint64_t cookie, const UdpBindParams& p);
  friend class EngineFlows;  // next_cookie(), app_waker(), steering()

  WirePlane();
  absl::Status Open(const v1::DaemonConfig& config, WireSeams seams);
  uint64_t next_cookie() { return next_cookie_.fetch_add(1, std::memory_order_relaxed); }
  Steering& steering() { return *steering_; }

  // Destroyed in reverse: flows and engines before the steering, the feed
  // and the interface they use; the route source (netlink view) last.
  std::unique_ptr<RouteSource> netlink_;
  std::unique_ptr<OffloadedInterface> interface_;
  std::unique_ptr<KernelFeed> kernel_;
  std::unique_ptr<Steering> steering_;
  std::vector<std::unique_ptr<EngineFlows>> flows_;  // one per engine
  std::unique_ptr<engine::EngineSet> engines_;
  std::atomic<uint64_t> next_cookie_{1};
  std::atomic<AppWaker*> waker_{nullptr};
  bool stopped_ = false;
};

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_WIRE_PLANE_H_
