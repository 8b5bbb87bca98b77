// NetlinkView against a real kernel: a veth pair between two fresh network
// namespaces; addresses, routes (longest prefix, metric) and neighbours are
// read, changes made while the view runs show up, and neighbour resolution
// runs the kernel's ARP. Needs root (tagged "root").

#include "daemon/netlink/netlink_view.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "daemon/nic/netdev.h"
#include "gtest/gtest.h"
#include "tests/daemon/xdp/packet_builder.h"
#include "tests/integration/nic/netns_fixture.h"

namespace offload::netlink {
namespace {

using offload::testing::Ip;
using offload::testing::Sh;
using offload::testing::VethPair;

template <typename F>
bool WaitFor(F cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class NetlinkViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces";
    ASSERT_TRUE(VethPair::Create("ofn", 50, 1, &veth_).ok());
    // The view follows the namespace of the thread that creates it.
    absl::Status created = VethPair::RunIn(veth_.ns_a(), [&] {
      auto v = NetlinkView::Create();
      ASSERT_TRUE(v.ok()) << v.status();
      view_ = *std::move(v);
    });
    ASSERT_TRUE(created.ok()) << created;
    ASSERT_NE(view_, nullptr);
    va_ = view_->IfIndex("va");
    ASSERT_GT(va_, 0);
  }
  void TearDown() override { view_.reset(); }

  int IpA(const std::string& args) {
    return Sh("ip -n " + veth_.ns_a() + " " + args + " 2>&1");
  }

  VethPair veth_;
  std::unique_ptr<NetlinkView> view_;
  int va_ = 0;
};

TEST_F(NetlinkViewTest, SeesAddressesAndConnectedRoute) {
  auto addrs = view_->Addresses(va_);
  ASSERT_EQ(addrs.size(), 1u);
  EXPECT_EQ(addrs[0].address, Ip("198.18.50.1"));
  EXPECT_EQ(addrs[0].prefix_len, 24);
  auto r = view_->LookupRoute(Ip("198.18.50.77"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->prefix_len, 24);
  EXPECT_EQ(r->gateway, 0u);  // on-link
  EXPECT_EQ(r->oif, va_);
  EXPECT_EQ(r->pref_src, Ip("198.18.50.1"));
  // Fresh namespace: no default route.
  EXPECT_FALSE(view_->LookupRoute(Ip("203.0.113.5")).has_value());
}

TEST_F(NetlinkViewTest, FollowsChangesMadeWhileRunning) {
  ASSERT_EQ(IpA("addr add 198.18.51.1/24 dev va"), 0);
  ASSERT_TRUE(WaitFor([&] { return view_->Addresses(va_).size() == 2; }));

  ASSERT_EQ(IpA("route add default via 198.18.50.2 metric 100"), 0);
  ASSERT_EQ(IpA("route add 198.18.60.0/24 via 198.18.50.3"), 0);
  ASSERT_EQ(IpA("route add 198.18.60.128/25 via 198.18.50.4"), 0);
  ASSERT_EQ(IpA("route add 198.18.61.0/24 via 198.18.50.5 metric 20"), 0);
  ASSERT_EQ(IpA("route add 198.18.61.0/24 via 198.18.50.6 metric 10"), 0);
  ASSERT_TRUE(WaitFor([&] {
    auto r = view_->LookupRoute(Ip("198.18.61.1"));
    return r.has_value() && r->gateway == Ip("198.18.50.6");
  }));
  auto r = view_->LookupRoute(Ip("198.18.60.200"));  // longest prefix: /25
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->prefix_len, 25);
  EXPECT_EQ(r->gateway, Ip("198.18.50.4"));
  EXPECT_EQ(r->oif, va_);
  r = view_->LookupRoute(Ip("198.18.60.1"));  // /24
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->gateway, Ip("198.18.50.3"));
  r = view_->LookupRoute(Ip("203.0.113.5"));  // default
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->prefix_len, 0);
  EXPECT_EQ(r->gateway, Ip("198.18.50.2"));

  ASSERT_EQ(IpA("route del 198.18.60.128/25"), 0);
  ASSERT_TRUE(WaitFor([&] {
    auto r2 = view_->LookupRoute(Ip("198.18.60.200"));
    return r2.has_value() && r2->prefix_len == 24;
  }));
}

// Regression: IPv4 flushes the routes of a link going down without sending
// RTM_DELROUTE, so a notification-only cache kept them forever.
TEST_F(NetlinkViewTest, RoutesFlushedSilentlyByLinkDownDisappear) {
  ASSERT_EQ(IpA("route add 198.18.60.0/24 via 198.18.50.3"), 0);
  ASSERT_TRUE(WaitFor(
      [&] { return view_->LookupRoute(Ip("198.18.60.1")).has_value(); }));
  ASSERT_EQ(IpA("link set va down"), 0);
  ASSERT_TRUE(WaitFor(
      [&] { return !view_->LookupRoute(Ip("198.18.60.1")).has_value(); }));
}

TEST_F(NetlinkViewTest, ResolveNeighbourRunsKernelArp) {
  nic::InterfaceInfo vb;
  ASSERT_TRUE(VethPair::RunIn(veth_.ns_b(), [&] {
                auto info = nic::QueryInterface("vb");
                ASSERT_TRUE(info.ok());
                vb = *info;
              }).ok());
  EXPECT_FALSE(view_->LookupNeighbour(va_, Ip("198.18.50.2")).has_value());
  ASSERT_TRUE(view_->ResolveNeighbour(va_, Ip("198.18.50.2")).ok());
  ASSERT_TRUE(WaitFor([&] {
    auto n = view_->LookupNeighbour(va_, Ip("198.18.50.2"));
    return n.has_value() && n->usable();
  }));
  auto n = view_->LookupNeighbour(va_, Ip("198.18.50.2"));
  EXPECT_EQ(*n->mac, vb.mac);

  // Nobody answers for .99: the entry exists, unresolved.
  ASSERT_TRUE(view_->ResolveNeighbour(va_, Ip("198.18.50.99")).ok());
  ASSERT_TRUE(WaitFor([&] {
    return view_->LookupNeighbour(va_, Ip("198.18.50.99")).has_value();
  }));
  auto none = view_->LookupNeighbour(va_, Ip("198.18.50.99"));
  EXPECT_FALSE(none->usable());
  EXPECT_TRUE(none->state == NeighbourState::kIncomplete ||
              none->state == NeighbourState::kFailed)
      << NeighbourStateName(none->state);
}

TEST_F(NetlinkViewTest, ResolveOnMissingInterfaceFails) {
  EXPECT_FALSE(view_->ResolveNeighbour(987654, Ip("198.18.50.2")).ok());
}

}  // namespace
}  // namespace offload::netlink
