// The WirePlane tests' fixture: a veth pair between two network
// namespaces (root), and the helpers the tests share (kernel sockets in
// either namespace, the plane's configuration, a flow listener that
// records events).
#ifndef OFFLOAD_TESTS_DAEMON_WIRE_WIRE_PLANE_FIXTURE_H_
#define OFFLOAD_TESTS_DAEMON_WIRE_WIRE_PLANE_FIXTURE_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>

#include "daemon/config/config.h"
#include "daemon/wire/wire_plane.h"
#include "gtest/gtest.h"
#include "tests/daemon/wire/plane_config.h"
#include "tests/integration/nic/netns_fixture.h"

namespace offload::testing {

inline constexpr auto kTimeout = std::chrono::seconds(20);

inline uint32_t ParseIp(const std::string& s) {
  in_addr a;
  inet_pton(AF_INET, s.c_str(), &a);
  return ntohl(a.s_addr);
}

inline sockaddr_in Addr(uint32_t ip, uint16_t port) {
  sockaddr_in a;
  std::memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(ip);
  return a;
}

inline uint16_t LocalPort(int fd) {
  sockaddr_in a;
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A TCP socket bound to ip:0 (and listening if asked), created in `ns` (or
// the current namespace if empty).
inline int BoundSocket(const std::string& ns, uint32_t ip, bool listening) {
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

inline v1::DaemonConfig VaConfig(const std::string& name = "va") { return OneQueueConfig(name); }

inline bool XdpAttached(const std::string& ns) {
  return ShOutput("ip -n " + ns + " link show va").find("prog/xdp") != std::string::npos;
}

// Namespace a holds "va" (offloaded by the WirePlane of the test process),
// b holds "vb" with kernel sockets; the process enters a for the suite.
// Each test binary uses its own prefix and subnet (SetUpVeth).
class WirePlaneTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { SetUpVeth("ofw", 44); }
  static void SetUpVeth(const char* prefix, int subnet) {
    if (geteuid() != 0) return;
    original_ns_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    veth_ = new VethPair();
    absl::Status s = VethPair::Create(prefix, subnet, 1, veth_);
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

  inline static VethPair* veth_ = nullptr;
  inline static int original_ns_ = -1;
};

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_DAEMON_WIRE_WIRE_PLANE_FIXTURE_H_
