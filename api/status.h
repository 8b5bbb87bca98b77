// Error reporting of the typed socket API: a Status (an errno value and the
// call that produced it), a Result<T> (a value or a Status) for set-up calls,
// and an IoResult (a byte count and an errno value) for data transfer.
//
// No exceptions anywhere: every call that can fail returns one of these. They
// are small value types; an IoResult is two words and is returned in
// registers, so the data path costs nothing over `ssize_t` + errno.
//
// Thread safety: values; no shared state.

#ifndef OFFLOAD_API_STATUS_H_
#define OFFLOAD_API_STATUS_H_

#include <errno.h>
#include <stddef.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace offload::sock {

// The outcome of a set-up or control call: ok, or an errno value together
// with the name of the call that failed (a string literal, e.g. "connect").
class Status {
 public:
  constexpr Status() = default;
  // REQUIRES: `op` is a string literal (or outlives every copy).
  constexpr Status(int code, const char* op) : code_(code), op_(op) {}

  constexpr bool ok() const { return code_ == 0; }
  // The errno value; 0 when ok().
  constexpr int code() const { return code_; }
  // The call that failed ("socket", "connect", ...); "" when ok().
  constexpr const char* op() const { return op_; }
  // "connect: Connection refused", or "ok".
  std::string ToString() const;

 private:
  int code_ = 0;
  const char* op_ = "";
};

// A value of type T, or the Status saying why there is none. T may be
// move-only (the socket classes are).
template <class T>
class Result {
 public:
  // Implicit on purpose, so that `return stream;` and `return status;` both
  // read naturally in factories.
  Result(T value) : value_(std::move(value)) {}  // NOLINT
  // REQUIRES: !status.ok(). (An ok Status would leave neither a value nor
  // an error; it is turned into EINVAL from "Result".)
  Result(Status status) : status_(status) {  // NOLINT
    if (status_.ok()) status_ = Status(EINVAL, "Result");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  // REQUIRES: ok(). Calling these on an error is a programming error and
  // aborts (there are no exceptions to throw).
  T& value() & { return Checked(), *value_; }
  const T& value() const& { return Checked(), *value_; }
  T&& value() && { return Checked(), std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void Checked() const {
    if (!value_.has_value()) std::abort();
  }

  std::optional<T> value_;
  Status status_;
};

// The outcome of one data-transfer call. `bytes()` is what was transferred,
// also when the call failed part way (a send_n that timed out after sending
// half); `error()` is 0 or the errno value that stopped it. A recv that
// returns ok() with bytes() == 0 for a non-empty buffer saw end of stream.
class IoResult {
 public:
  constexpr IoResult() = default;
  constexpr IoResult(size_t bytes, int error) : bytes_(bytes), error_(error) {}
  static constexpr IoResult Ok(size_t bytes) { return IoResult(bytes, 0); }
  static constexpr IoResult Error(int error, size_t bytes = 0) {
    return IoResult(bytes, error);
  }

  constexpr bool ok() const { return error_ == 0; }
  constexpr size_t bytes() const { return bytes_; }
  constexpr int error() const { return error_; }
  // The error as a Status naming `op`; ok when ok().
  constexpr Status status(const char* op) const {
    return ok() ? Status() : Status(error_, op);
  }

 private:
  size_t bytes_ = 0;
  int error_ = 0;
};

}  // namespace offload::sock

#endif  // OFFLOAD_API_STATUS_H_
