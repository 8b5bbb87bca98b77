// offloadctl's text output for engine statistics: the stack counters show
// grouped by protocol, non-zero ones only, wrapped.
#include <string>

#include "cli/format.h"
#include "gtest/gtest.h"

namespace offload::cli {
namespace {

v1::GetStatsResponse OneEngine() {
  v1::GetStatsResponse r;
  v1::EngineStats* e = r.add_engines();
  e->set_id(0);
  e->set_flows(2);
  return r;
}

TEST(FormatStatsTest, StackCountersGroupedNonZeroOnly) {
  v1::GetStatsResponse r = OneEngine();
  auto* m = r.mutable_engines(0)->mutable_counters();
  (*m)["tcp.retrans_segs"] = 12;
  (*m)["tcp.rto_timeouts"] = 3;
  (*m)["tcp.resets_sent"] = 0;
  (*m)["ip.rx_checksum_partial"] = 7;
  (*m)["udp.in"] = 0;
  const std::string out = FormatStats(r, false);
  EXPECT_NE(out.find("\n  ip: rx_checksum_partial 7\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\n  tcp: retrans_segs 12, rto_timeouts 3\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("resets_sent"), std::string::npos) << out;
  EXPECT_EQ(out.find("udp"), std::string::npos) << out;
}

TEST(FormatStatsTest, LongCounterGroupsWrapUnder100Columns) {
  v1::GetStatsResponse r = OneEngine();
  auto* m = r.mutable_engines(0)->mutable_counters();
  for (int i = 0; i < 30; ++i) (*m)["tcp.counter_number_" + std::to_string(i)] = 1000 + i;
  const std::string out = FormatStats(r, false);
  size_t start = 0, lines = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    if (out.compare(start, 2, "  ") == 0) {
      ++lines;
      EXPECT_LE(end - start, 100u) << out.substr(start, end - start);
    }
    start = end + 1;
  }
  EXPECT_GT(lines, 3u) << out;
  EXPECT_NE(out.find("counter_number_29 1029"), std::string::npos);
}

}  // namespace
}  // namespace offload::cli
