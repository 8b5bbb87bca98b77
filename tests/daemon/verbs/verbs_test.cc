// The parts of the verbs driver that need no RDMA hardware (this machine has
// none): netdev -> RDMA device discovery on a fake sysfs tree, flow-rule
// construction from a 5-tuple / listener / multicast group, and the start-up
// error when verbs is asked for on an interface without an RDMA device.

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "daemon/nic/driver_factory.h"
#include "daemon/verbs/device_discovery.h"
#include "daemon/verbs/flow_spec.h"
#include "daemon/verbs/verbs_driver.h"
#include "gtest/gtest.h"

namespace offload::verbs {
namespace {

using nic::FlowKey;
using nic::IpProto;

constexpr uint32_t kLocal = 0xc6120001;   // 198.18.0.1
constexpr uint32_t kRemote = 0xc6120002;  // 198.18.0.2
const std::array<uint8_t, 6> kMac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

// A throw-away sysfs tree: <root>/class/net/<if>/...
class FakeSysfs {
 public:
  FakeSysfs() {
    char tmpl[] = "/tmp/offload_sysfs_XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  ~FakeSysfs() { std::system(("rm -rf " + root_).c_str()); }
  void AddNetdev(const std::string& ifname, const std::string& ibdev,
                 int dev_port) {
    std::string base = root_ + "/class/net/" + ifname;
    std::system(("mkdir -p " + base + "/device").c_str());
    if (!ibdev.empty()) {
      std::system(("mkdir -p " + base + "/device/infiniband/" + ibdev).c_str());
    }
    if (dev_port >= 0) std::ofstream(base + "/dev_port") << dev_port << "\n";
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

TEST(DeviceDiscoveryTest, FindsTheRdmaDeviceAndPort) {
  FakeSysfs sys;
  sys.AddNetdev("enp1s0f1", "mlx5_1", 1);
  auto dev = FindRdmaDevice(sys.root(), "enp1s0f1");
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->name, "mlx5_1");
  EXPECT_EQ(dev->port, 2);  // dev_port is 0-based, verbs ports 1-based
}

TEST(DeviceDiscoveryTest, DefaultsToPortOne) {
  FakeSysfs sys;
  sys.AddNetdev("eth0", "mlx5_0", -1);
  auto dev = FindRdmaDevice(sys.root(), "eth0");
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(dev->port, 1);
}

TEST(DeviceDiscoveryTest, PlainNetdevHasNoRdmaDevice) {
  FakeSysfs sys;
  sys.AddNetdev("veth0", "", 0);
  auto dev = FindRdmaDevice(sys.root(), "veth0");
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(dev.status().message().find("af_xdp"), std::string::npos);
  EXPECT_EQ(FindRdmaDevice(sys.root(), "nosuch").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DeviceDiscoveryTest, RejectsPathTricks) {
  FakeSysfs sys;
  EXPECT_EQ(FindRdmaDevice(sys.root(), "../x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FindRdmaDevice(sys.root(), "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FlowRuleTest, ConnectionMatchesTheFullFiveTuple) {
  FlowRule r(FlowKey::Connection(IpProto::kTcp, kLocal, 80, kRemote, 4000),
             kMac, 1);
  EXPECT_EQ(r.attr().type, IBV_FLOW_ATTR_NORMAL);
  EXPECT_EQ(r.attr().num_of_specs, 3);
  EXPECT_EQ(r.attr().port, 1);
  EXPECT_EQ(r.attr().size, sizeof(ibv_flow_attr) + sizeof(ibv_flow_spec_eth) +
                               sizeof(ibv_flow_spec_ipv4) +
                               sizeof(ibv_flow_spec_tcp_udp));
  EXPECT_EQ(r.eth().type, IBV_FLOW_SPEC_ETH);
  EXPECT_EQ(memcmp(r.eth().val.dst_mac, kMac.data(), 6), 0);
  EXPECT_EQ(r.eth().val.ether_type, htons(0x0800));
  EXPECT_EQ(r.ipv4().type, IBV_FLOW_SPEC_IPV4);
  EXPECT_EQ(r.ipv4().val.dst_ip, htonl(kLocal));
  EXPECT_EQ(r.ipv4().mask.dst_ip, 0xffffffffu);
  EXPECT_EQ(r.ipv4().val.src_ip, htonl(kRemote));
  EXPECT_EQ(r.ipv4().mask.src_ip, 0xffffffffu);
  EXPECT_EQ(r.l4().type, IBV_FLOW_SPEC_TCP);
  EXPECT_EQ(r.l4().val.dst_port, htons(80));
  EXPECT_EQ(r.l4().val.src_port, htons(4000));
  EXPECT_EQ(r.l4().mask.src_port, 0xffff);
  // The specs follow the attr contiguously, each at the previous one's size.
  const uint8_t* base = reinterpret_cast<const uint8_t*>(&r.attr());
  const auto* eth =
      reinterpret_cast<const ibv_flow_spec_eth*>(base + sizeof(ibv_flow_attr));
  const auto* ip = reinterpret_cast<const ibv_flow_spec_ipv4*>(
      reinterpret_cast<const uint8_t*>(eth) + eth->size);
  const auto* l4 = reinterpret_cast<const ibv_flow_spec_tcp_udp*>(
      reinterpret_cast<const uint8_t*>(ip) + ip->size);
  EXPECT_EQ(ip->type, IBV_FLOW_SPEC_IPV4);
  EXPECT_EQ(l4->type, IBV_FLOW_SPEC_TCP);
}

TEST(FlowRuleTest, WildcardListenerMasksOutPeerAndAddress) {
  FlowRule r(FlowKey::Listener(IpProto::kUdp, 0, 53), kMac, 1);
  EXPECT_EQ(r.ipv4().mask.dst_ip, 0u);
  EXPECT_EQ(r.ipv4().mask.src_ip, 0u);
  EXPECT_EQ(r.l4().type, IBV_FLOW_SPEC_UDP);
  EXPECT_EQ(r.l4().val.dst_port, htons(53));
  EXPECT_EQ(r.l4().mask.dst_port, 0xffff);
  EXPECT_EQ(r.l4().mask.src_port, 0);
  // Connections take precedence over listeners (lower value = higher).
  FlowRule c(FlowKey::Connection(IpProto::kUdp, kLocal, 53, kRemote, 9), kMac,
             1);
  EXPECT_LT(c.attr().priority, r.attr().priority);
}

TEST(FlowRuleTest, MulticastGroupMatchesItsMappedMac) {
  const uint32_t group = 0xefc10203;  // 239.193.2.3
  FlowRule r(FlowKey::MulticastGroup(group, 5000), kMac, 1);
  const uint8_t want[6] = {0x01, 0x00, 0x5e, 0x41, 0x02, 0x03};  // 23 bits
  EXPECT_EQ(memcmp(r.eth().val.dst_mac, want, 6), 0);
  EXPECT_EQ(r.ipv4().val.dst_ip, htonl(group));
}

TEST(VerbsDriverTest, AbsentRdmaDeviceIsAClearStartUpError) {
  FakeSysfs sys;
  sys.AddNetdev("lo", "", -1);
  nic::InterfaceConfig c;
  c.name = "lo";
  c.driver = nic::DriverKind::kVerbs;
  c.sysfs_root = sys.root();
  auto d = VerbsDriver::Create(c);
  ASSERT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(d.status().message().find("lo"), std::string::npos);
  EXPECT_NE(d.status().message().find("af_xdp"), std::string::npos);
  auto via_factory = nic::OpenDriver(c);
  EXPECT_EQ(via_factory.status().code(), absl::StatusCode::kNotFound);
}

TEST(DriverFactoryTest, AutoPicksVerbsOnlyWithAnRdmaDevice) {
  FakeSysfs sys;
  sys.AddNetdev("eth0", "mlx5_0", 0);
  sys.AddNetdev("veth0", "", 0);
  nic::InterfaceConfig c;
  c.sysfs_root = sys.root();
  c.name = "eth0";
  EXPECT_EQ(nic::ResolveDriverKind(c), nic::DriverKind::kVerbs);
  c.name = "veth0";
  EXPECT_EQ(nic::ResolveDriverKind(c), nic::DriverKind::kAfXdp);
  c.driver = nic::DriverKind::kVerbs;
  EXPECT_EQ(nic::ResolveDriverKind(c), nic::DriverKind::kVerbs);
}

}  // namespace
}  // namespace offload::verbs
