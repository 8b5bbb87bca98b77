// AppPipe: an application's end of a TCP connection that an engine serves.
//
// It is a slot of an engine channel (shm/pipe.h): the same record and rings
// as a same-host pipe, with an engine instead of a second process at end
// `1 - app_end`. The application writes dir[app_end] and reads
// dir[1 - app_end] exactly as it would with a same-host peer, and the
// engine's TCP reads and writes those rings in place (tcp::TxRing /
// tcp::RxRing, which validate the application's indices: untrusted input).
// The application cannot tell the difference except through
// PipeControl::connect_status, which an active open keeps at
// shm::kConnectPending until the handshake ends.
//
// Slots of engine channels are allocated and freed by the daemon only
// (EngineChannel). The slot is freed when both ends are closed: the
// engine's once the connection is gone (TIME-WAIT included), the
// application's when the last holder of its socket closed it.
//
// Ownership: shared by the session manager and the engine flow; the
// channel mapping lives as long as any AppPipe of it.
//
// Thread safety: the fields are immutable once an engine uses the pipe;
// the shared memory follows the ring protocols. EngineChannel is
// thread-safe.

#ifndef OFFLOAD_DAEMON_WIRE_APP_PIPE_H_
#define OFFLOAD_DAEMON_WIRE_APP_PIPE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/tcp/byte_ring.h"
#include "daemon/tcp/socket_options.h"
#include "shm/channel_map.h"
#include "shm/pipe.h"
#include "shm/unique_fd.h"

namespace offload::wire {

// A channel whose slots the daemon allocates for one engine's connections
// of one process (active opens) or one listener (passive opens).
class EngineChannel {
 public:
  // Errors: ResourceExhausted (memfd/mmap failed: errno in the message),
  // InvalidArgument (capacity not a power of two in [4 KiB, 256 MiB]).
  static absl::StatusOr<std::shared_ptr<EngineChannel>> Create(uint32_t id, uint32_t capacity);

  uint32_t id() const { return map_->id(); }
  uint32_t capacity() const { return map_->capacity(); }
  int memfd() const { return map_->memfd(); }
  shm::ChannelMap* map() const { return map_.get(); }

  // Takes a slot whose end `engine_end` an engine serves. False when the
  // channel is full.
  bool Allocate(uint32_t engine_end, uint32_t* slot, uint32_t* gen);
  // Frees `slot` if it still has generation `gen` and both ends are closed.
  void Free(uint32_t slot, uint32_t gen);
  // Slots in use (statistics).
  uint64_t InUse() const;

 private:
  explicit EngineChannel(std::unique_ptr<shm::ChannelMap> map) : map_(std::move(map)) {}
  absl::Mutex mu_;  // serialises the daemon's allocations and frees
  std::unique_ptr<shm::ChannelMap> map_;
};

// The options an application published (shm::SockOpts, untrusted: the
// stack validates every value) in the stack's terms.
tcp::SocketOptions ToSocketOptions(const shm::SockOpts& o);

class AppPipe {
 public:
  // Takes a slot of `chan` for a connection whose application end is
  // `app_end` (0 connector, 1 acceptor). `connect_status`: 0, or
  // shm::kConnectPending for an active open. ResourceExhausted when the
  // channel is full.
  static absl::StatusOr<std::shared_ptr<AppPipe>> Create(std::shared_ptr<EngineChannel> chan,
                                                         int app_end, int32_t connect_status);
  // Frees the slot if the application end is closed too (else the
  // application's close frees it: see FreeIfDone).
  ~AppPipe();

  AppPipe(const AppPipe&) = delete;
  AppPipe& operator=(const AppPipe&) = delete;

  shm::PipeRecord* record() const { return record_; }
  EngineChannel* channel() const { return chan_.get(); }
  uint32_t slot() const { return slot_; }
  uint32_t gen() const { return gen_; }
  uint32_t capacity() const { return chan_->capacity(); }
  int app_end() const { return app_end_; }

  // The direction the application writes (the engine's TX) and the one it
  // reads (the engine's RX).
  shm::RingIndexes& to_wire() const { return record_->dir[app_end_]; }
  shm::RingIndexes& from_wire() const { return record_->dir[1 - app_end_]; }
  tcp::RingMemory TxMemory() const { return Memory(app_end_); }
  tcp::RingMemory RxMemory() const { return Memory(1 - app_end_); }

  // True once the application closed its end (PipeControl::closed).
  bool AppClosed() const {
    // Acquire: pairs with the closer's fetch_or in shm::CloseEnd().
    return (record_->ctl.closed.load(std::memory_order_acquire) >> app_end_) & 1;
  }

  // Keeps a kernel socket bound to the connection's local port until the
  // connection is gone (TIME-WAIT included), so the kernel cannot hand the
  // port to another socket meanwhile (RFC 9293 3.4.1). Engine thread or
  // control thread; the last one given is kept.
  void HoldPort(shm::UniqueFd fd);

  // The engine's end is finished (the connection is gone): marks it closed
  // and frees the slot if the application end is closed too.
  void EngineDone();
  // The pipe was never handed to an application: both ends are closed and
  // the slot is freed.
  void Abandon();

 private:
  AppPipe() = default;
  tcp::RingMemory Memory(int dir) const;

  std::shared_ptr<EngineChannel> chan_;
  shm::PipeRecord* record_ = nullptr;
  uint32_t slot_ = 0;
  uint32_t gen_ = 0;
  int app_end_ = 0;
  bool engine_done_ = false;
  absl::Mutex port_mu_;
  shm::UniqueFd port_ ABSL_GUARDED_BY(port_mu_);
};

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_APP_PIPE_H_
