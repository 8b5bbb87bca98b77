// WirePlane on a real veth pair between two network namespaces: the engine's
// stack opens a TCP connection to a kernel server in the peer namespace over
// AF_XDP and exchanges verified bytes; status/statistics come from the real
// counters; the routing query follows the kernel's routes; kernel TCP on
// other ports keeps working; start-up errors name the interface; an
// application close seen halfway (before its closed bit) aborts/resets as
// the close asked; a neighbour a stack asks for again is seeded again
// without a kernel event; Stop() detaches the XDP program.
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

#include <atomic>
#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/control/wire_stats.h"
#include "daemon/stack/stack.h"
#include "daemon/tcp/byte_ring.h"
#include "daemon/tcp/tcb.h"
#include "daemon/tcp/tcp.h"
#include "daemon/wire/app_pipe.h"
#include "shm/futex.h"
#include "shm/pipe.h"
#include "gtest/gtest.h"
#include "tests/integration/nic/netns_fixture.h"

namespace offload::testing {
namespace {

using std::chrono::steady_clock;
constexpr auto kTimeout = std::chrono::seconds(20);

uint32_t ParseIp(const std::string& s) {
  in_addr a;
  inet_pton(AF_INET, s.c_str(), &a);
  return ntohl(a.s_addr);
}

sockaddr_in Addr(uint32_t ip, uint16_t port) {
  sockaddr_in a;
  std::memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(ip);
  return a;
}

uint16_t LocalPort(int fd) {
  sockaddr_in a;
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A TCP socket bound to ip:0 (and listening if asked), created in `ns` (or
// the current namespace if empty).
int BoundSocket(const std::string& ns, uint32_t ip, bool listening) {
  int fd = -1;
  auto make = [&] {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Addr(ip, 0);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        (listening && listen(fd, 8) != 0)) {
      close(fd);
      fd = -1;
    }
  };
  if (ns.empty()) {
    make();
  } else if (!VethPair::RunIn(ns, make).ok()) {
    return -1;
  }
  return fd;
}

// Records a flow's events; waits on them.
class RecordingListener : public wire::FlowListener {
 public:
  void OnTcpEvents(uint32_t events, int error) override {
    std::lock_guard<std::mutex> lock(mu_);
    seen_ |= events;
    if (error != 0) error_ = error;
    ++count_;
    cv_.notify_all();
  }
  // Waits until any of `mask` was seen or `timeout`; returns the seen set.
  uint32_t WaitFor(uint32_t mask, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return (seen_ & mask) != 0; });
    return seen_;
  }
  // Waits for the next event after `count` (any kind) or `timeout`.
  uint64_t WaitNext(uint64_t count, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return count_ != count; });
    return count_;
  }
  uint64_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  int error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint32_t seen_ = 0;
  int error_ = 0;
  uint64_t count_ = 0;
};

v1::DaemonConfig VaConfig(const std::string& name = "va") {
  v1::DaemonConfig c;
  c.set_run_dir("/nonexistent");
  auto* itf = c.add_interfaces();
  itf->set_name(name);
  itf->set_driver(v1::DRIVER_AF_XDP);
  c.set_num_cores(1);
  c.set_max_concurrency(64);
  c.set_max_num_buffers(2048);
  c.set_engine_poll_us(20);
  config::ApplyDefaults(&c);
  return c;
}

bool XdpAttached(const std::string& ns) {
  return ShOutput("ip -n " + ns + " link show va").find("prog/xdp") != std::string::npos;
}

class WirePlaneTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    original_ns_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    veth_ = new VethPair();
    absl::Status s = VethPair::Create("ofw", 44, 1, veth_);
    ASSERT_TRUE(s.ok()) << s;
    // Kernel sockets in b must send complete checksums (daemon/nic/README.md).
    s = VethPair::DisableTxChecksumOffload(veth_->ns_b(), "vb");
    ASSERT_TRUE(s.ok()) << s;
    s = veth_->EnterA();  // the WirePlane is created in namespace a
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() {
    if (original_ns_ >= 0) {
      setns(original_ns_, CLONE_NEWNET);
      close(original_ns_);
      original_ns_ = -1;
    }
    delete veth_;
    veth_ = nullptr;
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces and XDP";
  }

  static VethPair* veth_;
  static int original_ns_;
};
VethPair* WirePlaneTest::veth_ = nullptr;
int WirePlaneTest::original_ns_ = -1;

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
  ASSERT_EQ(Sh("ip -n " + veth_->ns_a() + " route add " + "198.18.44.77/32 dev lo"), 0);
  absl::StatusOr<wire::WireRoute> via_lo = (*plane)->RouteTo(ParseIp("198.18.44.77"));
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
  tcp::OwnedRing tx(1 << 16), rx(1 << 16);
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
  tcp::OwnedRing tx(4096), rx(4096);
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
TEST_F(WirePlaneTest, CloseInSynSentSeenBeforeTheClosedBit_AbandonsTheConnect) {
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane = wire::WirePlane::Create(VaConfig());
  ASSERT_TRUE(plane.ok()) << plane.status();
  wire::WirePlane& wp = **plane;
  // A peer that never answers: a permanent neighbour entry to a MAC no one
  // has, so the SYN leaves and the connection stays in SYN-SENT.
  const std::string silent = "198.18.44.77";
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
TEST_F(WirePlaneTest, LingerZeroCloseSeenBeforeTheClosedBit_ResetsInsteadOfFin) {
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
TEST_F(WirePlaneTest, NeighbourAskedForAgainWithoutAKernelEvent_IsSeededAgain) {
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
