// Matcher and formatter for the libvma.conf rule grammar: role and transport
// names, first-match lookup of a socket, and the canonical text of a table.
// The parser is in rules_parse.cc.

#include "rules/rules.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>

namespace offload {
namespace rules {
namespace {

void AppendEndpoint(std::string* out, const Endpoint& ep) {
  char buf[64];
  if (ep.v6) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, ep.addr6, text, sizeof(text));
    out->append("[").append(text).append("]");
    if (ep.prefix_len != 128) {
      std::snprintf(buf, sizeof(buf), "/%u", ep.prefix_len);
      out->append(buf);
    }
  } else if (ep.prefix_len == 0) {
    out->append("*");
  } else {
    std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", ep.addr >> 24, (ep.addr >> 16) & 0xff,
                  (ep.addr >> 8) & 0xff, ep.addr & 0xff);
    out->append(buf);
    if (ep.prefix_len != 32) {
      std::snprintf(buf, sizeof(buf), "/%u", ep.prefix_len);
      out->append(buf);
    }
  }
  out->append(":");
  if (ep.port_lo == 0 && ep.port_hi == 65535) {
    out->append("*");
  } else if (ep.port_lo == ep.port_hi) {
    std::snprintf(buf, sizeof(buf), "%u", ep.port_lo);
    out->append(buf);
  } else {
    std::snprintf(buf, sizeof(buf), "%u-%u", ep.port_lo, ep.port_hi);
    out->append(buf);
  }
}

bool GlobMatches(const char* pattern, const char* value) {
  if (pattern[0] == '*' && pattern[1] == '\0') return true;
  return fnmatch(pattern, value, 0) == 0;
}

}  // namespace

const char* TransportName(Transport t) { return t == Transport::kOs ? "os" : "offload"; }

const char* RoleName(Role r) {
  switch (r) {
    case Role::kTcpServer: return "tcp_server";
    case Role::kTcpClient: return "tcp_client";
    case Role::kUdpSender: return "udp_sender";
    case Role::kUdpReceiver: return "udp_receiver";
    case Role::kUdpConnect: return "udp_connect";
  }
  return "?";
}

Decision Match(const Rule* rules, size_t n, const Query& q) {
  for (size_t i = 0; i < n; ++i) {
    const Rule& r = rules[i];
    if (r.role != q.role) continue;
    if (!GlobMatches(r.program, q.program)) continue;
    if (!(r.app_id[0] == '*' && r.app_id[1] == '\0') &&
        std::strcmp(r.app_id, q.application_id) != 0) {
      continue;
    }
    if (r.has_local && !r.local.Matches(q.local_addr, q.local_addr6, q.local_port)) continue;
    if (r.has_remote && !r.remote.Matches(q.remote_addr, q.remote_addr6, q.remote_port)) continue;
    Decision d;
    d.transport = r.transport;
    d.rule_id = r.id;
    d.index = static_cast<int32_t>(i);
    return d;
  }
  return Decision();
}

std::string FormatRule(const Rule& rule) {
  std::string s = "use ";
  s += TransportName(rule.transport);
  s += ' ';
  s += RoleName(rule.role);
  s += ' ';
  switch (rule.role) {
    case Role::kTcpServer:
    case Role::kUdpReceiver:
      AppendEndpoint(&s, rule.local);
      break;
    case Role::kUdpSender:
      AppendEndpoint(&s, rule.remote);
      break;
    case Role::kTcpClient:
    case Role::kUdpConnect:
      AppendEndpoint(&s, rule.remote);
      if (rule.has_local) {
        s += ':';
        AppendEndpoint(&s, rule.local);
      }
      break;
  }
  return s;
}

std::string FormatRules(const std::vector<Rule>& rules, std::string_view header) {
  std::string out(header);
  if (!out.empty() && out.back() != '\n') out += '\n';
  const char* section_program = "*";
  const char* section_app = "*";
  bool first = true;
  for (const Rule& r : rules) {
    const bool same = std::strcmp(r.program, section_program) == 0 &&
                      std::strcmp(r.app_id, section_app) == 0;
    if (!same || (first && !(r.program[0] == '*' && r.program[1] == 0 &&
                             r.app_id[0] == '*' && r.app_id[1] == 0))) {
      out += "\napplication-id ";
      out += r.program;
      out += ' ';
      out += r.app_id;
      out += '\n';
      section_program = r.program;
      section_app = r.app_id;
    }
    first = false;
    out += FormatRule(r);
    out += '\n';
  }
  return out;
}

}  // namespace rules
}  // namespace offload
