// A WirePlane over the fake NIC (tests/testing/fake_nic.h) and a fake route
// source (tests/testing/fake_route_source.h): no root, no interface, no
// namespace. The test plays the peer on the fake queue: it reads the
// frames the engine sends and injects the peer's, built with
// tests/testing/packet_builder.h. Addresses are 198.18.0.0/15 ones and
// never reach a kernel.

#ifndef OFFLOAD_TESTS_DAEMON_WIRE_FAKE_WIRE_PLANE_H_
#define OFFLOAD_TESTS_DAEMON_WIRE_FAKE_WIRE_PLANE_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/config/config.h"
#include "daemon/wire/app_pipe.h"
#include "daemon/wire/wire_plane.h"
#include "gtest/gtest.h"
#include "shm/pipe.h"
#include "shm/ring.h"
#include "tests/daemon/wire/plane_config.h"
#include "tests/testing/fake_nic.h"
#include "tests/testing/fake_route_source.h"
#include "tests/testing/packet_builder.h"

namespace offload::testing {

inline constexpr int kFakeIfIndex = 7;
inline constexpr uint16_t kLocalPort = 40000;
inline constexpr uint16_t kPeerPort = 5001;
inline constexpr uint32_t kPeerIsn = 1000;
inline constexpr std::array<uint8_t, 6> kLocalMac = {0x02, 0, 0, 0, 0, 0x01};
inline constexpr std::array<uint8_t, 6> kPeerMac = {0x02, 0, 0, 0, 0, 0x02};
inline uint32_t FakeLocalIp() { return Ip("198.18.0.1"); }
inline uint32_t FakePeerIp() { return Ip("198.18.0.2"); }

// Polls `pred` until it holds or `bound` passed (a bound on a hang, not a
// timing check).
inline bool Eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds bound = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

inline v1::DaemonConfig FakePlaneConfig() { return OneQueueConfig("fake0"); }

// The plane and the fakes under it (owned by the plane; valid while it is).
struct FakePlane {
  FakeDriver* driver = nullptr;
  FakeQueue* queue = nullptr;
  FakeRouteSource* routes = nullptr;
  std::unique_ptr<wire::WirePlane> plane;
};

// One engine, one queue; the peer's neighbour entry is known to the
// kernel (no resolution needed).
inline absl::StatusOr<FakePlane> MakeFakePlane() {
  auto driver = std::make_unique<FakeDriver>(1);
  driver->mutable_info().name = "fake0";
  driver->mutable_info().ifindex = kFakeIfIndex;
  driver->mutable_info().mac = kLocalMac;
  auto routes = std::make_unique<FakeRouteSource>("fake0", kFakeIfIndex, FakeLocalIp(), 24);
  routes->SetNeighbour(FakePeerIp(), kPeerMac);
  FakePlane out;
  out.driver = driver.get();
  out.queue = driver->queue(0);
  out.routes = routes.get();
  wire::WireSeams seams;
  seams.driver = std::move(driver);
  seams.routes = std::move(routes);
  absl::StatusOr<std::unique_ptr<wire::WirePlane>> plane =
      wire::WirePlane::Create(FakePlaneConfig(), std::move(seams));
  if (!plane.ok()) return plane.status();
  out.plane = std::move(*plane);
  return out;
}

inline Endpoint PeerEnd() { return Endpoint{Mac(2), FakePeerIp(), kPeerPort}; }
inline Endpoint LocalEnd() { return Endpoint{Mac(1), FakeLocalIp(), kLocalPort}; }

// The TCP frames sent on `q` from index `*from` on (advanced past them).
inline std::vector<TcpView> SentTcp(FakeQueue* q, size_t* from) {
  std::vector<std::string> sent = q->Sent();
  std::vector<TcpView> out;
  for (; *from < sent.size(); ++*from) {
    Frame f(sent[*from].begin(), sent[*from].end());
    TcpView v;
    if (!ParseTcp(f, &v)) continue;
    v.f.frame = nullptr;  // points into `f`, gone after this loop
    out.push_back(std::move(v));
  }
  return out;
}

// An engine-served connection to the fake peer, established.
struct FakeConnection {
  std::shared_ptr<wire::EngineChannel> channel;
  std::shared_ptr<wire::AppPipe> pipe;
  wire::WireFlow flow;
  uint32_t our_next = 0;   // our next sequence number (ISN + 1)
  size_t sent_seen = 0;    // frames of the queue looked at
  shm::ByteRingProducer tx;  // the application's ends
  shm::ByteRingConsumer rx;
};

// ConnectTcp with an application pipe, then the handshake over the fake
// queue: the SYN is read back, a SYN,ACK injected; returns once the pipe
// says connected.
inline ::testing::AssertionResult ConnectFake(FakePlane& fp, FakeConnection* c) {
  absl::StatusOr<std::shared_ptr<wire::EngineChannel>> chan =
      wire::EngineChannel::Create(1, 1u << 16);
  if (!chan.ok()) return ::testing::AssertionFailure() << chan.status();
  c->channel = *chan;
  absl::StatusOr<std::shared_ptr<wire::AppPipe>> pipe =
      wire::AppPipe::Create(c->channel, 0, shm::kConnectPending);
  if (!pipe.ok()) return ::testing::AssertionFailure() << pipe.status();
  c->pipe = *pipe;
  wire::TcpConnectParams p;
  p.remote_ip = FakePeerIp();
  p.remote_port = kPeerPort;
  p.local_port = kLocalPort;
  p.pipe = c->pipe;
  absl::StatusOr<wire::WireFlow> flow = fp.plane->ConnectTcp(p);
  if (!flow.ok()) return ::testing::AssertionFailure() << flow.status();
  c->flow = *flow;
  TcpView syn;
  bool got = Eventually([&] {
    for (TcpView& v : SentTcp(fp.queue, &c->sent_seen)) {
      if (v.f.tcp_flags & net::kTcpSyn) {
        syn = std::move(v);
        return true;
      }
    }
    return false;
  });
  if (!got) return ::testing::AssertionFailure() << "no SYN on the fake queue";
  c->our_next = syn.f.seq + 1;
  TcpSpec s;
  s.src = PeerEnd();
  s.dst = LocalEnd();
  s.seq = kPeerIsn;
  s.ack = c->our_next;
  s.flags = net::kTcpSyn | net::kTcpAck;
  s.options.mss = true;
  s.options.mss_value = 1460;
  fp.queue->Inject(BuildTcp(s));
  shm::PipeRecord* rec = c->pipe->record();
  if (!Eventually([&] { return rec->ctl.connect_status.load() != shm::kConnectPending; })) {
    return ::testing::AssertionFailure() << "the connect never completed";
  }
  if (const int st = rec->ctl.connect_status.load(); st != 0) {
    return ::testing::AssertionFailure() << "connect failed: " << st;
  }
  const tcp::RingMemory txm = c->pipe->TxMemory();
  const tcp::RingMemory rxm = c->pipe->RxMemory();
  c->tx.Init(&c->pipe->to_wire(), txm.base, txm.capacity);
  c->rx.Init(&c->pipe->from_wire(), rxm.base, rxm.capacity);
  return ::testing::AssertionSuccess();
}

// The application's send of `data`: copy, publish, and (as the client
// library does through its doorbell map) kick the engine's doorbell when
// the engine asked to be woken. Returns the arm bits the publish took.
inline uint32_t AppSend(FakeConnection* c, const std::string& data, int doorbell_fd) {
  c->tx.CopyIn(0, data.data(), data.size());
  const uint32_t bits = c->tx.Commit(data.size());
  if (bits & shm::kArmDoorbell) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(doorbell_fd, &one, sizeof(one));
  }
  return bits;
}

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_DAEMON_WIRE_FAKE_WIRE_PLANE_H_
