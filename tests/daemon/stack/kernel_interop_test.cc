// Interoperability with the Linux TCP stack: a Stack drives an AF_PACKET
// socket on one end of a veth pair (in its own network namespace, with no IP
// address so the local kernel stays out of the way); the other end lives in a
// second namespace where the real kernel runs Python echo servers/clients.
//
// Needs root (namespaces, veth, AF_PACKET): tagged "root". Addresses from
// 198.18.0.0/15, used only inside the namespaces; everything is removed in
// TearDown (also when a test fails). Waits are on conditions, bounded.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nic/netns_fixture.h"
#include "tests/testing/harness.h"
#include "tests/testing/loopback.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {
namespace {

uint64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + ts.tv_nsec;
}

// Runs argv in namespace `ns` (ip netns exec); returns pid, stdout pipe fd.
pid_t Spawn(const std::string& ns, const std::string& script, int* out_fd) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    execl("/usr/sbin/ip", "ip", "netns", "exec", ns.c_str(), "/usr/bin/python3", "-c",
          script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  *out_fd = p[0];
  return pid;
}

// Reads one line from `fd` within `timeout_ms`.
std::string ReadLine(int fd, int timeout_ms) {
  std::string line;
  uint64_t end = MonoNs() + uint64_t(timeout_ms) * 1'000'000;
  while (MonoNs() < end) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;
    char c;
    if (read(fd, &c, 1) != 1) break;
    if (c == '\n') return line;
    line += c;
  }
  return line;
}

class KernelInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    // "us" (namespace a) has no kernel address: the stack under test answers
    // for 198.18.1.1 through a packet socket on va; plain 1500-byte frames
    // with complete checksums on the wire; Linux (b) is 198.18.1.2 on vb.
    VethPair::Options options;
    options.address_a = false;
    options.ipv6 = false;
    options.plain_frames = true;
    const absl::Status made = VethPair::Create("offki", 1, options, &veth_);
    ASSERT_TRUE(made.ok()) << made;
    us_ = veth_.ns_a();
    peer_ = veth_.ns_b();
    OpenPacketSocket();
    std::ifstream mac_file;
    std::string mac = ShOutput("ip netns exec " + us_ + " cat /sys/class/net/" + ifa_ + "/address");
    ASSERT_EQ(sscanf(mac.c_str(), "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac_.b[0], &mac_.b[1],
                     &mac_.b[2], &mac_.b[3], &mac_.b[4], &mac_.b[5]),
              6);
    stack::StackConfig cfg = DefaultTestConfig();
    cfg.local_mac = mac_;
    cfg.local_ip = Ip("198.18.1.1");
    cfg.max_num_buffers = 1024;
    cfg.isn_key = tcp::SecretKey{};  // random
    auto s = stack::Stack::Create(cfg, &provider_, MonoNs());
    ASSERT_TRUE(s.ok()) << s.status();
    stack_ = std::move(*s);
    // The stack resolves no neighbour itself (offloadd's come from the
    // kernel's table): seed the peer's MAC as that table would hold it.
    std::string peer_mac =
        ShOutput("ip netns exec " + peer_ + " cat /sys/class/net/" + ifb_ + "/address");
    net::MacAddr pm;
    ASSERT_EQ(sscanf(peer_mac.c_str(), "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &pm.b[0], &pm.b[1],
                     &pm.b[2], &pm.b[3], &pm.b[4], &pm.b[5]),
              6);
    stack_->SeedNeighbor(Ip("198.18.1.2"), pm, /*permanent=*/true);
  }

  void TearDown() override {
    for (pid_t p : pids_) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
    for (int fd : fds_) close(fd);
    if (sock_ >= 0) close(sock_);
    // veth_'s destructor removes the namespaces.
  }

  void OpenPacketSocket() {
    int ifindex = 0;
    const absl::Status in = VethPair::RunIn(us_, [&] {
      sock_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
      ifindex = static_cast<int>(if_nametoindex(ifa_.c_str()));
    });
    ASSERT_TRUE(in.ok()) << in;
    ASSERT_GE(sock_, 0);
    ASSERT_GT(ifindex, 0);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    ASSERT_EQ(bind(sock_, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)), 0);
  }

  // Moves frames between the socket and the stack, runs timers, delivers
  // events to `on_event`, and calls `step` until `done` or the timeout.
  bool Pump(const std::function<bool()>& done, const std::function<void()>& step,
            int timeout_ms) {
    std::vector<uint8_t> rx(65536);
    std::vector<std::vector<uint8_t>> txb(32, std::vector<uint8_t>(2048));
    uint64_t end = MonoNs() + uint64_t(timeout_ms) * 1'000'000;
    while (!done()) {
      if (MonoNs() > end) return false;
      pollfd pfd{sock_, POLLIN, 0};
      poll(&pfd, 1, 1);
      for (int i = 0; i < 64; ++i) {
        sockaddr_ll from{};
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(sock_, rx.data(), rx.size(), MSG_DONTWAIT,
                             reinterpret_cast<sockaddr*>(&from), &fl);
        if (n <= 0) break;
        if (from.sll_pkttype == PACKET_OUTGOING) continue;
        if (drop_ > 0 && coin_(rng_) < drop_) continue;  // injected loss (from Linux)
        stack::RxFrame f{rx.data(), static_cast<uint32_t>(n)};
        stack_->ProcessRx(&f, 1, MonoNs());
      }
      stack_->OnTimer(MonoNs());
      stack::FlowEvent ev[32];
      size_t ne;
      while ((ne = stack_->PollEvents(ev, 32)) > 0) {
        for (size_t i = 0; i < ne; ++i) events_.push_back(ev[i]);
      }
      if (step) step();
      while (true) {
        stack::TxFrame tx[32];
        for (int i = 0; i < 32; ++i) tx[i] = stack::TxFrame{txb[i].data(), 2048, 0};
        size_t n = stack_->PollTx(tx, 32, MonoNs());
        for (size_t i = 0; i < n; ++i) {
          if (drop_ > 0 && coin_(rng_) < drop_) continue;  // injected loss (to Linux)
          if (send(sock_, tx[i].data, tx[i].len, 0) < 0) {
            pollfd w{sock_, POLLOUT, 0};
            poll(&w, 1, 10);
            send(sock_, tx[i].data, tx[i].len, 0);
          }
        }
        if (n < 32) break;
      }
    }
    return true;
  }

  VethPair veth_;
  std::string us_, peer_;
  const std::string ifa_ = "va", ifb_ = "vb";
  int sock_ = -1;
  net::MacAddr mac_;
  TestBufferProvider provider_{1 << 18};
  std::unique_ptr<stack::Stack> stack_;
  std::vector<stack::FlowEvent> events_;
  std::vector<pid_t> pids_;
  std::vector<int> fds_;
  double drop_ = 0;  // probability of dropping a frame in either direction
  std::mt19937_64 rng_{12345};
  std::uniform_real_distribution<double> coin_{0.0, 1.0};

  // Sends `bytes` through the Linux echo server and verifies every byte.
  void EchoThroughLinux(uint64_t bytes);
};

constexpr char kEchoServer[] = R"(
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('198.18.1.2', 5001))
s.listen(4)
print('ready', flush=True)
c, _ = s.accept()
n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    n += len(d)
    c.sendall(d)
c.close()
print('echoed', n, flush=True)
)";

void KernelInteropTest::EchoThroughLinux(uint64_t kBytes) {
  int out;
  pid_t srv = Spawn(peer_, kEchoServer, &out);
  ASSERT_GT(srv, 0);
  pids_.push_back(srv);
  fds_.push_back(out);
  ASSERT_EQ(ReadLine(out, 10000), "ready");

  testing::OwnedRing tx(1 << 18), rx(1 << 18);
  stack::FlowId flow;
  ASSERT_EQ(stack_->TcpConnect(Ip("198.18.1.2"), 5001, 0, tx.memory(), rx.memory(), 1, &flow), 0);
  StreamTransfer up(3, kBytes), down(3, kBytes);
  bool shut = false, peer_fin = false, connected = false;
  bool ok = Pump(
      [&]() { return down.complete() && peer_fin; },
      [&]() {
        for (auto& e : events_) {
          if (e.flow != flow) continue;
          if (e.events & tcp::kEventConnected) connected = true;
          if (e.events & tcp::kEventPeerFin) peer_fin = true;
          EXPECT_EQ(e.error, 0);
        }
        events_.clear();
        if (!connected) return;
        if (up.Produce(&tx)) stack_->TcpSend(flow);
        if (up.all_sent() && !shut) {
          stack_->TcpShutdown(flow, false, true);
          shut = true;
        }
        if (down.Consume(&rx) > 0) stack_->TcpReceiveCredit(flow);
      },
      30000);
  if (!ok) {
    // A stall: say where the connection stood, for the next person.
    tcp::TcpInfo info{};
    stack_->TcpGetInfo(flow, &info);
    std::string counters;
    stack_->ForEachCounter([&](const char* name, uint64_t v) {
      if (v != 0) counters += std::string(" ") + name + "=" + std::to_string(v);
    });
    ADD_FAILURE() << "stalled: sent " << up.sent() << ", received " << down.received() << " of "
                  << kBytes << "; state " << int(info.tcpi_state) << " ca_state "
                  << int(info.tcpi_ca_state) << " retransmits " << int(info.tcpi_retransmits)
                  << " backoff " << int(info.tcpi_backoff) << " rto_us " << info.tcpi_rto
                  << " unacked " << info.tcpi_unacked << " lost " << info.tcpi_lost
                  << " snd_cwnd " << info.tcpi_snd_cwnd << " rcv_space " << info.tcpi_rcv_space
                  << " snd_wnd " << info.tcpi_snd_wnd << "; counters:" << counters;
    return;
  }
  EXPECT_EQ(down.mismatches(), 0u);
  EXPECT_EQ(ReadLine(out, 5000), "echoed " + std::to_string(kBytes));
  tcp::TcpInfo info;
  ASSERT_EQ(stack_->TcpGetInfo(flow, &info), 0);
  // Linux negotiated everything we offered.
  EXPECT_EQ(info.tcpi_options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE),
            TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
  EXPECT_EQ(info.tcpi_snd_mss, 1448u);
  stack_->TcpClose(flow);
}

TEST_F(KernelInteropTest, OffloadClient_LinuxEchoServer_BytesVerified) { EchoThroughLinux(4 << 20); }

// 2% of frames dropped in each direction: our SACK/TLP/RTO recovery against
// Linux's, and Linux's against ours.
TEST_F(KernelInteropTest, OffloadClient_LinuxEchoServer_TwoPercentLoss) {
  drop_ = 0.02;
  EchoThroughLinux(2 << 20);
  EXPECT_GT(stack_->tcp_counters().retrans_segs, 0u);
}

constexpr char kClient[] = R"(
import socket, sys
data = bytes((i * 7 + 3) & 0xff for i in range(1 << 20))
c = socket.create_connection(('198.18.1.1', 5002), timeout=20)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    d = c.recv(65536)
    if not d:
        break
    got += d
c.close()
print('ok' if bytes(got) == data else 'mismatch %d' % len(got), flush=True)
)";

TEST_F(KernelInteropTest, LinuxClient_OffloadEchoServer_BytesVerified) {
  stack::FlowId listener;
  ASSERT_EQ(stack_->TcpListen(0, 5002, 8, 1, &listener), 0);
  int out;
  pid_t cli = Spawn(peer_, kClient, &out);
  ASSERT_GT(cli, 0);
  pids_.push_back(cli);
  fds_.push_back(out);
  stack::FlowId child = 0;
  testing::OwnedRing* crx = nullptr;
  testing::OwnedRing* ctx = nullptr;
  bool eof = false, closed = false;
  std::string result;
  std::vector<uint8_t> buf(1 << 18);
  uint32_t pending = 0;
  // Done when our close completed (FIN sent and acknowledged: only the
  // listener is left).
  bool ok = Pump(
      [&]() { return closed && stack_->ActiveConnections() == 1; },
      [&]() {
        for (auto& e : events_) {
          if (e.flow == child && (e.events & tcp::kEventPeerFin)) eof = true;
        }
        events_.clear();
        if (child == 0 && stack_->TcpAccept(listener, 2, &child) == 0) {
          const tcp::Tcb* t = stack_->TcbForTest(child);
          crx = provider_.Find(t->rx.memory().base);
          ctx = provider_.Find(t->tx.memory().base);
        }
        if (child == 0) return;
        // Echo: copy what arrived into the TX ring as space allows.
        if (pending == 0) {
          pending = crx->AppRead(buf.data(), std::min<uint32_t>(ctx->AppFree(), buf.size()));
          if (pending) stack_->TcpReceiveCredit(child);
        }
        if (pending) {
          uint32_t w = ctx->AppWrite(buf.data(), pending);
          std::memmove(buf.data(), buf.data() + w, pending - w);
          pending -= w;
          stack_->TcpSend(child);
        }
        if (eof && pending == 0 && crx->AppUsed() == 0 && !closed) {
          stack_->TcpClose(child);
          closed = true;
        }
      },
      30000);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ReadLine(out, 20000), "ok");
}

TEST_F(KernelInteropTest, ConnectToClosedLinuxPort_Econnrefused) {
  testing::OwnedRing tx(4096), rx(4096);
  stack::FlowId flow;
  ASSERT_EQ(stack_->TcpConnect(Ip("198.18.1.2"), 5999, 0, tx.memory(), rx.memory(), 1, &flow), 0);
  int err = 0;
  bool ok = Pump([&]() { return err != 0; },
                 [&]() {
                   for (auto& e : events_) {
                     if (e.flow == flow && (e.events & tcp::kEventClosed)) err = e.error;
                   }
                   events_.clear();
                 },
                 10000);
  ASSERT_TRUE(ok);
  EXPECT_EQ(err, ECONNREFUSED);
}

}  // namespace
}  // namespace offload::testing
