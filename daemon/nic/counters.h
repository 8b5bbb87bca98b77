// Per-queue NIC counters. Written by the one engine thread that owns the
// queue, read by the control plane at any time.
//
// Thread safety: each counter has a single writer (the owning engine thread);
// see common::SingleWriterCounter.

#ifndef OFFLOAD_DAEMON_NIC_COUNTERS_H_
#define OFFLOAD_DAEMON_NIC_COUNTERS_H_

#include <cstdint>

#include "daemon/common/counter.h"

namespace offload::nic {

using common::SingleWriterCounter;

// Why a frame was dropped or could not be sent. Kernel-side drops reported
// by the driver (e.g. AF_XDP XDP_STATISTICS) are in QueueStats below.
enum class DropReason : int {
  kRxInvalidDescriptor = 0,  // RX descriptor outside the buffer pool.
  kRxTruncated,              // frame longer than a buffer / CQE error.
  kTxNoBuffer,               // AllocTx found the buffer pool empty.
  kTxRingFull,               // frames discarded by an owner that gave up
                             // retrying a full TX ring (a refused SubmitTx
                             // itself only counts ring_full: the frames
                             // stay with the caller).
  kTxError,                  // driver reported a send error (CQE, sendto).
  kCount,
};

const char* DropReasonName(DropReason reason);

struct QueueCounters {
  SingleWriterCounter rx_packets;
  SingleWriterCounter rx_bytes;
  SingleWriterCounter tx_packets;
  SingleWriterCounter tx_bytes;
  SingleWriterCounter polls;        // RxBurst calls.
  SingleWriterCounter empty_polls;  // RxBurst calls that returned nothing.
  SingleWriterCounter wakeups;      // syscalls made to kick the kernel/NIC.
  SingleWriterCounter ring_full;    // fill/TX ring found full.
  SingleWriterCounter drops[static_cast<int>(DropReason::kCount)];
  // Injected on purpose by FaultNicQueue (OFFLOADD_FAULT); zero otherwise.
  SingleWriterCounter fault_rx_drops;
  SingleWriterCounter fault_tx_drops;
  SingleWriterCounter fault_rx_reorders;  // frames held back (reordered)
  SingleWriterCounter fault_tx_reorders;

  void Drop(DropReason reason, uint64_t n = 1) {
    drops[static_cast<int>(reason)].Add(n);
  }
};

// A plain copy of the counters plus what the kernel/NIC reports.
struct QueueStats {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;
  uint64_t polls = 0;
  uint64_t empty_polls = 0;
  uint64_t wakeups = 0;
  uint64_t ring_full = 0;
  uint64_t drops[static_cast<int>(DropReason::kCount)] = {};
  uint64_t fault_rx_drops = 0;
  uint64_t fault_tx_drops = 0;
  uint64_t fault_rx_reorders = 0;
  uint64_t fault_tx_reorders = 0;
  // Reported by the kernel for AF_XDP sockets (XDP_STATISTICS); zero for
  // drivers that have no equivalent.
  uint64_t kernel_rx_dropped = 0;  // no room in the RX ring / UMEM.
  uint64_t kernel_rx_invalid_descs = 0;
  uint64_t kernel_tx_invalid_descs = 0;
  uint64_t kernel_rx_ring_full = 0;
  uint64_t kernel_rx_fill_ring_empty = 0;
  uint64_t kernel_tx_ring_empty = 0;
};

// Copies the software counters into `stats` (kernel fields untouched).
void SnapshotCounters(const QueueCounters& counters, QueueStats* stats);

}  // namespace offload::nic

#endif  // OFFLOAD_DAEMON_NIC_COUNTERS_H_
