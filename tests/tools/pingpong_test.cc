// offload-pingpong (tools/bench/pingpong.h) over IPv4, IPv6 and a
// dual-stack server with an IPv4 client: every run completes and counts
// what it sent. No timing assertions.

#include "tools/bench/pingpong.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace offload::tools {
namespace {

// A server on `host`, port 0, in a child process; its port, or 0.
class ServerProcess {
 public:
  ServerProcess(const std::string& host, bool v6only) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      absl::StatusOr<Endpoint> ep = ParseEndpoint(host, 0);
      if (ep.ok()) (void)Serve(*ep, v6only);
      _exit(1);
    }
    close(fds[1]);
    char line[64] = {};
    size_t n = 0;
    while (n + 1 < sizeof(line)) {  // "listening PORT\n", or EOF if it failed
      const ssize_t k = read(fds[0], line + n, 1);
      if (k <= 0 || line[n] == '\n') break;
      ++n;
    }
    close(fds[0]);
    unsigned port = 0;
    if (sscanf(line, "listening %u", &port) == 1) port_ = static_cast<uint16_t>(port);
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

void RunBoth(const std::string& server_host, bool v6only, const std::string& client_host) {
  ServerProcess server(server_host, v6only);
  ASSERT_NE(server.port(), 0) << server_host;
  absl::StatusOr<Endpoint> ep = ParseEndpoint(client_host, server.port());
  ASSERT_TRUE(ep.ok()) << ep.status();
  absl::StatusOr<PingPongResult> pp = PingPong(*ep, 64, 0.2);
  ASSERT_TRUE(pp.ok()) << pp.status();
  EXPECT_GT(pp->round_trips, 0u);
  EXPECT_GT(pp->p50_us, 0.0);
  absl::StatusOr<double> tp = Throughput(*ep, 100, 0.2);  // checks sent == received
  ASSERT_TRUE(tp.ok()) << tp.status();
  EXPECT_GT(*tp, 0.0);
}

TEST(PingPong, Ipv4) { RunBoth("127.0.0.1", false, "127.0.0.1"); }
TEST(PingPong, Ipv6) { RunBoth("::1", false, "::1"); }
TEST(PingPong, DualStackServerIpv4Client) { RunBoth("::", false, "127.0.0.1"); }

TEST(PingPong, AddressesAreCheckedWithAClearError) {
  absl::StatusOr<Endpoint> ep = ParseEndpoint("::g", 1);
  ASSERT_FALSE(ep.ok());
  EXPECT_NE(ep.status().message().find("'::g'"), absl::string_view::npos);
  ep = ParseEndpoint("::ffff:127.0.0.1", 1);
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->family, AF_INET6);
}

}  // namespace
}  // namespace offload::tools
