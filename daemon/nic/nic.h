// The NIC driver interface: what the engine threads and the control plane
// see of a network interface whose queues offloadd owns.
//
// A NicDriver owns an interface's queues (opened at creation, released at
// destruction) and the steering state that decides which received frames come
// to offloadd; every frame not steered stays with the kernel. A NicQueue is one
// RX/TX queue pair with its buffer pool, owned by exactly one engine thread.
//
// Thread safety:
//   NicQueue: all methods except counters()/Stats() must be called from the
//     one thread that owns the queue (no internal locking; per-packet path).
//     counters()/Stats() may be called from any thread.
//   NicDriver: info(), num_queues(), queue() are immutable after creation.
//     Steer()/Unsteer() are control-plane calls, safe from any thread and
//     concurrently with the queues' data path.
// Lifetime: queues live as long as their driver.

#ifndef OFFLOAD_DAEMON_NIC_NIC_H_
#define OFFLOAD_DAEMON_NIC_NIC_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "daemon/nic/config.h"
#include "daemon/nic/counters.h"
#include "daemon/nic/flow.h"

namespace offload::nic {

// A received frame: a view into a driver-owned buffer, valid until it is
// handed back with NicQueue::ReleaseRx(). `data` starts at the Ethernet header.
struct RxFrame {
  const uint8_t* data;
  uint32_t len;
  uint64_t handle;  // driver-private buffer identity.
};

// A transmit buffer obtained from NicQueue::AllocTx(). The caller writes the
// whole Ethernet frame at `data` (at most `capacity` bytes) and sets `len`.
struct TxFrame {
  uint8_t* data;
  uint32_t capacity;
  uint32_t len;
  uint64_t handle;  // driver-private buffer identity.
};

// What the link does about TCP/UDP checksums on receive.
enum class ChecksumOffload {
  kNone,       // nothing: every received checksum is verified in software.
  // A veth: a local sender's frames may carry only the pseudo-header sum
  // (CHECKSUM_PARTIAL), which is accepted; see net::L4Checksum.
  kRxPartial,
};

struct InterfaceInfo {
  std::string name;
  int ifindex = 0;
  std::array<uint8_t, 6> mac = {};
  uint32_t mtu = 0;
  uint32_t hw_rx_queues = 0;  // RX queues the device has.
  uint32_t num_queues = 0;    // queues opened by this driver.
  DriverKind driver = DriverKind::kAfXdp;
  bool zero_copy = false;  // af_xdp: bound with XDP_ZEROCOPY.
  ChecksumOffload checksum_offload = ChecksumOffload::kNone;
};

class NicQueue {
 public:
  virtual ~NicQueue() = default;

  // Queue id on the device (0-based).
  virtual uint32_t id() const = 0;

  // Receives up to `max` frames into `frames`; returns how many. Never
  // blocks. Every returned frame must later be given to ReleaseRx().
  virtual size_t RxBurst(RxFrame* frames, size_t max) = 0;

  // Returns received buffers to the driver (they are reposted for RX).
  // REQUIRES: each frame came from RxBurst() of this queue and is released
  // once.
  virtual void ReleaseRx(const RxFrame* frames, size_t n) = 0;

  // Takes up to `n` free TX buffers (len set to 0); returns how many. Reclaims
  // TX completions first if the pool is short.
  virtual size_t AllocTx(TxFrame* frames, size_t n) = 0;

  // Returns unused TX buffers. REQUIRES: frames came from AllocTx().
  virtual void FreeTx(const TxFrame* frames, size_t n) = 0;

  // Queues frames[0..n) for transmission and kicks the device if it asks
  // for it. Returns how many were accepted (a prefix); the rest remain owned
  // by the caller (retry or FreeTx them). Accepted buffers return to the pool
  // when their completion is reclaimed.
  virtual size_t SubmitTx(const TxFrame* frames, size_t n) = 0;

  // Moves completed TX buffers back to the pool; returns how many.
  virtual size_t ReclaimTx() = 0;

  // Number of submitted frames whose completion has not been reclaimed.
  virtual size_t TxInFlight() const = 0;

  // True if RxBurst() would return at least one frame now. Cheap.
  virtual bool RxPending() const = 0;

  // Called before the owner sleeps on WaitFd(): arms the RX-readiness
  // notification and kicks the device if it needs a wake-up to keep
  // receiving. Returns false if frames arrived meanwhile (do not sleep).
  virtual bool ArmWakeup() = 0;

  // Called after WaitFd() polled readable; consumes the notification.
  virtual void AckWakeup() = 0;

  // An fd that polls readable (EPOLLIN) when RX work is pending after
  // ArmWakeup(). Owned by the queue.
  virtual int WaitFd() const = 0;

  const QueueCounters& counters() const { return counters_; }

  // Counters plus driver/kernel statistics. Any thread.
  virtual QueueStats Stats() const;

 protected:
  QueueCounters counters_;
};

class NicDriver {
 public:
  virtual ~NicDriver() = default;

  virtual const InterfaceInfo& info() const = 0;
  virtual size_t num_queues() const = 0;
  // REQUIRES: i < num_queues().
  virtual NicQueue* queue(size_t i) = 0;

  // Sends received frames matching `flow` to queue `queue` (the index of a
  // queue opened by this driver) instead of the kernel. Re-steering an
  // already steered flow moves it. Errors: InvalidArgument (bad key or
  // queue), ResourceExhausted (flow table full), Internal (kernel/NIC error,
  // with errno text).
  virtual absl::Status Steer(const FlowKey& flow, uint32_t queue) = 0;

  // Gives `flow` back to the kernel. NotFound if it was not steered.
  virtual absl::Status Unsteer(const FlowKey& flow) = 0;
};

}  // namespace offload::nic

#endif  // OFFLOAD_DAEMON_NIC_NIC_H_
