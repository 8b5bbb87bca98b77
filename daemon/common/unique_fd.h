// UniqueFd: owns a file descriptor and closes it on destruction.
//
// Thread safety: like a plain int; one owner at a time.

#ifndef OFFLOAD_DAEMON_COMMON_UNIQUE_FD_H_
#define OFFLOAD_DAEMON_COMMON_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace offload {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership; the caller must close the returned fd.
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace offload

#endif  // OFFLOAD_DAEMON_COMMON_UNIQUE_FD_H_
