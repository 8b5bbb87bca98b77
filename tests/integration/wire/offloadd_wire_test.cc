// End-to-end: the real offloadd started with a config naming a veth
// interface inside a network namespace, driven by the real offloadctl.
//   - `offloadctl status` lists the interface attached (driver, queues,
//     copy/zero-copy, state); `offloadctl stats` shows engine and NIC rows;
//   - kernel TCP and ARP on other ports keep working while offloadd runs,
//     after `kill -9` of offloadd and after a restart (which replaces the
//     stale XDP program by itself);
//   - an idle offloadd with an attached interface uses (next to) no CPU;
//   - SIGTERM detaches the XDP program; start-up errors name the interface
//     and the fix (no such interface, no privileges).
// Needs root (tagged root/local/exclusive).
//
// args: OFFLOADD OFFLOADCTL

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/nic/netns_fixture.h"

namespace offload::testing {
namespace {

using std::chrono::steady_clock;

std::string g_offloadd, g_ctl;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `cmd` through the shell; returns its exit status, output in *out.
int RunShell(const std::string& cmd, std::string* out) {
  out->clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out->append(buf, n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

sockaddr_in Addr(const std::string& ip, uint16_t port) {
  sockaddr_in a;
  std::memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

bool XdpAttached(const std::string& ns) {
  return ShOutput("ip -n " + ns + " link show va").find("prog/xdp") != std::string::npos;
}

// CPU time (utime + stime) of `pid` in clock ticks, -1 if unreadable.
long CpuTicks(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return -1;
  std::istringstream in(stat.substr(close_paren + 2));
  std::string field;
  long utime = -1, stime = -1;
  // Fields after "(comm)": state is field 3; utime 14, stime 15.
  for (int i = 3; i <= 15 && (in >> field); ++i) {
    if (i == 14) utime = std::atol(field.c_str());
    if (i == 15) stime = std::atol(field.c_str());
  }
  return utime < 0 || stime < 0 ? -1 : utime + stime;
}

class OffloaddWireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces and XDP";
    absl::Status s = VethPair::Create("ofi", 46, 1, &veth_);
    ASSERT_TRUE(s.ok()) << s;
    char tmpl[] = "/tmp/offload-wire-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);
    run_dir_ = dir_ + "/run";
    WriteConfig("va");
  }
  void TearDown() override {
    StopDaemon(SIGKILL);
    if (!dir_.empty()) Sh("rm -rf '" + dir_ + "'");
  }

  void WriteConfig(const std::string& ifname) {
    std::ofstream(dir_ + "/offloadd.conf")
        << "interfaces { name: \"" << ifname << "\" driver: DRIVER_AF_XDP }\n"
        << "num_cores: 1\nmax_concurrency: 1024\nmax_num_buffers: 4096\n";
  }

  // Starts offloadd inside namespace a; returns its pid (the daemon itself:
  // the child enters the namespace and execs, no wrapper process).
  pid_t Spawn(const std::string& binary, const std::vector<std::string>& extra_prefix) {
    const std::string ns_path = "/run/netns/" + veth_.ns_a();
    const std::string log = dir_ + "/offloadd.log";
    std::vector<std::string> args = extra_prefix;
    for (const std::string& a :
         {binary, std::string("--config"), dir_ + "/offloadd.conf", std::string("--run-dir"),
          run_dir_, std::string("--rules"), dir_ + "/rules.conf"}) {
      args.push_back(a);
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      int nsfd = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) _exit(126);
      int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (out >= 0) {
        dup2(out, 1);
        dup2(out, 2);
      }
      execv(argv[0], argv.data());
      _exit(127);
    }
    return pid;
  }

  // Starts the daemon and waits until it answers `status`.
  void StartDaemon() {
    pid_ = Spawn(g_offloadd, {});
    ASSERT_GT(pid_, 0);
    std::string out;
    const auto deadline = steady_clock::now() + std::chrono::seconds(15);
    while (steady_clock::now() < deadline) {
      if (Ctl("status", &out) == 0) return;
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "offloadd exited: " << ReadFile(dir_ + "/offloadd.log");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
    }
    FAIL() << "offloadd did not answer: " << ReadFile(dir_ + "/offloadd.log");
  }

  // Sends `sig` and reaps the daemon; returns its wait status.
  int StopDaemon(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return st;
  }

  int Ctl(const std::string& args, std::string* out) {
    return RunShell(g_ctl + " --socket '" + run_dir_ + "/control.sock' " + args, out);
  }

  // A kernel TCP connection from namespace b to a kernel listener in a,
  // after flushing b's neighbour table so ARP must work too.
  ::testing::AssertionResult KernelTcpAndArpWork() {
    Sh("ip -n " + veth_.ns_b() + " neigh flush dev vb");
    int lfd = -1, cfd = -1;
    if (!VethPair::RunIn(veth_.ns_a(), [&] {
           lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
           sockaddr_in a = Addr(veth_.ip_a(), 0);
           bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
           listen(lfd, 4);
         }).ok() ||
        !VethPair::RunIn(veth_.ns_b(), [&] {
           cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
         }).ok()) {
      return ::testing::AssertionFailure() << "cannot create sockets";
    }
    sockaddr_in bound;
    socklen_t len = sizeof(bound);
    getsockname(lfd, reinterpret_cast<sockaddr*>(&bound), &len);
    timeval tv = {10, 0};
    setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in to = Addr(veth_.ip_a(), ntohs(bound.sin_port));
    ::testing::AssertionResult result = ::testing::AssertionSuccess();
    if (connect(cfd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      result = ::testing::AssertionFailure() << "connect: " << strerror(errno);
    } else {
      int sfd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      const char msg[] = "ping over the kernel";
      char got[sizeof(msg)] = {};
      if (sfd < 0 || write(sfd, msg, sizeof(msg)) != static_cast<ssize_t>(sizeof(msg)) ||
          recv(cfd, got, sizeof(got), MSG_WAITALL) != static_cast<ssize_t>(sizeof(msg)) ||
          std::strcmp(got, msg) != 0) {
        result = ::testing::AssertionFailure() << "exchange failed: " << strerror(errno);
      }
      if (sfd >= 0) close(sfd);
    }
    close(cfd);
    close(lfd);
    return result;
  }

  VethPair veth_;
  std::string dir_, run_dir_;
  pid_t pid_ = -1;
};

TEST_F(OffloaddWireTest, StatusStatsKernelTrafficKillRestartIdleAndDetach) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  EXPECT_TRUE(XdpAttached(veth_.ns_a()));

  std::string out;
  ASSERT_EQ(Ctl("status", &out), 0) << out;
  EXPECT_NE(out.find("same-host+wire"), std::string::npos) << out;
  EXPECT_NE(out.find("va              af_xdp  queues=1 copy  up"), std::string::npos) << out;
  ASSERT_EQ(Ctl("stats", &out), 0) << out;
  EXPECT_NE(out.find("engine 0 (cpu "), std::string::npos) << out;
  EXPECT_NE(out.find("nic va queue 0: rx 0 pkts"), std::string::npos) << out;
  EXPECT_NE(out.find("steered flows 0"), std::string::npos) << out;
  ASSERT_EQ(Ctl("--json stats", &out), 0) << out;
  EXPECT_NE(out.find("\"engines\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"nics\""), std::string::npos) << out;

  EXPECT_TRUE(KernelTcpAndArpWork()) << "while offloadd runs";

  // Idle: an engine with an attached interface sleeps. CPU time over a
  // 3-second window, as a ratio of wall time (generous bound).
  const long hz = sysconf(_SC_CLK_TCK);
  const long t0 = CpuTicks(pid_);
  const auto w0 = steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(3));  // the measured window
  const long t1 = CpuTicks(pid_);
  const double wall = std::chrono::duration<double>(steady_clock::now() - w0).count();
  ASSERT_GE(t0, 0);
  ASSERT_GE(t1, t0);
  const double share = static_cast<double>(t1 - t0) / static_cast<double>(hz) / wall;
  std::printf("idle offloadd with an attached interface: %.2f%% CPU over %.1f s\n",
              100.0 * share, wall);
  EXPECT_LT(share, 0.05);

  // kill -9: the program stays attached (stale), the kernel path works.
  StopDaemon(SIGKILL);
  EXPECT_TRUE(XdpAttached(veth_.ns_a())) << "a killed daemon cannot detach";
  EXPECT_TRUE(KernelTcpAndArpWork()) << "after kill -9";

  // A restart replaces the stale program without manual steps.
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ASSERT_EQ(Ctl("status", &out), 0) << out;
  EXPECT_NE(out.find("af_xdp  queues=1 copy  up"), std::string::npos) << out;
  EXPECT_TRUE(KernelTcpAndArpWork()) << "after the restart";

  // SIGTERM: clean exit, program detached.
  const int st = StopDaemon(SIGTERM);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "wait status " << st;
  EXPECT_FALSE(XdpAttached(veth_.ns_a())) << ReadFile(dir_ + "/offloadd.log");
  EXPECT_NE(ReadFile(dir_ + "/offloadd.log").find("wire: detaching va"), std::string::npos);
  EXPECT_TRUE(KernelTcpAndArpWork()) << "after SIGTERM";
}

TEST_F(OffloaddWireTest, StartupErrorsNameTheInterfaceAndTheFix) {
  WriteConfig("nosuch0");
  pid_t pid = Spawn(g_offloadd, {});
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
  std::string log = ReadFile(dir_ + "/offloadd.log");
  EXPECT_NE(log.find("interface nosuch0 does not exist"), std::string::npos) << log;
  EXPECT_NE(log.find("fix interfaces[0].name"), std::string::npos) << log;

  // Unprivileged: the message says which capabilities, before touching the
  // NIC. The binary is copied where user nobody can run it.
  WriteConfig("va");
  run_dir_ = dir_ + "/run-nobody";  // the first run's is root's
  const std::string copy = dir_ + "/offloadd";
  ASSERT_EQ(Sh("cp '" + g_offloadd + "' '" + copy + "' && chmod 755 '" + copy + "' && chmod 777 '" +
               dir_ + "' && : > '" + dir_ + "/offloadd.log' && chmod 666 '" + dir_ +
               "/offloadd.log' '" + dir_ + "/offloadd.conf'"),
            0);
  pid = Spawn(copy, {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                     "--"});
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
  log = ReadFile(dir_ + "/offloadd.log");
  EXPECT_NE(log.find("interface va: offloadd needs root, or CAP_NET_ADMIN"), std::string::npos)
      << log;
  EXPECT_FALSE(XdpAttached(veth_.ns_a()));
}

}  // namespace
}  // namespace offload::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s OFFLOADD OFFLOADCTL\n", argv[0]);
    return 2;
  }
  char buf[4096];
  auto abs = [&](const char* p) {
    return p[0] == '/' ? std::string(p) : std::string(getcwd(buf, sizeof(buf))) + "/" + p;
  };
  offload::testing::g_offloadd = abs(argv[1]);
  offload::testing::g_ctl = abs(argv[2]);
  return RUN_ALL_TESTS();
}
