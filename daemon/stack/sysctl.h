// The network namespace's TCP sysctls, read the way Linux applies them to
// new sockets, and mapped onto the engine's TCP configuration: an
// administrator configures offloaded TCP exactly as the host's.
//
// Which sysctls (under <root>/net/ipv4 unless noted) and what they set:
//   tcp_timestamps, tcp_sack, tcp_dsack, tcp_window_scaling   option offers
//   tcp_rmem (max) and net/core/rmem_max                      window scale
//   tcp_rmem (default), tcp_wmem (default, max)               SO_RCVBUF/SO_SNDBUF
//   tcp_syn_retries, tcp_synack_retries, tcp_retries2,
//   tcp_syn_linear_timeouts                                   give-up and backoff
//   tcp_rto_min_us, tcp_rto_max_ms                            RTO bounds
//   tcp_keepalive_time / _intvl / _probes                     keep-alive defaults
//   tcp_fin_timeout                                           orphaned FIN-WAIT-2
//   tcp_reordering                                            DupThresh
//   tcp_early_retrans (>= 3: TLP), tcp_invalid_ratelimit,
//   tcp_challenge_ack_limit                                   loss probes, ACK limits
//   tcp_syncookies, tcp_max_syn_backlog                       SYN flood handling
// The initial RTO is Linux's fixed TCP_TIMEOUT_INIT (1 s); no sysctl sets it.
// A missing or unreadable file leaves that field as it was (older kernels
// lack some); a malformed one likewise, and is named in the result.
//
// Refresh: offloadd reads them at start and again before each new wire
// listener or connection (WirePlane, at most every 100 ms), so a change
// applies to the next connection as on Linux; connections keep the values
// they started with (as Linux, where most are read at socket creation).
//
// Thread safety: the functions are reentrant; the caller owns the structs.
#ifndef OFFLOAD_DAEMON_STACK_SYSCTL_H_
#define OFFLOAD_DAEMON_STACK_SYSCTL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/tcp/tcb.h"

namespace offload::stack {

// Raw values; a field keeps its initial (Linux default) value when its file
// is absent.
struct TcpSysctls {
  uint32_t timestamps = 1;
  uint32_t sack = 1;
  uint32_t dsack = 1;
  uint32_t window_scaling = 1;
  uint32_t rmem[3] = {4096, 131072, 6291456};
  uint32_t wmem[3] = {4096, 16384, 4194304};
  uint32_t core_rmem_max = 212992;
  uint32_t syn_retries = 6;
  uint32_t synack_retries = 5;
  uint32_t retries2 = 15;
  uint32_t syn_linear_timeouts = 0;  // absent before Linux 6.x: always exponential
  uint32_t rto_min_us = 200000;
  uint32_t rto_max_ms = 120000;
  uint32_t keepalive_time = 7200;
  uint32_t keepalive_intvl = 75;
  uint32_t keepalive_probes = 9;
  uint32_t fin_timeout = 60;
  uint32_t reordering = 3;
  uint32_t early_retrans = 3;
  uint32_t invalid_ratelimit = 500;
  uint32_t challenge_ack_limit = 1000;
  uint32_t syncookies = 1;
  uint32_t max_syn_backlog = 4096;

  bool operator==(const TcpSysctls& o) const;
  bool operator!=(const TcpSysctls& o) const { return !(*this == o); }
};

// Reads the sysctls under `root` (normally "/proc/sys"). Files that are
// malformed are listed in *bad (may be null).
TcpSysctls ReadTcpSysctls(const std::string& root, std::vector<std::string>* bad = nullptr);

// Sets the fields of `cfg` the sysctls govern (see the file comment).
void ApplyTcpSysctls(const TcpSysctls& s, tcp::TcpConfig* cfg);

}  // namespace offload::stack

#endif  // OFFLOAD_DAEMON_STACK_SYSCTL_H_
