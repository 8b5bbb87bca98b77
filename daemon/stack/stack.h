// Stack: one engine's user-space TCP/UDP/IPv4/ARP protocol stack, with TCP
// and UDP over IPv6 too (stack_ipv6.cc, stack_udp6.cc; IPv6 multicast is the
// kernel's: such datagrams are counted in
// udp.drop.ipv6_multicast_not_offloaded).
//
// The Stack does no I/O of its own: the NIC driver hands it received
// Ethernet frames (ProcessRx), collects frames to transmit (PollTx), and
// drives time (OnTimer); every call carries the current time of an injected
// nanosecond clock. Applications' requests arrive as calls on flows, and
// results leave as events (PollEvents). TCP payload lives in byte rings the
// Stack does not own (tcp::RingMemory, normally in an application's shared
// memory arena), treated as untrusted.
//
// Memory: connections, UDP endpoints, frame buffers, hash tables and the
// timer wheel are allocated by Create() from the config (max_concurrency,
// max_udp_endpoints, max_num_buffers); the per-packet paths never allocate.
//
// Flow lifecycle: a TCP handle (from TcpConnect, TcpListen or TcpAccept) stays
// valid until the application releases it with TcpClose or TcpAbort, even
// after kEventClosed (whose FlowEvent::error says why: 0, ECONNREFUSED,
// ECONNRESET, ETIMEDOUT). After TcpClose the protocol finishes in the
// background (FIN, TIME-WAIT) and the control block is recycled by the Stack;
// rings from a BufferProvider are handed back through ReleaseRings. Children
// that die before accept() are recycled silently.
//
// Events are coalesced per flow (one FlowEvent with all bits that happened
// since the last PollEvents); kEventAcceptable means "accept until EAGAIN".
//
// Thread safety: NOT thread-safe. A Stack belongs to one engine thread; every
// method must be called on that thread. Other threads talk to it through the
// engine's queues.
//
// The types of this API (config, routes, flow handles, events, frames, the
// host's interfaces, counters) are in stack_types.h.
#ifndef OFFLOAD_DAEMON_STACK_STACK_H_
#define OFFLOAD_DAEMON_STACK_STACK_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "daemon/net/arp.h"
#include "daemon/net/frame.h"
#include "daemon/net/index_map.h"
#include "daemon/stack/frame_pool.h"
#include "daemon/stack/stack_types.h"
#include "daemon/tcp/socket_options.h"
#include "daemon/tcp/tcb.h"
#include "daemon/tcp/tcp.h"
#include "daemon/timer/timer_wheel.h"
#include "daemon/udp/udp_table.h"

namespace offload::stack {

class Stack : private tcp::TcpHost {
 public:
  // Creates a stack. `provider` (may be null: listeners then fail) must
  // outlive the stack. Errors: InvalidArgument for a bad config.
  static absl::StatusOr<std::unique_ptr<Stack>> Create(const StackConfig& config,
                                                       BufferProvider* provider,
                                                       uint64_t now_ns);
  ~Stack() override;
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  // --- Neighbours and routes (the kernel's, fed from netlink) ---
  // Installs ip -> mac (e.g. from the kernel's neighbour table).
  void SeedNeighbor(uint32_t ip, const net::MacAddr& mac, bool permanent = false);
  // Forgets ip (the kernel deleted the entry or it failed); the next frame
  // to it asks for resolution again.
  void ForgetNeighbor(uint32_t ip);
  // Replaces the routing table (longest prefix wins; on-subnet destinations
  // and routes without gateway are on-link). Connections pick up the change
  // on their next transmission.
  void SetRoutes(const std::vector<StackRoute>& routes);
  // The IPv6 counterparts (stack_ipv6.cc).
  void SeedNeighbor6(const net::Ip6Addr& ip, const net::MacAddr& mac, bool permanent = false);
  void ForgetNeighbor6(const net::Ip6Addr& ip);
  void SetRoutes6(const std::vector<StackRoute6>& routes);
  // The interface's IPv6 address changed (all zero: none). New connections
  // and the on-link test use it; established ones keep theirs, as Linux's
  // do until their address is gone.
  void SetLocalIp6(const net::Ip6Addr& ip, uint8_t prefix_len);
  // Replaces the TCP configuration (sysctl refresh, stack_sysctl.h). New
  // connections and listeners use it; established ones keep what they
  // negotiated.
  void SetTcpConfig(const tcp::TcpConfig& tcp);

  // --- TCP (calls return 0 or an errno value) ---
  // listen(): `local_ip` 0 = any local address. EADDRINUSE, ENOBUFS.
  int TcpListen(uint32_t local_ip, uint16_t port, int backlog, uint64_t cookie, FlowId* out,
                const tcp::SocketOptions* options = nullptr);
  // connect(): rings are owned by the caller and must stay valid until the
  // flow is released. `local_port` 0 picks an ephemeral port. EINVAL,
  // EADDRINUSE, EADDRNOTAVAIL (no ephemeral port), ENOBUFS.
  int TcpConnect(uint32_t remote_ip, uint16_t remote_port, uint16_t local_port,
                 const tcp::RingMemory& tx, const tcp::RingMemory& rx, uint64_t cookie,
                 FlowId* out, const char* congestion = nullptr,
                 const tcp::SocketOptions* options = nullptr);
  // IPv6 listen(): `local_ip` all zero = any address; then unless `v6only`
  // the listener is dual-stack and also takes IPv4 SYNs (their children are
  // IPv4 flows). A v4-mapped `local_ip` listens on that IPv4 address only.
  // EADDRINUSE against a listener of the same family on the port.
  int TcpListen6(const net::Ip6Addr& local_ip, uint16_t port, bool v6only, int backlog,
                 uint64_t cookie, FlowId* out, const tcp::SocketOptions* options = nullptr);
  // IPv6 connect() from StackConfig::local_ip6; as TcpConnect. A v4-mapped
  // `remote_ip` connects over IPv4. ENETUNREACH without a local IPv6
  // address or to a multicast address.
  int TcpConnect6(const net::Ip6Addr& remote_ip, uint16_t remote_port, uint16_t local_port,
                  const tcp::RingMemory& tx, const tcp::RingMemory& rx, uint64_t cookie,
                  FlowId* out, const char* congestion = nullptr,
                  const tcp::SocketOptions* options = nullptr);
  // accept(): pops an established child. EAGAIN if none, EINVAL if not a listener.
  int TcpAccept(FlowId listener, uint64_t child_cookie, FlowId* child);
  // The application appended bytes to the TX ring (`more` = MSG_MORE).
  int TcpSend(FlowId flow, bool more = false);
  // The application consumed bytes from the RX ring.
  int TcpReceiveCredit(FlowId flow);
  int TcpShutdown(FlowId flow, bool read, bool write);
  // close(): releases the handle; the protocol finishes in the background.
  int TcpClose(FlowId flow);
  // Abortive close (RST); releases the handle.
  int TcpAbort(FlowId flow);
  int TcpSetOption(FlowId flow, tcp::TcpOpt opt, int value);
  // The application's socket options (socket_options.h): applies what
  // changed (EINVAL for a bad value), reads them back.
  int TcpSetOptions(FlowId flow, const tcp::SocketOptions& options);
  int TcpGetOptions(FlowId flow, tcp::SocketOptions* options);
  // getsockopt values: TCP_MAXSEG, SO_SNDBUF, SO_RCVBUF, TCP_INQ, SIOCOUTQ.
  int TcpGetSocketValues(FlowId flow, tcp::SocketValues* values);
  // MSG_EOR: a record ends at application TX index `tx_index`
  // (tcp::TcpMarkRecordEnd). Call before TcpSend for those bytes.
  int TcpMarkRecordEnd(FlowId flow, uint64_t tx_index);
  int TcpSetCongestion(FlowId flow, const char* name);
  int TcpGetInfo(FlowId flow, tcp::TcpInfo* info);
  // Local/remote addresses of a flow.
  // IPv4 flows only (IPv6: addresses 0).
  int TcpGetAddresses(FlowId flow, uint32_t* lip, uint16_t* lport, uint32_t* rip, uint16_t* rport);
  // Either family: *ipv6 says which; IPv4 addresses come v4-mapped.
  int TcpGetAddresses6(FlowId flow, bool* ipv6, net::Ip6Addr* lip, uint16_t* lport,
                       net::Ip6Addr* rip, uint16_t* rport);
  // The rings a flow uses (for an accepted child: those its listener's
  // BufferProvider gave it). EBADF for an unknown handle.
  int TcpGetRings(FlowId flow, tcp::RingMemory* tx, tcp::RingMemory* rx);

  // --- UDP ---
  // bind(): port 0 picks an ephemeral port (returned in *bound_port).
  int UdpBind(uint32_t local_ip, uint16_t port, bool reuse, uint64_t cookie, FlowId* out,
              uint16_t* bound_port = nullptr);
  int UdpConnect(FlowId ep, uint32_t remote_ip, uint16_t remote_port);
  int UdpJoinGroup(FlowId ep, uint32_t group);
  int UdpLeaveGroup(FlowId ep, uint32_t group);
  // sendto(); dst 0 uses the connected peer. EMSGSIZE, EDESTADDRREQ, ENOBUFS.
  // A multicast destination leaves to its mapped MAC (RFC 1112 6.4) with
  // `multicast_ttl` (-1: the default, 1; RFC 1112 6.1); unicast uses 64.
  int UdpSendTo(FlowId ep, uint32_t dst_ip, uint16_t dst_port, const void* data, uint32_t len,
                int multicast_ttl = -1);
  // recvfrom(): returns the datagram length (>= 0, may exceed cap) or -errno.
  // An IPv6 source comes out as 0 (use UdpRecvFrom6 on AF_INET6 endpoints).
  int64_t UdpRecvFrom(FlowId ep, void* buf, uint32_t cap, uint32_t* src_ip, uint16_t* src_port);
  int UdpClose(FlowId ep);
  // IPv6 (stack_udp6.cc). bind() of an AF_INET6 socket: `local_ip` :: (with
  // !v6only a dual-stack endpoint that also takes IPv4 datagrams to the
  // port), StackConfig::local_ip6, or a v4-mapped local IPv4 address (an
  // IPv4 endpoint). EADDRNOTAVAIL for another address (multicast included:
  // IPv6 groups are the kernel's), EADDRINUSE as UdpBind.
  int UdpBind6(const net::Ip6Addr& local_ip, uint16_t port, bool v6only, bool reuse,
               uint64_t cookie, FlowId* out, uint16_t* bound_port = nullptr);
  // sendto() an IPv6 destination from the endpoint's address (or
  // StackConfig::local_ip6), hop limit 64; a v4-mapped one as UdpSendTo
  // (ENETUNREACH from a v6-only endpoint). EAFNOSUPPORT from an AF_INET
  // endpoint; ENETUNREACH to a multicast or link-local destination or
  // without a local IPv6 address; EINVAL for ::, port 0; EMSGSIZE, ENOBUFS.
  int UdpSendTo6(FlowId ep, const net::Ip6Addr& dst_ip, uint16_t dst_port, const void* data,
                 uint32_t len);
  // recvfrom() with the source in 16-byte form (an IPv4 one v4-mapped).
  int64_t UdpRecvFrom6(FlowId ep, void* buf, uint32_t cap, net::Ip6Addr* src_ip,
                       uint16_t* src_port);
  // Whether the next datagram UdpRecvFrom* returns has an IPv6 source.
  bool UdpNextFromIpv6(FlowId ep);

  // --- Datapath ---
  void ProcessRx(const RxFrame* frames, size_t n, uint64_t now_ns);
  // Fills up to `max` caller buffers with frames to send; returns the count.
  size_t PollTx(TxFrame* out, size_t max, uint64_t now_ns);
  // Fires due timers.
  void OnTimer(uint64_t now_ns);
  // Earliest pending timer (kNever if none); for idle sleep / simulation.
  uint64_t NextTimerDeadline() const;
  // Returns whether PollTx has something to send.
  bool HasPendingTx() const { return !ctrl_q_.empty() || !output_q_.empty(); }
  // Drains up to `max` coalesced events.
  size_t PollEvents(FlowEvent* out, size_t max);

  const StackCounters& counters() const { return counters_; }
  const tcp::TcpCounters& tcp_counters() const { return tcp_ctr_; }
  const net::ArpCounters& arp_counters() const { return arp_.counters(); }
  // Calls `fn(name, value)` for every counter above, named for offloadctl
  // stats in netstat -s style ("tcp.retrans_segs", "ip.rx_checksum_errors",
  // "ip.drop.ip_fragment"...). Any thread: the counters are single-writer.
  void ForEachCounter(absl::FunctionRef<void(const char* name, uint64_t value)> fn) const;
  const StackConfig& config() const { return config_; }
  size_t ActiveConnections() const { return tcb_used_; }

  // Test hooks.
  const tcp::Tcb* TcbForTest(FlowId flow) const;
  tcp::Tcb* MutableTcbForTest(FlowId flow);

 private:
  Stack(const StackConfig& config, BufferProvider* provider, uint64_t now_ns);

  // Connection keys hold either family: IPv4 addresses v4-mapped.
  struct TupleKey {
    net::Ip6Addr lip, rip;
    uint16_t lport, rport;
    uint64_t Hash() const {
      uint64_t w[4];
      std::memcpy(w, lip.b, 16);
      std::memcpy(w + 2, rip.b, 16);
      return net::Mix64((w[0] ^ net::Mix64(w[1])) + (w[2] ^ net::Mix64(w[3])) +
                        (uint64_t{lport} << 16 | rport));
    }
    friend bool operator==(const TupleKey& a, const TupleKey& b) {
      return a.lport == b.lport && a.rport == b.rport && a.lip == b.lip && a.rip == b.rip;
    }
  };
  // A listener of one family on (address or all zero = any, port). A
  // dual-stack listener is under two keys.
  struct ListenKey {
    net::Ip6Addr ip;
    uint16_t port;
    bool v6;
    uint64_t Hash() const {
      uint64_t w[2];
      std::memcpy(w, ip.b, 16);
      return net::Mix64((w[0] ^ net::Mix64(w[1])) + (uint64_t{port} << 1 | v6));
    }
    friend bool operator==(const ListenKey& a, const ListenKey& b) {
      return a.port == b.port && a.v6 == b.v6 && a.ip == b.ip;
    }
  };
  static TupleKey KeyOf(const tcp::Tcb& t);
  // The key of the connection a received segment belongs to.
  static TupleKey SegmentKey(const net::ParsedFrame& f);
  static ListenKey ListenKey4(uint32_t ip, uint16_t port) {
    return ListenKey{ip == 0 ? net::Ip6Addr{} : net::Ip6Addr::V4Mapped(ip), port, false};
  }
  static ListenKey ListenKey6(const net::Ip6Addr& ip, uint16_t port) {
    return ListenKey{ip, port, true};
  }
  // The 32-bit word ISNs, timestamp offsets and cookies hash for an address
  // (tcp::Ip6Digest for IPv6).
  uint32_t AddrWord(bool ipv6, uint32_t v4, const net::Ip6Addr& v6) const;
  bool IsLocalAddress6(const net::Ip6Addr& ip) const {
    return !config_.local_ip6.IsUnspecified() && ip == config_.local_ip6;
  }
  net::Ip6Addr NextHop6(const net::Ip6Addr& dst) const;
  void RequestNeighbor6(const net::Ip6Addr& ip);
  void OnNeighborResolved6(const net::Ip6Addr& ip);
  // ResolveFlow for an IPv6 flow.
  bool ResolveFlow6(tcp::Tcb* tcb);
  // The listener a SYN to `f` belongs to (specific address first), or kNone.
  uint32_t FindListener(const net::ParsedFrame& f) const;
  // Removes the listen key(s) of listener `t`.
  void EraseListenKeys(const tcp::Tcb& t);
  // connect() of a TCB whose addresses are set: port pick, key, SYN.
  int StartConnect(tcp::Tcb* t, uint16_t local_port, const tcp::RingMemory& tx,
                   const tcp::RingMemory& rx, uint64_t cookie, FlowId* out,
                   const char* congestion, const tcp::SocketOptions* options);
  // Sets the addresses of `t` from a segment it answers (local = dst).
  static void SetAddressesFrom(tcp::Tcb* t, const net::ParsedFrame& f);

  // TcpHost.
  void ScheduleOutput(tcp::Tcb* tcb) override;
  void Notify(tcp::Tcb* tcb, uint32_t events) override;
  void ChildEstablished(tcp::Tcb* tcb) override;
  void ConnectionClosed(tcp::Tcb* tcb) override;
  void SendReset(tcp::Tcb* tcb, uint32_t seq, uint32_t ack, bool with_ack) override;

  void SetNow(uint64_t now_ns) { now_ns_ = now_ns; ctx_.now_ns = now_ns; }
  tcp::Tcb* AllocTcb();
  void FreeTcb(tcp::Tcb* tcb);
  void MaybeFree(tcp::Tcb* tcb);
  tcp::Tcb* GetTcb(FlowId id);
  FlowId IdOf(const tcp::Tcb* tcb) const {
    return (uint64_t{tcb->generation} << 32) | tcb->index;
  }
  udp::UdpEndpoint* GetUdp(FlowId id, uint32_t* index);
  bool IsLocalAddress(uint32_t ip) const { return ip == config_.local_ip; }
  uint32_t NextHop(uint32_t dst) const;
  // SYN cookies (RFC 4987 3.6): answer a SYN statelessly / complete the
  // handshake from its ACK. TryCookieAck returns false if `f` carries no
  // valid cookie for listener `l`.
  void SendCookieSynAck(tcp::Tcb* l, const net::ParsedFrame& f);
  bool TryCookieAck(tcp::Tcb* l, const net::ParsedFrame& f);
  // A child of `l` for the connection `f` belongs to, with rings and the
  // listener's options; nullptr (counted) if none can be had.
  tcp::Tcb* NewChild(tcp::Tcb* l, const net::ParsedFrame& f);
  // A free local port towards `to` (lport ignored; TCP) or any (UDP).
  uint16_t PickEphemeralPort(const TupleKey& to, bool udp);

  void HandleArp(const net::ParsedFrame& f);
  void HandleTcp(const net::ParsedFrame& f);
  void HandleUdp(const net::ParsedFrame& f);
  void HandleUdp6(const net::ParsedFrame& f);
  void HandleListen(tcp::Tcb* listener, const net::ParsedFrame& f);
  void SendRstForSegment(const net::ParsedFrame& f);
  void OnNeighborResolved(uint32_t ip);
  // Queues a fully built frame (pool index) whose L2 destination is the next
  // hop of `dst_ip`; an unresolved next hop holds it until SeedNeighbor.
  void TransmitIp(uint32_t frame, uint32_t dst_ip);
  // Sends an IPv6 frame to `dst_ip`'s next hop (asks the kernel for the
  // neighbour and holds the frame until it is known).
  void TransmitIp6(uint32_t frame, const net::Ip6Addr& dst_ip);
  void QueueControl(uint32_t frame);
  // Asks StackConfig::neighbours to resolve `ip` (counted).
  void RequestNeighbor(uint32_t ip);
  // Resolves the next-hop MAC of a TCP flow; false if unresolved (deferred).
  bool ResolveFlow(tcp::Tcb* tcb);
  // Copies queued control frames into out[n..max); returns the new count.
  size_t DrainControl(TxFrame* out, size_t n, size_t max);
  void AbortChildren(tcp::Tcb* listener);
  void NotifyUdp(uint32_t index, uint32_t events);

  StackConfig config_;
  BufferProvider* provider_;
  uint64_t now_ns_;
  uint32_t netmask_;
  tcp::TcpCounters tcp_ctr_;
  tcp::TcpContext ctx_;
  timer::TimerWheel wheel_;
  net::ArpCache arp_;
  net::NdCache nd_;                 // IPv6 neighbours (the kernel's, seeded)
  StackCounters counters_;
  FramePool pool_;
  IndexQueue ctrl_q_;       // built frames ready to send
  IndexQueue output_q_;     // TCBs with pending output
  IndexQueue event_q_;      // TCBs with pending events
  IndexQueue udp_event_q_;  // UDP endpoints with pending events
  std::vector<tcp::Tcb> tcbs_;
  std::vector<uint32_t> tcb_free_;
  size_t tcb_used_ = 0;
  net::IndexMap<TupleKey> conns_;
  net::IndexMap<ListenKey> listeners_;
  udp::UdpTable udp_;
  uint64_t last_arp_tick_ns_ = 0;
  uint32_t next_ephemeral_ = 0;
  std::vector<StackRoute> routes_;  // longest prefix first
  std::vector<StackRoute6> routes6_;  // longest prefix first
  uint32_t route_gen_ = 1;          // bumped by SetRoutes (Tcb next-hop cache)
  tcp::Tcb cookie_tcb_;             // scratch for stateless cookie SYN,ACKs
};

}  // namespace offload::stack

#endif  // OFFLOAD_DAEMON_STACK_STACK_H_
