// offload-cmd script runner; see runner.h.

#include "tools/cmd/runner.h"

#include <sys/socket.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/bench/socket_util.h"

namespace offload::tools::cmd {
namespace {

constexpr size_t kChunk = 64 * 1024;

absl::Status WithContext(const absl::Status& s, const Script& script,
                         const Step& step, absl::string_view hint) {
  return absl::Status(s.code(), absl::StrCat(DescribeStep(script, step), ": ",
                                             s.message(), hint));
}

absl::Status DoSend(int fd, const Script& script, const Step& step,
                    const RunOptions& options, std::vector<char>& buf) {
  std::fill(buf.begin(), buf.end(), step.fill);
  for (uint64_t r = 0; r < step.repeat; ++r) {
    uint64_t left = step.size;
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, kChunk));
      if (absl::Status s =
              WriteFull(fd, buf.data(), n, absl::Now() + options.timeout);
          !s.ok()) {
        return WithContext(
            s, script, step,
            absl::IsDeadlineExceeded(s)
                ? " (is the peer sending too? a script pair must not both "
                  "send more than the socket buffers hold)"
                : "");
      }
      left -= n;
    }
  }
  return absl::OkStatus();
}

absl::Status DoRecv(int fd, const Script& script, const Step& step,
                    const RunOptions& options, std::vector<char>& buf) {
  const uint64_t total = step.bytes();
  uint64_t got = 0;
  while (got < total) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(total - got, buf.size()));
    absl::StatusOr<size_t> n =
        ReadSome(fd, buf.data(), want, absl::Now() + options.timeout);
    if (!n.ok()) {
      std::string hint;
      if (absl::IsDeadlineExceeded(n.status())) {
        hint = absl::StrFormat(
            " after %u of %u bytes (does the peer's script send them?)", got,
            total);
      } else if (absl::IsUnavailable(n.status())) {
        hint = " (the peer aborted the conversation; its output says why)";
      }
      return WithContext(n.status(), script, step, hint);
    }
    if (*n == 0) {
      return absl::OutOfRangeError(absl::StrFormat(
          "%s: peer closed the connection after %u of %u bytes of this line",
          DescribeStep(script, step), got, total));
    }
    for (size_t i = 0; i < *n; ++i) {
      if (buf[i] != step.fill) {
        const uint64_t at = got + i;
        return absl::DataLossError(absl::StrFormat(
            "%s: byte %u of message %u is %s, expected %s",
            DescribeStep(script, step), at % step.size, at / step.size + 1,
            ShowChar(buf[i]), ShowChar(step.fill)));
      }
    }
    got += *n;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunScript(int fd, const Script& script, const RunOptions& options,
                       std::ostream& out) {
  std::vector<char> buf(kChunk);
  uint64_t sent = 0, received = 0;
  for (const Step& step : script.steps) {
    absl::Status s = step.op == Op::kSend
                         ? DoSend(fd, script, step, options, buf)
                         : DoRecv(fd, script, step, options, buf);
    if (!s.ok()) return s;
    (step.op == Op::kSend ? sent : received) += step.bytes();
    if (options.verbose) out << DescribeStep(script, step) << ": ok\n";
  }
  // Our side is done: tell the peer, then insist that it is done too.
  if (::shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN) {
    return ErrnoStatus("shutdown(SHUT_WR)", errno);
  }
  uint64_t extra = 0;
  for (;;) {
    absl::StatusOr<size_t> n =
        ReadSome(fd, buf.data(), buf.size(), absl::Now() + options.timeout);
    if (!n.ok()) {
      return absl::Status(
          n.status().code(),
          absl::StrCat(script.name, ": end of script: waiting for the peer to "
                                    "finish: ",
                       n.status().message()));
    }
    if (*n == 0) break;
    extra += *n;
  }
  if (extra > 0) {
    return absl::OutOfRangeError(absl::StrFormat(
        "%s: end of script: the peer sent %u more bytes than this script "
        "receives",
        script.name, extra));
  }
  out << absl::StrFormat("%s: %d steps done, %u bytes sent, %u received\n",
                         script.name, script.steps.size(), sent, received);
  return absl::OkStatus();
}

}  // namespace offload::tools::cmd
