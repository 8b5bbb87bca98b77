// Offload rules: the libvma.conf grammar, parsed into a flat table, and the
// matcher that decides offload-or-kernel for a socket.
//
// One implementation shared by offloadd (which owns the table and publishes
// it) and liboffload.so (which matches against the published copy). It is
// built without exceptions, RTTI or any dependency beyond the C++ standard
// library, and `Rule` is trivially copyable so the daemon can copy a table
// into shared memory as-is.
//
// Grammar (one statement per line; '#' starts a comment):
//
//   application-id <program-glob|*> <user-defined-id|*>
//   use <offload|vma|os> tcp_server   <addr[/prefix]|*>:<port[-port]|*>
//   use <offload|vma|os> tcp_client   <raddr>:<rport>[:<laddr>:<lport>]
//   use <offload|vma|os> udp_sender   <raddr>:<rport>
//   use <offload|vma|os> udp_receiver <laddr>:<lport>
//   use <offload|vma|os> udp_connect  <raddr>:<rport>[:<laddr>:<lport>]
//
// An address is an IPv4 dotted quad or an IPv6 address in brackets,
// either with an optional prefix length: `10.0.0.0/8`, `[::1]`,
// `[2001:db8::]/32` (also accepted: `[2001:db8::/32]`). A v4-mapped IPv6
// pattern of prefix 96 or more (`[::ffff:10.0.0.0]/104`) is the IPv4
// pattern it maps (`10.0.0.0/8`), as sockets see the IPv4 peers of
// dual-stack sockets as IPv4. `*` matches every address of both families;
// an IPv4 pattern matches IPv4 (and v4-mapped) addresses, an IPv6 pattern
// the other IPv6 addresses.
//
// An `application-id` line opens a section: the rules after it apply only to
// processes whose program name matches the glob (fnmatch) and whose
// OFFLOAD_APPLICATION_ID equals the id ("*" matches any). Rules before the
// first section apply to every process. First match wins; when nothing
// matches the socket is offloaded.

#ifndef OFFLOAD_RULES_RULES_H_
#define OFFLOAD_RULES_RULES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace offload {
namespace rules {

enum class Transport : uint8_t { kOffload = 1, kOs = 2 };

enum class Role : uint8_t {
  kTcpServer = 1,    // decided at listen(), on the local address
  kTcpClient = 2,    // decided at connect(), remote (+ local if bound)
  kUdpSender = 3,    // decided at the first sendto(), on the remote address
  kUdpReceiver = 4,  // decided at bind(), on the local address
  kUdpConnect = 5,   // decided at connect(), remote (+ local if bound)
};

// An address/port pattern. IPv4 addresses and ports are in host byte
// order; IPv6 addresses in network order (as in in6_addr).
struct Endpoint {
  uint32_t addr = 0;      // IPv4 network part, already masked
  uint8_t prefix_len = 0; // 0 with addr 0 (and v6 0) matches any address ("*")
  uint16_t port_lo = 0;   // inclusive range; 0..65535 is "*"
  uint16_t port_hi = 65535;
  uint8_t v6 = 0;         // 1: an IPv6 pattern, addr6/prefix_len (0-128)
  uint8_t addr6[16] = {}; // IPv6 network part, already masked

  // An IPv4 (or v4-mapped) address.
  bool MatchesAddr(uint32_t a) const {
    if (v6) return false;
    if (prefix_len == 0) return true;
    const uint32_t mask = prefix_len >= 32 ? 0xffffffffu : ~(0xffffffffu >> prefix_len);
    return (a & mask) == addr;
  }
  // An IPv6 address that is not v4-mapped.
  bool MatchesAddr6(const uint8_t a[16]) const {
    if (!v6) return prefix_len == 0;  // "*"; IPv4 prefixes take no IPv6 address
    for (int bit = 0; bit < prefix_len; bit += 8) {
      const int n = prefix_len - bit >= 8 ? 8 : prefix_len - bit;
      const uint8_t mask = static_cast<uint8_t>(0xff00 >> n);
      if ((a[bit / 8] & mask) != addr6[bit / 8]) return false;
    }
    return true;
  }
  bool MatchesPort(uint16_t p) const { return p >= port_lo && p <= port_hi; }
  bool Matches(uint32_t a, uint16_t p) const { return MatchesAddr(a) && MatchesPort(p); }
  // `a6` non-null: the address is that IPv6 one (`a` is ignored).
  bool Matches(uint32_t a, const uint8_t* a6, uint16_t p) const {
    return (a6 != nullptr ? MatchesAddr6(a6) : MatchesAddr(a)) && MatchesPort(p);
  }
  bool IsAny() const { return prefix_len == 0 && !v6 && port_lo == 0 && port_hi == 65535; }
};

inline constexpr size_t kMaxGlobLen = 64;  // including the terminating NUL

// The most rules a table may hold (the size of the published copy).
inline constexpr size_t kMaxRules = 1024;

// One rule. Trivially copyable: safe to memcpy into shared memory.
struct Rule {
  uint32_t id = 0;         // assigned by the owner of the table (0 = unassigned)
  uint32_t line = 0;       // source line (0 = added at run time)
  Transport transport = Transport::kOffload;
  Role role = Role::kTcpServer;
  uint8_t has_local = 0;   // local endpoint given (always for servers/receivers)
  uint8_t has_remote = 0;  // remote endpoint given (clients/senders/connect)
  Endpoint local;
  Endpoint remote;
  char program[kMaxGlobLen] = {'*', 0};  // application-id program glob
  char app_id[kMaxGlobLen] = {'*', 0};   // application-id user id
};
static_assert(std::is_trivially_copyable<Rule>::value, "Rule goes into shared memory");

// What a socket is about to do, in host byte order.
struct Query {
  Role role = Role::kTcpServer;
  uint32_t local_addr = 0;
  uint16_t local_port = 0;
  uint32_t remote_addr = 0;
  uint16_t remote_port = 0;
  // Non-null: the address is this IPv6 one (16 bytes, network order, not
  // v4-mapped: those are given as IPv4 in *_addr); *_addr is ignored.
  const uint8_t* local_addr6 = nullptr;
  const uint8_t* remote_addr6 = nullptr;
  const char* program = "";         // process name (basename), never null
  const char* application_id = "";  // OFFLOAD_APPLICATION_ID or "", never null
};

struct Decision {
  Transport transport = Transport::kOffload;
  uint32_t rule_id = 0;   // id of the rule that decided; 0 = the default
  int32_t index = -1;     // index of that rule in the table; -1 = the default
};

// Returns the decision of the first rule matching `q`, or offload by default.
// Allocation-free and async-signal-safe apart from fnmatch(3).
Decision Match(const Rule* rules, size_t n, const Query& q);

// Where and why a parse failed. `line` and `column` are 1-based.
struct ParseError {
  int line = 0;
  int column = 0;
  std::string token;     // the offending token ("" at end of line)
  std::string expected;  // what the grammar wanted there
  // "line 3, column 5: unexpected 'foo', expected offload, vma or os"
  std::string ToString() const;
};

// Parses a whole rules file. Returns false and fills `*error` at the first
// error; on success replaces `*out` (ids are left 0, `line` is set).
bool ParseRules(std::string_view text, std::vector<Rule>* out, ParseError* error);

// Parses one `use ...` statement (as given to `offloadctl add-rule` or the
// extra API's add_conf_rule). The rule gets program/app-id "*". `line` is
// reported in errors and stored in the rule.
bool ParseRuleLine(std::string_view text, int line, Rule* out, ParseError* error);

// Canonical text of a rule's `use` statement, e.g.
// "use os tcp_client 192.168.1.0/24:*:*:*". Parses back to the same rule.
std::string FormatRule(const Rule& rule);

// A whole file for `rules`: sections regrouped, canonical text, `header`
// (already commented) first. ParseRules(FormatRules(x)) == x (up to ids/lines).
std::string FormatRules(const std::vector<Rule>& rules, std::string_view header);

const char* TransportName(Transport t);  // "offload" or "os"
const char* RoleName(Role r);            // "tcp_server", ...

}  // namespace rules
}  // namespace offload

#endif  // OFFLOAD_RULES_RULES_H_
