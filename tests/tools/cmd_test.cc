// Tests for offload-cmd: script grammar, the static pair check, and real
// conversations over a connected socket pair.

#include <sys/socket.h>

#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tools/bench/socket_util.h"
#include "tools/cmd/runner.h"
#include "tools/cmd/script.h"

namespace offload::tools::cmd {
namespace {

Script MustParse(absl::string_view text, absl::string_view name) {
  absl::StatusOr<Script> s = ParseScript(text, name);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : Script();
}

std::string ParseErrorOf(absl::string_view text) {
  absl::StatusOr<Script> s = ParseScript(text, "t.txt");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(s.status()));
  return std::string(s.status().message());
}

TEST(ScriptParseTest, ParsesStepsCommentsAndBlankLines) {
  Script s = MustParse(
      "# header\n\nsend 512 20 A   # trailing\r\n  recv 1 1 z\n", "c.txt");
  ASSERT_EQ(s.steps.size(), 2u);
  EXPECT_EQ(s.steps[0].op, Op::kSend);
  EXPECT_EQ(s.steps[0].size, 512u);
  EXPECT_EQ(s.steps[0].repeat, 20u);
  EXPECT_EQ(s.steps[0].fill, 'A');
  EXPECT_EQ(s.steps[0].line, 3);
  EXPECT_EQ(s.steps[1].op, Op::kRecv);
  EXPECT_EQ(s.steps[1].line, 4);
}

TEST(ScriptParseTest, EmptyScriptIsValid) {
  EXPECT_TRUE(MustParse("", "e.txt").steps.empty());
}

TEST(ScriptParseTest, ErrorsNameLineColumnAndExpectation) {
  EXPECT_EQ(ParseErrorOf("\n  sned 1 1 A\n"),
            "t.txt:2:3: expected 'send' or 'recv', got 'sned'");
  EXPECT_EQ(ParseErrorOf("send abc 1 A"),
            "t.txt:1:6: expected a message size (an integer from 1 to "
            "67108864), got 'abc'");
  EXPECT_EQ(ParseErrorOf("send 0 1 A"),
            "t.txt:1:6: expected a message size (an integer from 1 to "
            "67108864), got '0'");
  EXPECT_EQ(ParseErrorOf("send -5 1 A"),
            "t.txt:1:6: expected a message size (an integer from 1 to "
            "67108864), got '-5'");
  EXPECT_EQ(ParseErrorOf("recv 10 x A"),
            "t.txt:1:9: expected a repeat count (an integer from 1 to "
            "1000000000), got 'x'");
  EXPECT_EQ(ParseErrorOf("recv 10 2"),
            "t.txt:1:10: expected a fill character (one printable "
            "character), got end of line");
  EXPECT_EQ(ParseErrorOf("recv 10 2 AB"),
            "t.txt:1:11: expected a fill character (one printable "
            "character), got 'AB'");
  EXPECT_EQ(ParseErrorOf("recv 10 2 A B"),
            "t.txt:1:13: expected end of line after the fill character, got "
            "'B'");
  EXPECT_EQ(ParseErrorOf("send"),
            "t.txt:1:5: expected a message size (an integer from 1 to "
            "67108864), got end of line");
}

TEST(ScriptParseTest, RejectsMoreThanATebibytePerLine) {
  EXPECT_NE(ParseErrorOf("send 67108864 1000000 A").find("at most 1 TiB"),
            std::string::npos);
}

TEST(CheckPairTest, ByteStreamIgnoresMessageBoundaries) {
  Script c = MustParse("send 512 20 A\nrecv 10 3 b\n", "c.txt");
  Script s = MustParse("recv 1024 10 A\nsend 30 1 b\n", "s.txt");
  EXPECT_TRUE(CheckPair(c, s).ok());
}

TEST(CheckPairTest, NamesBothLinesAtFirstDifference) {
  Script c = MustParse("send 100 1 A\nsend 100 1 B\n", "c.txt");
  Script s = MustParse("recv 150 1 A\nrecv 50 1 B\n", "s.txt");
  absl::Status st = CheckPair(c, s);
  EXPECT_TRUE(absl::IsFailedPrecondition(st));
  EXPECT_EQ(st.message(),
            "c.txt -> s.txt: at stream offset 100 c.txt:2 sends 'B' but "
            "s.txt:1 expects 'A'");
}

TEST(CheckPairTest, DetectsMissingBytes) {
  Script c = MustParse("send 100 1 A\n", "c.txt");
  Script s = MustParse("recv 100 2 A\n", "s.txt");
  absl::Status st = CheckPair(c, s);
  EXPECT_EQ(st.message(),
            "c.txt -> s.txt: s.txt:1 expects bytes from stream offset 100 on "
            "that c.txt never sends");
  st = CheckPair(s, c);  // reversed roles: nothing flows s -> c ...
  EXPECT_FALSE(st.ok());
}

struct Conversation {
  absl::Status a, b;
};

Conversation Converse(const Script& a, const Script& b,
                      absl::Duration timeout_a = absl::Seconds(3),
                      absl::Duration timeout_b = absl::Seconds(3)) {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd fa(sv[0]), fb(sv[1]);
  RunOptions options_a, options_b;
  options_a.timeout = timeout_a;
  options_b.timeout = timeout_b;
  Conversation c;
  std::ostringstream out_a, out_b;
  // A side that failed shuts its socket down, as the real program does by
  // exiting, so the other side is not left waiting for its timeout.
  std::thread t([&] {
    c.b = RunScript(fb.get(), b, options_b, out_b);
    if (!c.b.ok()) ::shutdown(fb.get(), SHUT_RDWR);
  });
  c.a = RunScript(fa.get(), a, options_a, out_a);
  if (!c.a.ok()) ::shutdown(fa.get(), SHUT_RDWR);
  t.join();
  return c;
}

TEST(RunScriptTest, MatchedPairSucceeds) {
  Conversation c = Converse(
      MustParse("send 512 20 A\nrecv 64 1 z\nsend 70000 3 q\n", "c.txt"),
      MustParse("recv 1024 10 A\nsend 32 2 z\nrecv 210000 1 q\n", "s.txt"));
  EXPECT_TRUE(c.a.ok()) << c.a;
  EXPECT_TRUE(c.b.ok()) << c.b;
}

TEST(RunScriptTest, WrongCharacterIsDataLossWithPosition) {
  Conversation c = Converse(MustParse("send 10 1 A\nsend 10 1 C\n", "c.txt"),
                            MustParse("recv 5 3 A\nrecv 5 1 B\n", "s.txt"));
  EXPECT_TRUE(absl::IsDataLoss(c.b)) << c.b;
  EXPECT_EQ(c.b.message(),
            "s.txt:1: recv 5 3 A: byte 0 of message 3 is 'C', expected 'A'");
}

TEST(RunScriptTest, PeerSendingMoreIsAnError) {
  Conversation c = Converse(MustParse("send 10 2 A\n", "c.txt"),
                            MustParse("recv 10 1 A\n", "s.txt"));
  EXPECT_TRUE(absl::IsOutOfRange(c.b)) << c.b;
  EXPECT_NE(std::string(c.b.message()).find("10 more bytes"),
            std::string::npos);
}

TEST(RunScriptTest, PeerClosingEarlyIsAnError) {
  Conversation c = Converse(MustParse("send 10 1 A\n", "c.txt"),
                            MustParse("recv 10 2 A\n", "s.txt"));
  EXPECT_TRUE(absl::IsOutOfRange(c.b)) << c.b;
  EXPECT_EQ(c.b.message(),
            "s.txt:1: recv 10 2 A: peer closed the connection after 10 of 20 "
            "bytes of this line");
}

TEST(RunScriptTest, BothReceivingTimesOut) {
  // Side a gives up first; b then sees a's shutdown.
  Conversation c = Converse(MustParse("recv 1 1 A\n", "c.txt"),
                            MustParse("recv 1 1 A\n", "s.txt"),
                            absl::Milliseconds(500), absl::Seconds(10));
  EXPECT_TRUE(absl::IsDeadlineExceeded(c.a)) << c.a;
  EXPECT_NE(std::string(c.a.message()).find("does the peer's script send"),
            std::string::npos);
  EXPECT_TRUE(absl::IsOutOfRange(c.b)) << c.b;
}

}  // namespace
}  // namespace offload::tools::cmd
