// WirePlane over the fake NIC and the fake route source (no root): the
// plane starts on injected seams, answers routing queries from the fake
// tables and follows their changes, asks the "kernel" to resolve an unknown
// next hop, steers a connection before its SYN leaves, and carries data end
// to end: a frame injected into the fake queue reaches the application's
// pipe, and an application's send leaves as a frame on the fake queue.

#include <string>

#include "daemon/wire/wire_plane.h"
#include "gtest/gtest.h"
#include "tests/daemon/wire/fake_wire_plane.h"

namespace offload::testing {
namespace {

class FakeWirePlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<FakePlane> fp = MakeFakePlane();
    ASSERT_TRUE(fp.ok()) << fp.status();
    fp_ = std::move(*fp);
  }
  void TearDown() override {
    if (fp_.plane != nullptr) fp_.plane->Stop();
  }
  FakePlane fp_;
};

TEST_F(FakeWirePlaneTest, StartsOnTheSeamsAndRoutesFromTheFakeTables) {
  wire::WirePlane& wp = *fp_.plane;
  EXPECT_EQ(wp.local_ip(), FakeLocalIp());
  EXPECT_EQ(wp.num_engines(), 1u);
  ASSERT_EQ(wp.Interfaces().size(), 1u);
  EXPECT_EQ(wp.Interfaces()[0].name, "fake0");
  EXPECT_EQ(wp.Interfaces()[0].link, wire::LinkState::kUp);

  absl::StatusOr<wire::WireRoute> r = wp.RouteTo(FakePeerIp(), kPeerPort);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ifindex, kFakeIfIndex);
  EXPECT_EQ(r->local_ip, FakeLocalIp());
  EXPECT_EQ(r->next_hop, FakePeerIp());  // on-link
  EXPECT_EQ(r->queue, 0u);

  EXPECT_FALSE(wp.RouteTo(Ip("198.19.0.9")).ok()) << "no route yet";
  EXPECT_FALSE(wp.RouteTo(FakeLocalIp()).ok()) << "a local address is the kernel's";
  EXPECT_FALSE(wp.RouteTo(Ip("198.18.0.255")).ok()) << "directed broadcast";
}

TEST_F(FakeWirePlaneTest, FollowsRouteChangesOfTheSource) {
  netlink::Route def;
  def.gateway = Ip("198.18.0.254");
  def.oif = kFakeIfIndex;
  fp_.routes->AddRoute(def);
  fp_.routes->Changed();  // as netlink's event thread would
  absl::StatusOr<wire::WireRoute> r = fp_.plane->RouteTo(Ip("198.19.0.9"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->next_hop, Ip("198.18.0.254"));
}

TEST_F(FakeWirePlaneTest, AsksTheSourceToResolveAnUnknownNextHop) {
  absl::StatusOr<std::shared_ptr<wire::EngineChannel>> chan =
      wire::EngineChannel::Create(1, 1u << 16);
  ASSERT_TRUE(chan.ok());
  absl::StatusOr<std::shared_ptr<wire::AppPipe>> pipe =
      wire::AppPipe::Create(*chan, 0, shm::kConnectPending);
  ASSERT_TRUE(pipe.ok());
  wire::TcpConnectParams p;
  p.remote_ip = Ip("198.18.0.3");  // no neighbour entry
  p.remote_port = kPeerPort;
  p.local_port = kLocalPort;
  p.pipe = *pipe;
  ASSERT_TRUE(fp_.plane->ConnectTcp(p).ok());
  bool asked = false;
  for (uint32_t ip : fp_.routes->resolve_requests()) asked |= ip == Ip("198.18.0.3");
  EXPECT_TRUE(asked);
  EXPECT_EQ(fp_.driver->steered().size(), 1u) << "steered before the SYN can leave";
}

TEST_F(FakeWirePlaneTest, FramesReachThePipeAndSendsLeaveAsFrames) {
  FakeConnection c;
  ASSERT_TRUE(ConnectFake(fp_, &c));
  EXPECT_EQ(fp_.driver->steered().size(), 1u);

  // Wire -> application: the peer's segment lands in the pipe's RX ring.
  const std::string hello = "hello from the wire";
  TcpSpec s;
  s.src = PeerEnd();
  s.dst = LocalEnd();
  s.seq = kPeerIsn + 1;
  s.ack = c.our_next;
  s.flags = net::kTcpAck | net::kTcpPsh;
  s.payload.assign(hello.begin(), hello.end());
  fp_.queue->Inject(BuildTcp(s));
  ASSERT_TRUE(Eventually([&] { return c.rx.ReadableFresh() >= hello.size(); }));
  std::string got(hello.size(), '\0');
  c.rx.CopyOut(0, got.data(), got.size());
  c.rx.Consume(got.size());
  EXPECT_EQ(got, hello);

  // Application -> wire: a send leaves as a data segment to the peer,
  // acknowledging what it received.
  const std::string world = "hello from the app";
  AppSend(&c, world, fp_.plane->DoorbellFd(0));
  TcpView data;
  ASSERT_TRUE(Eventually([&] {
    for (TcpView& v : SentTcp(fp_.queue, &c.sent_seen)) {
      if (!v.payload.empty()) {
        data = std::move(v);
        return true;
      }
    }
    return false;
  })) << "the send never left on the fake queue";
  EXPECT_EQ(std::string(data.payload.begin(), data.payload.end()), world);
  EXPECT_EQ(data.f.seq, c.our_next);
  EXPECT_EQ(data.f.ack, kPeerIsn + 1 + hello.size());
  EXPECT_EQ(data.f.src_port, kLocalPort);
  EXPECT_EQ(data.f.dst_port, kPeerPort);
  EXPECT_EQ(data.f.dst_ip, FakePeerIp());
  EXPECT_FALSE(fp_.queue->double_release());
}

}  // namespace
}  // namespace offload::testing
