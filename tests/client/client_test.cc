// The preload library's internals against an in-process SessionManager:
// environment knobs, lazy attach, the offload decision from the published
// rule table and thread-offload table (seqlock readers), process-local
// rules, and the spin policy.

#include <arpa/inet.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

#include "client/attach.h"
#include "client/config.h"
#include "client/decision.h"
#include "client/fd_table.h"
#include "client/ops.h"
#include "client/socket.h"
#include "daemon/rules/rule_store.h"
#include "daemon/session/session_manager.h"
#include "gtest/gtest.h"

namespace offload {
namespace client {
namespace {

// An IPv4 endpoint, or an IPv6 one for text with a ':'.
InetName Addr(const char* ip, uint16_t port) {
  InetName a = {};
  if (strchr(ip, ':') != nullptr) {
    a.v6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a.v6.sin6_addr);
    a.v6.sin6_port = htons(port);
    return a;
  }
  a.v4.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a.v4.sin_addr);
  a.v4.sin_port = htons(port);
  return a;
}

TEST(ConfigTest, OffloadNamesWinOverVmaAliases) {
  setenv("VMA_RX_POLL", "7", 1);
  setenv("VMA_SELECT_POLL", "9", 1);
  setenv("OFFLOAD_SELECT_POLL", "11", 1);
  setenv("VMA_APPLICATION_ID", "legacy", 1);
  setenv("OFFLOAD_TRACELEVEL", "42", 1);
  LoadConfig();
  EXPECT_EQ(Config().rx_poll, 7);
  EXPECT_EQ(Config().select_poll_us, 11);
  EXPECT_STREQ(Config().application_id, "legacy");
  EXPECT_EQ(Config().trace_level, 6) << "clamped to func_all";
  EXPECT_TRUE(Config().offloaded_sockets);
  unsetenv("VMA_RX_POLL");
  unsetenv("VMA_SELECT_POLL");
  unsetenv("OFFLOAD_SELECT_POLL");
  unsetenv("VMA_APPLICATION_ID");
  unsetenv("OFFLOAD_TRACELEVEL");
  LoadConfig();
  EXPECT_EQ(Config().rx_poll, 20000);
  EXPECT_STREQ(Config().run_dir, "/run/offloadd");
}

TEST(ConfigTest, RxSlipDefaultsToEightKibAndZeroTurnsItOff) {
  LoadConfig();
  EXPECT_EQ(Config().rx_slip, 8192);
  setenv("OFFLOAD_RX_SLIP", "0", 1);
  LoadConfig();
  EXPECT_EQ(Config().rx_slip, 0);
  setenv("OFFLOAD_RX_SLIP", "-5", 1);
  LoadConfig();
  EXPECT_EQ(Config().rx_slip, 0) << "negative means off, not a huge unsigned wait";
  unsetenv("OFFLOAD_RX_SLIP");
  LoadConfig();
}

TEST(SpinTest, SpinningStopsWhenTheCpuIsShared) {
  setenv("OFFLOAD_SPIN_YIELD_NS", "1000", 1);
  LoadConfig();
  // Alone on a CPU we keep spinning (yields return at once)...
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  // ...with a busy thread sharing it, a yield hands the CPU away for long.
  std::atomic<bool> stop{false};
  std::thread hog([&] {
    sched_setaffinity(0, sizeof(one), &one);
    while (!stop) {
    }
  });
  bool stopped = false;
  const int64_t deadline = NowNs() + 5000000000;
  for (uint64_t i = 0; NowNs() < deadline && !stopped; ++i) stopped = !SpinStep(i);
  const bool allowed_right_after = SpinAllowed();  // the back-off lasts ~1 ms
  stop = true;
  hog.join();
  EXPECT_TRUE(stopped);
  EXPECT_FALSE(allowed_right_after) << "this thread sleeps instead of spinning for a while";
  unsetenv("OFFLOAD_SPIN_YIELD_NS");
  LoadConfig();
}

class AttachedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/client_test.XXXXXX";
    dir_ = new std::string(mkdtemp(tmpl));
    v1::DaemonConfig config;
    config.set_run_dir(*dir_);
    store_ = rules::RuleStore::Create("").value().release();
    manager_ = session::SessionManager::Create(config, store_).value().release();
    ASSERT_TRUE(manager_->Start().ok());
    setenv("OFFLOAD_RUN_DIR", dir_->c_str(), 1);
    LoadConfig();
    InitFdTable();
  }
  static void TearDownTestSuite() {
    manager_->Stop();
    delete manager_;
    delete store_;
    rmdir(dir_->c_str());
  }
  static std::string* dir_;
  static rules::RuleStore* store_;
  static session::SessionManager* manager_;
};
std::string* AttachedTest::dir_ = nullptr;
rules::RuleStore* AttachedTest::store_ = nullptr;
session::SessionManager* AttachedTest::manager_ = nullptr;

TEST_F(AttachedTest, AttachesLazilyAndAppearsAsASession) {
  ASSERT_TRUE(EnsureAttached());
  ASSERT_NE(Arena(), nullptr);
  EXPECT_EQ(Arena()->pid, static_cast<uint32_t>(getpid()));
  bool found = false;
  for (const auto& s : manager_->ListSessions()) found |= s.pid() == static_cast<uint32_t>(getpid());
  EXPECT_TRUE(found);
}

TEST_F(AttachedTest, PublishedRulesDecideNewSockets) {
  ASSERT_TRUE(EnsureAttached());
  auto rule = store_->Add("use os tcp_client 127.0.0.1:5555", 0, false, "", "");
  ASSERT_TRUE(rule.ok()) << rule.status();
  Socket s;
  s.thread_offload = true;
  const InetName os_dst = Addr("127.0.0.1", 5555), other = Addr("127.0.0.1", 5556);
  EXPECT_FALSE(Decide(&s, rules::Role::kTcpClient, nullptr, &os_dst));
  EXPECT_EQ(s.fallback, shm::Fallback::kRule);
  EXPECT_EQ(s.rule_id, rule->id);
  EXPECT_TRUE(Decide(&s, rules::Role::kTcpClient, nullptr, &other));
  // Deleting the rule reaches the process without a restart.
  ASSERT_TRUE(store_->Delete(rule->id, false).ok());
  EXPECT_TRUE(Decide(&s, rules::Role::kTcpClient, nullptr, &os_dst));
}

// Issue 18: IPv6 rules decide AF_INET6 sockets; a v4-mapped destination
// is decided by the IPv4 rules (as the connection is IPv4).
TEST_F(AttachedTest, Ipv6RulesDecideIpv6SocketsAndMappedAddressesFollowIpv4Rules) {
  ASSERT_TRUE(EnsureAttached());
  auto r6 = store_->Add("use os tcp_client [::1]:5557", 0, false, "", "");
  ASSERT_TRUE(r6.ok()) << r6.status();
  auto r4 = store_->Add("use os tcp_client 127.0.0.0/8:5558", 0, false, "", "");
  ASSERT_TRUE(r4.ok()) << r4.status();
  Socket s;
  s.thread_offload = true;
  s.family = AF_INET6;
  const InetName v6 = Addr("::1", 5557), v6_other = Addr("::2", 5557);
  const InetName mapped = Addr("::ffff:127.0.0.1", 5558), v6_5558 = Addr("::1", 5558);
  EXPECT_FALSE(Decide(&s, rules::Role::kTcpClient, nullptr, &v6));
  EXPECT_EQ(s.rule_id, r6->id);
  EXPECT_TRUE(Decide(&s, rules::Role::kTcpClient, nullptr, &v6_other));
  EXPECT_FALSE(Decide(&s, rules::Role::kTcpClient, nullptr, &mapped));
  EXPECT_EQ(s.rule_id, r4->id);
  EXPECT_TRUE(Decide(&s, rules::Role::kTcpClient, nullptr, &v6_5558)) << "IPv4 prefix, IPv6 address";
  ASSERT_TRUE(store_->Delete(r6->id, false).ok());
  ASSERT_TRUE(store_->Delete(r4->id, false).ok());
}

TEST_F(AttachedTest, ProcessLocalRulesComeFirst) {
  ASSERT_TRUE(EnsureAttached());
  EXPECT_EQ(AddLocalRule("use sideways tcp_server *:1"), -1);
  ASSERT_EQ(AddLocalRule("use os tcp_server *:6000-6010"), 0);
  Socket s;
  s.thread_offload = true;
  const InetName in_range = Addr("0.0.0.0", 6005), out = Addr("0.0.0.0", 6011);
  EXPECT_FALSE(Decide(&s, rules::Role::kTcpServer, &in_range, nullptr));
  EXPECT_TRUE(Decide(&s, rules::Role::kTcpServer, &out, nullptr));
}

TEST_F(AttachedTest, ThreadToggleFromTheDaemonAndFromTheExtraApi) {
  ASSERT_TRUE(EnsureAttached());
  EXPECT_TRUE(ThreadOffloadEnabled());
  const uint32_t tid = static_cast<uint32_t>(syscall(SYS_gettid));
  ASSERT_TRUE(manager_->SetThreadOffload(getpid(), tid, false).ok());
  EXPECT_FALSE(ThreadOffloadEnabled()) << "offloadctl thread-offload PID TID off";
  bool other = false;
  std::thread t([&] { other = ThreadOffloadEnabled(); });
  t.join();
  EXPECT_TRUE(other) << "only that thread";
  SetLocalThreadOffload(pthread_self(), true);
  EXPECT_TRUE(ThreadOffloadEnabled()) << "the process's own extra-API call wins";
  Socket s;
  s.thread_offload = false;
  const InetName dst = Addr("127.0.0.1", 80);
  EXPECT_FALSE(Decide(&s, rules::Role::kTcpClient, nullptr, &dst));
  EXPECT_EQ(s.fallback, shm::Fallback::kThreadOff);
}

TEST(OptionTest, OnlyOptionsTheOffloadPathsCannotHonourKeepTheKernel) {
  char detail[24] = {};
  EXPECT_FALSE(OptionKeepsKernel(IPPROTO_TCP, TCP_NODELAY, "\1\0\0\0", 4, detail, sizeof(detail)));
  EXPECT_FALSE(OptionKeepsKernel(IPPROTO_TCP, TCP_CONGESTION, "cubic", 5, detail, sizeof(detail)))
      << "the engine's own congestion control";
  EXPECT_FALSE(OptionKeepsKernel(IPPROTO_TCP, TCP_CONGESTION, "cubic\0xyz", 9, detail, sizeof(detail)))
      << "the name ends at the NUL, as in the kernel";
  ASSERT_TRUE(OptionKeepsKernel(IPPROTO_TCP, TCP_CONGESTION, "bbr", 3, detail, sizeof(detail)));
  EXPECT_STREQ(detail, "TCP_CONGESTION bbr");
  ASSERT_TRUE(OptionKeepsKernel(SOL_SOCKET, SO_BINDTODEVICE, "eth0", 4, detail, sizeof(detail)));
  EXPECT_STREQ(detail, "opt 1/25");
}

TEST_F(AttachedTest, CounterSlotsAreVisibleToTheDaemon) {
  ASSERT_TRUE(EnsureAttached());
  Socket* s = NewSocket(1000, SOCK_STREAM, false);
  Add(s->slot->tx_bytes, 321);
  auto stats = manager_->GetStats(getpid(), true);
  ASSERT_TRUE(stats.ok());
  bool seen = false;
  for (const auto& row : (*stats)[0].sockets()) seen |= row.fd() == 1000 && row.tx_bytes() == 321;
  // Identified by the shadow's inode.
  const int real = socket(AF_INET, SOCK_STREAM, 0);
  Socket* r = NewSocket(real, SOCK_STREAM, false);
  struct stat st;
  ASSERT_EQ(fstat(real, &st), 0);
  EXPECT_EQ(r->slot->inode, st.st_ino);
  Teardown(r);
  Unref(r);
  close(real);
  EXPECT_TRUE(seen);
  Teardown(s);
  Unref(s);
  stats = manager_->GetStats(getpid(), true);
  for (const auto& row : (*stats)[0].sockets()) EXPECT_NE(row.fd(), 1000);
}

}  // namespace
}  // namespace client
}  // namespace offload
