// Engine doorbell (see header for the protocol).

#include "daemon/engine/doorbell.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace offload::engine {

absl::StatusOr<std::unique_ptr<Doorbell>> Doorbell::Create() {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("eventfd for the engine doorbell: ", strerror(errno)));
  }
  return std::unique_ptr<Doorbell>(new Doorbell(fd));
}

Doorbell::~Doorbell() { close(fd_); }

void Doorbell::Ring() {
  // (d): pairs with (b) in PrepareToSleep(); orders the caller's publication
  // of work before our read of sleeping_.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!sleeping_.load(std::memory_order_relaxed)) return;
  rings_.fetch_add(1, std::memory_order_relaxed);
  uint64_t one = 1;
  // EAGAIN only if the counter would overflow: then it is already readable.
  [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof(one));
}

void Doorbell::PrepareToSleep() {
  sleeping_.store(true, std::memory_order_relaxed);  // (a)
  // (b): pairs with (d) in Ring(); orders (a) before the caller's re-check
  // of its work sources.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void Doorbell::Awake() {
  sleeping_.store(false, std::memory_order_relaxed);
  uint64_t value;
  [[maybe_unused]] ssize_t n = read(fd_, &value, sizeof(value));
}

}  // namespace offload::engine
