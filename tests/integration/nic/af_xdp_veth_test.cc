// End-to-end test of the af_xdp driver on a veth pair between two network
// namespaces: steered flows reach the driver and nothing else does; frames
// the driver sends reach the peer's kernel; ping and kernel TCP keep working
// while the program is attached; a driver killed with SIGKILL leaves a stale
// program that the next instance replaces without manual steps; a clean
// shutdown detaches the program.
//
// Namespace a holds "va" (the offloaded interface, driven by this process),
// namespace b holds "vb" and plays the remote host with kernel sockets.
// Needs root (tagged "root", "local", "exclusive").

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/engine/engine.h"
#include "daemon/net/frame.h"
#include "daemon/nic/netdev.h"
#include "daemon/xdp/af_xdp_driver.h"
#include "gtest/gtest.h"
#include "tests/daemon/xdp/packet_builder.h"
#include "tests/integration/nic/netns_fixture.h"

namespace offload::testing {
namespace {

using nic::FlowKey;
using nic::IpProto;
using std::chrono::steady_clock;

constexpr int kQueues = 2;
constexpr auto kTimeout = std::chrono::seconds(10);

nic::InterfaceConfig VaConfig() {
  nic::InterfaceConfig c;
  c.name = "va";
  c.driver = nic::DriverKind::kAfXdp;
  c.num_queues = kQueues;
  c.frames_per_queue = 1024;
  c.ring_size = 256;
  return c;
}

sockaddr_in Addr(const std::string& ip, uint16_t port) {
  sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

uint16_t LocalPort(int fd) {
  sockaddr_in a;
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

bool WaitReadable(int fd, std::chrono::milliseconds timeout) {
  pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

bool XdpAttached(const std::string& ns) {
  return ShOutput("ip -n " + ns + " link show va").find("prog/xdp") !=
         std::string::npos;
}

// Polls every queue of `driver`, parsing and releasing frames, until `done`
// says so or kTimeout passes. Sleeps on the queues' fds between bursts.
std::vector<ParsedFrame> Receive(
    nic::NicDriver& driver,
    const std::function<bool(const std::vector<ParsedFrame>&)>& done) {
  std::vector<ParsedFrame> got;
  auto deadline = steady_clock::now() + kTimeout;
  nic::RxFrame frames[64];
  while (!done(got) && steady_clock::now() < deadline) {
    size_t total = 0;
    for (size_t q = 0; q < driver.num_queues(); ++q) {
      nic::NicQueue* queue = driver.queue(q);
      size_t n = queue->RxBurst(frames, 64);
      for (size_t i = 0; i < n; ++i) {
        auto p = ParseFrame(frames[i].data, frames[i].len);
        got.push_back(p.value_or(ParsedFrame{}));
      }
      queue->ReleaseRx(frames, n);
      total += n;
    }
    if (total == 0) {
      std::vector<pollfd> fds;
      for (size_t q = 0; q < driver.num_queues(); ++q) {
        if (driver.queue(q)->ArmWakeup()) {
          fds.push_back({driver.queue(q)->WaitFd(), POLLIN, 0});
        }
      }
      if (fds.size() == driver.num_queues()) poll(fds.data(), fds.size(), 20);
    }
  }
  return got;
}

// Sends ICMP echo requests from namespace `ns` to `dst` over a raw socket
// (no ping binary needed); true once a matching echo reply arrives.
bool Ping(const std::string& ns, const std::string& dst) {
  int fd = -1;
  if (!VethPair::RunIn(
           ns,
           [&] { fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP); })
           .ok() ||
      fd < 0) {
    return false;
  }
  const uint16_t id = static_cast<uint16_t>(getpid());
  sockaddr_in to = Addr(dst, 0);
  bool ok = false;
  for (uint16_t seq = 1; seq <= 5 && !ok; ++seq) {
    // RFC 792: type 8 code 0, checksum, identifier, sequence number.
    uint8_t req[16] = {8,
                       0,
                       0,
                       0,
                       static_cast<uint8_t>(id >> 8),
                       static_cast<uint8_t>(id),
                       0,
                       static_cast<uint8_t>(seq)};
    uint32_t sum = 0;
    for (size_t i = 0; i < sizeof(req); i += 2)
      sum += (req[i] << 8) | req[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    req[2] = static_cast<uint8_t>(~sum >> 8);
    req[3] = static_cast<uint8_t>(~sum);
    sendto(fd, req, sizeof(req), 0, reinterpret_cast<sockaddr*>(&to),
           sizeof(to));
    auto deadline = steady_clock::now() + std::chrono::seconds(1);
    while (!ok && steady_clock::now() < deadline &&
           WaitReadable(fd, std::chrono::milliseconds(200))) {
      uint8_t buf[256];
      ssize_t n = recv(fd, buf, sizeof(buf), 0);  // raw: includes IP header
      if (n < 28) continue;
      const uint8_t* icmp = buf + (buf[0] & 0xf) * 4;
      ok = icmp[0] == 0 && icmp[4] == (id >> 8) && icmp[5] == (id & 0xff);
    }
  }
  close(fd);
  return ok;
}

class AfXdpVethTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    original_ns_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    veth_ = new VethPair();
    absl::Status s = VethPair::Create("ofx", 40, kQueues, veth_);
    ASSERT_TRUE(s.ok()) << s;
    s = veth_->EnterA();  // this (main) thread now lives in namespace a
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

  // A UDP socket in namespace b bound to an ephemeral port.
  static int PeerUdpSocket() {
    int fd = -1;
    EXPECT_TRUE(VethPair::RunIn(veth_->ns_b(), [&] {
                  fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                  sockaddr_in a = Addr(veth_->ip_b(), 0);
                  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
                }).ok());
    return fd;
  }

  static VethPair* veth_;
  static int original_ns_;
};

VethPair* AfXdpVethTest::veth_ = nullptr;
int AfXdpVethTest::original_ns_ = -1;

TEST_F(AfXdpVethTest, SteeredFlowsReachDriverEverythingElseTheKernel) {
  auto driver = xdp::AfXdpDriver::Create(VaConfig());
  ASSERT_TRUE(driver.ok()) << driver.status();
  EXPECT_TRUE(XdpAttached(veth_->ns_a()));
  EXPECT_EQ((*driver)->num_queues(), static_cast<size_t>(kQueues));
  EXPECT_FALSE((*driver)->info().zero_copy);  // veth: copy mode
  EXPECT_TRUE((*driver)->native_xdp());       // veth: native XDP works

  const uint32_t ip_a = Ip(veth_->ip_a().c_str());
  const uint32_t ip_b = Ip(veth_->ip_b().c_str());
  // Kernel sockets on this side (namespace a): must not see steered traffic
  // and must keep getting the rest.
  int kernel_udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in ka = Addr("0.0.0.0", 0);
  ASSERT_EQ(bind(kernel_udp, reinterpret_cast<sockaddr*>(&ka), sizeof(ka)), 0);
  const uint16_t kernel_udp_port = LocalPort(kernel_udp);

  int steered_peer = PeerUdpSocket();
  int other_peer = PeerUdpSocket();
  const uint16_t steered_udp_port = 7000;
  const uint16_t steered_tcp_port = 8000;
  ASSERT_TRUE(
      (*driver)
          ->Steer(FlowKey::Connection(IpProto::kUdp, ip_a, steered_udp_port,
                                      ip_b, LocalPort(steered_peer)),
                  0)
          .ok());
  ASSERT_TRUE(
      (*driver)
          ->Steer(FlowKey::Listener(IpProto::kTcp, 0, steered_tcp_port), 0)
          .ok());
  // veth has no n-tuple filters: RSS (the peer's TX queue) places flows.
  EXPECT_FALSE((*driver)->hardware_steering());

  constexpr int kDatagrams = 20;
  sockaddr_in to_steered = Addr(veth_->ip_a(), steered_udp_port);
  sockaddr_in to_kernel = Addr(veth_->ip_a(), kernel_udp_port);
  for (int i = 0; i < kDatagrams; ++i) {
    std::string msg = absl::StrCat("steered-", i);
    ASSERT_EQ(
        sendto(steered_peer, msg.data(), msg.size(), 0,
               reinterpret_cast<sockaddr*>(&to_steered), sizeof(to_steered)),
        static_cast<ssize_t>(msg.size()));
    // Same destination address, other port / other source: kernel's.
    std::string k = absl::StrCat("kernel-", i);
    sendto(other_peer, k.data(), k.size(), 0,
           reinterpret_cast<sockaddr*>(&to_kernel), sizeof(to_kernel));
    sendto(steered_peer, k.data(), k.size(), 0,
           reinterpret_cast<sockaddr*>(&to_kernel), sizeof(to_kernel));
  }
  // A TCP SYN from b to the steered port (nobody answers: it only has to
  // arrive).
  int syn_fd = -1;
  ASSERT_TRUE(VethPair::RunIn(veth_->ns_b(), [&] {
                syn_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                sockaddr_in a = Addr(veth_->ip_a(), steered_tcp_port);
                connect(syn_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
              }).ok());

  auto frames = Receive(**driver, [&](const std::vector<ParsedFrame>& got) {
    int udp = 0, syn = 0;
    for (const auto& f : got) {
      if (f.proto == 17) ++udp;
      if (f.proto == 6 && f.tcp_flags == 0x02) ++syn;
    }
    return udp >= kDatagrams && syn >= 1;
  });
  int udp = 0, syn = 0;
  for (const auto& f : frames) {
    ASSERT_EQ(f.ether_type, 0x0800);
    if (f.proto == 17) {
      EXPECT_EQ(f.dst_port, steered_udp_port);
      EXPECT_EQ(f.src_port, LocalPort(steered_peer));
      EXPECT_EQ(f.payload, absl::StrCat("steered-", udp));
      ++udp;
    } else {
      ASSERT_EQ(f.proto, 6);
      EXPECT_EQ(f.dst_port, steered_tcp_port);
      ++syn;
    }
  }
  EXPECT_EQ(udp, kDatagrams);
  EXPECT_GE(syn, 1);

  // The kernel got every unsteered datagram, and none of the steered ones.
  int kernel_got = 0;
  char buf[256];
  while (kernel_got < 2 * kDatagrams &&
         WaitReadable(kernel_udp, std::chrono::milliseconds(2000))) {
    ssize_t n = recv(kernel_udp, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, 7), "kernel-");
    ++kernel_got;
  }
  EXPECT_EQ(kernel_got, 2 * kDatagrams);

  // Ping (ARP + ICMP) and a kernel TCP connection on another port work.
  EXPECT_TRUE(Ping(veth_->ns_b(), veth_->ip_a()));
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in la = Addr("0.0.0.0", 0);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&la), sizeof(la)), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  const uint16_t tcp_port = LocalPort(listener);
  int client = -1;
  ASSERT_TRUE(VethPair::RunIn(veth_->ns_b(), [&] {
                client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
              }).ok());
  sockaddr_in ta = Addr(veth_->ip_a(), tcp_port);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&ta), sizeof(ta)), 0);
  ASSERT_EQ(send(client, "over-kernel", 11, 0), 11);
  ASSERT_TRUE(WaitReadable(listener, std::chrono::milliseconds(5000)));
  int conn = accept(listener, nullptr, nullptr);
  ASSERT_GE(conn, 0);
  ASSERT_TRUE(WaitReadable(conn, std::chrono::milliseconds(5000)));
  ASSERT_EQ(recv(conn, buf, sizeof(buf), 0), 11);
  EXPECT_EQ(std::string(buf, 11), "over-kernel");

  auto stats = (*driver)->ReadSteerStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE((*stats)[OFFLOAD_STAT_REDIRECT],
            static_cast<uint64_t>(kDatagrams + 1));
  EXPECT_GE((*stats)[OFFLOAD_STAT_PASS_NO_FLOW],
            static_cast<uint64_t>(2 * kDatagrams));
  uint64_t rx = 0;
  for (size_t q = 0; q < (*driver)->num_queues(); ++q) {
    rx += (*driver)->queue(q)->Stats().rx_packets;
  }
  EXPECT_EQ(rx, frames.size());

  for (int fd :
       {kernel_udp, steered_peer, other_peer, syn_fd, listener, client, conn}) {
    close(fd);
  }
}

TEST_F(AfXdpVethTest, TransmittedFramesReachPeerKernel) {
  auto driver = xdp::AfXdpDriver::Create(VaConfig());
  ASSERT_TRUE(driver.ok()) << driver.status();
  nic::InterfaceInfo vb;
  ASSERT_TRUE(VethPair::RunIn(veth_->ns_b(), [&] {
                auto info = nic::QueryInterface("vb");
                ASSERT_TRUE(info.ok());
                vb = *info;
              }).ok());
  int peer = PeerUdpSocket();
  constexpr int kFrames = 100;  // more than one copy-mode TX batch (32)
  FrameSpec spec;
  spec.src_mac = (*driver)->info().mac;
  spec.dst_mac = vb.mac;
  spec.proto = 17;
  spec.src_ip = Ip(veth_->ip_a().c_str());
  spec.dst_ip = Ip(veth_->ip_b().c_str());
  spec.src_port = 7100;
  spec.dst_port = LocalPort(peer);

  nic::NicQueue* q = (*driver)->queue(0);
  int sent = 0;
  auto deadline = steady_clock::now() + kTimeout;
  while (sent < kFrames && steady_clock::now() < deadline) {
    nic::TxFrame tx[16];
    size_t n = q->AllocTx(tx, std::min(16, kFrames - sent));
    for (size_t i = 0; i < n; ++i) {
      spec.payload = absl::StrCat("tx-", sent + static_cast<int>(i));
      std::vector<uint8_t> f = BuildFrame(spec);
      ASSERT_LE(f.size(), tx[i].capacity);
      memcpy(tx[i].data, f.data(), f.size());
      tx[i].len = static_cast<uint32_t>(f.size());
    }
    size_t accepted = q->SubmitTx(tx, n);
    q->FreeTx(tx + accepted, n - accepted);
    sent += static_cast<int>(accepted);
    q->ReclaimTx();
  }
  ASSERT_EQ(sent, kFrames);
  int got = 0;
  char buf[256];
  while (got < kFrames && WaitReadable(peer, std::chrono::milliseconds(3000))) {
    ssize_t n = recv(peer, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n)),
              absl::StrCat("tx-", got));
    ++got;
  }
  EXPECT_EQ(got, kFrames);
  // Every TX buffer comes back.
  deadline = steady_clock::now() + kTimeout;
  while (q->TxInFlight() > 0 && steady_clock::now() < deadline) q->ReclaimTx();
  EXPECT_EQ(q->TxInFlight(), 0u);
  EXPECT_EQ(q->Stats().tx_packets, static_cast<uint64_t>(kFrames));
  close(peer);
}

// Runs in a child process (see main): opens the driver, reports readiness
// on stdout and waits to be killed.
int ChildDriverMain(const char* ns) {
  if (!VethPair::RunIn(ns, [] {}).ok()) return 2;
  int fd = open((std::string("/run/netns/") + ns).c_str(), O_RDONLY);
  if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) return 2;
  auto driver = xdp::AfXdpDriver::Create(VaConfig());
  if (!driver.ok()) {
    fprintf(stderr, "child: %s\n", driver.status().ToString().c_str());
    return 3;
  }
  if (!(*driver)->Steer(FlowKey::Listener(IpProto::kUdp, 0, 7300), 0).ok()) {
    return 4;
  }
  if (write(1, "R", 1) != 1) return 5;
  for (;;) pause();
}

TEST_F(AfXdpVethTest, NewInstanceRecoversAfterKill9) {
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    execl("/proc/self/exe", "af_xdp_veth_test", "--child-driver",
          veth_->ns_a().c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  char c = 0;
  ASSERT_TRUE(WaitReadable(out[0], std::chrono::milliseconds(10000)));
  ASSERT_EQ(read(out[0], &c, 1), 1);
  ASSERT_EQ(c, 'R');
  close(out[0]);
  ASSERT_TRUE(XdpAttached(veth_->ns_a()));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  // The dead instance's program is still attached: XDP programs outlive
  // their loader while attached.
  ASSERT_TRUE(XdpAttached(veth_->ns_a()));

  // With its sockets gone, steered traffic falls back to the kernel: a
  // kernel socket on the steered port receives it.
  int kernel_udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in ka = Addr("0.0.0.0", 7300);
  ASSERT_EQ(bind(kernel_udp, reinterpret_cast<sockaddr*>(&ka), sizeof(ka)), 0);
  int peer = PeerUdpSocket();
  sockaddr_in to = Addr(veth_->ip_a(), 7300);
  ASSERT_EQ(sendto(peer, "orphan", 6, 0, reinterpret_cast<sockaddr*>(&to),
                   sizeof(to)),
            6);
  EXPECT_TRUE(WaitReadable(kernel_udp, std::chrono::milliseconds(5000)));
  close(kernel_udp);

  // A new instance attaches without manual steps and works.
  auto driver = xdp::AfXdpDriver::Create(VaConfig());
  ASSERT_TRUE(driver.ok()) << driver.status();
  ASSERT_TRUE(
      (*driver)->Steer(FlowKey::Listener(IpProto::kUdp, 0, 7301), 0).ok());
  sockaddr_in to2 = Addr(veth_->ip_a(), 7301);
  ASSERT_EQ(sendto(peer, "again", 5, 0, reinterpret_cast<sockaddr*>(&to2),
                   sizeof(to2)),
            5);
  auto frames = Receive(**driver, [](const std::vector<ParsedFrame>& got) {
    return !got.empty();
  });
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, "again");
  close(peer);
}

TEST_F(AfXdpVethTest, CleanShutdownDetachesProgram) {
  {
    auto driver = xdp::AfXdpDriver::Create(VaConfig());
    ASSERT_TRUE(driver.ok()) << driver.status();
    ASSERT_TRUE(XdpAttached(veth_->ns_a()));
  }
  EXPECT_FALSE(XdpAttached(veth_->ns_a()));
}

TEST_F(AfXdpVethTest, SecondLiveInstanceCannotStealInterface) {
  // Unlike a stale program (previous test), a live instance's program must
  // not be replaced.
  auto first = xdp::AfXdpDriver::Create(VaConfig());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = xdp::AfXdpDriver::Create(VaConfig());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(XdpAttached(veth_->ns_a()));
  // The first one still works: its sockets are still in the XSKMAP.
  ASSERT_TRUE(
      (*first)->Steer(FlowKey::Listener(IpProto::kUdp, 0, 7400), 0).ok());
  int peer = PeerUdpSocket();
  sockaddr_in to = Addr(veth_->ip_a(), 7400);
  ASSERT_EQ(
      sendto(peer, "still", 5, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)),
      5);
  auto frames = Receive(**first, [](const std::vector<ParsedFrame>& got) {
    return !got.empty();
  });
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, "still");
  close(peer);
}

// Swaps the addresses of every UDP frame and sends it back: a UDP echo
// server running as the engine's packet processor.
class UdpEchoProcessor : public engine::PacketProcessor {
 public:
  void OnFrames(size_t, const nic::RxFrame* frames, size_t n, engine::TimeNs,
                engine::TxBatch& tx) override {
    for (size_t i = 0; i < n; ++i) {
      auto p = ParseFrame(frames[i].data, frames[i].len);
      if (!p || p->proto != 17) continue;
      FrameSpec r;
      memcpy(r.dst_mac.data(), frames[i].data + 6, 6);
      memcpy(r.src_mac.data(), frames[i].data, 6);
      r.src_ip = p->dst_ip;
      r.dst_ip = p->src_ip;
      r.src_port = p->dst_port;
      r.dst_port = p->src_port;
      r.payload = "echo:" + p->payload;
      std::vector<uint8_t> f = BuildFrame(r);
      nic::TxFrame* out = tx.Alloc();
      if (out == nullptr || f.size() > out->capacity) continue;
      memcpy(out->data, f.data(), f.size());
      out->len = static_cast<uint32_t>(f.size());
      tx.Commit();
    }
  }
  size_t PollTx(engine::TxBatch* const*, size_t, engine::TimeNs) override {
    return 0;
  }
  void OnTimers(engine::TimeNs) override {}
  engine::TimeNs NextTimerDeadline() const override {
    return engine::kNoDeadline;
  }
  bool HasPendingWork() override { return false; }
};

TEST_F(AfXdpVethTest, EngineServesSteeredFlowAndSleepsBetweenRequests) {
  auto driver = xdp::AfXdpDriver::Create(VaConfig());
  ASSERT_TRUE(driver.ok()) << driver.status();
  ASSERT_TRUE(
      (*driver)->Steer(FlowKey::Listener(IpProto::kUdp, 0, 7500), 0).ok());
  std::vector<nic::NicQueue*> queues;
  for (size_t q = 0; q < (*driver)->num_queues(); ++q) {
    queues.push_back((*driver)->queue(q));
  }
  engine::EngineConfig config;
  config.poll_budget_us = 20;
  auto eng = engine::Engine::Create(config, queues,
                                    std::make_unique<UdpEchoProcessor>());
  ASSERT_TRUE(eng.ok()) << eng.status();
  ASSERT_TRUE((*eng)->Start().ok());

  int peer = PeerUdpSocket();
  sockaddr_in to = Addr(veth_->ip_a(), 7500);
  constexpr int kRequests = 50;
  char buf[256];
  for (int i = 0; i < kRequests; ++i) {
    // Wait until the engine is asleep, so each request must wake it.
    uint64_t sleeps = (*eng)->counters().sleeps.Get();
    std::string msg = absl::StrCat("req-", i);
    ASSERT_EQ(sendto(peer, msg.data(), msg.size(), 0,
                     reinterpret_cast<sockaddr*>(&to), sizeof(to)),
              static_cast<ssize_t>(msg.size()));
    ASSERT_TRUE(WaitReadable(peer, std::chrono::milliseconds(5000)))
        << "no echo for request " << i << " (engine slept " << sleeps
        << " times)";
    ssize_t n = recv(peer, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "echo:" + msg);
    auto deadline = steady_clock::now() + kTimeout;
    while ((*eng)->counters().sleeps.Get() == sleeps &&
           steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  }
  // Idle between requests: it slept for (almost) each one.
  EXPECT_GE((*eng)->counters().sleeps.Get(), static_cast<uint64_t>(kRequests));
  (*eng)->Stop();
  close(peer);
}

TEST_F(AfXdpVethTest, GenericModeAlsoWorks) {
  nic::InterfaceConfig c = VaConfig();
  c.xdp_mode = nic::XdpAttachMode::kGeneric;
  auto driver = xdp::AfXdpDriver::Create(c);
  ASSERT_TRUE(driver.ok()) << driver.status();
  EXPECT_FALSE((*driver)->native_xdp());
  EXPECT_NE(
      ShOutput("ip -n " + veth_->ns_a() + " link show va").find("xdpgeneric"),
      std::string::npos);
  ASSERT_TRUE(
      (*driver)->Steer(FlowKey::Listener(IpProto::kUdp, 0, 7600), 0).ok());
  int peer = PeerUdpSocket();
  sockaddr_in to = Addr(veth_->ip_a(), 7600);
  ASSERT_EQ(sendto(peer, "generic", 7, 0, reinterpret_cast<sockaddr*>(&to),
                   sizeof(to)),
            7);
  auto frames = Receive(**driver, [](const std::vector<ParsedFrame>& got) {
    return !got.empty();
  });
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, "generic");
  close(peer);
}

TEST_F(AfXdpVethTest, MulticastGroupIsJoinedAndSteered) {
  auto driver = xdp::AfXdpDriver::Create(VaConfig());
  ASSERT_TRUE(driver.ok()) << driver.status();
  const FlowKey group = FlowKey::MulticastGroup(Ip("239.1.2.3"), 7700);
  ASSERT_TRUE((*driver)->Steer(group, 0).ok());
  const std::string maddr = "ip -n " + veth_->ns_a() + " maddr show dev va";
  EXPECT_NE(ShOutput(maddr).find("239.1.2.3"), std::string::npos);

  int peer = PeerUdpSocket();
  in_addr ifaddr;
  inet_pton(AF_INET, veth_->ip_b().c_str(), &ifaddr);
  ASSERT_EQ(
      setsockopt(peer, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr)),
      0);
  sockaddr_in to = Addr("239.1.2.3", 7700);
  ASSERT_EQ(
      sendto(peer, "mcast", 5, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)),
      5);
  auto frames = Receive(**driver, [](const std::vector<ParsedFrame>& got) {
    return !got.empty();
  });
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].dst_ip, Ip("239.1.2.3"));
  EXPECT_EQ(frames[0].payload, "mcast");

  ASSERT_TRUE((*driver)->Unsteer(group).ok());
  EXPECT_EQ(ShOutput(maddr).find("239.1.2.3"), std::string::npos);
  close(peer);
}

// What a user-space stack sees from a kernel sender across veth: with the
// peer's TX checksum offload on (the default) the UDP checksum is only the
// pseudo-header sum; with it off, complete. The driver marks a veth
// kRxPartial, and the parser in kVerifyOrPartial mode accepts both.
TEST_F(AfXdpVethTest, PeerChecksumOffloadDecidesChecksumValidity) {
  auto driver = xdp::AfXdpDriver::Create(VaConfig());
  ASSERT_TRUE(driver.ok()) << driver.status();
  EXPECT_EQ((*driver)->info().checksum_offload, nic::ChecksumOffload::kRxPartial);
  net::ParsedFrame parsed;
  net::ParseStatus parse_status = net::ParseStatus::kCount;
  ASSERT_TRUE(
      (*driver)->Steer(FlowKey::Listener(IpProto::kUdp, 0, 7800), 0).ok());
  auto receive_one = [&](bool* valid) {
    int peer = PeerUdpSocket();
    sockaddr_in to = Addr(veth_->ip_a(), 7800);
    ASSERT_EQ(sendto(peer, "csum", 4, 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof(to)),
              4);
    close(peer);
    auto deadline = steady_clock::now() + kTimeout;
    nic::RxFrame f[8];
    while (steady_clock::now() < deadline) {
      for (size_t q = 0; q < (*driver)->num_queues(); ++q) {
        size_t n = (*driver)->queue(q)->RxBurst(f, 8);
        if (n > 0) {
          *valid = ChecksumsValid(f[0].data, f[0].len);
          parse_status = net::ParseFrame(f[0].data, f[0].len,
                                         net::L4Checksum::kVerifyOrPartial, &parsed);
          (*driver)->queue(q)->ReleaseRx(f, n);
          return;
        }
      }
      std::this_thread::yield();
    }
    FAIL() << "nothing received";
  };
  bool valid = true;
  receive_one(&valid);
  EXPECT_FALSE(valid) << "veth default: partial checksum";
  EXPECT_EQ(parse_status, net::ParseStatus::kOk);
  EXPECT_TRUE(parsed.l4_checksum_partial);
  ASSERT_TRUE(VethPair::DisableTxChecksumOffload(veth_->ns_b(), "vb").ok());
  receive_one(&valid);
  EXPECT_TRUE(valid);
  EXPECT_EQ(parse_status, net::ParseStatus::kOk);
  EXPECT_FALSE(parsed.l4_checksum_partial);
}

TEST_F(AfXdpVethTest, RequiredZeroCopyOnVethIsAStartUpError) {
  nic::InterfaceConfig c = VaConfig();
  c.zero_copy = nic::ZeroCopy::kRequire;
  auto driver = xdp::AfXdpDriver::Create(c);
  EXPECT_EQ(driver.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(XdpAttached(veth_->ns_a()));  // nothing left behind
}

TEST_F(AfXdpVethTest, TooManyQueuesIsInvalidArgument) {
  nic::InterfaceConfig c = VaConfig();
  c.num_queues = kQueues + 1;
  auto driver = xdp::AfXdpDriver::Create(c);
  EXPECT_EQ(driver.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(XdpAttached(veth_->ns_a()));
}

}  // namespace
}  // namespace offload::testing

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--child-driver") == 0) {
    return offload::testing::ChildDriverMain(argv[2]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
