// Fuzz target for everything the daemon reads from a process: attach-protocol
// records (ValidateRequest) and per-socket counter blocks in the arena
// (CopySlot / SlotToProto). The first byte picks the reader and, for
// records, the number of fds that came with it.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "daemon/session/protocol.h"
#include "daemon/session/slot_reader.h"
#include "shm/abi.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  ++data;
  --size;
  if ((mode & 1) == 0) {
    const int nfds = (mode >> 1) % (offload::shm::kMaxMsgFds + 2);
    auto msg = offload::session::ValidateRequest(data, size, nfds);
    if (msg.ok()) {
      // Invariants of an accepted request.
      if (size != sizeof(offload::shm::Msg)) abort();
      if (msg->program[sizeof(msg->program) - 1] != '\0') abort();
      if (msg->app_id[sizeof(msg->app_id) - 1] != '\0') abort();
      if (offload::session::ExpectedFds(msg->type) != nfds) abort();
    }
    return 0;
  }
  // An arena fragment of up to 4 slots written by a hostile process.
  constexpr size_t kSlots = 4;
  std::vector<uint8_t> arena(sizeof(offload::shm::ArenaHeader) +
                                 kSlots * sizeof(offload::shm::SocketSlot),
                             0);
  std::memcpy(arena.data() + sizeof(offload::shm::ArenaHeader), data,
              std::min(size, kSlots * sizeof(offload::shm::SocketSlot)));
  int rows = 0;
  offload::session::ForEachValidSlot(arena.data(), kSlots,
                                     [&](const offload::session::SlotCopy& c) {
                                       offload::v1::SocketStats s;
                                       offload::session::SlotToProto(c, &s);
                                       if (s.fallback_detail().size() >= 24) abort();
                                       ++rows;
                                     });
  if (rows > static_cast<int>(kSlots)) abort();
  return 0;
}

// Text seeds for the replay test; binary seeds live in corpus/.
extern const char* const kFuzzSeeds[] = {"", "\x01", "\x02"};
extern const size_t kNumFuzzSeeds = sizeof(kFuzzSeeds) / sizeof(kFuzzSeeds[0]);
