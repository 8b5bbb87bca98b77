// Application pipes served by an engine (see header).
#include "daemon/wire/app_pipe.h"

#include <errno.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace offload::wire {

tcp::SocketOptions ToSocketOptions(const shm::SockOpts& o) {
  tcp::SocketOptions t;
  t.nodelay = (o.flags & shm::kOptNodelay) != 0;
  t.cork = (o.flags & shm::kOptCork) != 0;
  t.keepalive = (o.flags & shm::kOptKeepalive) != 0;
  t.linger_zero = (o.flags & shm::kOptLingerZero) != 0;
  t.keepidle_s = o.keepidle_s;
  t.keepintvl_s = o.keepintvl_s;
  t.keepcnt = o.keepcnt;
  t.user_timeout_ms = o.user_timeout_ms;
  t.maxseg = o.maxseg;
  t.rcvbuf = o.rcvbuf;
  t.sndbuf = o.sndbuf;
  return t;
}

absl::StatusOr<std::shared_ptr<EngineChannel>> EngineChannel::Create(uint32_t id,
                                                                     uint32_t capacity) {
  if (capacity < 4096 || capacity > (1u << 28) || (capacity & (capacity - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pipe capacity ", capacity, " is not a power of two in [4096, 2^28]"));
  }
  std::unique_ptr<shm::ChannelMap> map =
      shm::ChannelMap::Create(id, shm::ChannelKind::kEngine, capacity, 0, 1);
  if (map == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create an engine channel: ", strerror(errno)));
  }
  return std::shared_ptr<EngineChannel>(new EngineChannel(std::move(map)));
}

bool EngineChannel::Allocate(uint32_t engine_end, uint32_t* slot, uint32_t* gen) {
  absl::MutexLock l(&mu_);
  // try_only: an application could hold the channel's lock forever; then
  // this connection is refused rather than an engine blocked.
  return map_->Allocate(0, engine_end, /*try_only=*/true, slot, gen);
}

void EngineChannel::Free(uint32_t slot, uint32_t gen) {
  absl::MutexLock l(&mu_);
  shm::PipeRecord* r = map_->Record(slot);
  if (r == nullptr || r->ctl.gen.load(std::memory_order_acquire) != gen ||
      r->ctl.closed.load(std::memory_order_acquire) != 3u) {
    return;
  }
  map_->Free(slot, /*try_only=*/true);
}

uint64_t EngineChannel::InUse() const {
  const shm::ChannelHeader* h = map_->header();
  return h->allocs.load(std::memory_order_relaxed) - h->frees.load(std::memory_order_relaxed);
}

absl::StatusOr<std::shared_ptr<AppPipe>> AppPipe::Create(std::shared_ptr<EngineChannel> chan,
                                                         int app_end, int32_t connect_status) {
  if (chan == nullptr || (app_end != 0 && app_end != 1)) {
    return absl::InvalidArgumentError("engine pipe without a channel or with a bad end");
  }
  std::shared_ptr<AppPipe> p(new AppPipe());
  if (!chan->Allocate(static_cast<uint32_t>(1 - app_end), &p->slot_, &p->gen_)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("engine channel ", chan->id(), " has no free connection slot"));
  }
  p->record_ = chan->map()->Record(p->slot_);
  p->chan_ = std::move(chan);
  p->app_end_ = app_end;
  p->record_->ctl.connect_status.store(connect_status, std::memory_order_release);
  return p;
}

AppPipe::~AppPipe() {
  if (chan_ == nullptr) return;
  if (!engine_done_) EngineDone();
}

void AppPipe::HoldPort(shm::UniqueFd fd) {
  absl::MutexLock l(&port_mu_);
  port_ = std::move(fd);
}

void AppPipe::EngineDone() {
  if (engine_done_) return;
  engine_done_ = true;
  const uint32_t bit = 1u << (1 - app_end_);
  // acq_rel: pairs with the application's CloseEnd() fetch_or; whoever
  // sets the second bit frees (the application asks offloadd to).
  const uint32_t prev = record_->ctl.closed.fetch_or(bit, std::memory_order_acq_rel);
  if ((prev | bit) == 3u) chan_->Free(slot_, gen_);
  absl::MutexLock l(&port_mu_);
  port_.reset();
}

void AppPipe::Abandon() {
  record_->ctl.closed.fetch_or(1u << app_end_, std::memory_order_acq_rel);
  EngineDone();
}

tcp::RingMemory AppPipe::Memory(int dir) const {
  shm::RingIndexes& idx = record_->dir[dir];
  return tcp::RingMemory{chan_->map()->RingData(slot_, dir), chan_->capacity(), &idx.head,
                         &idx.tail};
}

}  // namespace offload::wire
