// Fuzz target for the rule grammar: any text either parses or reports an
// error with a position inside the input; what parses formats back to an
// equivalent table, and matching never misbehaves.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "rules/rules.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offload::rules;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<Rule> rules;
  ParseError error;
  if (!ParseRules(text, &rules, &error)) {
    Check(error.line >= 1 && error.column >= 1);
    Check(!error.expected.empty());
    (void)error.ToString();
  } else {
    // Round trip: canonical text parses to the same rules.
    std::vector<Rule> again;
    ParseError error2;
    Check(ParseRules(FormatRules(rules, "# fuzz"), &again, &error2));
    Check(again.size() == rules.size());
    for (size_t i = 0; i < rules.size(); ++i) {
      Check(FormatRule(again[i]) == FormatRule(rules[i]));
    }
    // Matching with a query derived from the input.
    Query q;
    q.role = static_cast<Role>(1 + (size % 5));
    q.local_addr = size >= 4 ? (data[0] << 24 | data[1] << 16 | data[2] << 8 | data[3]) : 0;
    q.remote_addr = ~q.local_addr;
    q.local_port = static_cast<uint16_t>(size * 7);
    q.remote_port = static_cast<uint16_t>(size * 13);
    q.program = "fuzz";
    const Decision d = Match(rules.data(), rules.size(), q);
    Check(d.index < static_cast<int32_t>(rules.size()));
    // The same with IPv6 addresses (issue 18).
    uint8_t a6[16] = {};
    for (size_t i = 0; i < 16 && i < size; ++i) a6[i] = data[i];
    q.local_addr6 = a6;
    q.remote_addr6 = a6;
    const Decision d6 = Match(rules.data(), rules.size(), q);
    Check(d6.index < static_cast<int32_t>(rules.size()));
  }
  // Every line alone through the single-rule entry point.
  Rule r;
  ParseError line_error;
  if (ParseRuleLine(text, 1, &r, &line_error)) {
    Rule back;
    Check(ParseRuleLine(FormatRule(r), 1, &back, &line_error));
    Check(FormatRule(back) == FormatRule(r));
  }
  return 0;
}

extern const char* const kFuzzSeeds[] = {
    "application-id tcp-lat B1\nuse vma tcp_client 192.168.1.0/24:*:*:*\nuse os tcp_server *:5001\n",
    "use offload udp_receiver 10.0.0.1/8:7000-7010 # comment\n\n",
    "use os udp_connect 1.1.1.1:53:2.2.2.2:1-65535\nuse os udp_sender *:*\n",
    "use os tcp_server 255.255.255.255/32:65535\napplication-id * *\nuse os tcp_client *\n",
    "use foo tcp_server *:1",
    "application-id",
    "use os tcp_server 1.2.3.4/33:80",
    "use os tcp_server [::1]:80\nuse os tcp_client [2001:db8::]/32:*:[::]/0:*\n",
    "use os udp_connect [2001:db8::1/64]:53:[::ffff:10.0.0.0]/104:*\n",
    "use os tcp_server [::1:80",
    "use os tcp_server [fe80::1%eth0]/129:80",
};
extern const size_t kNumFuzzSeeds = sizeof(kFuzzSeeds) / sizeof(kFuzzSeeds[0]);
