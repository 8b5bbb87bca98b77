// WirePlane::BindUdp for AF_INET6 sockets over the fake NIC and route
// source (no root): an interface without a global IPv6 address refuses a
// v6-only bind and steers nothing (the socket stays with the kernel), and
// serves a dual-stack one for IPv4 (steered on the IPv4 address only); a
// v4-mapped interface address binds and steers as IPv4; a v6-only socket
// cannot have a v4-mapped address; IPv6 peers without a route stay with
// the kernel. (With an IPv6 address the steering is covered by
// tests/integration/wire:udp6_wire_test: the fake route source has none.)

#include <sys/eventfd.h>

#include <string>

#include "daemon/wire/app_dgram.h"
#include "daemon/wire/wire_plane.h"
#include "gtest/gtest.h"
#include "shm/unique_fd.h"
#include "tests/daemon/wire/fake_wire_plane.h"

namespace offload::testing {
namespace {

class WireUdp6BindTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<FakePlane> fp = MakeFakePlane();
    ASSERT_TRUE(fp.ok()) << fp.status();
    fp_ = std::move(*fp);
    efd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    absl::StatusOr<std::shared_ptr<wire::AppDgram>> r =
        wire::AppDgram::Create(1u << 17, efd_.get(), 0, htons(20001), 1472);
    ASSERT_TRUE(r.ok()) << r.status();
    rings_ = *r;
  }
  void TearDown() override {
    if (fp_.plane != nullptr) fp_.plane->Stop();
  }
  wire::UdpBindParams Params6(const net::Ip6Addr& local, bool v6only) {
    wire::UdpBindParams p;
    p.port = 20001;
    p.rings = rings_;
    p.ipv6 = true;
    p.local_ip6 = local;
    p.v6only = v6only;
    return p;
  }
  FakePlane fp_;
  shm::UniqueFd efd_;
  std::shared_ptr<wire::AppDgram> rings_;
};

TEST_F(WireUdp6BindTest, NoIpv6AddressOnTheInterface_V6OnlyRefusedNothingSteered) {
  absl::StatusOr<wire::WireUdp> u = fp_.plane->BindUdp(Params6(net::Ip6Addr{}, true));
  EXPECT_TRUE(absl::IsFailedPrecondition(u.status())) << u.status();
  EXPECT_TRUE(fp_.driver->steered().empty());
}

TEST_F(WireUdp6BindTest, NoIpv6AddressOnTheInterface_DualStackServedForIpv4) {
  absl::StatusOr<wire::WireUdp> u = fp_.plane->BindUdp(Params6(net::Ip6Addr{}, false));
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_TRUE(u->ipv6);
  EXPECT_EQ(u->steer_ip, FakeLocalIp());
  EXPECT_TRUE(u->steer_ip6.IsUnspecified());
  ASSERT_EQ(fp_.driver->steered().size(), 1u);
  EXPECT_NE(fp_.driver->steered().begin()->first.find("udp"), std::string::npos)
      << fp_.driver->steered().begin()->first;
  fp_.plane->CloseUdp(*u);
  EXPECT_TRUE(fp_.driver->steered().empty());
}

TEST_F(WireUdp6BindTest, V4MappedInterfaceAddress_BindsAndSteersAsIpv4) {
  absl::StatusOr<wire::WireUdp> u =
      fp_.plane->BindUdp(Params6(net::Ip6Addr::V4Mapped(FakeLocalIp()), false));
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_FALSE(u->ipv6);
  EXPECT_EQ(u->steer_ip, FakeLocalIp());
  EXPECT_EQ(fp_.driver->steered().size(), 1u);
  fp_.plane->CloseUdp(*u);
  EXPECT_TRUE(fp_.driver->steered().empty());
  EXPECT_TRUE(absl::IsInvalidArgument(
      fp_.plane->BindUdp(Params6(net::Ip6Addr::V4Mapped(FakeLocalIp()), true)).status()));
}

TEST_F(WireUdp6BindTest, Ipv6PeerWithoutARoute_StaysWithTheKernel) {
  net::Ip6Addr peer;
  peer.b[0] = 0x20;
  peer.b[1] = 0x01;
  peer.b[2] = 0x0d;
  peer.b[3] = 0xb8;
  peer.b[15] = 2;
  EXPECT_FALSE(fp_.plane->RouteUdpTo6(peer, 53).ok());
}

}  // namespace
}  // namespace offload::testing
