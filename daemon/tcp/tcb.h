// The TCP control block (RFC 9293 3.3.1), engine-wide TCP configuration and
// counters, and the interface through which TCP talks to its host (the
// Stack).
//
// Field names follow RFC 9293 / BSD (snd_una, rcv_nxt, snd_cwnd, ...).
// All sequence variables are wrap-safe uint32_t compared with seq.h. Times are
// nanoseconds of the injected clock unless the name says otherwise.
//
// Thread safety: a Tcb belongs to exactly one engine thread.
#ifndef OFFLOAD_DAEMON_TCP_TCB_H_
#define OFFLOAD_DAEMON_TCP_TCB_H_

#include <cstddef>
#include <cstdint>

#include "daemon/common/counter.h"
#include "daemon/net/headers.h"
#include "daemon/tcp/byte_ring.h"
#include "daemon/tcp/cc/cc.h"
#include "daemon/tcp/interval_set.h"
#include "daemon/tcp/options.h"
#include "daemon/tcp/sent_log.h"
#include "daemon/tcp/tcp_config.h"
#include "daemon/timer/timer_wheel.h"

namespace offload::tcp {

inline constexpr uint32_t kMaxCwnd = 1u << 30;
inline constexpr size_t kCcPrivSize = 64;
inline constexpr size_t kMaxOooRanges = 32;   // receiver reassembly ranges
inline constexpr size_t kMaxSackRanges = 32;  // sender scoreboard ranges
inline constexpr uint16_t kDefaultMss = 536;  // RFC 9293 3.7.1 / RFC 1122
inline constexpr uint32_t kMaxEorMarks = 16;  // record ends (MSG_EOR) remembered per connection

// RFC 9293 3.3.2 states.
enum class TcpState : uint8_t {
  kClosed,
  kListen,
  kSynSent,
  kSynReceived,
  kEstablished,
  kFinWait1,
  kFinWait2,
  kCloseWait,
  kClosing,
  kLastAck,
  kTimeWait,
};

const char* TcpStateName(TcpState s);
// Linux's TCP_* state numbers as reported in tcp_info.tcpi_state.
uint8_t LinuxTcpState(TcpState s);

// Event bits reported to the host (and from it to the application).
enum TcpEvent : uint32_t {
  kEventConnected = 1u << 0,  // active open reached ESTABLISHED
  kEventAcceptable = 1u << 1, // (listener) a child finished the handshake
  kEventReadable = 1u << 2,   // new in-order bytes in the RX ring
  kEventWritable = 1u << 3,   // TX ring space was released
  kEventPeerFin = 1u << 4,    // the peer closed its direction (EOF)
  kEventClosed = 1u << 5,     // the connection is gone (see Tcb::error)
  kEventError = 1u << 6,      // an error occurred (Tcb::error holds errno)
};

struct Tcb;

// What TCP needs from the engine that hosts it.
class TcpHost {
 public:
  virtual ~TcpHost() = default;
  // `tcb` has something to transmit; call TcpOutput() for it soon.
  virtual void ScheduleOutput(Tcb* tcb) = 0;
  // Report `events` (TcpEvent bits) for `tcb` to the application.
  virtual void Notify(Tcb* tcb, uint32_t events) = 0;
  // A passive child completed the three-way handshake (move it to the
  // listener's accept queue).
  virtual void ChildEstablished(Tcb* tcb) = 0;
  // `tcb` entered CLOSED; the host removes it from demultiplexing and frees
  // it once the application has released it. `tcb` stays valid until then.
  virtual void ConnectionClosed(Tcb* tcb) = 0;
  // Transmit a RST (+ACK when `with_ack`) for `tcb` now, before it is freed.
  virtual void SendReset(Tcb* tcb, uint32_t seq, uint32_t ack, bool with_ack) = 0;
};

// Per-stack TCP environment passed to every TCP function.
struct TcpContext {
  const TcpConfig* cfg = nullptr;
  timer::TimerWheel* wheel = nullptr;
  TcpCounters* ctr = nullptr;
  TcpHost* host = nullptr;
  uint64_t now_ns = 0;
  // RFC 5961 7: challenge ACK rate limiting (per stack, per second).
  uint64_t challenge_window_ns = 0;
  uint32_t challenge_count = 0;
};

// Per-socket options (setsockopt equivalents).
enum class TcpOpt : uint8_t {
  kNoDelay,        // TCP_NODELAY
  kCork,           // TCP_CORK
  kQuickAck,       // TCP_QUICKACK
  kKeepAlive,      // SO_KEEPALIVE
  kKeepIdle,       // TCP_KEEPIDLE (seconds)
  kKeepIntvl,      // TCP_KEEPINTVL (seconds)
  kKeepCnt,        // TCP_KEEPCNT
  kLingerZero,     // SO_LINGER {1, 0}: close() aborts with RST
  kUserTimeout,    // TCP_USER_TIMEOUT (milliseconds, 0 = default)
  kMaxSeg,         // TCP_MAXSEG (before connect)
  kRcvBuf,         // SO_RCVBUF (bytes as passed; sets the window scale before SYN)
  kSndBuf,         // SO_SNDBUF (bytes as passed)
};

// IP header bytes per segment of a flow (no options / extension headers):
// MSS = MTU - this - 20 (RFC 9293 3.7.1; IPv6: MTU - 60, RFC 8200 8.3).
inline constexpr uint32_t IpHeaderLen(bool ipv6) { return ipv6 ? 40u : 20u; }

struct Tcb {
  // --- Identity (host byte order) ---
  uint32_t local_ip = 0;
  uint32_t remote_ip = 0;
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  // IPv6 (RFC 8200): `ipv6` set, the addresses are local_ip6/remote_ip6 and
  // local_ip/remote_ip stay 0. Set before TcbInit (the MSS depends on it).
  bool ipv6 = false;
  net::Ip6Addr local_ip6;
  net::Ip6Addr remote_ip6;
  // A listener on in6addr_any without IPV6_V6ONLY: also takes IPv4 SYNs,
  // whose children are IPv4 flows (RFC 4291 2.5.5.2, Linux dual stack).
  bool dual_stack = false;
  net::MacAddr local_mac;
  net::MacAddr remote_mac;   // next hop, filled by the host before output
  TcpState state = TcpState::kClosed;
  bool passive = false;      // created from a listener's SYN

  // --- Send sequence space (RFC 9293 3.3.1) ---
  uint32_t iss = 0;
  uint32_t snd_una = 0;
  uint32_t snd_nxt = 0;      // next new or retransmitted sequence to send
  uint32_t snd_max = 0;      // highest sequence sent + 1 (HighData)
  uint32_t snd_wnd = 0;      // scaled
  uint32_t snd_wl1 = 0;
  uint32_t snd_wl2 = 0;
  uint32_t max_snd_wnd = 0;  // RFC 5961 5.2 MAX.SND.WND
  uint32_t tx_seq0 = 0;      // sequence number of the TX ring's head byte
  bool syn_sent_flag = false;
  bool fin_queued = false;   // shutdown(SHUT_WR) requested
  bool fin_sent = false;
  uint32_t fin_seq = 0;      // sequence number of our FIN when fin_queued

  // --- Receive sequence space ---
  uint32_t irs = 0;
  uint32_t rcv_nxt = 0;
  uint32_t rcv_adv = 0;      // right edge of the last advertised window
  uint32_t rcv_wnd = 0;
  uint32_t rcv_ssthresh = 0;       // Linux: cap on the window offered (0: none yet)
  uint32_t last_ack_sent = 0;
  bool peer_fin = false;     // FIN received and processed
  bool ooo_fin = false;      // FIN received out of order at ooo_fin_seq
  uint32_t ooo_fin_seq = 0;

  // --- Options ---
  uint16_t snd_mss = kDefaultMss;  // payload per segment (excl. options)
  uint16_t adv_mss = 0;            // MSS we announced
  uint16_t peer_mss = kDefaultMss; // MSS the peer announced
  uint16_t user_mss = 0;           // TCP_MAXSEG
  uint8_t snd_wscale = 0;          // shift applied to the peer's windows
  uint8_t rcv_wscale = 0;          // shift the peer applies to ours
  bool ws_ok = false;
  bool ts_ok = false;
  bool sack_ok = false;
  uint32_t ts_recent = 0;          // RFC 7323 TS.Recent
  uint64_t ts_recent_stamp_ns = 0;
  uint32_t ts_offset = 0;

  // --- RTT / RTO (RFC 6298), microseconds ---
  int64_t srtt_us = 0;
  int64_t rttvar_us = 0;
  int64_t min_rtt_us = 0;
  uint64_t rto_ns = 0;
  uint32_t backoff = 0;            // consecutive RTO expirations
  bool rtt_timing = false;         // Karn: one timed segment
  uint32_t rtt_seq = 0;
  uint64_t rtt_start_ns = 0;

  // --- Congestion control ---
  uint32_t snd_cwnd = 0;
  uint32_t snd_ssthresh = 0x7fffffff;
  uint32_t snd_cwnd_cnt = 0;
  uint32_t dupacks = 0;
  bool in_recovery = false;
  bool sack_recovery = false;      // RFC 6675 (else NewReno RFC 6582)
  uint32_t recover = 0;            // RecoveryPoint / "recover"
  uint32_t high_rxt = 0;           // RFC 6675 HighRxt
  // RFC 8985 (RACK) state, see tcp_rack.cc: the most recently sent segment
  // known delivered, and how far losses were detected.
  SentLog sent;                    // per-segment transmit records
  uint64_t rack_xmit_ns = 0;       // RACK.xmit_ts (0: nothing delivered yet)
  uint32_t rack_end = 0;           // RACK.end_seq
  uint64_t rack_rtt_ns = 0;        // RACK.rtt
  uint32_t rack_lost_end = 0;      // unSACKed data below this is lost (if > snd_una)
  bool rack_lost_rtx = false;      // a retransmission was detected lost (resend it)
  // RFC 8985 6.2 step 2 RACK.reord: an original transmission was delivered
  // below data SACKed by an earlier ACK. From then on losses are found by
  // time only (no DupThresh), as Linux does once reordering is seen.
  bool rack_reord = false;
  uint32_t rack_fack = 0;          // highest SACKed end before this ACK (else SND.UNA)
  uint32_t reordering = 0;         // largest reordering seen, segments (0: none; tcpi_reordering)
  uint8_t reo_wnd_mult = 1;        // RFC 8985 6.2 step 4 RACK.reo_wnd_mult
  uint8_t reo_wnd_persist = 0;     // RFC 8985 RACK.reo_wnd_persist
  uint64_t reo_adjust_ns = 0;      // last reo_wnd_mult increase (once per RTT)
  uint8_t ca_state = 0;            // Linux TCP_CA_* for tcp_info
  // Undo of a spurious congestion response (RFC 2883 4, Linux undo_marker):
  // a window reduction (fast recovery or RTO) is reverted once D-SACKs show
  // that every retransmission it caused was unnecessary. See tcp_ack.cc.
  bool undo_armed = false;         // an episode's reduction can still be undone
  uint32_t undo_marker = 0;        // SND.UNA when the episode began
  uint32_t undo_retrans = 0;       // its retransmissions not yet D-SACKed
  uint32_t undo_cwnd = 0;          // cwnd and ssthresh before the reduction
  uint32_t undo_ssthresh = 0;
  // RFC 6937 PRR: segments delivered and sent since recovery began, and
  // cwnd (bytes) before it (Linux prr_delivered, prr_out, prior_cwnd).
  uint32_t prr_delivered = 0;
  uint32_t prr_out = 0;
  uint32_t prior_cwnd = 0;
  uint32_t acked_sacked = 0;       // bytes newly ACKed or SACKed by the ACK being processed
  const CcOps* cc = nullptr;
  alignas(8) uint8_t cc_priv[kCcPrivSize];

  // --- SACK ---
  SeqIntervalSet<kMaxSackRanges> scoreboard;  // sender: SACKed above snd_una
  SeqIntervalSet<kMaxOooRanges> ooo;          // receiver: held out of order
  uint32_t recent_sack[kMaxSackBlocks] = {};  // most recent block starts
  uint8_t num_recent_sack = 0;
  bool dsack_pending = false;
  SackBlock dsack;

  // --- ACK generation ---
  bool ack_now = false;
  uint8_t extra_acks = 0;          // further immediate ACKs owed (one per OOO segment)
  uint16_t rcv_mss = kDefaultMss;  // largest payload seen (Linux rcv_mss)
  uint32_t quickack = 0;           // remaining quick ACKs
  bool quickack_forced = false;    // TCP_QUICKACK

  // --- Timers (deadlines; 0 = not armed) ---
  timer::TimerNode timer;
  uint64_t rtx_deadline = 0;       // retransmission or persist
  uint64_t reo_deadline = 0;       // RFC 8985 6.2 reordering window (RACK reo timer)
  bool persist = false;            // rtx_deadline is the persist timer
  bool tlp_armed = false;          // rtx_deadline is a loss probe timeout (PTO)
  bool tlp_pending = false;        // send a tail loss probe now
  uint32_t tlp_high_seq = 0;       // RFC 8985 TLP.end_seq (0: none in flight)
  bool tlp_in_flight = false;
  uint32_t persist_backoff = 0;
  uint64_t delack_deadline = 0;
  uint64_t keepalive_deadline = 0;
  uint64_t close_deadline = 0;     // TIME-WAIT or orphaned FIN-WAIT-2
  uint64_t cork_deadline = 0;
  uint64_t first_rtx_ns = 0;       // when the oldest unacked data was first retransmitted
  uint32_t retransmits = 0;        // RTO retransmissions of the same data
  uint32_t keepalive_sent = 0;
  bool probe_pending = false;      // send a window/keepalive probe
  uint64_t last_oow_ack_ns = 0;    // last ACK sent for an invalid segment
  bool force_rtx = false;          // retransmit snd_una now (fast rtx)
  bool sws_override = false;       // persist fired: fill a small window

  // --- Socket options ---
  bool nodelay = false;
  bool cork = false;
  bool more = false;               // MSG_MORE on the last send: its end is not pushed
  bool more_released = false;      // an ACK came since: Nagle, not MSG_MORE, holds
  bool cork_expired = false;       // the 200 ms cork ceiling passed
  uint32_t snd_sml = 0;            // end of the last small segment (Minshall)
  uint64_t una_since_ns = 0;       // oldest unacknowledged data sent at
  bool keepalive = false;
  bool linger_zero = false;
  uint64_t keepidle_ns = 0;        // 0: config default
  uint64_t keepintvl_ns = 0;
  uint32_t keepcnt = 0;
  uint64_t user_timeout_ns = 0;
  uint32_t user_rcvbuf = 0;        // SO_RCVBUF as set (0: not set; window scale from config)
  uint32_t user_sndbuf = 0;        // SO_SNDBUF as set (0: not set)
  // MSG_EOR (Linux skb->eor): sequence numbers where a record ends; no
  // segment carries bytes of two records. A ring of the newest marks;
  // eor_head..eor_tail (monotonic counters) index it.
  uint32_t eor_marks[kMaxEorMarks] = {};
  uint32_t eor_head = 0;
  uint32_t eor_tail = 0;

  // --- Buffers ---
  TxRing tx;
  RxRing rx;

  // --- Errors, stats ---
  int error = 0;                   // errno-style reason of the close
  uint64_t last_data_sent_ns = 0;
  uint64_t last_data_recv_ns = 0;
  uint64_t last_ack_recv_ns = 0;
  uint64_t last_rx_ns = 0;         // any segment (keepalive idle)
  uint64_t bytes_acked = 0;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_retrans = 0;
  // Delivery rate (TCP_INFO tcpi_delivery_rate): bytes delivered (ACKed or
  // SACKed) over the last window of at least one SRTT.
  uint64_t rate_window_start_ns = 0;
  uint64_t rate_window_delivered = 0;  // delivered bytes at the window start
  uint64_t delivery_rate = 0;          // bytes per second, last full window
  uint32_t segs_in = 0;
  uint32_t segs_out = 0;
  uint32_t data_segs_in = 0;
  uint32_t data_segs_out = 0;
  uint32_t total_retrans = 0;
  uint32_t dsack_dups = 0;
  uint32_t rcv_ooopack = 0;
  uint16_t ip_id = 0;

  // --- Host bookkeeping (owned by the Stack) ---
  uint32_t index = 0;
  uint32_t generation = 0;
  uint64_t cookie = 0;
  uint32_t listener = 0xffffffffu;  // parent listener index for children
  uint32_t next_in_queue = 0xffffffffu;
  bool in_use = false;
  bool user_released = false;      // the application closed its handle
  bool closed_notified = false;
  bool in_output_list = false;
  bool waiting_neighbor = false;
  uint32_t next_hop = 0;           // cached route lookup, valid for route_gen
  net::Ip6Addr next_hop6;          // the same for an IPv6 flow
  uint32_t route_gen = 0;
  uint64_t last_syncookie_ns = 0;  // listener: last cookie SYN,ACK sent (0: never)
  bool accepted = false;
  // Passive child on its listener's accept queue (stays there if it is
  // reset before accept(), as on Linux: accept() returns it, reads fail).
  bool in_accept_queue = false;
  uint32_t pending_events = 0;
  bool in_event_list = false;
  bool provider_buffers = false;   // rings come from the BufferProvider
  // Listener only: backlog and queues (children linked by next_in_queue).
  uint32_t backlog = 0;
  uint32_t syn_count = 0;
  uint32_t accept_count = 0;
  uint32_t accept_head = 0xffffffffu;
  uint32_t accept_tail = 0xffffffffu;

  // Bytes in flight counted per RFC 5681 FlightSize.
  uint32_t FlightSize() const { return snd_max - snd_una; }
  // Sequence number just past the last byte of data the app queued.
  uint32_t DataEndSeq() const { return tx_seq0 + tx.size(); }
};

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_TCB_H_
