// WirePlane on a real veth pair (wire_plane_fixture.h), for orders the
// engine must not depend on: an application's close seen between its two
// steps (shm::CloseEnd), and a neighbour a stack asks for again that the
// kernel answers without a notification (issue 16). Root.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon/control/wire_stats.h"
#include "daemon/stack/stack.h"
#include "daemon/wire/app_pipe.h"
#include "daemon/wire/wire_plane.h"
#include "shm/pipe.h"
#include "gtest/gtest.h"
#include "tests/daemon/wire/wire_plane_fixture.h"

namespace offload::testing {
namespace {

using std::chrono::steady_clock;

class WirePlaneOrderTest : public WirePlaneTest {
 protected:
  static void SetUpTestSuite() { SetUpVeth("ofo", 45); }
};

// shm::CloseEnd publishes a close in two steps: the TX ring's shut and the
// RX ring's reader_closed, then (after the wake-up it owes) the closed bit.
// These tests stop an application's close between the two (the engine is
// rung as the close's wake-up would ring it) and check that the engine
// acts on the first step. Both were seen once under packetdrill
// (docs/tcp-conformance.md, issue 16).
namespace close_order {

// What shm::CloseEnd stores before its wake-up, for the application end of
// `pipe` (`abort`: SO_LINGER {1, 0} or unread data), then rings the engine.
void HalfCloseAndRing(wire::AppPipe& pipe, bool abort, int doorbell) {
  pipe.to_wire().shut.store(abort ? shm::kShutRst : shm::kShutFin, std::memory_order_release);
  pipe.from_wire().reader_closed.store(shm::kReaderClosed, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint64_t one = 1;
  EXPECT_EQ(write(doorbell, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
}

// The rest of the close: the application's closed bit.
void FinishClose(wire::AppPipe& pipe) {
  pipe.record()->ctl.closed.fetch_or(1u << (&pipe.to_wire() == &pipe.record()->dir[0] ? 0 : 1));
}

uint64_t EngineFlowCount(wire::WirePlane& wp) {
  return control::ToProto(wp.EngineStats())[0].flows();
}

// A new application pipe on `chan` that the engine connects to
// remote_ip:remote_port from a port reserved by a kernel socket bound to
// local_ip (*shadow, the caller closes it). Returns the connect's outcome
// (shm::kConnectPending if none within kTimeout, -1 if it could not start)
// and its duration in *us.
int ConnectAppPipe(wire::WirePlane& wp, const std::shared_ptr<wire::EngineChannel>& chan,
                   uint32_t local_ip, uint32_t remote_ip, uint16_t remote_port,
                   std::shared_ptr<wire::AppPipe>* pipe, int* shadow, int64_t* us) {
  absl::StatusOr<std::shared_ptr<wire::AppPipe>> p =
      wire::AppPipe::Create(chan, 0, shm::kConnectPending);
  *shadow = BoundSocket("", local_ip, false);
  if (!p.ok() || *shadow < 0) return -1;
  *pipe = *p;
  wire::TcpConnectParams params;
  params.remote_ip = remote_ip;
  params.remote_port = remote_port;
  params.local_port = LocalPort(*shadow);
  params.pipe = *p;
  const auto start = steady_clock::now();
  if (!wp.ConnectTcp(params).ok()) return -1;
  shm::PipeRecord* rec = (*p)->record();
  while (rec->ctl.connect_status.load() == shm::kConnectPending &&
         steady_clock::now() < start + kTimeout) {
    std::this_thread::yield();
  }
  *us = std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - start).count();
  return rec->ctl.connect_status.load();
}

// The MAC address of `dev` in namespace `ns` ("aa:bb:..."), "" if unknown.
std::string LinkMac(const std::string& ns, const std::string& dev) {
  std::string mac = ShOutput("ip -n " + ns + " -br link show " + dev + " | awk '{print $3}'");
  while (!mac.empty() && (mac.back() == '\n' || mac.back() == ' ')) mac.pop_back();
  return mac.size() == 17 ? mac : "";
}

}  // namespace close_order

// close() in SYN-SENT (packetdrill close/close-on-syn-sent): the engine saw
// the close only when the peer's SYN,ACK woke it, and answered from an
// established connection. It must abandon the connect as soon as the close
// is committed (Linux: tcp_close in SYN-SENT, no segment; a later SYN,ACK
// meets a closed port).
TEST_F(WirePlaneOrderTest, CloseInSynSentSeenBeforeTheClosedBit_AbandonsTheConnect) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  wire::WirePlane& wp = **plane;
  // A peer that never answers: a permanent neighbour entry to a MAC no one
  // has, so the SYN leaves and the connection stays in SYN-SENT.
  const std::string silent = "198.18.45.77";
  ASSERT_EQ(Sh("ip -n " + veth_->ns_a() + " neigh replace " + silent +
               " lladdr 02:00:00:00:44:77 nud permanent dev va"),
            0);
  absl::StatusOr<std::shared_ptr<wire::EngineChannel>> chan =
      wire::EngineChannel::Create(4243, 1 << 16);
  ASSERT_TRUE(chan.ok()) << chan.status();
  absl::StatusOr<std::shared_ptr<wire::AppPipe>> pipe =
      wire::AppPipe::Create(*chan, 0, shm::kConnectPending);
  ASSERT_TRUE(pipe.ok()) << pipe.status();
  int shadow = BoundSocket("", ParseIp(veth_->ip_a()), false);
  ASSERT_GE(shadow, 0);
  wire::TcpConnectParams params;
  params.remote_ip = ParseIp(silent);
  params.remote_port = 9;
  params.local_port = LocalPort(shadow);
  params.pipe = *pipe;
  ASSERT_TRUE(wp.ConnectTcp(params).ok());
  auto deadline = steady_clock::now() + kTimeout;
  while (close_order::EngineFlowCount(wp) != 1 && steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(close_order::EngineFlowCount(wp), 1u) << "the connect never reached the engine";

  close_order::HalfCloseAndRing(**pipe, /*abort=*/false, wp.DoorbellFd(0));
  const auto closed_at = steady_clock::now();
  deadline = closed_at + kTimeout;
  while (close_order::EngineFlowCount(wp) != 0 && steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(close_order::EngineFlowCount(wp), 0u)
      << "the engine kept a connect the application had closed (it waits for the closed bit)";
  std::printf("connect abandoned %lld us after the close's first step\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                         steady_clock::now() - closed_at)
                                         .count()));
  // Abandoned, not given up after its SYN retries (ETIMEDOUT, ~11 s with
  // Linux's defaults: what the engine did while it waited for the bit).
  EXPECT_EQ((*pipe)->record()->ctl.connect_status.load(), shm::kConnectPending)
      << "the connect ended by itself: the engine did not act on the close";
  close_order::FinishClose(**pipe);
  pipe->reset();
  close(shadow);
  Sh("ip -n " + veth_->ns_a() + " neigh del " + silent + " dev va");
  wp.Stop();
}

// SO_LINGER {1, 0} then close() (packetdrill close-so-linger-onoff-1-linger-
// 0-rst): an engine that polled between the close's shut (kShutRst) and its
// closed bit took the shut for a shutdown(SHUT_WR) and sent a FIN. The
// kernel peer must see the reset.
TEST_F(WirePlaneOrderTest, LingerZeroCloseSeenBeforeTheClosedBit_ResetsInsteadOfFin) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  wire::WirePlane& wp = **plane;
  int lfd = BoundSocket(veth_->ns_b(), ParseIp(veth_->ip_b()), true);
  ASSERT_GE(lfd, 0);
  absl::StatusOr<std::shared_ptr<wire::EngineChannel>> chan =
      wire::EngineChannel::Create(4244, 1 << 16);
  ASSERT_TRUE(chan.ok()) << chan.status();
  std::shared_ptr<wire::AppPipe> pipe;
  int shadow = -1;
  int64_t us = 0;
  ASSERT_EQ(close_order::ConnectAppPipe(wp, *chan, ParseIp(veth_->ip_a()), ParseIp(veth_->ip_b()),
                                        LocalPort(lfd), &pipe, &shadow, &us),
            0);
  pollfd p = {lfd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 20000), 1);
  int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(c, 0);

  close_order::HalfCloseAndRing(*pipe, /*abort=*/true, wp.DoorbellFd(0));
  pollfd q = {c, POLLIN, 0};
  ASSERT_EQ(poll(&q, 1, 20000), 1) << "neither FIN nor RST arrived";
  char b;
  const ssize_t n = recv(c, &b, 1, 0);
  const int err = errno;
  EXPECT_EQ(n, -1) << "the peer read end-of-stream: the engine sent FIN for an abortive close";
  EXPECT_EQ(err, ECONNRESET);
  close_order::FinishClose(*pipe);
  pipe.reset();
  close(c);
  close(lfd);
  close(shadow);
  wp.Stop();
}

// A stack that asks for a neighbour the feed had already seeded (its entry
// failed or was dropped) while the kernel's entry is PERMANENT, to a host
// that does not answer ARP. Before: the request (NTF_USE) demoted the
// kernel's static entry (6.x clears NUD_PERMANENT on NTF_USE) and started
// ARP that nobody answered, no notification re-seeded the stack, and the
// connect timed out (issue 16, the rare SYN,ACK / accept stall; packetdrill
// and other setups pin their gateway that way). Now: no NTF_USE for an
// entry that needs no resolution, and the feed seeds what was asked for.
TEST_F(WirePlaneOrderTest, NeighbourAskedForAgainWithoutAKernelEvent_IsSeededAgain) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  wire::WirePlane& wp = **plane;
  int lfd = BoundSocket(veth_->ns_b(), ParseIp(veth_->ip_b()), true);
  ASSERT_GE(lfd, 0);
  const std::string mac_a = close_order::LinkMac(veth_->ns_a(), "va");
  const std::string mac_b = close_order::LinkMac(veth_->ns_b(), "vb");
  ASSERT_FALSE(mac_a.empty() || mac_b.empty());
  // Static entries both ways; b answers no ARP.
  ASSERT_EQ(Sh("ip -n " + veth_->ns_a() + " neigh replace " + veth_->ip_b() + " lladdr " + mac_b +
               " nud permanent dev va"),
            0);
  ASSERT_EQ(Sh("ip -n " + veth_->ns_b() + " neigh replace " + veth_->ip_a() + " lladdr " + mac_a +
               " nud permanent dev vb"),
            0);
  // arp_ignore 8: b answers no ARP request (it still sends its own).
  ASSERT_EQ(Sh("ip netns exec " + veth_->ns_b() + " sysctl -q -w net.ipv4.conf.vb.arp_ignore=8"), 0);
  absl::StatusOr<std::shared_ptr<wire::EngineChannel>> chan =
      wire::EngineChannel::Create(4245, 1 << 16);
  ASSERT_TRUE(chan.ok()) << chan.status();
  std::vector<int> shadows;
  std::vector<std::shared_ptr<wire::AppPipe>> pipes;
  auto connect = [&](int64_t* us) {
    pipes.emplace_back();
    shadows.push_back(-1);
    return close_order::ConnectAppPipe(wp, *chan, ParseIp(veth_->ip_a()), ParseIp(veth_->ip_b()),
                                       LocalPort(lfd), &pipes.back(), &shadows.back(), us);
  };
  int64_t us = 0;
  ASSERT_EQ(connect(&us), 0) << "the first connect (seeded neighbour) failed";
  // The seam: the engine's stack loses its entry, the feed does not know.
  stack::Stack* st = wp.StackForTest(0);
  ASSERT_NE(st, nullptr);
  ASSERT_TRUE(wp.EnginesForTest()
                  ->engine(0)
                  .RunSync([st, ip = ParseIp(veth_->ip_b())] { st->ForgetNeighbor(ip); },
                           absl::Seconds(10))
                  .ok());
  EXPECT_EQ(connect(&us), 0) << "the stack's neighbour request was never answered";
  std::printf("connect after the stack lost its neighbour entry: %lld us\n",
              static_cast<long long>(us));
  EXPECT_NE(ShOutput("ip -n " + veth_->ns_a() + " neigh show " + veth_->ip_b() + " dev va")
                .find("PERMANENT"),
            std::string::npos)
      << "the administrator's static entry was demoted";
  for (auto& p : pipes) {
    if (p == nullptr) continue;
    close_order::HalfCloseAndRing(*p, /*abort=*/true, wp.DoorbellFd(0));
    close_order::FinishClose(*p);
  }
  pipes.clear();
  for (int fd : shadows) {
    if (fd >= 0) close(fd);
  }
  close(lfd);
  Sh("ip netns exec " + veth_->ns_b() + " sysctl -q -w net.ipv4.conf.vb.arp_ignore=0");
  Sh("ip -n " + veth_->ns_b() + " neigh del " + veth_->ip_a() + " dev vb");
  Sh("ip -n " + veth_->ns_a() + " neigh del " + veth_->ip_b() + " dev va");
  wp.Stop();
}

}  // namespace
}  // namespace offload::testing
