// The namespace's TCP sysctls -> TcpConfig (stack/sysctl.h), on a fake
// /proc/sys tree.
#include "daemon/stack/sysctl.h"
#include "daemon/tcp/tcp.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace offload::stack {
namespace {

class SysctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sysctl_test.XXXXXX";
    root_ = mkdtemp(tmpl);
    mkdir((root_ + "/net").c_str(), 0755);
    mkdir((root_ + "/net/ipv4").c_str(), 0755);
    mkdir((root_ + "/net/core").c_str(), 0755);
  }
  void Write(const std::string& name, const std::string& v) {
    std::ofstream(root_ + "/net/" + name) << v << "\n";
  }
  std::string root_;
};

TEST_F(SysctlTest, Linux_TcpRmemMax_SetsWindowScaleSpace) {
  Write("ipv4/tcp_rmem", "4096\t540000\t15728640");
  Write("core/rmem_max", "212992");
  Write("ipv4/tcp_timestamps", "0");
  Write("ipv4/tcp_syn_retries", "3");
  Write("ipv4/tcp_keepalive_time", "60");
  Write("ipv4/tcp_syncookies", "2");
  std::vector<std::string> bad;
  TcpSysctls s = ReadTcpSysctls(root_, &bad);
  EXPECT_TRUE(bad.empty());
  tcp::TcpConfig cfg;
  ApplyTcpSysctls(s, &cfg);
  EXPECT_EQ(cfg.rcv_space_max, 15728640u);
  EXPECT_EQ(tcp::InitialWindowScale(cfg, 0), 8);  // Linux: ilog2(15 MiB) - 15
  EXPECT_FALSE(cfg.timestamps);
  EXPECT_EQ(cfg.syn_retries, 3u);
  EXPECT_EQ(cfg.keepalive_time_ns, 60 * tcp::kSec);
  EXPECT_EQ(cfg.syncookies, 2);
  EXPECT_EQ(cfg.rcvbuf_default, 540000u);
}

TEST_F(SysctlTest, MissingOrMalformedFiles_KeepDefaultsAndAreReported) {
  Write("ipv4/tcp_sack", "yes");
  std::vector<std::string> bad;
  TcpSysctls s = ReadTcpSysctls(root_, &bad);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0].find("tcp_sack"), std::string::npos);
  EXPECT_EQ(s.sack, 1u);
  EXPECT_EQ(s, TcpSysctls{});
}

}  // namespace
}  // namespace offload::stack
