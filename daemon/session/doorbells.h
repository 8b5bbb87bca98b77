// DoorbellRegistry: the eventfd of every attached process (and of every
// engine) by doorbell id, the id a sleeper lists in a ring's waiter set
// (shm/ring.h). A process that must wake a sleeper of another process asks
// for that process's eventfd once (kDoorbell); engines and the daemon kick
// through the registry directly.
//
// Ids: process doorbells are (index << 16 | generation) with index in
// [1, 32767] and a generation bumped at every reuse of the index, so a
// stale id never reaches another process's eventfd; engine doorbells are
// shm::kEngineDoorbellBit | engine.
//
// Thread safety: all methods are thread-safe (engines kick from their
// threads).

#ifndef OFFLOAD_DAEMON_SESSION_DOORBELLS_H_
#define OFFLOAD_DAEMON_SESSION_DOORBELLS_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/wire/app_waker.h"
#include "shm/unique_fd.h"

namespace offload {
namespace session {

class DoorbellRegistry : public wire::AppWaker {
 public:
  // Registers a process's eventfd (owned from now on). Returns its id, or 0
  // when every index is taken.
  uint32_t AddProcess(shm::UniqueFd efd);
  // Forgets a process's doorbell (the process is gone).
  void RemoveProcess(uint32_t id);
  // Registers engine `engine`'s doorbell (borrowed: valid while the wire
  // plane runs).
  void AddEngine(uint32_t engine, int efd);

  // Calls `fn` with the eventfd behind `id` (borrowed for the call) and
  // returns true, or returns false for an unknown or stale id.
  template <typename Fn>
  bool WithFd(uint32_t id, Fn fn) const {
    absl::MutexLock l(&mu_);
    const int fd = FdLocked(id);
    if (fd < 0) return false;
    fn(fd);
    return true;
  }

  // wire::AppWaker.
  void KickDoorbell(uint32_t id) override;

 private:
  struct Entry {
    uint16_t gen = 0;
    bool used = false;
    shm::UniqueFd efd;
  };
  int FdLocked(uint32_t id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<Entry> processes_ ABSL_GUARDED_BY(mu_);  // by index; [0] unused
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(mu_);
  std::vector<int> engines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_DOORBELLS_H_
