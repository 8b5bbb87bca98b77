// The extra API's zero-copy UDP receive (recvfrom_zcopy, free_packets) and
// receive callback on same-host datagram rings: the real offloadd, the real
// liboffload.so, zcopy_prog (one process per check).
//
// args: offloadd liboffload.so zcopy_prog offload-udplat

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace {

std::string g_offloadd, g_lib, g_prog, g_udplat;

std::string Abs(const std::string& p) {
  char buf[4096];
  return realpath(p.c_str(), buf) != nullptr ? buf : p;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A child process with its own environment and output file, killed (by
// pid) if still running when the object goes away.
class Proc {
 public:
  Proc(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
       const std::string& out)
      : out_(out) {
    pid_ = fork();
    if (pid_ == 0) {
      for (const auto& [k, v] : env) {
        if (v.empty()) {
          unsetenv(k.c_str());
        } else {
          setenv(k.c_str(), v.c_str(), 1);
        }
      }
      const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Proc() {
    if (pid_ > 0 && !done_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  void Kill(int sig) { kill(pid_, sig); }
  // The exit status, or -1 if it is still running after `seconds` (a bound
  // against hangs, not a timing expectation).
  int Wait(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        done_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  std::string Output() const { return ReadFile(out_); }

 private:
  pid_t pid_ = -1;
  bool done_ = false;
  std::string out_;
};

bool WaitExists(const std::string& path, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  struct stat st;
  while (std::chrono::steady_clock::now() < deadline) {
    if (stat(path.c_str(), &st) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

class ZcopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zcopy_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    run_dir_ = dir_ + "/run";
    mkdir(run_dir_.c_str(), 0755);
    daemon_ = std::make_unique<Proc>(
        std::vector<std::string>{g_offloadd, "--run-dir", run_dir_, "--rules", dir_ + "/rules.conf",
                                 "--config", "/dev/null"},
        std::map<std::string, std::string>{}, dir_ + "/offloadd.log");
    ASSERT_TRUE(WaitExists(run_dir_ + "/engine.sock", 10)) << ReadFile(dir_ + "/offloadd.log");
  }
  void TearDown() override {
    daemon_->Kill(SIGTERM);
    daemon_->Wait(10);
    daemon_.reset();
    std::string cmd = "rm -rf '" + dir_ + "'";
    if (system(cmd.c_str()) != 0) fprintf(stderr, "cleanup of %s failed\n", dir_.c_str());
  }
  // Runs `zcopy_prog CHECK` under the library; its exit status.
  void Run(const std::string& check, bool preload = true) {
    Proc p({g_prog, check},
           {{"LD_PRELOAD", preload ? g_lib : ""}, {"OFFLOAD_RUN_DIR", run_dir_}},
           dir_ + "/" + check + ".log");
    EXPECT_EQ(p.Wait(120), 0) << p.Output() << "\n--- offloadd:\n"
                              << ReadFile(dir_ + "/offloadd.log");
  }

  std::string dir_, run_dir_;
  std::unique_ptr<Proc> daemon_;
};

TEST_F(ZcopyTest, ContentSourceAndOrderOfZeroCopyReceive) { Run("basic"); }
TEST_F(ZcopyTest, FreeOutOfOrderReleasesInRingOrder) { Run("out_of_order"); }
TEST_F(ZcopyTest, HeldBuffersFillTheRingAndStayIntactUntilFreed) { Run("ring_full"); }
TEST_F(ZcopyTest, BatchFreeGivesBackEachRingsSpace) { Run("batch_free"); }
TEST_F(ZcopyTest, ReceiveCallbackDropHoldRecv) { Run("callback"); }
TEST_F(ZcopyTest, KernelSocketsAnswerAsVma) { Run("kernel"); }
TEST_F(ZcopyTest, ProcessKilledHoldingBuffersCostsNobodyElse) { Run("death"); }
TEST_F(ZcopyTest, NoApiWithoutTheLibrary) { Run("noapi", /*preload=*/false); }

// offload-udplat verifies every datagram in each receive mode (its rates
// are printed, never asserted).
TEST_F(ZcopyTest, UdplatVerifiesEveryDatagramInEveryReceiveMode) {
  for (const std::string mode : {"pingpong", "throughput"}) {
    // zcopy8: zero copy freeing 8 packets per free_packets call.
    for (const std::string rx : {"copy", "zcopy", "zcopy8", "callback"}) {
      for (const bool busy : {false, true}) {
        std::vector<std::string> argv = {
            g_udplat, "--mode", mode, "--rx", rx == "zcopy8" ? "zcopy" : rx,
            "--size", mode == "pingpong" ? "64" : "1024",
            "--count", mode == "pingpong" ? "2000" : "20000", "--warmup", "100"};
        if (rx == "zcopy8") argv.insert(argv.end(), {"--free-batch", "8"});
        if (busy) argv.push_back("--busy");
        const std::string log = dir_ + "/udplat-" + mode + "-" + rx + (busy ? "-busy" : "");
        Proc p(argv, {{"LD_PRELOAD", g_lib}, {"OFFLOAD_RUN_DIR", run_dir_}}, log);
        EXPECT_EQ(p.Wait(120), 0) << p.Output();
        EXPECT_NE(p.Output().find("verified="), std::string::npos) << p.Output();
        printf("%s", p.Output().c_str());
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 5) {
    fprintf(stderr, "usage: %s OFFLOADD LIBOFFLOAD ZCOPY_PROG UDPLAT\n", argv[0]);
    return 2;
  }
  g_offloadd = Abs(argv[1]);
  g_lib = Abs(argv[2]);
  g_prog = Abs(argv[3]);
  g_udplat = Abs(argv[4]);
  signal(SIGPIPE, SIG_IGN);
  return RUN_ALL_TESTS();
}
