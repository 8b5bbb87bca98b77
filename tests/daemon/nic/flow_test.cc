// FlowKey validation and formatting, counters.

#include "daemon/nic/flow.h"

#include "daemon/nic/counters.h"
#include "gtest/gtest.h"

namespace offload::nic {
namespace {

TEST(FlowKeyTest, ValidKeys) {
  EXPECT_EQ(ValidateFlowKey(FlowKey::Listener(IpProto::kTcp, 0, 80)), "");
  EXPECT_EQ(ValidateFlowKey(FlowKey::Connection(IpProto::kUdp, 1, 2, 3, 4)),
            "");
  EXPECT_EQ(ValidateFlowKey(FlowKey::MulticastGroup(0xe0000001, 5000)), "");
}

TEST(FlowKeyTest, InvalidKeysSayWhy) {
  EXPECT_NE(ValidateFlowKey(FlowKey::Listener(IpProto::kTcp, 0, 0)), "");
  EXPECT_NE(ValidateFlowKey(FlowKey::Connection(IpProto::kTcp, 1, 2, 3, 0)),
            "");
  EXPECT_NE(ValidateFlowKey(FlowKey::Connection(IpProto::kTcp, 0, 2, 3, 4)),
            "");
  EXPECT_NE(ValidateFlowKey(FlowKey::Listener(IpProto::kTcp, 0xe0000001, 80)),
            "");
  FlowKey bad;
  bad.proto = static_cast<IpProto>(1);
  bad.local_port = 1;
  EXPECT_NE(ValidateFlowKey(bad), "");
}

TEST(FlowKeyTest, ToString) {
  EXPECT_EQ(FlowKey::Listener(IpProto::kUdp, 0, 53).ToString(),
            "udp *:53 <- *");
  EXPECT_EQ(FlowKey::Connection(IpProto::kTcp, 0xc6120001, 80, 0xc6120002, 4000)
                .ToString(),
            "tcp 198.18.0.1:80 <- 198.18.0.2:4000");
}

TEST(CountersTest, SnapshotCopiesEveryCounter) {
  QueueCounters c;
  c.rx_packets.Add(3);
  c.tx_bytes.Add(100);
  c.Drop(DropReason::kTxRingFull, 2);
  QueueStats s;
  SnapshotCounters(c, &s);
  EXPECT_EQ(s.rx_packets, 3u);
  EXPECT_EQ(s.tx_bytes, 100u);
  EXPECT_EQ(s.drops[static_cast<int>(DropReason::kTxRingFull)], 2u);
  EXPECT_STREQ(DropReasonName(DropReason::kTxRingFull), "tx_ring_full");
}

}  // namespace
}  // namespace offload::nic
