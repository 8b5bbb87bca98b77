// AppPipe: an application's end of a TCP connection that an engine serves.
//
// It is the same shared segment as a same-host pipe (shm::PipeHeader and two
// byte rings), with an engine instead of a second process on the other side:
// the application writes into dir[app_side] and reads dir[1 - app_side]
// exactly as it would with a same-host peer, and the engine's TCP reads and
// writes those rings in place (tcp::TxRing / tcp::RxRing, which validate the
// application's indices: untrusted input). The application cannot tell the
// difference except through PipeHeader::connect_status, which an active
// open keeps at shm::kConnectPending until the handshake ends.
//
// Wake-ups follow the pipe's need-wake-up handshake (abi.h RingIndexes) with
// the engine as the peer: the application kicks the engine's doorbell
// eventfd (handed to it as the "peer eventfd") and the engine kicks
// `app_efd`.
//
// Ownership: shared by the session manager (which hands the memfd and the
// eventfd to the application) and the engine flow (which uses the rings
// until the connection is gone); the mapping lives as long as either.
//
// Thread safety: the fields are immutable once an engine uses the pipe; the shared memory
// follows the ring protocols.

#ifndef OFFLOAD_DAEMON_WIRE_APP_PIPE_H_
#define OFFLOAD_DAEMON_WIRE_APP_PIPE_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "shm/abi.h"
#include "shm/unique_fd.h"
#include "daemon/tcp/byte_ring.h"

namespace offload::wire {

class AppPipe {
 public:
  // Creates the segment (a sealed memfd of shm::PipeSegmentBytes(capacity))
  // and the application's eventfd. `app_side`: 0 when the application is
  // the connector (active open), 1 when it is the acceptor.
  // `connect_status`: 0, or shm::kConnectPending for an active open.
  // Errors: InvalidArgument (capacity not a power of two in [4 KiB, 1 GiB]),
  // ResourceExhausted (memfd/mmap/eventfd failed: errno in the message).
  static absl::StatusOr<std::shared_ptr<AppPipe>> Create(uint32_t capacity, int app_side,
                                                         int32_t connect_status);

  AppPipe(const AppPipe&) = delete;
  AppPipe& operator=(const AppPipe&) = delete;

  shm::PipeHeader* header() const { return map_.as<shm::PipeHeader>(); }
  uint32_t capacity() const { return capacity_; }
  int app_side() const { return app_side_; }
  int memfd() const { return memfd_.get(); }
  int app_efd() const { return app_efd_.get(); }

  // The direction the application writes (the engine's TX) and the one it
  // reads (the engine's RX).
  shm::RingIndexes& to_wire() const { return header()->dir[app_side_]; }
  shm::RingIndexes& from_wire() const { return header()->dir[1 - app_side_]; }
  tcp::RingMemory TxMemory() const { return Memory(app_side_); }
  tcp::RingMemory RxMemory() const { return Memory(1 - app_side_); }

  // Wakes the application (a syscall): use after a handshake on the rings
  // said it sleeps, or for connect_status. Nothing after CloseAppEfd().
  void KickApp() const;

  // Keeps the application's shadow socket (a dup) open as long as the pipe
  // lives: the engine keeps the pipe until the connection is gone,
  // TIME-WAIT included, so the kernel cannot hand the flow's local port to
  // another socket meanwhile (RFC 9293 3.4.1: no new incarnation of the
  // 4-tuple during 2 MSL). Call before the engine sees the pipe.
  void HoldShadow(shm::UniqueFd shadow) { shadow_ = std::move(shadow); }

  // Descriptors that are no longer needed, closed early so a daemon with
  // many connections in TIME-WAIT holds one fd (the shadow) per connection:
  // the memfd once the application has its copy (session manager thread,
  // after sending it), the application's eventfd once the application
  // closed the socket (the engine thread, in Close()).
  void CloseMemfd() { memfd_.reset(); }
  void CloseAppEfd() { app_efd_.reset(); }

 private:
  AppPipe() = default;
  tcp::RingMemory Memory(int dir) const;

  shm::UniqueFd memfd_;
  shm::Mapping map_;
  shm::UniqueFd app_efd_;
  shm::UniqueFd shadow_;
  uint32_t capacity_ = 0;
  int app_side_ = 0;
};

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_APP_PIPE_H_
