// offload-cmd script parser and pair checker; see script.h.

#include "tools/cmd/script.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace offload::tools::cmd {
namespace {

struct Token {
  absl::string_view text;
  int column = 0;  // 1-based
};

// Splits one line (comment already removed) at whitespace.
std::vector<Token> Tokenize(absl::string_view line) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i >= line.size()) break;
    const size_t begin = i;
    while (i < line.size() && !isspace(static_cast<unsigned char>(line[i]))) ++i;
    tokens.push_back({line.substr(begin, i - begin), static_cast<int>(begin) + 1});
  }
  return tokens;
}

absl::Status ParseError(absl::string_view name, int line, int column,
                        absl::string_view expected, absl::string_view got) {
  return absl::InvalidArgumentError(absl::StrCat(
      name, ":", line, ":", column, ": expected ", expected,
      got.empty() ? ", got end of line" : absl::StrCat(", got '", got, "'")));
}

absl::StatusOr<uint64_t> ParseCount(absl::string_view name, int line,
                                    const Token& tok, uint64_t max,
                                    absl::string_view what) {
  uint64_t v = 0;
  const bool digits =
      !tok.text.empty() &&
      tok.text.find_first_not_of("0123456789") == absl::string_view::npos;
  if (!digits || !absl::SimpleAtoi(tok.text, &v) || v < 1 || v > max) {
    return ParseError(name, line, tok.column,
                      absl::StrCat(what, " (an integer from 1 to ", max, ")"),
                      tok.text);
  }
  return v;
}

// One direction of a conversation as runs of equal bytes.
struct Run {
  char fill;
  uint64_t bytes;
  int line;
};

std::vector<Run> Runs(const Script& script, Op op) {
  std::vector<Run> runs;
  for (const Step& s : script.steps) {
    if (s.op != op) continue;
    runs.push_back({s.fill, s.bytes(), s.line});
  }
  return runs;
}

// Compares what `sender` sends with what `receiver` receives.
absl::Status CompareDirection(const Script& sender, const Script& receiver) {
  const std::vector<Run> tx = Runs(sender, Op::kSend);
  const std::vector<Run> rx = Runs(receiver, Op::kRecv);
  size_t i = 0, j = 0;
  uint64_t ti = 0, rj = 0;  // bytes consumed within tx[i], rx[j]
  uint64_t offset = 0;
  const std::string dir = absl::StrCat(sender.name, " -> ", receiver.name);
  while (i < tx.size() && j < rx.size()) {
    if (tx[i].fill != rx[j].fill) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: at stream offset %u %s:%d sends %s but %s:%d expects %s", dir,
          offset, sender.name, tx[i].line, ShowChar(tx[i].fill),
          receiver.name, rx[j].line, ShowChar(rx[j].fill)));
    }
    const uint64_t n = std::min(tx[i].bytes - ti, rx[j].bytes - rj);
    ti += n;
    rj += n;
    offset += n;
    if (ti == tx[i].bytes) ++i, ti = 0;
    if (rj == rx[j].bytes) ++j, rj = 0;
  }
  if (i < tx.size()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: %s:%d sends bytes from stream offset %u on that %s never "
        "receives",
        dir, sender.name, tx[i].line, offset, receiver.name));
  }
  if (j < rx.size()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: %s:%d expects bytes from stream offset %u on that %s never "
        "sends",
        dir, receiver.name, rx[j].line, offset, sender.name));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ShowChar(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (isprint(u) && u != '\'') return absl::StrFormat("'%c'", c);
  return absl::StrFormat("0x%02x", u);
}

std::string DescribeStep(const Script& script, const Step& step) {
  return absl::StrFormat("%s:%d: %s %u %u %c", script.name, step.line,
                         step.op == Op::kSend ? "send" : "recv", step.size,
                         step.repeat, step.fill);
}

absl::StatusOr<Script> ParseScript(absl::string_view text,
                                   absl::string_view name) {
  Script script;
  script.name = std::string(name);
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == absl::string_view::npos) eol = text.size();
    absl::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (const size_t hash = line.find('#'); hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    const std::vector<Token> tok = Tokenize(line);
    if (tok.empty()) continue;
    Step step;
    step.line = line_no;
    if (tok[0].text == "send") {
      step.op = Op::kSend;
    } else if (tok[0].text == "recv") {
      step.op = Op::kRecv;
    } else {
      return ParseError(name, line_no, tok[0].column, "'send' or 'recv'",
                        tok[0].text);
    }
    const int eol_col = static_cast<int>(line.size()) + 1;
    if (tok.size() < 2) {
      return ParseError(name, line_no, eol_col,
                        "a message size (an integer from 1 to 67108864)", "");
    }
    absl::StatusOr<uint64_t> size =
        ParseCount(name, line_no, tok[1], kMaxSize, "a message size");
    if (!size.ok()) return size.status();
    if (tok.size() < 3) {
      return ParseError(name, line_no, eol_col,
                        "a repeat count (an integer from 1 to 1000000000)", "");
    }
    absl::StatusOr<uint64_t> repeat =
        ParseCount(name, line_no, tok[2], kMaxRepeat, "a repeat count");
    if (!repeat.ok()) return repeat.status();
    if (tok.size() < 4) {
      return ParseError(name, line_no, eol_col,
                        "a fill character (one printable character)", "");
    }
    if (tok[3].text.size() != 1) {
      return ParseError(name, line_no, tok[3].column,
                        "a fill character (one printable character)",
                        tok[3].text);
    }
    if (tok.size() > 4) {
      return ParseError(name, line_no, tok[4].column,
                        "end of line after the fill character", tok[4].text);
    }
    step.size = *size;
    step.repeat = *repeat;
    step.fill = tok[3].text[0];
    if (step.size > kMaxLineBytes / step.repeat) {
      return ParseError(name, line_no, tok[2].column,
                        "size x repeat of at most 1 TiB", tok[2].text);
    }
    script.steps.push_back(step);
  }
  return script;
}

absl::StatusOr<Script> LoadScript(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    std::string what = absl::StrCat("cannot read script '", path, "': ",
                                    strerror(err));
    return err == EACCES ? absl::PermissionDeniedError(what)
                         : absl::NotFoundError(what);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseScript(text.str(), path);
}

absl::Status CheckPair(const Script& client, const Script& server) {
  if (absl::Status s = CompareDirection(client, server); !s.ok()) return s;
  return CompareDirection(server, client);
}

}  // namespace offload::tools::cmd
