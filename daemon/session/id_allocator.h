// IdAllocator: host-unique ids of channels, listeners, UDP endpoints and
// datagram rings. Ids are never reused while a process may hold one from an
// earlier offloadd (same-host pipes outlive a restart, and processes look
// their mappings up by id): they continue from a file (RUN_DIR/ids),
// reserved a block at a time, and 0 is never handed out (it means "none"
// everywhere in the ABI).
//
// Thread safety: not thread-safe; the session manager calls it with its
// mutex held.

#ifndef OFFLOAD_DAEMON_SESSION_ID_ALLOCATOR_H_
#define OFFLOAD_DAEMON_SESSION_ID_ALLOCATOR_H_

#include <cstdint>
#include <string>

namespace offload {
namespace session {

class IdAllocator {
 public:
  // `path`: the file that records the reservations (read on first use).
  explicit IdAllocator(std::string path) : path_(std::move(path)) {}

  // The next id. A file that cannot be written is logged (after a restart
  // old and new ids may then meet), never an error.
  uint32_t Next();

 private:
  void Reserve();

  const std::string path_;
  uint32_t next_ = 1;
  uint32_t limit_ = 0;  // next_ reaching it reserves more
  bool loaded_ = false;
};

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_ID_ALLOCATOR_H_
