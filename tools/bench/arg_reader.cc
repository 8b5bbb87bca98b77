// Implementation of the argv reader; see arg_reader.h.

#include "tools/bench/arg_reader.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace offload::tools {

ArgReader::ArgReader(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) args_.emplace_back(argv[i]);
}

bool ArgReader::Next() {
  if (!error_.empty() || next_ >= args_.size()) return false;
  current_ = args_[next_++];
  has_inline_value_ = false;
  inline_value_.clear();
  if (current_.size() > 2 && current_[0] == '-' && current_[1] == '-') {
    const size_t eq = current_.find('=');
    if (eq != std::string::npos) {
      inline_value_ = current_.substr(eq + 1);
      current_.resize(eq);
      has_inline_value_ = true;
    }
  }
  return true;
}

bool ArgReader::Positional(std::string* out) {
  if (current_.empty() || current_[0] == '-' || has_inline_value_) {
    return false;
  }
  *out = current_;
  return true;
}

bool ArgReader::Matches(absl::string_view long_name,
                        absl::string_view short_name, bool takes_value) {
  const bool hit = (!long_name.empty() && current_ == long_name) ||
                   (!short_name.empty() && current_ == short_name);
  if (!hit) return false;
  if (!takes_value && has_inline_value_) {
    Fail(absl::StrCat(current_, " takes no value"));
  }
  return true;
}

bool ArgReader::Flag(absl::string_view long_name,
                     absl::string_view short_name) {
  return Matches(long_name, short_name, false);
}

bool ArgReader::Value(absl::string_view long_name,
                      absl::string_view short_name, std::string* out) {
  if (!Matches(long_name, short_name, true)) return false;
  if (has_inline_value_) {
    *out = inline_value_;
  } else if (next_ < args_.size()) {
    *out = args_[next_++];
  } else {
    Fail(absl::StrCat(current_, " needs a value"));
  }
  return true;
}

bool ArgReader::Uint(absl::string_view long_name, absl::string_view short_name,
                     uint64_t min, uint64_t max, uint64_t* out) {
  std::string original;
  if (!Value(long_name, short_name, &original)) return false;
  if (!error_.empty()) return true;
  std::string text = original;
  uint64_t v = 0;
  // Accept k/m suffixes (KiB, MiB) as classic tools do.
  uint64_t scale = 1;
  if (!text.empty() && (text.back() == 'k' || text.back() == 'K')) {
    scale = 1024;
    text.pop_back();
  } else if (!text.empty() && (text.back() == 'm' || text.back() == 'M')) {
    scale = 1024 * 1024;
    text.pop_back();
  }
  if (!absl::SimpleAtoi(text, &v) || v > max / scale || v * scale < min) {
    Fail(absl::StrCat(current_, " expects an integer in [", min, ", ", max,
                      "], got '", original, "'"));
    return true;
  }
  *out = v * scale;
  return true;
}

bool ArgReader::Unknown() {
  Fail(absl::StrCat("unknown option or extra argument '", current_, "'"));
  return false;
}

void ArgReader::Fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);
}

}  // namespace offload::tools
