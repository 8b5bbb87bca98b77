// Table-driven tests of the rule grammar and matcher.

#include "rules/rules.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace offload {
namespace rules {
namespace {

uint32_t Ip(const char* s) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, s, &a), 1) << s;
  return ntohl(a.s_addr);
}

std::vector<Rule> MustParse(const std::string& text) {
  std::vector<Rule> rules;
  ParseError err;
  EXPECT_TRUE(ParseRules(text, &rules, &err)) << err.ToString();
  for (size_t i = 0; i < rules.size(); ++i) rules[i].id = static_cast<uint32_t>(i + 1);
  return rules;
}

TEST(RulesParse, VmaManualExampleParsesUnchanged) {
  const std::string text =
      "application-id tcp-lat B1\n"
      "use vma tcp_client 192.168.1.0/24:*:*:*\n"
      "use os tcp_server *:5001\n";
  std::vector<Rule> rules = MustParse(text);
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].transport, Transport::kOffload);
  EXPECT_EQ(rules[0].role, Role::kTcpClient);
  EXPECT_STREQ(rules[0].program, "tcp-lat");
  EXPECT_STREQ(rules[0].app_id, "B1");
  EXPECT_EQ(rules[0].remote.prefix_len, 24);
  EXPECT_EQ(rules[0].remote.addr, Ip("192.168.1.0"));
  EXPECT_TRUE(rules[0].has_local);
  EXPECT_TRUE(rules[0].local.IsAny());
  EXPECT_EQ(rules[1].transport, Transport::kOs);
  EXPECT_EQ(rules[1].role, Role::kTcpServer);
  EXPECT_EQ(rules[1].local.port_lo, 5001);
  EXPECT_EQ(rules[1].local.port_hi, 5001);
  EXPECT_EQ(rules[1].line, 3u);
}

TEST(RulesParse, CommentsBlankLinesAndWhitespace) {
  std::vector<Rule> rules = MustParse(
      "# comment\n\n   \t\nuse offload udp_receiver 10.0.0.1:7000-7010  # trailing\n\r\n");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].role, Role::kUdpReceiver);
  EXPECT_EQ(rules[0].local.port_lo, 7000);
  EXPECT_EQ(rules[0].local.port_hi, 7010);
  EXPECT_EQ(rules[0].line, 4u);
}

TEST(RulesParse, EveryRoleParses) {
  struct Case {
    const char* line;
    Role role;
    bool has_local;
    bool has_remote;
  } cases[] = {
      {"use os tcp_server *:*", Role::kTcpServer, true, false},
      {"use os tcp_client 1.2.3.4:80", Role::kTcpClient, false, true},
      {"use os tcp_client 1.2.3.4:80:5.6.7.8:9000", Role::kTcpClient, true, true},
      {"use os udp_sender 239.1.1.1:5000", Role::kUdpSender, false, true},
      {"use os udp_receiver 0.0.0.0/0:5000", Role::kUdpReceiver, true, false},
      {"use os udp_connect 1.1.1.1:53", Role::kUdpConnect, false, true},
      {"use os udp_connect 1.1.1.1:53:*:*", Role::kUdpConnect, true, true},
  };
  for (const Case& c : cases) {
    Rule r;
    ParseError err;
    ASSERT_TRUE(ParseRuleLine(c.line, 1, &r, &err)) << c.line << ": " << err.ToString();
    EXPECT_EQ(r.role, c.role) << c.line;
    EXPECT_EQ(r.has_local != 0, c.has_local) << c.line;
    EXPECT_EQ(r.has_remote != 0, c.has_remote) << c.line;
    // Canonical text parses back to the same rule.
    Rule again;
    ASSERT_TRUE(ParseRuleLine(FormatRule(r), 1, &again, &err)) << FormatRule(r);
    EXPECT_EQ(FormatRule(again), FormatRule(r));
  }
}

TEST(RulesParse, MalformedLinesNameColumnTokenAndExpectation) {
  struct Case {
    const char* line;
    int column;
    const char* token;
    const char* expected_fragment;
  } cases[] = {
      {"use foo tcp_server *:1", 5, "foo", "offload, vma or os"},
      {"use os tcp_serve *:1", 8, "tcp_serve", "tcp_server"},
      {"use os tcp_server", 18, "", "<local addr"},
      {"use os tcp_server 1.2.3:80", 19, "1.2.3", "IPv4"},
      {"use os tcp_server 1.2.3.4/33:80", 27, "33", "prefix length"},
      {"use os tcp_server 1.2.3.4:99999", 27, "99999", "port"},
      {"use os tcp_server 1.2.3.4:90-80", 27, "90-80", "low <= high"},
      {"use os tcp_server 1.2.3.4", 26, "", "':' followed by a port"},
      {"use os tcp_server *:80 extra", 24, "extra", "end of line"},
      {"use os udp_sender 1.2.3.4:80:1.1.1.1:1", 29, ":1.1.1.1:1", "end of the address"},
      {"use os tcp_client 1.2.3.4:80:1.1.1.1", 37, "", "local port"},
      {"bogus", 1, "bogus", "use"},
      {"use", 4, "", "offload, vma or os"},
  };
  for (const Case& c : cases) {
    Rule r;
    ParseError err;
    ASSERT_FALSE(ParseRuleLine(c.line, 7, &r, &err)) << c.line;
    EXPECT_EQ(err.line, 7) << c.line;
    EXPECT_EQ(err.column, c.column) << c.line << " -> " << err.ToString();
    EXPECT_EQ(err.token, c.token) << c.line;
    EXPECT_NE(err.expected.find(c.expected_fragment), std::string::npos)
        << c.line << " -> " << err.ToString();
    EXPECT_NE(err.ToString().find("column " + std::to_string(c.column)), std::string::npos);
  }
}

// Found by //tests/fuzz/rules: a NUL or other control byte inside an
// application-id glob did not survive formatting.
TEST(RulesParse, ControlCharactersAreRejectedWithTheirColumn) {
  std::vector<Rule> rules;
  ParseError err;
  ASSERT_FALSE(ParseRules(std::string("application-id a\0b *\n", 20), &rules, &err));
  EXPECT_EQ(err.line, 1);
  EXPECT_EQ(err.column, 17);
  EXPECT_EQ(err.token, "\\x00");
  EXPECT_EQ(err.expected, "printable text");
  Rule r;
  EXPECT_FALSE(ParseRuleLine("use os tcp_server *:1\x01", 1, &r, &err));
  EXPECT_EQ(err.column, 22);
  // Tabs and carriage returns are whitespace; bytes in comments are ignored.
  EXPECT_TRUE(ParseRules("use\tos tcp_server *:1\r\n# \x01\x02\n", &rules, &err));
}

TEST(RulesParse, FileErrorsCarryTheLineNumber) {
  std::vector<Rule> rules;
  ParseError err;
  ASSERT_FALSE(ParseRules("use os tcp_server *:1\n\napplication-id\n", &rules, &err));
  EXPECT_EQ(err.line, 3);
  EXPECT_NE(err.expected.find("program"), std::string::npos);
  ASSERT_FALSE(ParseRules("application-id a b c\n", &rules, &err));
  EXPECT_EQ(err.column, 20);
  ASSERT_FALSE(ParseRules("use os tcp_server *:1\nfrob\n", &rules, &err));
  EXPECT_EQ(err.line, 2);
  EXPECT_EQ(err.token, "frob");
  ASSERT_FALSE(ParseRules("application-id " + std::string(64, 'x') + " *\n", &rules, &err));
  EXPECT_NE(err.expected.find("63"), std::string::npos);
}

TEST(RulesMatch, DefaultIsOffload) {
  Query q;
  q.role = Role::kTcpServer;
  Decision d = Match(nullptr, 0, q);
  EXPECT_EQ(d.transport, Transport::kOffload);
  EXPECT_EQ(d.rule_id, 0u);
  EXPECT_EQ(d.index, -1);
}

TEST(RulesMatch, PrefixLengths) {
  struct Case {
    const char* rule;
    const char* addr;
    bool match;
  } cases[] = {
      {"use os tcp_client 0.0.0.0/0:*", "203.0.113.9", true},
      {"use os tcp_client 10.1.2.0/24:*", "10.1.2.255", true},
      {"use os tcp_client 10.1.2.0/24:*", "10.1.3.0", false},
      {"use os tcp_client 10.1.2.7/24:*", "10.1.2.1", true},  // host bits masked
      {"use os tcp_client 10.1.2.7/32:*", "10.1.2.7", true},
      {"use os tcp_client 10.1.2.7:*", "10.1.2.8", false},
      {"use os tcp_client 10.0.0.0/8:*", "10.200.0.1", true},
      {"use os tcp_client 10.0.0.0/8:*", "11.0.0.1", false},
  };
  for (const Case& c : cases) {
    std::vector<Rule> rules = MustParse(c.rule);
    Query q;
    q.role = Role::kTcpClient;
    q.remote_addr = Ip(c.addr);
    q.remote_port = 80;
    Decision d = Match(rules.data(), rules.size(), q);
    EXPECT_EQ(d.transport == Transport::kOs, c.match) << c.rule << " vs " << c.addr;
  }
}

TEST(RulesMatch, PortRangesAndWildcards) {
  std::vector<Rule> rules = MustParse("use os udp_receiver *:5000-5009\n");
  Query q;
  q.role = Role::kUdpReceiver;
  for (int port : {4999, 5000, 5005, 5009, 5010}) {
    q.local_port = static_cast<uint16_t>(port);
    const bool in = port >= 5000 && port <= 5009;
    EXPECT_EQ(Match(rules.data(), rules.size(), q).transport == Transport::kOs, in) << port;
  }
}

TEST(RulesMatch, RoleMustMatch) {
  std::vector<Rule> rules = MustParse("use os tcp_server *:5001\n");
  Query q;
  q.role = Role::kTcpClient;
  q.remote_port = 5001;
  q.local_port = 5001;
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOffload);
  q.role = Role::kTcpServer;
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOs);
}

TEST(RulesMatch, FirstMatchWins) {
  std::vector<Rule> rules = MustParse(
      "use offload tcp_server *:5001\n"
      "use os tcp_server *:*\n");
  Query q;
  q.role = Role::kTcpServer;
  q.local_port = 5001;
  Decision d = Match(rules.data(), rules.size(), q);
  EXPECT_EQ(d.transport, Transport::kOffload);
  EXPECT_EQ(d.rule_id, 1u);
  EXPECT_EQ(d.index, 0);
  q.local_port = 5002;
  d = Match(rules.data(), rules.size(), q);
  EXPECT_EQ(d.transport, Transport::kOs);
  EXPECT_EQ(d.rule_id, 2u);
}

TEST(RulesMatch, FourTupleChecksLocalSide) {
  std::vector<Rule> rules = MustParse("use os tcp_client *:80:10.0.0.1:*\n");
  Query q;
  q.role = Role::kTcpClient;
  q.remote_addr = Ip("1.1.1.1");
  q.remote_port = 80;
  q.local_addr = Ip("10.0.0.1");
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOs);
  q.local_addr = Ip("10.0.0.2");
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOffload);
}

TEST(RulesMatch, ApplicationIdSections) {
  std::vector<Rule> rules = MustParse(
      "use os udp_sender *:9\n"            // every process
      "application-id redis-* *\n"
      "use os tcp_server *:6379\n"          // any redis-* process
      "application-id sockperf B1\n"
      "use os tcp_client *:*\n");           // sockperf with id B1 only
  Query q;
  q.role = Role::kTcpServer;
  q.local_port = 6379;
  q.program = "redis-server";
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOs);
  q.program = "nginx";
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOffload);

  q.role = Role::kTcpClient;
  q.program = "sockperf";
  q.application_id = "B1";
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOs);
  q.application_id = "B2";
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOffload);
  q.application_id = "";
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOffload);

  q.role = Role::kUdpSender;
  q.program = "anything";
  q.remote_port = 9;
  EXPECT_EQ(Match(rules.data(), rules.size(), q).transport, Transport::kOs);
}

TEST(RulesFormat, RoundTripKeepsSections) {
  const std::string text =
      "use os udp_sender *:9\n"
      "application-id redis-* *\n"
      "use os tcp_server 127.0.0.1:6379\n"
      "application-id * *\n"
      "use vma tcp_client 192.168.1.0/24:*:*:*\n";
  std::vector<Rule> rules = MustParse(text);
  const std::string formatted = FormatRules(rules, "# generated");
  std::vector<Rule> again = MustParse(formatted);
  ASSERT_EQ(again.size(), rules.size()) << formatted;
  for (size_t i = 0; i < rules.size(); ++i) {
    EXPECT_EQ(FormatRule(again[i]), FormatRule(rules[i]));
    EXPECT_STREQ(again[i].program, rules[i].program);
    EXPECT_STREQ(again[i].app_id, rules[i].app_id);
  }
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(FormatRule(rules[2]), "use offload tcp_client 192.168.1.0/24:*:*:*");
}

// Issue 18: IPv6 addresses and prefixes in brackets.
TEST(RulesParse, Ipv6AddressesAndPrefixes) {
  std::vector<Rule> rules = MustParse(
      "use os tcp_server [::1]:80\n"
      "use os tcp_client [2001:db8::]/32:*:[fe80::1/64]:1000-2000\n"
      "use os udp_receiver [::ffff:10.0.0.0]/104:53\n"
      "use os udp_sender [::]/0:*\n");
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_EQ(rules[0].local.v6, 1);
  EXPECT_EQ(rules[0].local.prefix_len, 128);
  EXPECT_EQ(rules[0].local.addr6[15], 1);
  EXPECT_EQ(rules[1].remote.prefix_len, 32);
  EXPECT_EQ(rules[1].local.prefix_len, 64);
  EXPECT_EQ(rules[1].local.addr6[15], 0) << "masked to the prefix";
  // A v4-mapped pattern is the IPv4 one.
  EXPECT_EQ(rules[2].local.v6, 0);
  EXPECT_EQ(rules[2].local.addr, Ip("10.0.0.0"));
  EXPECT_EQ(rules[2].local.prefix_len, 8);
  EXPECT_EQ(FormatRule(rules[0]), "use os tcp_server [::1]:80");
  EXPECT_EQ(FormatRule(rules[1]), "use os tcp_client [2001:db8::]/32:*:[fe80::]/64:1000-2000");
  EXPECT_EQ(FormatRule(rules[2]), "use os udp_receiver 10.0.0.0/8:53");
  EXPECT_EQ(FormatRule(rules[3]), "use os udp_sender [::]/0:*");
  for (const Rule& r : rules) {
    Rule back;
    ParseError err;
    ASSERT_TRUE(ParseRuleLine(FormatRule(r), 1, &back, &err)) << err.ToString();
    EXPECT_EQ(FormatRule(back), FormatRule(r));
  }
}

TEST(RulesParse, MalformedIpv6NamesColumnTokenAndExpectation) {
  struct Case {
    const char* line;
    int column;
    const char* token;
    const char* expected_fragment;
  } cases[] = {
      {"use os tcp_server [::1:80", 26, "", "']' closing"},
      {"use os tcp_server [::g]:80", 20, "::g", "IPv6 address inside"},
      {"use os tcp_server []:80", 20, "", "IPv6 address inside"},
      {"use os tcp_server [fe80::1%eth0]:80", 20, "fe80::1%eth0", "IPv6 address inside"},
      {"use os tcp_server [::1]/129:80", 25, "129", "prefix length 0-128"},
      {"use os tcp_server [::1/200]:80", 24, "200", "prefix length 0-128"},
      {"use os tcp_server [::1/64]/64:80", 27, "/64", "one prefix only"},
      {"use os tcp_server [::1]x:80", 24, "x", "after ']'"},
      {"use os tcp_server ::1:80", 19, "", "IPv4"},
  };
  for (const Case& c : cases) {
    Rule r;
    ParseError err;
    ASSERT_FALSE(ParseRuleLine(c.line, 3, &r, &err)) << c.line;
    EXPECT_EQ(err.column, c.column) << c.line << " -> " << err.ToString();
    EXPECT_EQ(err.token, c.token) << c.line << " -> " << err.ToString();
    EXPECT_NE(err.expected.find(c.expected_fragment), std::string::npos)
        << c.line << " -> " << err.ToString();
  }
}

TEST(RulesMatch, Ipv6PrefixesMatchIpv6AddressesAndStarMatchesBoth) {
  std::vector<Rule> rules = MustParse(
      "use os tcp_server [2001:db8::]/32:*\n"
      "use os tcp_server 127.0.0.0/8:*\n"
      "use os tcp_client *:9\n");
  uint8_t in[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
  uint8_t out[16] = {0x20, 0x01, 0x0d, 0xb9};
  Query q;
  q.role = Role::kTcpServer;
  q.local_port = 80;
  q.local_addr6 = in;
  EXPECT_EQ(Match(rules.data(), rules.size(), q).rule_id, 1u);
  q.local_addr6 = out;
  EXPECT_EQ(Match(rules.data(), rules.size(), q).rule_id, 0u) << "IPv4 prefixes take no IPv6";
  q.local_addr6 = nullptr;
  q.local_addr = Ip("127.0.0.1");  // also a v4-mapped ::ffff:127.0.0.1
  EXPECT_EQ(Match(rules.data(), rules.size(), q).rule_id, 2u);
  q.role = Role::kTcpClient;
  q.remote_addr6 = in;
  q.remote_port = 9;
  EXPECT_EQ(Match(rules.data(), rules.size(), q).rule_id, 3u) << "* matches IPv6 too";
}

}  // namespace
}  // namespace rules
}  // namespace offload
