// RAII owners for file descriptors and memory mappings, shared by the daemon
// and the preload library (libc only; closes with the raw syscall so the
// preload library never re-enters its interposed close()).
//
// Thread safety: like std::unique_ptr.

#ifndef OFFLOAD_SHM_UNIQUE_FD_H_
#define OFFLOAD_SHM_UNIQUE_FD_H_

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

namespace offload {
namespace shm {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) (void)syscall(SYS_close, fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// An mmap()ed region, unmapped on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len) : addr_(addr), len_(len) {}
  Mapping(Mapping&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    reset();
    addr_ = std::exchange(o.addr_, nullptr);
    len_ = std::exchange(o.len_, 0);
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  // Maps `len` bytes of `fd` shared read-write. Returns an invalid Mapping
  // (errno set) on failure.
  // Reserved PROT_NONE, then opened with mprotect(): under
  // mlockall(MCL_FUTURE) a read-write shared mmap() is populated at once
  // (the 33 MB attach arena: ~27 ms in a process's first socket(), more on
  // a loaded host), while the kernel populates neither a PROT_NONE mapping
  // nor a shared one that mprotect() opens (mm/mprotect.c populates only
  // private locked mappings): pages fault in when touched (shm/
  // channel_map.cc does the same for its extents).
  static Mapping MapShared(int fd, size_t len) {
    void* p = mmap(nullptr, len, PROT_NONE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return Mapping();
    if (mprotect(p, len, PROT_READ | PROT_WRITE) != 0) {
      munmap(p, len);
      return Mapping();
    }
    return Mapping(p, len);
  }

  void* get() const { return addr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(addr_); }
  size_t size() const { return len_; }
  bool valid() const { return addr_ != nullptr; }
  // Gives up ownership: the region stays mapped for the process lifetime.
  void* release() {
    len_ = 0;
    return std::exchange(addr_, nullptr);
  }
  void reset() {
    if (addr_ != nullptr) munmap(addr_, len_);
    addr_ = nullptr;
    len_ = 0;
  }

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_UNIQUE_FD_H_
