// Copy-mode AF_XDP packet rates on a veth pair, side by side with kernel UDP
// sockets in the same run (a ratio, reported, never asserted).
//
//   RX: a kernel UDP sender in namespace b blasts 64-byte datagrams for
//       --seconds; received on va by (1) the af_xdp driver (steered flow) and
//       (2) a kernel UDP socket with recvmmsg (unsteered port).
//   TX: from namespace a, (1) the af_xdp driver sends prebuilt frames,
//       (2) a kernel UDP socket sends with sendmmsg; frames completed/sent.
//
// Run as root: bazel run //tests/integration/nic:af_xdp_rate_bench -- 2

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "daemon/engine/engine.h"
#include "daemon/nic/netdev.h"
#include "daemon/xdp/af_xdp_driver.h"
#include "tests/daemon/xdp/packet_builder.h"
#include "tests/integration/nic/netns_fixture.h"

namespace offload::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kPayload = 64 - 42;  // 64-byte frames on the wire (no FCS)
constexpr int kBatch = 32;

sockaddr_in Addr(const std::string& ip, uint16_t port) {
  sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// Sends datagrams from namespace `ns` to dst:port until `stop`.
void Blast(const std::string& ns, const std::string& src_ip,
           const std::string& dst, uint16_t port, std::atomic<bool>* stop,
           uint64_t* sent) {
  (void)VethPair::RunIn(ns, [&] {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in src = Addr(src_ip, 0);
    bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src));
    sockaddr_in to = Addr(dst, port);
    connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    char payload[kPayload] = {};
    iovec iov = {payload, sizeof(payload)};
    mmsghdr msgs[kBatch];
    memset(msgs, 0, sizeof(msgs));
    for (auto& m : msgs) {
      m.msg_hdr.msg_iov = &iov;
      m.msg_hdr.msg_iovlen = 1;
    }
    while (!stop->load(std::memory_order_relaxed)) {
      int n = sendmmsg(fd, msgs, kBatch, 0);
      if (n > 0) *sent += static_cast<uint64_t>(n);
    }
    close(fd);
  });
}

// Echoes UDP frames in place: swap MACs, addresses and ports (the IPv4 and
// UDP checksums are sums, so they stay valid), no allocation.
class SwapEcho : public engine::PacketProcessor {
 public:
  void OnFrames(size_t, const nic::RxFrame* frames, size_t n, engine::TimeNs,
                engine::TxBatch& tx) override {
    for (size_t i = 0; i < n; ++i) {
      const nic::RxFrame& in = frames[i];
      if (in.len < 42 || in.data[23] != 17) continue;
      nic::TxFrame* out = tx.Alloc();
      if (out == nullptr || in.len > out->capacity) continue;
      uint8_t* f = out->data;
      memcpy(f, in.data, in.len);
      for (int b = 0; b < 6; ++b) std::swap(f[b], f[6 + b]);
      const size_t ihl = (f[14] & 0xf) * 4u;
      for (int b = 0; b < 4; ++b) std::swap(f[26 + b], f[30 + b]);
      for (int b = 0; b < 2; ++b) std::swap(f[14 + ihl + b], f[16 + ihl + b]);
      out->len = in.len;
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

// Ping-pong from namespace `ns` to dst:port for `window`; returns round
// trips completed.
uint64_t PingPong(const std::string& ns, const std::string& dst, uint16_t port,
                  std::chrono::seconds window) {
  uint64_t trips = 0;
  (void)VethPair::RunIn(ns, [&] {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to = Addr(dst, port);
    connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    char buf[64] = {};
    auto start = Clock::now();
    while (Clock::now() - start < window) {
      if (send(fd, buf, 32, 0) != 32) break;
      pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 1000) != 1) continue;  // lost: send again
      if (recv(fd, buf, sizeof(buf), 0) == 32) ++trips;
    }
    close(fd);
  });
  return trips;
}

double Mpps(uint64_t packets, Clock::duration d) {
  return packets / std::chrono::duration<double>(d).count() / 1e6;
}

int Main(int seconds) {
  if (geteuid() != 0) {
    fprintf(stderr, "needs root\n");
    return 1;
  }
  int original_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  VethPair veth;
  if (auto s = VethPair::Create("ofb", 70, 1, &veth); !s.ok()) {
    fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  if (!veth.EnterA().ok()) return 1;
  // The echo test sends received frames back unchanged: the peer must put
  // complete checksums in them (see DisableTxChecksumOffload).
  if (!VethPair::DisableTxChecksumOffload(veth.ns_b(), "vb").ok()) return 1;
  const auto window = std::chrono::seconds(seconds);

  nic::InterfaceConfig config;
  config.name = "va";
  config.num_queues = 1;
  auto driver = xdp::AfXdpDriver::Create(config);
  if (!driver.ok()) {
    fprintf(stderr, "%s\n", driver.status().ToString().c_str());
    return 1;
  }
  nic::NicQueue* q = (*driver)->queue(0);
  (void)(*driver)->Steer(nic::FlowKey::Listener(nic::IpProto::kUdp, 0, 9000),
                         0);

  // --- RX: af_xdp.
  std::atomic<bool> stop{false};
  uint64_t sent = 0, xdp_rx = 0;
  std::thread sender(Blast, veth.ns_b(), veth.ip_b(), veth.ip_a(), 9000, &stop,
                     &sent);
  nic::RxFrame frames[64];
  auto start = Clock::now();
  while (Clock::now() - start < window) {
    size_t n = q->RxBurst(frames, 64);
    q->ReleaseRx(frames, n);
    xdp_rx += n;
  }
  auto xdp_rx_time = Clock::now() - start;
  stop = true;
  sender.join();
  const uint64_t xdp_sent = sent;

  // --- RX: kernel UDP socket (port not steered).
  int rx_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  sockaddr_in any = Addr("0.0.0.0", 9001);
  bind(rx_fd, reinterpret_cast<sockaddr*>(&any), sizeof(any));
  int big = 8 << 20;
  setsockopt(rx_fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
  stop = false;
  sent = 0;
  uint64_t kernel_rx = 0;
  sender = std::thread(Blast, veth.ns_b(), veth.ip_b(), veth.ip_a(), 9001,
                       &stop, &sent);
  char bufs[kBatch][128];
  iovec iov[kBatch];
  mmsghdr msgs[kBatch];
  memset(msgs, 0, sizeof(msgs));
  for (int i = 0; i < kBatch; ++i) {
    iov[i] = {bufs[i], sizeof(bufs[i])};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  start = Clock::now();
  while (Clock::now() - start < window) {
    int n = recvmmsg(rx_fd, msgs, kBatch, 0, nullptr);
    if (n > 0) kernel_rx += static_cast<uint64_t>(n);
  }
  auto kernel_rx_time = Clock::now() - start;
  stop = true;
  sender.join();
  const uint64_t kernel_sent = sent;
  close(rx_fd);

  // --- TX: af_xdp (prebuilt frames to vb's MAC).
  nic::InterfaceInfo vb;
  if (!VethPair::RunIn(veth.ns_b(), [&] {
         vb = *nic::QueryInterface("vb");
       }).ok()) {
    return 1;
  }
  int sink = -1;  // a socket in b so the datagrams are not ICMP-rejected
  (void)VethPair::RunIn(veth.ns_b(), [&] {
    sink = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a = Addr("0.0.0.0", 9100);
    bind(sink, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  });
  FrameSpec spec;
  spec.src_mac = (*driver)->info().mac;
  spec.dst_mac = vb.mac;
  spec.src_ip = Ip(veth.ip_a().c_str());
  spec.dst_ip = Ip(veth.ip_b().c_str());
  spec.src_port = 9100;
  spec.dst_port = 9100;
  spec.payload = std::string(kPayload, 'x');
  std::vector<uint8_t> frame = BuildFrame(spec);
  uint64_t xdp_tx = 0;
  nic::TxFrame tx[kBatch];
  start = Clock::now();
  while (Clock::now() - start < window) {
    size_t n = q->AllocTx(tx, kBatch);
    for (size_t i = 0; i < n; ++i) {
      memcpy(tx[i].data, frame.data(), frame.size());
      tx[i].len = static_cast<uint32_t>(frame.size());
    }
    size_t ok = q->SubmitTx(tx, n);
    q->FreeTx(tx + ok, n - ok);
    xdp_tx += q->ReclaimTx();
  }
  auto xdp_tx_time = Clock::now() - start;

  // --- TX: kernel UDP socket.
  int tx_fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to = Addr(veth.ip_b(), 9100);
  connect(tx_fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  char payload[kPayload] = {};
  iovec piov = {payload, sizeof(payload)};
  for (auto& m : msgs) {
    m.msg_hdr.msg_iov = &piov;
    m.msg_hdr.msg_iovlen = 1;
  }
  uint64_t kernel_tx = 0;
  start = Clock::now();
  while (Clock::now() - start < window) {
    int n = sendmmsg(tx_fd, msgs, kBatch, 0);
    if (n > 0) kernel_tx += static_cast<uint64_t>(n);
  }
  auto kernel_tx_time = Clock::now() - start;
  close(tx_fd);
  close(sink);

  double xr = Mpps(xdp_rx, xdp_rx_time), kr = Mpps(kernel_rx, kernel_rx_time);
  double xt = Mpps(xdp_tx, xdp_tx_time), kt = Mpps(kernel_tx, kernel_tx_time);
  printf("veth, copy mode, %s XDP, 1 queue, 64-byte frames, %d s windows\n",
         (*driver)->native_xdp() ? "native" : "generic", seconds);
  printf("RX  af_xdp  %.3f Mpps (peer sent %.3f Mpps)\n", xr,
         Mpps(xdp_sent, xdp_rx_time));
  printf(
      "RX  kernel  %.3f Mpps (peer sent %.3f Mpps)  ratio af_xdp/kernel %.2f\n",
      kr, Mpps(kernel_sent, kernel_rx_time), kr > 0 ? xr / kr : 0);
  nic::QueueStats qs = q->Stats();
  printf(
      "    af_xdp kernel-side drops: rx_dropped %lu rx_ring_full %lu "
      "fill_ring_empty %lu\n",
      static_cast<unsigned long>(qs.kernel_rx_dropped),
      static_cast<unsigned long>(qs.kernel_rx_ring_full),
      static_cast<unsigned long>(qs.kernel_rx_fill_ring_empty));
  printf("TX  af_xdp  %.3f Mpps\n", xt);
  printf("TX  kernel  %.3f Mpps  ratio af_xdp/kernel %.2f\n", kt,
         kt > 0 ? xt / kt : 0);

  // --- UDP ping-pong: engine + af_xdp echo vs kernel socket echo.
  (void)(*driver)->Steer(nic::FlowKey::Listener(nic::IpProto::kUdp, 0, 9200),
                         0);
  double rtt_us[3] = {};
  const uint32_t budgets[2] = {1000000, 0};  // busy-poll, sleep every time
  for (int v = 0; v < 2; ++v) {
    engine::EngineConfig ec;
    ec.poll_budget_us = budgets[v];
    auto eng = engine::Engine::Create(ec, {q}, std::make_unique<SwapEcho>());
    if (!eng.ok() || !(*eng)->Start().ok()) return 1;
    uint64_t trips = PingPong(veth.ns_b(), veth.ip_a(), 9200, window);
    (*eng)->Stop();

    rtt_us[v] = trips ? seconds * 1e6 / trips : 0;
  }
  int echo_fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in ea = Addr("0.0.0.0", 9201);
  bind(echo_fd, reinterpret_cast<sockaddr*>(&ea), sizeof(ea));
  std::atomic<bool> echo_stop{false};
  std::thread echo([&] {
    char b[64];
    while (!echo_stop.load()) {
      pollfd p = {echo_fd, POLLIN, 0};
      if (poll(&p, 1, 100) != 1) continue;
      sockaddr_in from;
      socklen_t fl = sizeof(from);
      ssize_t n = recvfrom(echo_fd, b, sizeof(b), 0,
                           reinterpret_cast<sockaddr*>(&from), &fl);
      if (n > 0) {
        sendto(echo_fd, b, static_cast<size_t>(n), 0,
               reinterpret_cast<sockaddr*>(&from), fl);
      }
    }
  });
  uint64_t ktrips = PingPong(veth.ns_b(), veth.ip_a(), 9201, window);
  echo_stop = true;
  echo.join();
  close(echo_fd);
  rtt_us[2] = ktrips ? seconds * 1e6 / ktrips : 0;
  printf("UDP ping-pong RTT (client: kernel socket in b)\n");
  printf("    engine+af_xdp busy-poll  %.1f us\n", rtt_us[0]);
  printf("    engine+af_xdp sleeping   %.1f us\n", rtt_us[1]);
  printf("    kernel socket server     %.1f us  ratio busy-poll/kernel %.2f\n",
         rtt_us[2], rtt_us[2] > 0 ? rtt_us[0] / rtt_us[2] : 0);
  setns(original_ns, CLONE_NEWNET);
  return 0;
}

}  // namespace
}  // namespace offload::testing

int main(int argc, char** argv) {
  int seconds = argc > 1 ? atoi(argv[1]) : 2;
  if (seconds < 1 || seconds > 5) seconds = 2;
  return offload::testing::Main(seconds);
}
