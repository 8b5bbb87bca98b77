// NetlinkView's IPv6 side against a real kernel: a veth pair between two
// fresh network namespaces with 2001:db8::/32 addresses; source-usable
// addresses (DAD-failed ones excluded), routes, and neighbour discovery run
// by the kernel on request (RTM_NEWNEIGH NTF_USE, AF_INET6). Needs root.

#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "daemon/netlink/netlink_view.h"
#include "daemon/nic/netdev.h"
#include "gtest/gtest.h"
#include "tests/integration/nic/netns_fixture.h"

namespace offload::netlink {
namespace {

using offload::testing::Sh;
using offload::testing::VethPair;

Ip6 A6(const char* text) {
  Ip6 a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
  return a;
}

template <typename F>
bool WaitFor(F cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class NetlinkView6Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces";
    ASSERT_TRUE(VethPair::Create("of6", 52, 1, &veth_).ok());
    // nodad: usable at once (DAD on a fresh veth is not what is tested).
    ASSERT_EQ(Sh("ip -n " + veth_.ns_a() + " addr add 2001:db8:52::1/64 dev va nodad"), 0);
    ASSERT_EQ(Sh("ip -n " + veth_.ns_b() + " addr add 2001:db8:52::2/64 dev vb nodad"), 0);
    absl::Status created = VethPair::RunIn(veth_.ns_a(), [&] {
      auto v = NetlinkView::Create();
      ASSERT_TRUE(v.ok()) << v.status();
      view_ = *std::move(v);
    });
    ASSERT_TRUE(created.ok()) << created;
    va_ = view_->IfIndex("va");
    ASSERT_GT(va_, 0);
  }
  void TearDown() override { view_.reset(); }
  int IpA(const std::string& args) { return Sh("ip -n " + veth_.ns_a() + " " + args + " 2>&1"); }

  VethPair veth_;
  std::unique_ptr<NetlinkView> view_;
  int va_ = 0;
};

TEST_F(NetlinkView6Test, GlobalAddressAndConnectedRoute) {
  auto addrs = view_->Addresses6(va_);
  ASSERT_EQ(addrs.size(), 1u);  // the link-local fe80:: address is not listed
  EXPECT_EQ(addrs[0].address, A6("2001:db8:52::1"));
  EXPECT_EQ(addrs[0].prefix_len, 64);
  auto r = view_->LookupRoute6(A6("2001:db8:52::77"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->prefix_len, 64);
  EXPECT_EQ(r->gateway, Ip6{});
  EXPECT_EQ(r->oif, va_);
  for (const Route6& route : view_->Routes6(va_)) {
    EXPECT_FALSE(route.dst[0] == 0xfe && route.dst[1] == 0x80) << "link-local route listed";
  }
  ASSERT_EQ(IpA("-6 route add 2001:db8:60::/48 via 2001:db8:52::3"), 0);
  ASSERT_TRUE(WaitFor([&] {
    auto g = view_->LookupRoute6(A6("2001:db8:60::5"));
    return g.has_value() && g->gateway == A6("2001:db8:52::3");
  }));
  bool listed = false;
  for (const Route6& route : view_->Routes6(va_)) listed |= route.prefix_len == 48;
  EXPECT_TRUE(listed);
}

TEST_F(NetlinkView6Test, Rfc4862_DadFailedAddressIsNotUsable) {
  // The peer holds 2001:db8:52::9 already: DAD of ours fails.
  ASSERT_EQ(Sh("ip -n " + veth_.ns_b() + " addr add 2001:db8:52::9/64 dev vb nodad"), 0);
  ASSERT_EQ(IpA("addr add 2001:db8:52::9/64 dev va"), 0);
  ASSERT_TRUE(WaitFor([&] {
    return Sh("ip -n " + veth_.ns_a() + " -6 addr show dev va | grep -q dadfailed") == 0;
  }));
  for (const InterfaceAddress6& a : view_->Addresses6(va_)) {
    EXPECT_NE(a.address, A6("2001:db8:52::9"));
  }
}

TEST_F(NetlinkView6Test, Rfc4861_ResolveNeighbour6RunsKernelNd) {
  nic::InterfaceInfo vb;
  ASSERT_TRUE(VethPair::RunIn(veth_.ns_b(), [&] {
                auto info = nic::QueryInterface("vb");
                ASSERT_TRUE(info.ok());
                vb = *info;
              }).ok());
  const auto find = [&](const Ip6& ip) -> std::optional<Neighbour> {
    for (const Neighbour& n : view_->Neighbours6(va_)) {
      if (n.ip6 == ip) return n;
    }
    return std::nullopt;
  };
  EXPECT_FALSE(find(A6("2001:db8:52::2")).has_value());
  ASSERT_TRUE(view_->ResolveNeighbourAsync6(va_, A6("2001:db8:52::2")));
  ASSERT_TRUE(WaitFor([&] {
    auto n = find(A6("2001:db8:52::2"));
    return n.has_value() && n->usable();
  }));
  EXPECT_EQ(*find(A6("2001:db8:52::2"))->mac, vb.mac);
  // IPv4 listings do not show IPv6 entries.
  for (const Neighbour& n : view_->Neighbours(va_)) EXPECT_NE(n.ip, 0u);
  EXPECT_FALSE(view_->ResolveNeighbour6(987654, A6("2001:db8:52::2")).ok());
}

}  // namespace
}  // namespace offload::netlink
