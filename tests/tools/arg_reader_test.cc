// Tests for the test programs' argv reader.

#include "tools/bench/arg_reader.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace offload::tools {
namespace {

// Holds argv storage for one ArgReader.
class Argv {
 public:
  explicit Argv(std::vector<std::string> args) : args_(std::move(args)) {
    ptrs_.push_back(const_cast<char*>("prog"));
    for (std::string& a : args_) ptrs_.push_back(a.data());
  }
  int argc() const { return static_cast<int>(ptrs_.size()); }
  char** argv() { return ptrs_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<char*> ptrs_;
};

TEST(ArgReaderTest, ParsesFlagsValuesAndPositionals) {
  Argv a({"server", "--port=80", "-v", "--bind", "1.2.3.4", "--buf", "64k"});
  ArgReader r(a.argc(), a.argv());
  std::string mode, bind;
  uint64_t port = 0, buf = 0;
  bool verbose = false;
  while (r.Next()) {
    std::string p;
    if (r.Positional(&p)) {
      mode = p;
    } else if (r.Uint("--port", "-p", 1, 65535, &port)) {
    } else if (r.Flag("--verbose", "-v")) {
      verbose = true;
    } else if (r.Value("--bind", "", &bind)) {
    } else if (r.Uint("--buf", "", 1, 1 << 20, &buf)) {
    } else {
      r.Unknown();
    }
  }
  EXPECT_EQ(r.error(), "");
  EXPECT_EQ(mode, "server");
  EXPECT_EQ(port, 80u);
  EXPECT_TRUE(verbose);
  EXPECT_EQ(bind, "1.2.3.4");
  EXPECT_EQ(buf, 65536u);
}

std::string ErrorOf(std::vector<std::string> args) {
  Argv a(std::move(args));
  ArgReader r(a.argc(), a.argv());
  uint64_t n = 0;
  std::string s;
  while (r.Next()) {
    if (r.Uint("--n", "", 1, 100, &n)) {
    } else if (r.Flag("--flag", "")) {
    } else if (r.Value("--s", "", &s)) {
    } else {
      r.Unknown();
    }
  }
  return r.error();
}

TEST(ArgReaderTest, ErrorsSayWhatIsWrong) {
  EXPECT_EQ(ErrorOf({"--n", "0"}),
            "--n expects an integer in [1, 100], got '0'");
  EXPECT_EQ(ErrorOf({"--n", "abc"}),
            "--n expects an integer in [1, 100], got 'abc'");
  EXPECT_EQ(ErrorOf({"--n", "1k"}),
            "--n expects an integer in [1, 100], got '1k'");
  EXPECT_EQ(ErrorOf({"--s"}), "--s needs a value");
  EXPECT_EQ(ErrorOf({"--flag=1"}), "--flag takes no value");
  EXPECT_EQ(ErrorOf({"--nope"}), "unknown option or extra argument '--nope'");
  EXPECT_EQ(ErrorOf({"--n", "5", "--x", "--y"}),
            "unknown option or extra argument '--x'");  // first error wins
}

}  // namespace
}  // namespace offload::tools
