// Fixture of the XDP steering program's data-plane tests: the real embedded
// program, loaded (not attached), run on frames with BPF_PROG_TEST_RUN.
// Without an AF_XDP socket in the XSKMAP a steered frame is counted as
// OFFLOAD_STAT_NO_SOCKET and passed, which is how "steered" is observed.
// Skips without root (loading BPF needs CAP_BPF/CAP_SYS_ADMIN).

#ifndef OFFLOAD_TESTS_DAEMON_XDP_STEER_FIXTURE_H_
#define OFFLOAD_TESTS_DAEMON_XDP_STEER_FIXTURE_H_

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "daemon/xdp/steer_program.h"
#include "gtest/gtest.h"

namespace offload::xdp {

class SteerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "loading BPF programs needs root";
    auto p = SteerProgram::LoadForTest(1024);
    ASSERT_TRUE(p.ok()) << p.status();
    prog_ = *std::move(p);
  }

  // Runs the program on `frame`; returns the XDP action and sets `stat` to
  // the one statistic that moved (-1 if none or several).
  int Run(const std::vector<uint8_t>& frame, int* stat) {
    auto before = prog_->ReadStats();
    EXPECT_TRUE(before.ok());
    std::vector<uint8_t> in = frame;
    DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(),
                        .data_size_in = static_cast<__u32>(in.size()), .repeat = 1);
    EXPECT_EQ(bpf_prog_test_run_opts(prog_->prog_fd(), &opts), 0);
    auto after = prog_->ReadStats();
    EXPECT_TRUE(after.ok());
    *stat = -1;
    int moved = 0;
    for (int i = 0; i < OFFLOAD_STAT_COUNT; ++i) {
      if ((*after)[i] != (*before)[i]) {
        if (i == OFFLOAD_STAT_QUEUE_MISMATCH) continue;  // secondary counter
        *stat = i;
        ++moved;
      }
    }
    if (moved != 1) *stat = -1;
    return static_cast<int>(opts.retval);
  }

  // Where `frame` goes: the statistic that moved. The action must be
  // XDP_PASS (no socket is bound).
  int ClassifyFrame(const std::vector<uint8_t>& frame) {
    int stat;
    EXPECT_EQ(Run(frame, &stat), XDP_PASS);
    return stat;
  }

  std::unique_ptr<SteerProgram> prog_;
};

}  // namespace offload::xdp

#endif  // OFFLOAD_TESTS_DAEMON_XDP_STEER_FIXTURE_H_
