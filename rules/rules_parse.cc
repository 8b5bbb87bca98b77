// Parser for the libvma.conf rule grammar: a line or a whole file into a
// flat table of `Rule`, or a ParseError naming the line, column and what was
// expected there.

#include "rules/rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>

namespace offload {
namespace rules {
namespace {

constexpr const char* kExpectTransport = "offload, vma or os";
constexpr const char* kExpectRole =
    "tcp_server, tcp_client, udp_sender, udp_receiver or udp_connect";
constexpr const char* kExpectAddr =
    "an IPv4 address, an IPv6 address in [ ], either with /prefix, or *";
constexpr const char* kExpectPort = "a port 0-65535, a range low-high, or *";

// A view of one whitespace-separated word and the column it starts at.
struct Word {
  std::string_view text;
  int column = 0;  // 1-based
};

// Splits a line into words, stopping at '#'.
std::vector<Word> SplitWords(std::string_view line) {
  std::vector<Word> words;
  size_t i = 0;
  while (i < line.size()) {
    const char c = line[i];
    if (c == '#') break;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' &&
           line[j] != '\v' && line[j] != '\f' && line[j] != '#') {
      ++j;
    }
    words.push_back(Word{line.substr(i, j - i), static_cast<int>(i) + 1});
    i = j;
  }
  return words;
}

bool Fail(ParseError* error, int line, int column, std::string_view token,
          const char* expected) {
  if (error != nullptr) {
    error->line = line;
    error->column = column;
    error->token = std::string(token);
    error->expected = expected;
  }
  return false;
}

// Rejects control characters (other than the whitespace SplitWords skips)
// before the comment: they cannot round-trip through the canonical text.
bool CheckCharacters(std::string_view line, int line_no, ParseError* error) {
  for (size_t i = 0; i < line.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(line[i]);
    if (c == '#') return true;
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\v' && c != '\f') || c == 0x7f) {
      char token[8];
      std::snprintf(token, sizeof(token), "\\x%02x", c);
      return Fail(error, line_no, static_cast<int>(i) + 1, token, "printable text");
    }
  }
  return true;
}

// Parses a decimal number of at most `max`; false on anything else.
bool ParseNumber(std::string_view s, uint32_t max, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// Parses a dotted quad into host byte order (strict: four decimal parts).
bool ParseIpv4(std::string_view s, uint32_t* out) {
  uint32_t addr = 0;
  int parts = 0;
  size_t i = 0;
  while (parts < 4) {
    size_t j = s.find('.', i);
    if (j == std::string_view::npos) j = s.size();
    uint32_t part = 0;
    if (!ParseNumber(s.substr(i, j - i), 255, &part)) return false;
    addr = (addr << 8) | part;
    ++parts;
    if (j == s.size()) break;
    i = j + 1;
  }
  if (parts != 4 || i > s.size()) return false;
  // Reject trailing garbage such as "1.2.3.4.5".
  size_t dots = 0;
  for (char c : s) dots += (c == '.');
  if (dots != 3) return false;
  *out = addr;
  return true;
}

// One ':'-separated component of an endpoint spec and its column.
struct Part {
  std::string_view text;
  int column = 0;
};

// Colons inside [ ] (IPv6 addresses) do not separate.
std::vector<Part> SplitColons(const Word& w) {
  std::vector<Part> parts;
  size_t i = 0;
  while (true) {
    size_t j = i;
    bool bracket = false;
    while (j < w.text.size() && (bracket || w.text[j] != ':')) {
      if (w.text[j] == '[') bracket = true;
      if (w.text[j] == ']') bracket = false;
      ++j;
    }
    parts.push_back(Part{w.text.substr(i, j - i), w.column + static_cast<int>(i)});
    if (j == w.text.size()) break;
    i = j + 1;
  }
  return parts;
}

// "[addr]", "[addr]/prefix" or "[addr/prefix]" (p.text starts with '[').
bool ParseIpv6Part(const Part& p, int line, Endpoint* ep, ParseError* error) {
  const size_t close = p.text.find(']');
  if (close == std::string_view::npos) {
    return Fail(error, line, p.column + static_cast<int>(p.text.size()), "",
                "']' closing the IPv6 address");
  }
  std::string_view inside = p.text.substr(1, close - 1);
  std::string_view prefix_text;
  int prefix_column = 0;
  const size_t slash = inside.find('/');
  if (slash != std::string_view::npos) {
    prefix_text = inside.substr(slash + 1);
    prefix_column = p.column + 1 + static_cast<int>(slash) + 1;
    inside = inside.substr(0, slash);
    if (close + 1 != p.text.size()) {
      return Fail(error, line, p.column + static_cast<int>(close) + 1,
                  p.text.substr(close + 1), "':' after the address (one prefix only)");
    }
  } else if (close + 1 < p.text.size()) {
    if (p.text[close + 1] != '/') {
      return Fail(error, line, p.column + static_cast<int>(close) + 1,
                  p.text.substr(close + 1), "'/prefix' or ':' after ']'");
    }
    prefix_text = p.text.substr(close + 2);
    prefix_column = p.column + static_cast<int>(close) + 2;
  }
  uint32_t prefix = 128;
  if (prefix_column != 0 && !ParseNumber(prefix_text, 128, &prefix)) {
    return Fail(error, line, prefix_column, prefix_text, "a prefix length 0-128");
  }
  char buf[INET6_ADDRSTRLEN] = {};
  uint8_t a[16];
  if (inside.empty() || inside.size() >= sizeof(buf)) {
    return Fail(error, line, p.column + 1, inside, "an IPv6 address inside [ ]");
  }
  std::memcpy(buf, inside.data(), inside.size());
  if (inet_pton(AF_INET6, buf, a) != 1) {
    return Fail(error, line, p.column + 1, inside, "an IPv6 address inside [ ]");
  }
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (prefix >= 96 && std::memcmp(a, kMapped, 12) == 0) {
    // A v4-mapped pattern is the IPv4 one.
    const uint32_t v4 = uint32_t{a[12]} << 24 | uint32_t{a[13]} << 16 | uint32_t{a[14]} << 8 | a[15];
    const uint32_t p4 = prefix - 96;
    const uint32_t mask = p4 == 0 ? 0 : (p4 >= 32 ? 0xffffffffu : ~(0xffffffffu >> p4));
    *ep = Endpoint{};
    ep->addr = v4 & mask;
    ep->prefix_len = static_cast<uint8_t>(p4);
    return true;
  }
  for (uint32_t bit = 0; bit < 128; bit += 8) {
    const uint32_t keep = prefix > bit ? (prefix - bit >= 8 ? 8 : prefix - bit) : 0;
    a[bit / 8] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  ep->addr = 0;
  ep->v6 = 1;
  std::memcpy(ep->addr6, a, 16);
  ep->prefix_len = static_cast<uint8_t>(prefix);
  return true;
}

bool ParseAddrPart(const Part& p, int line, Endpoint* ep, ParseError* error) {
  if (p.text == "*") {
    ep->addr = 0;
    ep->prefix_len = 0;
    return true;
  }
  if (!p.text.empty() && p.text[0] == '[') return ParseIpv6Part(p, line, ep, error);
  std::string_view addr_text = p.text;
  uint32_t prefix = 32;
  const size_t slash = p.text.find('/');
  if (slash != std::string_view::npos) {
    addr_text = p.text.substr(0, slash);
    const std::string_view prefix_text = p.text.substr(slash + 1);
    if (!ParseNumber(prefix_text, 32, &prefix)) {
      return Fail(error, line, p.column + static_cast<int>(slash) + 1, prefix_text,
                  "a prefix length 0-32");
    }
  }
  uint32_t addr = 0;
  if (!ParseIpv4(addr_text, &addr)) {
    return Fail(error, line, p.column, addr_text, kExpectAddr);
  }
  const uint32_t mask = prefix == 0 ? 0 : (prefix >= 32 ? 0xffffffffu : ~(0xffffffffu >> prefix));
  ep->addr = addr & mask;
  ep->prefix_len = static_cast<uint8_t>(prefix);
  return true;
}

bool ParsePortPart(const Part& p, int line, Endpoint* ep, ParseError* error) {
  if (p.text == "*") {
    ep->port_lo = 0;
    ep->port_hi = 65535;
    return true;
  }
  const size_t dash = p.text.find('-');
  uint32_t lo = 0;
  uint32_t hi = 0;
  if (dash == std::string_view::npos) {
    if (!ParseNumber(p.text, 65535, &lo)) return Fail(error, line, p.column, p.text, kExpectPort);
    hi = lo;
  } else {
    const std::string_view lo_text = p.text.substr(0, dash);
    const std::string_view hi_text = p.text.substr(dash + 1);
    if (!ParseNumber(lo_text, 65535, &lo)) return Fail(error, line, p.column, lo_text, kExpectPort);
    if (!ParseNumber(hi_text, 65535, &hi)) {
      return Fail(error, line, p.column + static_cast<int>(dash) + 1, hi_text, kExpectPort);
    }
    if (hi < lo) {
      return Fail(error, line, p.column, p.text, "a port range with low <= high");
    }
  }
  ep->port_lo = static_cast<uint16_t>(lo);
  ep->port_hi = static_cast<uint16_t>(hi);
  return true;
}

// Parses "<addr>:<port>" (pairs == 1) or "<addr>:<port>[:<addr>:<port>]"
// (pairs == 2, second pair optional) into `first` and `second`.
bool ParseEndpoints(const Word& w, int line, bool allow_second, Endpoint* first,
                    Endpoint* second, bool* has_second, ParseError* error) {
  *has_second = false;
  const std::vector<Part> parts = SplitColons(w);
  if (parts.size() == 1 && parts[0].text == "*") {  // shorthand for *:*
    *first = Endpoint();
    return true;
  }
  const std::string_view head = parts[0].text;
  if (!head.empty() && head[0] == '[' && head.find(']') == std::string_view::npos) {
    return Fail(error, line, w.column + static_cast<int>(w.text.size()), "",
                "']' closing the IPv6 address");
  }
  if (parts.size() < 2) {
    const int col = w.column + static_cast<int>(w.text.size());
    return Fail(error, line, col, "", "':' followed by a port");
  }
  if (!ParseAddrPart(parts[0], line, first, error)) return false;
  if (!ParsePortPart(parts[1], line, first, error)) return false;
  if (parts.size() == 2) return true;
  if (!allow_second) {
    return Fail(error, line, parts[2].column - 1, std::string_view(w.text).substr(
                    static_cast<size_t>(parts[2].column - 1 - w.column)),
                "end of the address (this role takes <addr>:<port>)");
  }
  if (parts.size() != 4) {
    const Part& last = parts.back();
    if (parts.size() == 3) {
      const int col = last.column + static_cast<int>(last.text.size());
      return Fail(error, line, col, "", "':' followed by the local port");
    }
    return Fail(error, line, parts[4].column - 1, ":" + std::string(parts[4].text),
                "end of the 4-tuple <raddr>:<rport>:<laddr>:<lport>");
  }
  if (!ParseAddrPart(parts[2], line, second, error)) return false;
  if (!ParsePortPart(parts[3], line, second, error)) return false;
  *has_second = true;
  return true;
}

bool ParseRole(std::string_view s, Role* role) {
  if (s == "tcp_server") *role = Role::kTcpServer;
  else if (s == "tcp_client") *role = Role::kTcpClient;
  else if (s == "udp_sender") *role = Role::kUdpSender;
  else if (s == "udp_receiver") *role = Role::kUdpReceiver;
  else if (s == "udp_connect") *role = Role::kUdpConnect;
  else return false;
  return true;
}

// Parses the words of a `use` statement (words[0] == "use").
bool ParseUse(const std::vector<Word>& words, int line, int end_column, Rule* rule,
              ParseError* error) {
  if (words.size() < 2) return Fail(error, line, end_column, "", kExpectTransport);
  const Word& t = words[1];
  if (t.text == "offload" || t.text == "vma") {
    rule->transport = Transport::kOffload;
  } else if (t.text == "os") {
    rule->transport = Transport::kOs;
  } else {
    return Fail(error, line, t.column, t.text, kExpectTransport);
  }
  if (words.size() < 3) return Fail(error, line, end_column, "", kExpectRole);
  const Word& r = words[2];
  if (!ParseRole(r.text, &rule->role)) return Fail(error, line, r.column, r.text, kExpectRole);
  if (words.size() < 4) {
    return Fail(error, line, end_column, "",
                rule->role == Role::kTcpServer || rule->role == Role::kUdpReceiver
                    ? "<local addr[/prefix]|*>:<port[-port]|*>"
                    : "<remote addr[/prefix]|*>:<port[-port]|*>");
  }
  const Word& spec = words[3];
  Endpoint first;
  Endpoint second;
  bool has_second = false;
  const bool four_tuple = rule->role == Role::kTcpClient || rule->role == Role::kUdpConnect;
  if (!ParseEndpoints(spec, line, four_tuple, &first, &second, &has_second, error)) return false;
  switch (rule->role) {
    case Role::kTcpServer:
    case Role::kUdpReceiver:
      rule->local = first;
      rule->has_local = 1;
      rule->has_remote = 0;
      break;
    case Role::kUdpSender:
      rule->remote = first;
      rule->has_remote = 1;
      rule->has_local = 0;
      break;
    case Role::kTcpClient:
    case Role::kUdpConnect:
      rule->remote = first;
      rule->has_remote = 1;
      rule->has_local = has_second ? 1 : 0;
      if (has_second) rule->local = second;
      break;
  }
  if (words.size() > 4) {
    return Fail(error, line, words[4].column, words[4].text, "end of line");
  }
  rule->line = static_cast<uint32_t>(line);
  return true;
}

bool CopyGlob(const Word& w, int line, char (&dst)[kMaxGlobLen], const char* what,
              ParseError* error) {
  if (w.text.size() >= kMaxGlobLen) {
    return Fail(error, line, w.column, w.text, what);
  }
  std::memcpy(dst, w.text.data(), w.text.size());
  dst[w.text.size()] = '\0';
  return true;
}

}  // namespace

std::string ParseError::ToString() const {
  std::string s = "line " + std::to_string(line) + ", column " + std::to_string(column) + ": ";
  if (token.empty()) {
    s += "unexpected end of line";
  } else {
    s += "unexpected '" + token + "'";
  }
  s += ", expected " + expected;
  return s;
}

bool ParseRuleLine(std::string_view text, int line, Rule* out, ParseError* error) {
  if (!CheckCharacters(text, line, error)) return false;
  const std::vector<Word> words = SplitWords(text);
  const int end_column = static_cast<int>(text.size()) + 1;
  if (words.empty()) return Fail(error, line, 1, "", "a rule: use <offload|vma|os> <role> <address>");
  if (words[0].text != "use") return Fail(error, line, words[0].column, words[0].text, "use");
  Rule rule;
  if (!ParseUse(words, line, end_column, &rule, error)) return false;
  *out = rule;
  return true;
}

bool ParseRules(std::string_view text, std::vector<Rule>* out, ParseError* error) {
  std::vector<Rule> rules;
  char program[kMaxGlobLen] = {'*', 0};
  char app_id[kMaxGlobLen] = {'*', 0};
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = text.substr(pos, eol - pos);
    ++line_no;
    pos = eol + 1;
    if (!CheckCharacters(line, line_no, error)) return false;
    const std::vector<Word> words = SplitWords(line);
    const int end_column = static_cast<int>(line.size()) + 1;
    if (words.empty()) {
      if (eol == text.size()) break;
      continue;
    }
    if (words[0].text == "application-id") {
      if (words.size() < 2) return Fail(error, line_no, end_column, "", "a program name or *");
      if (words.size() < 3) {
        return Fail(error, line_no, end_column, "", "a user-defined application id or *");
      }
      if (words.size() > 3) return Fail(error, line_no, words[3].column, words[3].text, "end of line");
      if (!CopyGlob(words[1], line_no, program, "a program name of at most 63 characters", error) ||
          !CopyGlob(words[2], line_no, app_id, "an application id of at most 63 characters", error)) {
        return false;
      }
    } else if (words[0].text == "use") {
      Rule rule;
      if (!ParseUse(words, line_no, end_column, &rule, error)) return false;
      std::memcpy(rule.program, program, sizeof(program));
      std::memcpy(rule.app_id, app_id, sizeof(app_id));
      rules.push_back(rule);
    } else {
      return Fail(error, line_no, words[0].column, words[0].text, "use or application-id");
    }
    if (eol == text.size()) break;
  }
  *out = std::move(rules);
  return true;
}

}  // namespace rules
}  // namespace offload
