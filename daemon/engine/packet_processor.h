// What an engine thread drives: the protocol engine (daemon/stack) implements
// PacketProcessor; the engine loop (engine.h) feeds it received frames, lets
// it transmit, fires its timers, and sleeps when it has nothing to do.
//
// Thread safety: every method is called from the one engine thread that owns
// the processor, never concurrently.

#ifndef OFFLOAD_DAEMON_ENGINE_PACKET_PROCESSOR_H_
#define OFFLOAD_DAEMON_ENGINE_PACKET_PROCESSOR_H_

#include <cstddef>
#include <cstdint>
#include <limits>

#include "daemon/engine/tx_batch.h"
#include "daemon/nic/nic.h"

namespace offload::engine {

// CLOCK_MONOTONIC nanoseconds.
using TimeNs = int64_t;
constexpr TimeNs kNoDeadline = std::numeric_limits<TimeNs>::max();
TimeNs MonotonicNowNs();

class PacketProcessor {
 public:
  virtual ~PacketProcessor() = default;

  // Frames received on the engine's queue number `queue` (index into the
  // engine's queue list). The frames are valid only during the call; the
  // engine returns them to the driver afterwards (copy what must be kept).
  // Replies may be queued on `tx` (the same queue's batch).
  virtual void OnFrames(size_t queue, const nic::RxFrame* frames, size_t n,
                        TimeNs now, TxBatch& tx) = 0;

  // Lets the processor transmit on its own account (application rings,
  // retransmissions, window updates). `tx[i]` batches for queue i.
  // Returns the amount of work done (frames queued, messages consumed);
  // 0 means there was nothing to do.
  virtual size_t PollTx(TxBatch* const* tx, size_t num_queues, TimeNs now) = 0;

  // Runs the timers due at `now`.
  virtual void OnTimers(TimeNs now) = 0;

  // Earliest pending timer (absolute), or kNoDeadline.
  virtual TimeNs NextTimerDeadline() const = 0;

  // Called after the engine announced it is about to sleep (flag set and
  // fenced, see Doorbell): true if work arrived that PollTx would do (e.g.
  // an application ring is non-empty). Must read the shared state afresh.
  virtual bool HasPendingWork() = 0;
};

}  // namespace offload::engine

#endif  // OFFLOAD_DAEMON_ENGINE_PACKET_PROCESSOR_H_
