// AppDgram: the shared rings between an application's UDP socket and the
// engine that serves it on the wire.
//
// One sealed memfd of shm::WireUdpSegmentBytes(capacity) holding two
// datagram rings (abi.h DgramHeader, both with kDgramAddrPerRecord):
//   ring 0 (tx): the application appends datagrams, each record carrying
//       its destination; the engine reads them with
//       shm::CheckedDgramConsumer (untrusted input) and sends them;
//   ring 1 (rx): the engine appends the datagrams its stack received for
//       the socket, each record carrying its source; the application
//       reads them like any incoming same-host ring.
// Wake-ups follow the rings' need-wake-up handshake (abi.h RingIndexes):
// the application kicks the engine's doorbell eventfd, the engine kicks the
// socket's own eventfd (`app_efd`, a duplicate of the one the application
// registered with its UDP endpoint).
//
// Ownership: shared by the session manager (which hands the memfd to the
// application) and the engine endpoint (which uses the rings until it is
// closed); the mapping lives as long as either.
//
// Thread safety: the fields are immutable after Create(); the shared memory
// follows the ring protocols.

#ifndef OFFLOAD_DAEMON_WIRE_APP_DGRAM_H_
#define OFFLOAD_DAEMON_WIRE_APP_DGRAM_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "shm/abi.h"
#include "shm/unique_fd.h"

namespace offload::wire {

class AppDgram {
 public:
  // Creates the segment and takes a duplicate of `app_efd` (the socket's
  // eventfd; the caller keeps its own). `local_addr`/`local_port` (network
  // order) are recorded in the tx ring's header for diagnostics;
  // `max_payload` is the largest datagram the engine sends (MTU - 28).
  // Errors: InvalidArgument (capacity not a power of two in
  // [2 * the largest record, 1 GiB]), ResourceExhausted (memfd, mmap or dup
  // failed: errno in the message).
  static absl::StatusOr<std::shared_ptr<AppDgram>> Create(uint32_t capacity, int app_efd,
                                                          uint32_t local_addr,
                                                          uint16_t local_port,
                                                          uint16_t max_payload);

  AppDgram(const AppDgram&) = delete;
  AppDgram& operator=(const AppDgram&) = delete;

  shm::DgramHeader* tx_header() const { return map_.as<shm::DgramHeader>(); }
  shm::DgramHeader* rx_header() const {
    return reinterpret_cast<shm::DgramHeader*>(map_.as<uint8_t>() +
                                               shm::DgramSegmentBytes(capacity_));
  }
  uint32_t capacity() const { return capacity_; }
  uint16_t max_payload() const { return max_payload_; }
  int memfd() const { return memfd_.get(); }

  // Wakes the application (a syscall): after a ring handshake said it
  // sleeps.
  void KickApp() const;

 private:
  AppDgram() = default;

  shm::UniqueFd memfd_;
  shm::Mapping map_;
  shm::UniqueFd app_efd_;
  uint32_t capacity_ = 0;
  uint16_t max_payload_ = 0;
};

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_APP_DGRAM_H_
