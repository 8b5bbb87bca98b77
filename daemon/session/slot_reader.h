// The daemon's reader of per-socket counter blocks (abi.h SocketSlot) in a
// process's arena. The process writes them at will: each slot is copied
// field by field, then validated; a slot that does not validate is skipped.
//
// Thread safety: free functions; the caller keeps the arena mapped.

#ifndef OFFLOAD_DAEMON_SESSION_SLOT_READER_H_
#define OFFLOAD_DAEMON_SESSION_SLOT_READER_H_

#include <cstddef>
#include <cstdint>
#include <functional>

#include "shm/abi.h"
#include "offload/v1/control.pb.h"

namespace offload {
namespace session {

// A validated private copy of one SocketSlot.
struct SlotCopy {
  int32_t fd = -1;
  uint64_t inode = 0;
  uint8_t protocol = 0;
  shm::SocketState state = shm::SocketState::kFree;
  shm::SocketPath path = shm::SocketPath::kKernel;
  shm::Fallback fallback = shm::Fallback::kNone;
  uint32_t rule_id = 0;
  uint32_t local_addr = 0, remote_addr = 0;
  uint16_t local_port = 0, remote_port = 0;
  uint8_t local_addr6[16] = {}, remote_addr6[16] = {};  // AF_INET6 (abi.h SocketSlot)
  char fallback_detail[sizeof(shm::SocketSlot::fallback_detail)] = {};
  uint64_t rx_bytes = 0, rx_msgs = 0, tx_bytes = 0, tx_msgs = 0;
  uint64_t rx_eagain = 0, tx_eagain = 0, errors = 0, poll_hits = 0, poll_misses = 0;
  uint64_t rx_queue_bytes = 0, rx_queue_max = 0, drops = 0;
  uint32_t mc_groups_engine = 0, mc_groups_kernel = 0;
  uint64_t mc_tx_engine = 0, mc_tx_kernel = 0, mc_loop_copies = 0;
  uint8_t family = 0;   // AF_INET / AF_INET6
  bool shared = false;  // shm::kSlotShared
};

// Adds `b`'s counters to `a` (holders of one shared socket).
void AddCounters(const SlotCopy& b, SlotCopy* a);

// Copies and validates `slot`. Returns false if it is free or malformed.
bool CopySlot(const shm::SocketSlot& slot, SlotCopy* out);

// Calls `fn` for every valid slot of the arena at `arena` holding
// `max_sockets` slots (the daemon's own number, never the arena's).
void ForEachValidSlot(const void* arena, uint32_t max_sockets,
                      const std::function<void(const SlotCopy&)>& fn);

void SlotToProto(const SlotCopy& c, offload::v1::SocketStats* out);

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_SLOT_READER_H_
