// ChannelMap: one process's mapping of a channel (shm/pipe.h): the header
// page, and each extent mapped the first time one of its slots is used.
// Used by the client library and by offloadd alike.
//
// Trust: the daemon opens channels with `untrusted` set: nothing it maps
// can fault (an extent is mapped only if the file holds it, and the file is
// sealed against shrinking) and no index it is given is used unchecked.
//
// Thread safety: Record()/RingData() are lock-free once an extent is mapped
// and safe from any thread; mapping an extent takes an internal mutex.
// Allocate()/Free() take the channel's alloc_mu (process-shared).

#ifndef OFFLOAD_SHM_CHANNEL_MAP_H_
#define OFFLOAD_SHM_CHANNEL_MAP_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "shm/pipe.h"
#include "shm/unique_fd.h"

namespace offload {
namespace shm {

class ChannelMap {
 public:
  // Maps the header of the channel in `memfd` (the map keeps the fd: it
  // maps extents and grows the file later). Returns null if the file is
  // not a channel of this ABI (magic, version, capacity, size).
  static std::unique_ptr<ChannelMap> Open(UniqueFd memfd, bool untrusted);

  // Creates a channel file of `extents` extents (the daemon): sealed
  // against shrinking only, so processes can grow it by whole extents.
  static std::unique_ptr<ChannelMap> Create(uint32_t channel_id, ChannelKind kind,
                                            uint32_t capacity, uint32_t listener_id,
                                            uint32_t extents);

  ~ChannelMap();
  ChannelMap(const ChannelMap&) = delete;
  ChannelMap& operator=(const ChannelMap&) = delete;

  ChannelHeader* header() const { return header_; }
  uint32_t id() const { return id_; }
  uint32_t capacity() const { return capacity_; }
  int memfd() const { return memfd_.get(); }

  // The record of `slot`, mapping its extent if needed; null if the slot is
  // out of range or its extent cannot be mapped (not in the file).
  PipeRecord* Record(uint32_t slot);
  // Slot `slot`'s ring data for direction `dir`, mapping its extent if
  // needed; null when Record(slot) would be.
  uint8_t* RingData(uint32_t slot, int dir);

  // Takes a free slot for a new connection (posted to `listener_id` on the
  // same host; `engine_end` 0 or 1 in engine channels, 2 otherwise), grows
  // the file if every slot is taken (up to kMaxExtents), resets the
  // record, bumps its generation and marks it open. Returns false when the
  // channel is full or cannot grow, or (`try_only`, the daemon) when the
  // allocation lock is busy.
  bool Allocate(uint32_t listener_id, uint32_t engine_end, bool try_only, uint32_t* slot,
                uint32_t* gen);
  // Puts a slot whose both ends are closed back on the free list. With
  // `try_only` (the daemon) it gives up instead of waiting for the lock
  // and returns false. The pages its rings' traffic touched go back to the
  // kernel, all but the first of each ring (the next connection in the
  // slot, LIFO, finds that one warm): memory follows the connections that
  // are open, not the most there ever were.
  bool Free(uint32_t slot, bool try_only);

 private:
  ChannelMap() = default;
  uint8_t* MapExtent(uint32_t extent);
  // Punches the touched pages of a slot being freed out of the file.
  // REQUIRES: alloc_mu held, both ends closed (nobody uses the rings).
  void ReleaseRingPages(uint32_t slot, const PipeRecord* r);

  UniqueFd memfd_;
  ChannelHeader* header_ = nullptr;
  uint32_t id_ = 0;
  uint32_t capacity_ = 0;
  uint64_t extent_bytes_ = 0;
  bool untrusted_ = false;
  pthread_mutex_t map_mu_ = PTHREAD_MUTEX_INITIALIZER;  // serialises MapExtent
  std::atomic<uint8_t*> extents_[kMaxExtents] = {};
};

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_CHANNEL_MAP_H_
