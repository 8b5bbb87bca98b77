// ChannelMap (channel_map.h).

#include "shm/channel_map.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <new>

#include "shm/abi.h"

namespace offload {
namespace shm {

namespace {

bool ValidCapacity(uint32_t c) { return c >= 4096 && c <= (1u << 28) && (c & (c - 1)) == 0; }

uint64_t FileSize(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

void InitRobustMutex(pthread_mutex_t* mu) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(mu, &a);
  pthread_mutexattr_destroy(&a);
}

// Takes alloc_mu; false only with `try_only` when it is busy.
bool LockAlloc(ChannelHeader* h, bool try_only) {
  const int rc = try_only ? pthread_mutex_trylock(&h->alloc_mu) : pthread_mutex_lock(&h->alloc_mu);
  if (rc == EOWNERDEAD) {
    // The holder died mid-allocation: the free list and next_unused are
    // each updated by one store, so they are consistent; at worst a slot
    // it took is lost to this channel.
    pthread_mutex_consistent(&h->alloc_mu);
    return true;
  }
  return rc == 0;
}

}  // namespace

std::unique_ptr<ChannelMap> ChannelMap::Create(uint32_t channel_id, ChannelKind kind,
                                               uint32_t capacity, uint32_t listener_id,
                                               uint32_t extents) {
  if (!ValidCapacity(capacity) || extents == 0 || extents > kMaxExtents) return nullptr;
  UniqueFd fd(memfd_create("offload-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return nullptr;
  if (ftruncate(fd.get(), static_cast<off_t>(ChannelBytes(capacity, extents))) != 0 ||
      fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    return nullptr;
  }
  void* p = mmap(nullptr, kChannelHeaderBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return nullptr;
  auto* h = new (p) ChannelHeader();
  h->magic = kChannelMagic;
  h->abi_version = kAbiVersion;
  h->channel_id = channel_id;
  h->kind = kind;
  h->capacity = capacity;
  h->listener_id = listener_id;
  h->max_extents = kMaxExtents;
  h->extent_bytes = ExtentBytes(capacity);
  InitRobustMutex(&h->alloc_mu);
  h->free_head = kNoSlot;
  h->next_unused = 0;
  h->num_extents.store(extents, std::memory_order_release);
  munmap(p, kChannelHeaderBytes);
  return Open(std::move(fd), /*untrusted=*/true);
}

std::unique_ptr<ChannelMap> ChannelMap::Open(UniqueFd memfd, bool untrusted) {
  if (!memfd.valid() || FileSize(memfd.get()) < kChannelHeaderBytes) return nullptr;
  void* p = mmap(nullptr, kChannelHeaderBytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  if (p == MAP_FAILED) return nullptr;
  auto* h = static_cast<ChannelHeader*>(p);
  // Copies, validated: the daemon never re-reads these from the file.
  const uint32_t capacity = h->capacity;
  if (h->magic != kChannelMagic || h->abi_version != kAbiVersion || !ValidCapacity(capacity) ||
      h->extent_bytes != ExtentBytes(capacity)) {
    munmap(p, kChannelHeaderBytes);
    return nullptr;
  }
  std::unique_ptr<ChannelMap> m(new (std::nothrow) ChannelMap());
  if (m == nullptr) {
    munmap(p, kChannelHeaderBytes);
    return nullptr;
  }
  m->memfd_ = std::move(memfd);
  m->header_ = h;
  m->id_ = h->channel_id;
  m->capacity_ = capacity;
  m->extent_bytes_ = ExtentBytes(capacity);
  m->untrusted_ = untrusted;
  return m;
}

ChannelMap::~ChannelMap() {
  for (uint32_t e = 0; e < kMaxExtents; ++e) {
    uint8_t* p = extents_[e].load(std::memory_order_relaxed);
    if (p != nullptr) munmap(p, extent_bytes_);
  }
  if (header_ != nullptr) munmap(header_, kChannelHeaderBytes);
}

uint8_t* ChannelMap::MapExtent(uint32_t extent) {
  pthread_mutex_lock(&map_mu_);
  uint8_t* p = extents_[extent].load(std::memory_order_acquire);
  if (p == nullptr) {
    const uint64_t off = ExtentOffset(capacity_, extent);
    // The file must hold the whole extent (it only grows: sealed against
    // shrinking), so nothing mapped here can fault later.
    if (FileSize(memfd_.get()) >= off + extent_bytes_) {
      // Reserved inaccessible, then opened: a process under
      // mlockall(MCL_FUTURE) (packetdrill, latency-minded servers) would
      // otherwise populate the whole extent at mmap() -- 32 MiB of shared
      // pages at the default capacity, ~27 ms before a first connect()'s SYN
      // can leave. The kernel does not populate a PROT_NONE mapping, and
      // mprotect() populates only private locked mappings (mm/mprotect.c), so
      // the pages of a shared one fault in when a slot touches them (and stay
      // locked then). Linux's own socket buffers are not the application's
      // memory either.
      void* m = mmap(nullptr, extent_bytes_, PROT_NONE, MAP_SHARED, memfd_.get(),
                     static_cast<off_t>(off));
      if (m != MAP_FAILED && mprotect(m, extent_bytes_, PROT_READ | PROT_WRITE) != 0) {
        munmap(m, extent_bytes_);
        m = MAP_FAILED;
      }
      if (m != MAP_FAILED) {
        p = static_cast<uint8_t*>(m);
        // Release: the mapping before other threads use the pointer.
        extents_[extent].store(p, std::memory_order_release);
      }
    }
  }
  pthread_mutex_unlock(&map_mu_);
  return p;
}

PipeRecord* ChannelMap::Record(uint32_t slot) {
  const uint32_t extent = slot / kSlotsPerExtent;
  if (extent >= kMaxExtents) return nullptr;
  uint8_t* p = extents_[extent].load(std::memory_order_acquire);
  if (p == nullptr) p = MapExtent(extent);
  return p == nullptr ? nullptr : RecordIn(p, slot % kSlotsPerExtent);
}

uint8_t* ChannelMap::RingData(uint32_t slot, int dir) {
  if (Record(slot) == nullptr) return nullptr;
  uint8_t* p = extents_[slot / kSlotsPerExtent].load(std::memory_order_acquire);
  return RingDataIn(p, capacity_, slot % kSlotsPerExtent, dir);
}

bool ChannelMap::Allocate(uint32_t listener_id, uint32_t engine_end, bool try_only,
                          uint32_t* slot, uint32_t* gen) {
  ChannelHeader* h = header_;
  if (!LockAlloc(h, try_only)) return false;
  uint32_t s = h->free_head;
  PipeRecord* r = nullptr;
  if (s != kNoSlot) {
    r = Record(s);
    if (r == nullptr || r->ctl.state.load(std::memory_order_relaxed) != kSlotFree) {
      // A corrupt list (a process wrote it): forget it, carve new slots.
      h->free_head = kNoSlot;
      s = kNoSlot;
    } else {
      h->free_head = r->ctl.free_next;
    }
  }
  if (s == kNoSlot) {
    uint32_t extents = h->num_extents.load(std::memory_order_acquire);
    if (h->next_unused >= extents * kSlotsPerExtent) {
      if (extents >= kMaxExtents) {
        pthread_mutex_unlock(&h->alloc_mu);
        return false;
      }
      // Grow by one extent (never shrink: the seal refuses it, and another
      // process may have grown it further meanwhile).
      const uint64_t want = ChannelBytes(capacity_, extents + 1);
      if (FileSize(memfd_.get()) < want && ftruncate(memfd_.get(), static_cast<off_t>(want)) != 0 &&
          FileSize(memfd_.get()) < want) {
        pthread_mutex_unlock(&h->alloc_mu);
        return false;
      }
      h->num_extents.store(extents + 1, std::memory_order_release);
    }
    s = h->next_unused;
    r = Record(s);
    if (r == nullptr) {
      pthread_mutex_unlock(&h->alloc_mu);
      return false;
    }
    h->next_unused = s + 1;
  }
  ResetRecord(r, listener_id, engine_end);
  *gen = r->ctl.gen.load(std::memory_order_relaxed) + 1;
  r->ctl.gen.store(*gen, std::memory_order_relaxed);
  // Release: the reset record before anyone who sees it open.
  r->ctl.state.store(kSlotOpen, std::memory_order_release);
  pthread_mutex_unlock(&h->alloc_mu);
  h->allocs.fetch_add(1, std::memory_order_relaxed);
  *slot = s;
  return true;
}

void ChannelMap::ReleaseRingPages(uint32_t slot, const PipeRecord* r) {
  constexpr uint64_t kPage = 4096;
  const uint64_t base = ExtentOffset(capacity_, slot / kSlotsPerExtent) +
                        uint64_t{kSlotsPerExtent} * kPipeRecordBytes;
  for (int dir = 0; dir < 2; ++dir) {
    // `tail` counts the bytes ever written since the slot was allocated
    // (ResetRecord): the ring's pages up to there were touched. Read from
    // shared memory, so only ever used clamped to the ring.
    const uint64_t used = std::min<uint64_t>(r->dir[dir].tail.load(std::memory_order_relaxed),
                                             capacity_);
    if (used <= kPage) continue;
    const uint64_t ring = base + (uint64_t{slot % kSlotsPerExtent} * 2 + dir) * capacity_;
    const uint64_t len = (used + kPage - 1) / kPage * kPage - kPage;
    // Best effort: a kernel without hole punching on shmem keeps the pages.
    fallocate(memfd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
              static_cast<off_t>(ring + kPage), static_cast<off_t>(len));
  }
}

bool ChannelMap::Free(uint32_t slot, bool try_only) {
  PipeRecord* r = Record(slot);
  if (r == nullptr) return true;  // nothing to free
  ChannelHeader* h = header_;
  if (!LockAlloc(h, try_only)) return false;
  if (r->ctl.state.load(std::memory_order_relaxed) == kSlotOpen) {
    ReleaseRingPages(slot, r);
    r->ctl.state.store(kSlotFree, std::memory_order_release);
    r->ctl.free_next = h->free_head;
    h->free_head = slot;
    h->frees.fetch_add(1, std::memory_order_relaxed);
  }
  pthread_mutex_unlock(&h->alloc_mu);
  return true;
}

}  // namespace shm
}  // namespace offload
