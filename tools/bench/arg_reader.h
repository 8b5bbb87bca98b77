// Command-line helpers shared by the offload test programs: exit codes and
// a minimal argv reader.
//
// Thread safety: an ArgReader has one owner thread.

#ifndef OFFLOAD_TOOLS_BENCH_ARG_READER_H_
#define OFFLOAD_TOOLS_BENCH_ARG_READER_H_

#include <stdint.h>

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace offload::tools {

// Process exit codes shared by every test program.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// A minimal argv reader: "--name value", "--name=value" and "-x value".
//
//   ArgReader args(argc, argv);
//   while (args.Next()) {
//     if (args.Flag("--verbose", "-v")) verbose = true;
//     else if (args.Value("--port", "-p", &text)) ...
//     else return args.Unknown();
//   }
//   if (!args.error().empty()) ...
class ArgReader {
 public:
  ArgReader(int argc, char** argv);

  // Advances to the next argument; false at the end or after an error.
  bool Next();
  // True if the current argument is a positional one (does not start with
  // '-'); stores it in `*out`.
  bool Positional(std::string* out);
  // True if the current argument is the switch `long_name` or `short_name`
  // (either may be empty).
  bool Flag(absl::string_view long_name, absl::string_view short_name);
  // True if the current argument names this option; stores its value. If the
  // value is missing, records an error and returns true.
  bool Value(absl::string_view long_name, absl::string_view short_name,
             std::string* out);
  // Same, parsing an unsigned integer in [min, max] (records an error if not).
  bool Uint(absl::string_view long_name, absl::string_view short_name,
            uint64_t min, uint64_t max, uint64_t* out);
  // Records "unknown option" for the current argument; returns false.
  bool Unknown();
  // Records a usage error.
  void Fail(std::string message);

  const std::string& current() const { return current_; }
  const std::string& error() const { return error_; }

 private:
  bool Matches(absl::string_view long_name, absl::string_view short_name,
               bool takes_value);

  std::vector<std::string> args_;
  size_t next_ = 0;
  std::string current_;
  std::string inline_value_;
  bool has_inline_value_ = false;
  std::string error_;
};

}  // namespace offload::tools

#endif  // OFFLOAD_TOOLS_BENCH_ARG_READER_H_
