#include "cli/format.h"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>
#include <vector>

namespace offload {
namespace cli {
namespace {

std::string Printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Printf(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

std::string Duration(uint64_t ms) {
  const uint64_t s = ms / 1000;
  if (s < 60) return Printf("%llu.%03llus", static_cast<unsigned long long>(s),
                            static_cast<unsigned long long>(ms % 1000));
  if (s < 3600) return Printf("%llum%02llus", static_cast<unsigned long long>(s / 60),
                              static_cast<unsigned long long>(s % 60));
  return Printf("%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                static_cast<unsigned long long>((s / 60) % 60));
}

const char* DriverName(v1::Driver d) {
  switch (d) {
    case v1::DRIVER_AF_XDP: return "af_xdp";
    case v1::DRIVER_VERBS: return "verbs";
    default: return "auto";
  }
}

// The non-zero stack counters of an engine, one indented line per group
// ("  tcp: retrans_segs 12, rto_timeouts 3"), wrapped near 100 columns.
std::string FormatStackCounters(const v1::EngineStats& e) {
  std::map<std::string, std::vector<std::string>> groups;
  const std::map<std::string, uint64_t> sorted(e.counters().begin(), e.counters().end());
  for (const auto& [name, value] : sorted) {
    if (value == 0) continue;
    const size_t dot = name.find('.');
    const std::string group = dot == std::string::npos ? "other" : name.substr(0, dot);
    const std::string rest = dot == std::string::npos ? name : name.substr(dot + 1);
    groups[group].push_back(Printf("%s %llu", rest.c_str(), static_cast<unsigned long long>(value)));
  }
  std::string out;
  for (const auto& [group, items] : groups) {
    std::string line = "  " + group + ":";
    const size_t indent = line.size() + 1;
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string item = items[i] + (i + 1 < items.size() ? "," : "");
      if (line.size() + 1 + item.size() > 100 && line.size() > indent) {
        out += line + "\n";
        line = std::string(indent - 1, ' ');
      }
      line += " " + item;
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string FallbackReasonText(v1::FallbackReason reason) {
  switch (reason) {
    case v1::FALLBACK_NONE: return "-";
    case v1::FALLBACK_RULE: return "rule";
    case v1::FALLBACK_THREAD_OFF: return "thread offload off";
    case v1::FALLBACK_UNSUPPORTED_OPTION: return "unsupported option";
    case v1::FALLBACK_DAEMON_ABSENT: return "daemon absent";
    case v1::FALLBACK_PEER_NOT_OFFLOADED: return "peer is a kernel socket";
    case v1::FALLBACK_NOT_ROUTED: return "not on an offloaded interface";
    case v1::FALLBACK_LIMIT: return "limit reached";
    case v1::FALLBACK_UNSUPPORTED_FAMILY: return "unsupported family/type";
    case v1::FALLBACK_SHARED_DGRAM: return "UDP socket shared by processes";
    case v1::FALLBACK_BLOCKED_RECEIVER: return "a thread was blocked receiving before the first send";
    default: return "unknown";
  }
}

std::string FormatStatus(const v1::GetStatusResponse& s) {
  std::string out;
  out += Printf("offloadd %s (pid %u), up %s\n", s.version().c_str(), s.pid(),
                Duration(s.uptime_ms()).c_str());
  out += Printf("  mode:        %s\n", s.mode().c_str());
  out += Printf("  config:      %s\n",
                s.config_file().empty() ? "built-in defaults" : s.config_file().c_str());
  out += Printf("  run dir:     %s\n", s.config().run_dir().c_str());
  out += Printf("  rules:       %u (version %llu) from %s\n", s.num_rules(),
                static_cast<unsigned long long>(s.rules_version()),
                s.config().rules_file().c_str());
  out += Printf("  sessions:    %u attached process(es)\n", s.num_sessions());
  out += Printf("  shm ABI:     %u\n", s.abi_version());
  out += Printf("  log level:   %s\n", s.config().log_level().c_str());
  out += Printf("  engine:      num_cores=%u max_concurrency=%u max_num_buffers=%u "
                "rcvbuf=%u sndbuf=%u\n",
                s.config().num_cores(), s.config().max_concurrency(),
                s.config().max_num_buffers(), s.config().rcvbuf(), s.config().sndbuf());
  if (s.interfaces_size() == 0) {
    out += "  interfaces:  none (same-host offload only)\n";
  } else {
    out += "  interfaces:\n";
    for (const v1::InterfaceStatus& i : s.interfaces()) {
      out += Printf("    %-15s %-7s queues=%u %s  %s\n", i.name().c_str(), DriverName(i.driver()),
                    i.queues(), i.zero_copy() ? "zero-copy" : "copy", i.state().c_str());
    }
  }
  return out;
}

std::string FormatRules(const v1::ListRulesResponse& r) {
  std::string out;
  if (r.rules_size() == 0) {
    out += "no rules: every socket is offloaded (the default)\n";
    return out;
  }
  out += Printf("%-4s %-5s %-50s %-22s %s\n", "POS", "ID", "RULE", "APPLICATION", "ORIGIN");
  for (const v1::Rule& rule : r.rules()) {
    const std::string app = rule.program() + " " + rule.application_id();
    out += Printf("%-4u %-5u %-50s %-22s %s\n", rule.position(), rule.id(), rule.text().c_str(),
                  app.c_str(), rule.origin().c_str());
  }
  out += Printf("(version %llu; first match wins; default: offload)\n",
                static_cast<unsigned long long>(r.version()));
  return out;
}

std::string FormatSessions(const v1::ListSessionsResponse& r) {
  if (r.sessions_size() == 0) return "no processes attached\n";
  std::string out = Printf("%-8s %-6s %-16s %-10s %8s %10s\n", "PID", "UID", "PROGRAM", "APP-ID",
                           "SOCKETS", "OFFLOADED");
  for (const v1::Session& s : r.sessions()) {
    out += Printf("%-8u %-6u %-16s %-10s %8u %10u\n", s.pid(), s.uid(), s.program().c_str(),
                  s.application_id().empty() ? "-" : s.application_id().c_str(), s.num_sockets(),
                  s.num_offloaded());
  }
  return out;
}

std::string FormatStats(const v1::GetStatsResponse& r, bool verbose) {
  std::string out;
  if (r.processes_size() == 0) out += "no processes attached\n";
  for (const v1::ProcessStats& p : r.processes()) {
    const v1::Session& s = p.session();
    out += Printf("======================================================\n");
    out += Printf("pid %u  %s%s%s  sockets %u  offloaded %u\n", s.pid(), s.program().c_str(),
                  s.application_id().empty() ? "" : "  app-id ",
                  s.application_id().c_str(), s.num_sockets(), s.num_offloaded());
    if (!verbose) continue;
    for (const v1::SocketStats& k : p.sockets()) {
      out += Printf("------------------------------------------------------\n");
      out += Printf("fd %-4d %s%s %-11s %s -> %s\n", k.fd(), k.protocol().c_str(),
                    k.family() == "ipv6" ? "6" : "", k.state().c_str(), k.local().c_str(),
                    k.remote().empty() ? "*" : k.remote().c_str());
      if (k.holders_size() > 0) {
        std::string holders;
        for (const std::string& h : k.holders()) holders += (holders.empty() ? "" : " ") + h;
        out += Printf("  shared by pid:fd %s\n", holders.c_str());
      }
      if (k.offloaded()) {
        out += Printf("  offloaded (%s)\n", k.path().c_str());
      } else {
        std::string why = FallbackReasonText(k.fallback());
        if (k.fallback() == v1::FALLBACK_RULE) why += Printf(" %u", k.rule_id());
        if (!k.fallback_detail().empty()) why += ": " + k.fallback_detail();
        out += Printf("  kernel (%s)\n", why.c_str());
      }
      out += Printf("  Rx: %llu bytes / %llu msgs, eagain %llu, queue %llu (max %llu), drops %llu\n",
                    static_cast<unsigned long long>(k.rx_bytes()),
                    static_cast<unsigned long long>(k.rx_msgs()),
                    static_cast<unsigned long long>(k.rx_eagain()),
                    static_cast<unsigned long long>(k.rx_queue_bytes()),
                    static_cast<unsigned long long>(k.rx_queue_max()),
                    static_cast<unsigned long long>(k.drops()));
      out += Printf("  Tx: %llu bytes / %llu msgs, eagain %llu, errors %llu\n",
                    static_cast<unsigned long long>(k.tx_bytes()),
                    static_cast<unsigned long long>(k.tx_msgs()),
                    static_cast<unsigned long long>(k.tx_eagain()),
                    static_cast<unsigned long long>(k.errors()));
      if (k.multicast_groups_engine() + k.multicast_groups_kernel() + k.multicast_tx_engine() +
              k.multicast_tx_kernel() + k.multicast_loop_copies() != 0) {
        out += Printf("  Multicast: groups %u engine / %u kernel; tx %llu engine / %llu kernel, "
                      "loop copies %llu (kernel)\n",
                      k.multicast_groups_engine(), k.multicast_groups_kernel(),
                      static_cast<unsigned long long>(k.multicast_tx_engine()),
                      static_cast<unsigned long long>(k.multicast_tx_kernel()),
                      static_cast<unsigned long long>(k.multicast_loop_copies()));
      }
      const unsigned long long polls = k.poll_hits() + k.poll_misses();
      out += Printf("  Poll: %llu hits / %llu polls (%.1f%%)\n",
                    static_cast<unsigned long long>(k.poll_hits()), polls,
                    polls == 0 ? 0.0 : 100.0 * static_cast<double>(k.poll_hits()) / polls);
    }
  }
  for (const v1::EngineStats& e : r.engines()) {
    out += Printf("engine %u (cpu %u): loops %llu busy %llu sleeps %llu wakeups %llu rx %llu tx %llu "
                  "flows %llu\n",
                  e.id(), e.cpu(), static_cast<unsigned long long>(e.loops()),
                  static_cast<unsigned long long>(e.busy_polls()),
                  static_cast<unsigned long long>(e.sleeps()),
                  static_cast<unsigned long long>(e.wakeups()),
                  static_cast<unsigned long long>(e.rx_packets()),
                  static_cast<unsigned long long>(e.tx_packets()),
                  static_cast<unsigned long long>(e.flows()));
    out += FormatStackCounters(e);
  }
  for (const v1::NicStats& n : r.nics()) {
    out += Printf("nic %s queue %u: rx %llu pkts %llu bytes, tx %llu pkts %llu bytes, drops rx %llu "
                  "tx %llu, steered flows %llu\n",
                  n.interface().c_str(), n.queue(), static_cast<unsigned long long>(n.rx_packets()),
                  static_cast<unsigned long long>(n.rx_bytes()),
                  static_cast<unsigned long long>(n.tx_packets()),
                  static_cast<unsigned long long>(n.tx_bytes()),
                  static_cast<unsigned long long>(n.rx_drops()),
                  static_cast<unsigned long long>(n.tx_drops()),
                  static_cast<unsigned long long>(n.steered_flows()));
    if (n.fault_rx_drops() + n.fault_tx_drops() + n.fault_rx_reorders() + n.fault_tx_reorders() >
        0) {
      out += Printf("  injected faults (OFFLOADD_FAULT): dropped rx %llu tx %llu, reordered rx %llu "
                    "tx %llu\n",
                    static_cast<unsigned long long>(n.fault_rx_drops()),
                    static_cast<unsigned long long>(n.fault_tx_drops()),
                    static_cast<unsigned long long>(n.fault_rx_reorders()),
                    static_cast<unsigned long long>(n.fault_tx_reorders()));
    }
  }
  return out;
}

}  // namespace cli
}  // namespace offload
