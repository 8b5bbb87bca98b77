// Engine-wide TCP configuration (set from the namespace's sysctls, see
// daemon/stack/sysctl.h) and the TCP counters `offloadctl stats` shows.
//
// Thread safety: a TcpConfig is read by its engine thread only (replaced
// between segments by Stack::SetTcpConfig); counters are single-writer.
#ifndef OFFLOAD_DAEMON_TCP_TCP_CONFIG_H_
#define OFFLOAD_DAEMON_TCP_TCP_CONFIG_H_

#include <cstdint>

#include "daemon/common/counter.h"
#include "daemon/tcp/cc/cc.h"

namespace offload::tcp {

inline constexpr uint64_t kMs = 1'000'000ull;
inline constexpr uint64_t kSec = 1'000'000'000ull;

struct TcpConfig {
  uint16_t mtu = 1500;
  uint16_t mss_clamp = 0;                    // 0: no clamp (TCP_MAXSEG)
  uint32_t initial_cwnd_segments = 10;       // RFC 6928
  uint64_t rto_initial_ns = 1 * kSec;        // RFC 6298 2.1
  uint64_t rto_min_ns = 200 * kMs;           // Linux TCP_RTO_MIN
  uint64_t rto_max_ns = 120 * kSec;          // Linux TCP_RTO_MAX
  uint64_t delack_ns = 40 * kMs;             // Linux TCP_DELACK_MIN
  uint32_t quickack_segments = 16;           // Linux TCP_MAX_QUICKACKS
  uint64_t time_wait_ns = 60 * kSec;         // 2MSL (Linux TCP_TIMEWAIT_LEN)
  uint64_t fin_timeout_ns = 60 * kSec;       // orphaned FIN-WAIT-2
  uint32_t syn_retries = 6;                  // Linux tcp_syn_retries
  uint32_t synack_retries = 5;               // Linux tcp_synack_retries
  // Linux tcp_syn_linear_timeouts: the first N SYN retransmissions keep the
  // initial RTO (no doubling) before exponential backoff.
  uint32_t syn_linear_timeouts = 4;
  // Linux tcp_select_initial_window: the receive window scale follows the
  // largest buffer a socket may grow to, max(tcp_rmem[2], core.rmem_max),
  // not the ring a connection uses now (a socket that set SO_RCVBUF uses
  // that instead, Tcb::user_rcvbuf).
  uint32_t rcv_space_max = 6291456;
  uint32_t rcvbuf_default = 131072;          // tcp_rmem[1] (SO_RCVBUF before autotuning)
  uint32_t sndbuf_default = 16384;           // tcp_wmem[1]
  uint32_t sndbuf_max = 4194304;             // tcp_wmem[2]
  // Linux tcp_syncookies: 0 never, 1 when a listener's SYN queue is full,
  // 2 always (RFC 4987 3.6).
  uint8_t syncookies = 1;
  uint32_t retries2 = 15;                    // Linux tcp_retries2
  uint64_t keepalive_time_ns = 7200 * kSec;  // RFC 1122 4.2.3.6
  uint64_t keepalive_intvl_ns = 75 * kSec;
  uint32_t keepalive_probes = 9;
  uint64_t cork_timeout_ns = 200 * kMs;      // Linux TCP_CORK ceiling
  bool window_scaling = true;                // RFC 7323
  bool timestamps = true;                    // RFC 7323
  bool sack = true;                          // RFC 2018
  bool dsack = true;                         // RFC 2883
  bool tlp = true;                           // RFC 8985 7 tail loss probe (Linux default)
  bool prr = true;                           // RFC 6937 proportional rate reduction (Linux)
  uint32_t dupthresh = 3;                    // RFC 5681 / 6675 DupThresh
  uint32_t challenge_ack_limit = 1000;       // per second (RFC 5961 7)
  uint64_t invalid_ratelimit_ns = 500 * kMs; // Linux tcp_invalid_ratelimit (per socket)
  const CcOps* cc = &kCubicOps;              // Linux default
};

struct TcpCounters {
  common::SingleWriterCounter segs_in;
  common::SingleWriterCounter segs_out;
  common::SingleWriterCounter data_segs_in;
  common::SingleWriterCounter data_segs_out;
  common::SingleWriterCounter retrans_segs;
  common::SingleWriterCounter fast_retransmits;
  common::SingleWriterCounter sack_recoveries;
  common::SingleWriterCounter newreno_recoveries;
  common::SingleWriterCounter rto_timeouts;
  common::SingleWriterCounter tail_loss_probes;
  // RFC 8985 reordering-window expiries that found a loss.
  common::SingleWriterCounter reorder_timeouts;
  // A retransmission of SND.UNA detected lost (RFC 8985 6.2).
  common::SingleWriterCounter lost_retransmits;
  // Window reductions reverted because D-SACKs proved every retransmission
  // of the episode spurious (Linux TCPDSACKUndo / TCPLossUndo).
  common::SingleWriterCounter recovery_undos;
  // Connections that saw reordering (RFC 8985 RACK.reord; Linux TCPSACKReorder).
  common::SingleWriterCounter reordering_seen;
  common::SingleWriterCounter rto_undos;
  common::SingleWriterCounter active_opens;
  common::SingleWriterCounter passive_opens;
  common::SingleWriterCounter established;
  common::SingleWriterCounter resets_received;
  common::SingleWriterCounter resets_sent;
  common::SingleWriterCounter challenge_acks;
  common::SingleWriterCounter challenge_acks_suppressed;
  common::SingleWriterCounter oow_acks_suppressed;  // per-socket out-of-window ACK limit
  common::SingleWriterCounter out_of_window;        // failed RFC 9293 3.10.7.4 seq check
  common::SingleWriterCounter paws_rejected;        // RFC 7323 5.3
  common::SingleWriterCounter ack_too_new;          // SEG.ACK > SND.NXT
  common::SingleWriterCounter ooo_segments;
  common::SingleWriterCounter ooo_dropped;          // reassembly ranges exhausted
  common::SingleWriterCounter duplicate_segments;
  common::SingleWriterCounter beyond_buffer_dropped;
  common::SingleWriterCounter delayed_acks;
  common::SingleWriterCounter zero_window_probes;
  common::SingleWriterCounter keepalive_probes;
  common::SingleWriterCounter timeouts;             // connections aborted with ETIMEDOUT
  common::SingleWriterCounter dsacks_received;
  common::SingleWriterCounter dsacks_sent;
  common::SingleWriterCounter bad_app_index;        // ring index from the app rejected
  // RFC 4987 3.6 SYN cookies (Linux SyncookiesSent / Recv / Failed).
  common::SingleWriterCounter syncookies_sent;
  common::SingleWriterCounter syncookies_recv;
  common::SingleWriterCounter syncookies_failed;
  common::SingleWriterCounter limited_transmits;    // RFC 3042 segments
  common::SingleWriterCounter user_timeouts;        // aborted by TCP_USER_TIMEOUT
};

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_TCP_CONFIG_H_
