// Reading the namespace's TCP sysctls (see sysctl.h).
#include "daemon/stack/sysctl.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace offload::stack {
namespace {

// Reads up to `n` unsigned integers from `path` into `out`. Returns false
// (leaving `out`) if the file is absent; sets *malformed if it is not n
// numbers.
bool ReadValues(const std::string& path, uint32_t* out, int n, bool* malformed) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) return false;
  uint32_t v[3] = {};
  int got = 0;
  unsigned long x;
  while (got < n && std::fscanf(f, "%lu", &x) == 1) v[got++] = static_cast<uint32_t>(
      std::min<unsigned long>(x, 0xffffffffUL));
  std::fclose(f);
  if (got != n) {
    *malformed = true;
    return false;
  }
  std::memcpy(out, v, sizeof(uint32_t) * n);
  return true;
}

}  // namespace

bool TcpSysctls::operator==(const TcpSysctls& o) const {
  return std::memcmp(this, &o, sizeof(*this)) == 0;  // only uint32_t fields: no padding
}

TcpSysctls ReadTcpSysctls(const std::string& root, std::vector<std::string>* bad) {
  TcpSysctls s;
  const std::string ipv4 = root + "/net/ipv4/";
  struct Item {
    const char* name;
    uint32_t* field;
    int count;
  } items[] = {
      {"tcp_timestamps", &s.timestamps, 1},
      {"tcp_sack", &s.sack, 1},
      {"tcp_dsack", &s.dsack, 1},
      {"tcp_window_scaling", &s.window_scaling, 1},
      {"tcp_rmem", s.rmem, 3},
      {"tcp_wmem", s.wmem, 3},
      {"tcp_syn_retries", &s.syn_retries, 1},
      {"tcp_synack_retries", &s.synack_retries, 1},
      {"tcp_retries2", &s.retries2, 1},
      {"tcp_syn_linear_timeouts", &s.syn_linear_timeouts, 1},
      {"tcp_rto_min_us", &s.rto_min_us, 1},
      {"tcp_rto_max_ms", &s.rto_max_ms, 1},
      {"tcp_keepalive_time", &s.keepalive_time, 1},
      {"tcp_keepalive_intvl", &s.keepalive_intvl, 1},
      {"tcp_keepalive_probes", &s.keepalive_probes, 1},
      {"tcp_fin_timeout", &s.fin_timeout, 1},
      {"tcp_reordering", &s.reordering, 1},
      {"tcp_early_retrans", &s.early_retrans, 1},
      {"tcp_invalid_ratelimit", &s.invalid_ratelimit, 1},
      {"tcp_challenge_ack_limit", &s.challenge_ack_limit, 1},
      {"tcp_syncookies", &s.syncookies, 1},
      {"tcp_max_syn_backlog", &s.max_syn_backlog, 1},
  };
  for (const Item& it : items) {
    bool malformed = false;
    ReadValues(ipv4 + it.name, it.field, it.count, &malformed);
    if (malformed && bad != nullptr) bad->push_back(ipv4 + it.name);
  }
  bool malformed = false;
  ReadValues(root + "/net/core/rmem_max", &s.core_rmem_max, 1, &malformed);
  if (malformed && bad != nullptr) bad->push_back(root + "/net/core/rmem_max");
  return s;
}

void ApplyTcpSysctls(const TcpSysctls& s, tcp::TcpConfig* cfg) {
  using tcp::kMs;
  using tcp::kSec;
  cfg->timestamps = s.timestamps != 0;
  cfg->sack = s.sack != 0;
  cfg->dsack = s.dsack != 0;
  cfg->window_scaling = s.window_scaling != 0;
  // Linux tcp_select_initial_window: max(tcp_rmem[2], rmem_max).
  cfg->rcv_space_max = std::max(s.rmem[2], s.core_rmem_max);
  cfg->rcvbuf_default = s.rmem[1];
  cfg->sndbuf_default = s.wmem[1];
  cfg->sndbuf_max = s.wmem[2];
  cfg->syn_retries = std::clamp<uint32_t>(s.syn_retries, 1, 127);
  cfg->synack_retries = std::min<uint32_t>(s.synack_retries, 255);
  cfg->retries2 = s.retries2;
  cfg->syn_linear_timeouts = s.syn_linear_timeouts;
  cfg->rto_min_ns = std::max<uint64_t>(uint64_t{s.rto_min_us} * 1000, kMs);
  cfg->rto_max_ns = std::max<uint64_t>(uint64_t{s.rto_max_ms} * kMs, kSec);
  cfg->keepalive_time_ns = uint64_t{s.keepalive_time} * kSec;
  cfg->keepalive_intvl_ns = uint64_t{s.keepalive_intvl} * kSec;
  cfg->keepalive_probes = s.keepalive_probes;
  cfg->fin_timeout_ns = uint64_t{s.fin_timeout} * kSec;
  cfg->dupthresh = std::max<uint32_t>(s.reordering, 1);
  // Linux tcp_early_retrans: 3 and 4 enable the RACK-TLP loss probe.
  cfg->tlp = s.early_retrans >= 3;
  cfg->invalid_ratelimit_ns = uint64_t{s.invalid_ratelimit} * kMs;
  cfg->challenge_ack_limit = s.challenge_ack_limit;
  cfg->syncookies = static_cast<uint8_t>(std::min<uint32_t>(s.syncookies, 2));
}

}  // namespace offload::stack
