// Application pipes served by an engine (see header).
#include "daemon/wire/app_pipe.h"

#include <errno.h>
#include <sys/eventfd.h>

#include <cstring>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "shm/segment.h"
#include "shm/wakeup.h"

namespace offload::wire {

absl::StatusOr<std::shared_ptr<AppPipe>> AppPipe::Create(uint32_t capacity, int app_side,
                                                         int32_t connect_status) {
  if (capacity < 4096 || capacity > (1u << 30) || (capacity & (capacity - 1)) != 0 ||
      (app_side != 0 && app_side != 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("pipe capacity ", capacity, " is not a power of two in [4096, 2^30]"));
  }
  std::shared_ptr<AppPipe> p(new AppPipe());
  p->memfd_ = shm::MakeSealedMemfd("offload-wire", shm::PipeSegmentBytes(capacity), &p->map_);
  if (!p->memfd_.valid()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create a ", shm::PipeSegmentBytes(capacity),
                     "-byte pipe segment: ", strerror(errno)));
  }
  p->app_efd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!p->app_efd_.valid()) {
    return absl::ResourceExhaustedError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  p->capacity_ = capacity;
  p->app_side_ = app_side;
  auto* h = new (p->map_.get()) shm::PipeHeader();
  h->magic = shm::kPipeMagic;
  h->capacity = capacity;
  h->connect_status.store(connect_status, std::memory_order_relaxed);
  return p;
}

tcp::RingMemory AppPipe::Memory(int dir) const {
  shm::RingIndexes& idx = header()->dir[dir];
  return tcp::RingMemory{map_.as<uint8_t>() + shm::PipeDataOffset(dir, capacity_), capacity_,
                         &idx.head, &idx.tail};
}

void AppPipe::KickApp() const {
  if (app_efd_.valid()) shm::Kick(app_efd_.get());
}

}  // namespace offload::wire
