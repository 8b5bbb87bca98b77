// WirePlane on a real veth pair between two network namespaces: the engine's
// stack opens a TCP connection to a kernel server in the peer namespace over
// AF_XDP and exchanges verified bytes; status/statistics come from the real
// counters; the routing query follows the kernel's routes; kernel TCP on
// other ports keeps working; start-up errors name the interface; Stop()
// detaches the XDP program. (wire_plane_order_test.cc: a close seen halfway,
// a neighbour asked for again.)
//
// Namespace a holds "va" (offloaded by the WirePlane of this process), b
// holds "vb" with kernel sockets. Needs root (tagged root/local/exclusive).

#include "daemon/wire/wire_plane.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/control/wire_stats.h"
#include "daemon/tcp/byte_ring.h"
#include "daemon/tcp/tcb.h"
#include "daemon/tcp/tcp.h"
#include "daemon/wire/app_pipe.h"
#include "shm/futex.h"
#include "shm/pipe.h"
#include "gtest/gtest.h"
#include "tests/daemon/wire/wire_plane_fixture.h"
#include "tests/integration/nic/netns_fixture.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {
namespace {

using std::chrono::steady_clock;


TEST_F(WirePlaneTest, ReportsInterfaceEnginesAndRoutes) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  EXPECT_TRUE(XdpAttached(veth_->ns_a()));

  std::vector<v1::InterfaceStatus> itfs = control::ToProto((*plane)->Interfaces());
  ASSERT_EQ(itfs.size(), 1u);
  EXPECT_EQ(itfs[0].name(), "va");
  EXPECT_EQ(itfs[0].driver(), v1::DRIVER_AF_XDP);
  EXPECT_EQ(itfs[0].queues(), 1u);
  EXPECT_FALSE(itfs[0].zero_copy());  // veth: copy mode
  EXPECT_EQ(itfs[0].state(), "up");

  ASSERT_EQ(control::ToProto((*plane)->EngineStats()).size(), 1u);
  std::vector<v1::NicStats> nics = control::ToProto((*plane)->NicStats());
  ASSERT_EQ(nics.size(), 1u);
  EXPECT_EQ(nics[0].interface(), "va");
  EXPECT_EQ(nics[0].steered_flows(), 0u);

  absl::StatusOr<wire::WireRoute> r = (*plane)->RouteTo(ParseIp(veth_->ip_b()), 80);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->interface, "va");
  EXPECT_EQ(r->local_ip, ParseIp(veth_->ip_a()));
  EXPECT_EQ(r->next_hop, ParseIp(veth_->ip_b()));
  EXPECT_EQ(r->engine, 0u);

  // Our own address and loopback stay with the kernel; so does an
  // unroutable one (no default route in the namespace).
  absl::StatusOr<wire::WireRoute> own = (*plane)->RouteTo(ParseIp(veth_->ip_a()));
  EXPECT_TRUE(absl::IsNotFound(own.status())) << own.status();
  EXPECT_NE(own.status().message().find("local address"), std::string::npos);
  absl::StatusOr<wire::WireRoute> lo = (*plane)->RouteTo(ParseIp("127.0.0.1"));
  EXPECT_TRUE(absl::IsNotFound(lo.status())) << lo.status();
  absl::StatusOr<wire::WireRoute> far = (*plane)->RouteTo(ParseIp("198.19.200.1"));
  EXPECT_TRUE(absl::IsNotFound(far.status())) << far.status();
  EXPECT_NE(far.status().message().find("no route"), std::string::npos) << far.status();

  // A more specific route through loopback takes a subnet address away.
  // The plane follows routes through netlink: wait (bounded) until it has
  // seen this one.
  ASSERT_EQ(Sh("ip -n " + veth_->ns_a() + " route add " + "198.18.44.77/32 dev lo"), 0);
  absl::StatusOr<wire::WireRoute> via_lo = (*plane)->RouteTo(ParseIp("198.18.44.77"));
  for (int i = 0; i < 1000 && via_lo.ok(); ++i) {
    usleep(10'000);
    via_lo = (*plane)->RouteTo(ParseIp("198.18.44.77"));
  }
  Sh("ip -n " + veth_->ns_a() + " route del 198.18.44.77/32 dev lo");
  EXPECT_TRUE(absl::IsNotFound(via_lo.status())) << via_lo.status();
  EXPECT_NE(via_lo.status().message().find("lo, which is not offloaded"), std::string::npos)
      << via_lo.status();

  (*plane)->Stop();
  EXPECT_FALSE(XdpAttached(veth_->ns_a())) << "Stop() must detach the XDP program";
  EXPECT_TRUE(control::ToProto((*plane)->Interfaces()).empty());
}

// Routes are followed live from netlink (issue 16): a route added or removed
// with `ip` while the plane runs applies to the next flow, no restart.
TEST_F(WirePlaneTest, Linux_RouteChangedWhileRunning_AppliesToNewFlows) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  const uint32_t far = ParseIp("198.19.200.1");
  EXPECT_TRUE(absl::IsNotFound((*plane)->RouteTo(far).status()));
  ASSERT_EQ(Sh("ip -n " + veth_->ns_a() + " route add 198.19.200.0/24 via " + veth_->ip_b() +
               " dev va"),
            0);
  // Wait for the netlink notification (a condition, bounded at 10 s).
  absl::StatusOr<wire::WireRoute> r;
  for (int i = 0; i < 1000 && !(r = (*plane)->RouteTo(far)).ok(); ++i) usleep(10'000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->next_hop, ParseIp(veth_->ip_b()));
  ASSERT_EQ(Sh("ip -n " + veth_->ns_a() + " route del 198.19.200.0/24"), 0);
  for (int i = 0; i < 1000 && (r = (*plane)->RouteTo(far)).ok(); ++i) usleep(10'000);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << "a deleted route must stop serving";
  (*plane)->Stop();
}

// The strongest check of the NIC path: the engine's own TCP talks to Linux.
TEST_F(WirePlaneTest, EngineTcpConnectsToKernelServerAndExchangesVerifiedBytes) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  wire::WirePlane& wp = **plane;

  // Kernel echo server in namespace b: echoes everything, closes after
  // kBytes (so the engine is the passive closer: no TIME-WAIT to wait out).
  constexpr size_t kBytes = 1 << 20;
  int lfd = BoundSocket(veth_->ns_b(), ParseIp(veth_->ip_b()), true);
  ASSERT_GE(lfd, 0);
  const uint16_t server_port = LocalPort(lfd);
  std::atomic<size_t> server_echoed{0};
  std::thread server([&] {
    pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 20000) != 1) return;
    int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    std::vector<uint8_t> buf(65536);
    size_t done = 0;
    while (done < kBytes) {
      pollfd q = {c, POLLIN, 0};
      if (poll(&q, 1, 20000) != 1) break;
      ssize_t n = read(c, buf.data(), buf.size());
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(c, buf.data() + off, static_cast<size_t>(n - off));
        if (w <= 0) break;
        off += w;
      }
      done += static_cast<size_t>(n);
      server_echoed.store(done);
    }
    close(c);
  });

  // Nobody knows b's MAC yet: the plane must have the kernel resolve it and
  // feed the answer to the stack (the stack's own ARP replies go to the
  // kernel, not to the engine).
  Sh("ip -n " + veth_->ns_a() + " neigh flush dev va");
  // The local port is reserved in the kernel by a bound socket, as a
  // client's shadow socket would.
  int shadow = BoundSocket("", ParseIp(veth_->ip_a()), false);
  ASSERT_GE(shadow, 0);
  testing::OwnedRing tx(1 << 16), rx(1 << 16);
  RecordingListener listener;
  wire::TcpConnectParams params;
  params.remote_ip = ParseIp(veth_->ip_b());
  params.remote_port = server_port;
  params.local_port = LocalPort(shadow);
  params.tx = tx.memory();
  params.rx = rx.memory();
  params.listener = &listener;
  absl::StatusOr<wire::WireFlow> flow = wp.ConnectTcp(params);
  ASSERT_TRUE(flow.ok()) << flow.status();
  EXPECT_EQ(control::ToProto(wp.NicStats())[0].steered_flows(), 1u);

  uint32_t seen = listener.WaitFor(tcp::kEventConnected | tcp::kEventClosed,
                                   std::chrono::milliseconds(10000));
  ASSERT_TRUE(seen & tcp::kEventConnected)
      << "no connection; events " << seen << " error " << listener.error();
  EXPECT_EQ(control::ToProto(wp.EngineStats())[0].flows(), 1u);

  std::vector<uint8_t> out(kBytes), in;
  std::mt19937 rng(7);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  in.reserve(kBytes);
  size_t sent = 0;
  std::vector<uint8_t> chunk(1 << 16);
  const auto deadline = steady_clock::now() + kTimeout;
  while (in.size() < kBytes && steady_clock::now() < deadline) {
    uint64_t before = listener.count();
    bool progress = false;
    if (sent < kBytes) {
      uint32_t w = tx.AppWrite(out.data() + sent,
                               static_cast<uint32_t>(std::min<size_t>(kBytes - sent, 1 << 15)));
      if (w > 0) {
        sent += w;
        wp.Send(*flow);
        progress = true;
      }
    }
    uint32_t r = rx.AppRead(chunk.data(), static_cast<uint32_t>(chunk.size()));
    if (r > 0) {
      in.insert(in.end(), chunk.begin(), chunk.begin() + r);
      wp.ReceiveCredit(*flow);
      progress = true;
    }
    if (!progress) listener.WaitNext(before, std::chrono::milliseconds(50));
  }
  ASSERT_EQ(in.size(), kBytes) << "sent " << sent << ", server echoed " << server_echoed.load();
  EXPECT_TRUE(in == out) << "echoed bytes differ";

  // The server closed after kBytes: peer FIN, then our close completes the
  // handshake and the flow is given back to the kernel.
  seen = listener.WaitFor(tcp::kEventPeerFin, std::chrono::milliseconds(10000));
  EXPECT_TRUE(seen & tcp::kEventPeerFin) << "events " << seen;
  wp.Close(*flow);
  for (auto end = steady_clock::now() + kTimeout;
       wp.ReleasedFlowsForTest() == 0 && steady_clock::now() < end;) {
    listener.WaitNext(listener.count(), std::chrono::milliseconds(20));
  }
  EXPECT_EQ(wp.ReleasedFlowsForTest(), 1u);
  EXPECT_EQ(control::ToProto(wp.NicStats())[0].steered_flows(), 0u);

  // Real counters: the transfer went through the NIC queue and the engine.
  v1::NicStats nic = control::ToProto(wp.NicStats())[0];
  EXPECT_GT(nic.rx_packets(), kBytes / 1500);
  EXPECT_GT(nic.rx_bytes(), kBytes);
  EXPECT_GT(nic.tx_packets(), kBytes / 1500);
  v1::EngineStats eng = control::ToProto(wp.EngineStats())[0];
  EXPECT_EQ(eng.rx_packets(), nic.rx_packets());
  EXPECT_EQ(eng.tx_packets(), nic.tx_packets());
  EXPECT_GT(eng.loops(), 0u);

  server.join();
  close(lfd);
  close(shadow);
}

TEST_F(WirePlaneTest, RefusedConnectReportsErrorAndReleasesTheFlow) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  wire::WirePlane& wp = **plane;
  // A port in b that nobody listens on: bound then closed.
  int probe = BoundSocket(veth_->ns_b(), ParseIp(veth_->ip_b()), false);
  ASSERT_GE(probe, 0);
  const uint16_t closed_port = LocalPort(probe);
  close(probe);
  int shadow = BoundSocket("", ParseIp(veth_->ip_a()), false);
  ASSERT_GE(shadow, 0);
  testing::OwnedRing tx(4096), rx(4096);
  RecordingListener listener;
  wire::TcpConnectParams params;
  params.remote_ip = ParseIp(veth_->ip_b());
  params.remote_port = closed_port;
  params.local_port = LocalPort(shadow);
  params.tx = tx.memory();
  params.rx = rx.memory();
  params.listener = &listener;
  absl::StatusOr<wire::WireFlow> flow = wp.ConnectTcp(params);
  ASSERT_TRUE(flow.ok()) << flow.status();
  uint32_t seen = listener.WaitFor(tcp::kEventClosed, std::chrono::milliseconds(10000));
  EXPECT_TRUE(seen & tcp::kEventClosed) << "events " << seen;
  EXPECT_FALSE(seen & tcp::kEventConnected);
  EXPECT_EQ(listener.error(), ECONNREFUSED);
  EXPECT_EQ(wp.ReleasedFlowsForTest(), 1u);
  EXPECT_EQ(control::ToProto(wp.NicStats())[0].steered_flows(), 0u);
  // The control block was freed, not leaked (the next poll publishes it).
  for (auto end = steady_clock::now() + kTimeout;
       control::ToProto(wp.EngineStats())[0].flows() != 0 && steady_clock::now() < end;) {
    wp.Send(*flow);  // a command for a gone flow: ignored, but runs a loop
    listener.WaitNext(listener.count(), std::chrono::milliseconds(10));
  }
  EXPECT_EQ(control::ToProto(wp.EngineStats())[0].flows(), 0u);
  // Invalid parameters are refused before anything is steered.
  params.local_port = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(wp.ConnectTcp(params).status()));
  params.local_port = LocalPort(shadow);
  params.remote_ip = ParseIp("127.0.0.1");
  EXPECT_TRUE(absl::IsNotFound(wp.ConnectTcp(params).status()));
  EXPECT_EQ(control::ToProto(wp.NicStats())[0].steered_flows(), 0u);
  close(shadow);
}

// An application pipe (what liboffload maps) carries the socket's options
// to the SYN, getsockopt queries the engine answers in the record, and the
// errno of the engine's close (shm/pipe.h EngineRequests / EngineAnswers).
TEST_F(WirePlaneTest, AppPipeCarriesOptionsQueriesAndTheCloseErrno) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  wire::WirePlane& wp = **plane;
  int lfd = BoundSocket(veth_->ns_b(), ParseIp(veth_->ip_b()), true);
  ASSERT_GE(lfd, 0);
  const uint16_t server_port = LocalPort(lfd);
  // The kernel server: reports the MSS it sees, then resets the connection
  // (SO_LINGER {1, 0}) when told to.
  std::mutex mu;
  std::condition_variable cv;
  int server_mss = -1;
  bool reset_now = false;
  std::thread server([&] {
    pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 20000) != 1) return;
    int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    int mss = 0;
    socklen_t len = sizeof(mss);
    getsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &mss, &len);
    std::unique_lock<std::mutex> lock(mu);
    server_mss = mss;
    cv.notify_all();
    cv.wait_for(lock, kTimeout, [&] { return reset_now; });
    const linger l = {1, 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(c);
  });

  absl::StatusOr<std::shared_ptr<wire::EngineChannel>> chan =
      wire::EngineChannel::Create(4242, 1 << 16);
  ASSERT_TRUE(chan.ok()) << chan.status();
  absl::StatusOr<std::shared_ptr<wire::AppPipe>> pipe =
      wire::AppPipe::Create(*chan, 0, shm::kConnectPending);
  ASSERT_TRUE(pipe.ok()) << pipe.status();
  shm::PipeRecord* rec = (*pipe)->record();
  int shadow = BoundSocket("", ParseIp(veth_->ip_a()), false);
  ASSERT_GE(shadow, 0);
  wire::TcpConnectParams params;
  params.remote_ip = ParseIp(veth_->ip_b());
  params.remote_port = server_port;
  params.local_port = LocalPort(shadow);
  params.pipe = *pipe;
  params.options.maxseg = 1000;  // TCP_MAXSEG set before connect()
  ASSERT_TRUE(wp.ConnectTcp(params).ok());
  const auto deadline = steady_clock::now() + kTimeout;
  while (rec->ctl.connect_status.load() == shm::kConnectPending &&
         steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(rec->ctl.connect_status.load(), 0);
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, kTimeout, [&] { return server_mss >= 0; });
    // The SYN announced 1000: the kernel's segments to us are no larger.
    EXPECT_GT(server_mss, 0);
    EXPECT_LE(server_mss, 1000);
  }

  // A query: bump, ring the engine, wait for the answer (futex word).
  const int doorbell = wp.DoorbellFd(0);
  ASSERT_GE(doorbell, 0);
  auto query = [&] {
    const uint32_t ticket = rec->req.query.fetch_add(1) + 1;
    const uint64_t one = 1;
    EXPECT_EQ(write(doorbell, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
    for (auto end = steady_clock::now() + kTimeout; steady_clock::now() < end;) {
      const uint32_t done = rec->ans.answered.load(std::memory_order_acquire);
      if (static_cast<int32_t>(done - ticket) >= 0) return true;
      shm::FutexWait(&rec->ans.answered, done, 10'000'000);
    }
    return false;
  };
  auto info = [&] {
    tcp::TcpInfo ti;
    uint64_t words[shm::kTcpInfoBytes / 8];
    for (uint32_t i = 0; i < shm::kTcpInfoBytes / 8; ++i) words[i] = rec->ans.info[i].load();
    std::memcpy(&ti, words, sizeof(ti));
    return ti;
  };
  ASSERT_TRUE(query());
  EXPECT_EQ(info().tcpi_state, 1);  // TCP_ESTABLISHED
  const uint32_t maxseg = rec->ans.values[shm::kValMaxseg].load();
  EXPECT_GT(maxseg, 0u);
  EXPECT_LE(maxseg, 1000u);
  EXPECT_EQ(info().tcpi_snd_mss, maxseg);
  EXPECT_EQ(rec->ans.final_answer.load(), 0u);

  // The peer resets: the errno is in the record before the reset, and the
  // engine leaves its last answer (state CLOSE).
  {
    std::lock_guard<std::mutex> lock(mu);
    reset_now = true;
    cv.notify_all();
  }
  shm::RingIndexes& fw = (*pipe)->from_wire();
  for (auto end = steady_clock::now() + kTimeout;
       fw.shut.load(std::memory_order_acquire) != shm::kShutRst && steady_clock::now() < end;) {
    std::this_thread::yield();
  }
  ASSERT_EQ(fw.shut.load(), shm::kShutRst);
  EXPECT_EQ(rec->ans.close_error.load(), ECONNRESET);
  EXPECT_EQ(rec->ans.final_answer.load(), 1u);
  EXPECT_EQ(info().tcpi_state, 7);  // TCP_CLOSE

  server.join();
  rec->ctl.closed.fetch_or(1u);  // the application's end is closed too
  pipe->reset();
  close(lfd);
  close(shadow);
}

TEST_F(WirePlaneTest, KernelTcpOnOtherPortsKeepsWorking) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  // Kernel listener in a (the offloaded side), kernel client in b.
  int lfd = BoundSocket("", ParseIp(veth_->ip_a()), true);
  ASSERT_GE(lfd, 0);
  int cfd = -1;
  ASSERT_TRUE(VethPair::RunIn(veth_->ns_b(), [&] {
                cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
              }).ok());
  sockaddr_in to = Addr(ParseIp(veth_->ip_a()), LocalPort(lfd));
  ASSERT_EQ(connect(cfd, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0) << strerror(errno);
  int sfd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(sfd, 0);
  const char msg[] = "kernel path";
  ASSERT_EQ(write(cfd, msg, sizeof(msg)), static_cast<ssize_t>(sizeof(msg)));
  char got[sizeof(msg)] = {};
  pollfd p = {sfd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10000), 1);
  ASSERT_EQ(read(sfd, got, sizeof(got)), static_cast<ssize_t>(sizeof(msg)));
  EXPECT_STREQ(got, msg);
  // Nothing of it was steered to the engine.
  EXPECT_EQ(control::ToProto((*plane)->NicStats())[0].rx_packets(), 0u);
  close(sfd);
  close(cfd);
  close(lfd);
}

TEST_F(WirePlaneTest, StartupErrorsNameTheInterfaceAndTheFix) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> missing =
      wire::WirePlane::Create(VaConfig("nosuch0"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find("interface nosuch0 does not exist"),
            std::string::npos)
      << missing.status();

  v1::DaemonConfig two = VaConfig();
  two.add_interfaces()->set_name("vb");
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> both = wire::WirePlane::Create(two);
  EXPECT_TRUE(absl::IsInvalidArgument(both.status())) << both.status();

  // An interface without an IPv4 address.
  ASSERT_EQ(Sh("ip -n " + veth_->ns_a() + " link add ofw0 type veth peer name ofw1"), 0);
  Sh("ip -n " + veth_->ns_a() + " link set ofw0 up");
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> noaddr =
      wire::WirePlane::Create(VaConfig("ofw0"));
  Sh("ip -n " + veth_->ns_a() + " link del ofw0");
  EXPECT_TRUE(absl::IsFailedPrecondition(noaddr.status())) << noaddr.status();
  EXPECT_NE(noaddr.status().message().find("has no IPv4 address"), std::string::npos)
      << noaddr.status();

  // verbs on a netdev without an RDMA device.
  v1::DaemonConfig verbs = VaConfig();
  verbs.mutable_interfaces(0)->set_driver(v1::DRIVER_VERBS);
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> nordma = wire::WirePlane::Create(verbs);
  ASSERT_FALSE(nordma.ok());
  EXPECT_NE(nordma.status().message().find("interface va"), std::string::npos)
      << nordma.status();
  EXPECT_FALSE(XdpAttached(veth_->ns_a()));
}

}  // namespace
}  // namespace offload::testing
