// DaemonConfig -> NIC / engine / stack configuration.

#include "daemon/wire/config_mapping.h"

#include "daemon/config/config.h"
#include "gtest/gtest.h"

namespace offload::wire {
namespace {

v1::DaemonConfig Base() {
  v1::DaemonConfig c;
  c.add_interfaces()->set_name("eth1");
  config::ApplyDefaults(&c);
  return c;
}

TEST(ConfigMappingTest, DefaultsGiveOneAutoQueuePerEngineCopyMode) {
  v1::DaemonConfig c = Base();
  c.set_num_cores(3);
  absl::StatusOr<nic::InterfaceConfig> n = ToNicConfig(c, 0);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->name, "eth1");
  EXPECT_EQ(n->driver, nic::DriverKind::kAuto);
  EXPECT_EQ(n->num_queues, 3u);
  EXPECT_EQ(n->zero_copy, nic::ZeroCopy::kDisable);
  // Power-of-two pools, rings at most half the pool (driver requirement).
  EXPECT_EQ(n->frames_per_queue & (n->frames_per_queue - 1), 0u);
  EXPECT_LE(n->ring_size * 2, n->frames_per_queue);
  EXPECT_EQ(n->ring_size & (n->ring_size - 1), 0u);
}

TEST(ConfigMappingTest, DriverZeroCopyAndQueuesAreMapped) {
  v1::DaemonConfig c = Base();
  c.mutable_interfaces(0)->set_driver(v1::DRIVER_VERBS);
  c.mutable_interfaces(0)->set_queues(4);
  c.mutable_interfaces(0)->set_zero_copy(true);
  c.set_max_num_buffers(3000);
  absl::StatusOr<nic::InterfaceConfig> n = ToNicConfig(c, 0);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->driver, nic::DriverKind::kVerbs);
  EXPECT_EQ(n->num_queues, 4u);
  EXPECT_EQ(n->zero_copy, nic::ZeroCopy::kPrefer);
  EXPECT_EQ(n->frames_per_queue, 4096u);
  c.mutable_interfaces(0)->set_driver(v1::DRIVER_AF_XDP);
  EXPECT_EQ(ToNicConfig(c, 0)->driver, nic::DriverKind::kAfXdp);
}

TEST(ConfigMappingTest, FewerQueuesThanEnginesIsRefusedWithTheFix) {
  v1::DaemonConfig c = Base();
  c.set_num_cores(4);
  c.mutable_interfaces(0)->set_queues(2);
  absl::StatusOr<nic::InterfaceConfig> n = ToNicConfig(c, 0);
  ASSERT_FALSE(n.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(n.status()));
  EXPECT_NE(n.status().message().find("interfaces[0].queues"), std::string::npos);
  EXPECT_NE(n.status().message().find("set queues to 0"), std::string::npos);
  EXPECT_FALSE(ToNicConfig(c, 1).ok());
}

TEST(ConfigMappingTest, EnginesArePinnedPerCpuAffinity) {
  v1::DaemonConfig c = Base();
  c.set_num_cores(2);
  c.set_engine_poll_us(75);
  absl::StatusOr<engine::EngineSetConfig> e = ToEngineSetConfig(c);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->num_cores, 2u);
  EXPECT_TRUE(e->cores.empty());
  EXPECT_EQ(e->poll_budget_us, 75u);
  c.add_cpu_affinity(1);
  EXPECT_TRUE(absl::IsInvalidArgument(ToEngineSetConfig(c).status()));
  c.add_cpu_affinity(0);
  c.add_cpu_affinity(5);  // extra entries are ignored
  e = ToEngineSetConfig(c);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->cores, (std::vector<int>{1, 0}));
}

TEST(ConfigMappingTest, StackKnobsFollowTheMtcpNames) {
  v1::DaemonConfig c = Base();
  c.set_max_concurrency(100);
  c.set_max_num_buffers(5000);
  stack::StackConfig s = ToStackConfig(c);
  EXPECT_EQ(s.max_concurrency, 100u);
  EXPECT_EQ(s.max_num_buffers, 5000u);
  EXPECT_EQ(ToProtoDriver(nic::DriverKind::kAfXdp), v1::DRIVER_AF_XDP);
  EXPECT_EQ(ToProtoDriver(nic::DriverKind::kVerbs), v1::DRIVER_VERBS);
}

}  // namespace
}  // namespace offload::wire
