// DoorbellRegistry: the eventfd of every attached process (and of every
// engine) by doorbell id, the id a sleeper lists in a ring's waiter set
// (shm/ring.h). A process that must wake a sleeper of another process asks
// for that process's eventfd once (kDoorbell); engines and the daemon kick
// through the registry directly.
//
// Ids: a process chooses random bits (top bits and the low
// shm::kHintTokenBits clear) when it first attaches and keeps them for its
// lifetime, across daemon restarts, so an id never names another process;
// engine doorbells are shm::kEngineDoorbellBit | engine. A doorbell may
// come with a hint ring (shm/hint_ring.h, an epoll set's): a kick of a
// listed id that carries a token posts the token there first.
//
// Thread safety: all methods are thread-safe (engines kick from their
// threads).

#ifndef OFFLOAD_DAEMON_SESSION_DOORBELLS_H_
#define OFFLOAD_DAEMON_SESSION_DOORBELLS_H_

#include <cstdint>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/wire/app_waker.h"
#include "shm/hint_ring.h"
#include "shm/unique_fd.h"

namespace offload {
namespace session {

class DoorbellRegistry : public wire::AppWaker {
 public:
  // Registers a process's eventfd (owned from now on) under `id`. False if
  // the id is malformed or taken (the process picks another).
  // `hints`: the doorbell's hint ring memfd (owned; invalid if none).
  bool AddProcess(uint64_t id, shm::UniqueFd efd, shm::UniqueFd hints = shm::UniqueFd());
  // Forgets a process's doorbell (the process is gone, or unregistered it)
  // and returns the attach fds of the sessions that asked for a copy of it
  // (NoteAsker), so that they can be told to close theirs.
  std::vector<int> RemoveProcess(uint64_t id);
  // Session `asker` (its attach fd) was given a copy of process doorbell
  // `id` (kDoorbell). ForgetAsker: that session is gone.
  void NoteAsker(uint64_t id, int asker);
  void ForgetAsker(uint64_t id, int asker);
  // Registers engine `engine`'s doorbell (borrowed: valid while the wire
  // plane runs).
  void AddEngine(uint32_t engine, int efd);

  // Calls `fn(efd, hints_fd)` with the eventfd behind `id` and its hint
  // ring's memfd (-1 if none), borrowed for the call, and returns true, or
  // returns false for an unknown id.
  template <typename Fn>
  bool WithFd(uint64_t id, Fn fn) const {
    absl::MutexLock l(&mu_);
    const int fd = FdLocked(id);
    if (fd < 0) return false;
    auto it = processes_.find(shm::DoorbellOf(id));
    fn(fd, it != processes_.end() ? it->second.hints_fd.get() : -1);
    return true;
  }

  // wire::AppWaker.
  shm::KickResult KickDoorbell(uint64_t id) override;

 private:
  int FdLocked(uint64_t id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  struct Bell {
    shm::UniqueFd efd;
    shm::UniqueFd hints_fd;  // invalid: no hint ring
    shm::Mapping hints;      // its mapping
    std::set<int> askers;    // sessions holding a copy (attach fds)
  };
  std::unordered_map<uint64_t, Bell> processes_ ABSL_GUARDED_BY(mu_);
  std::vector<int> engines_ ABSL_GUARDED_BY(mu_);
  // Ids of processes that went away (bounded: forgotten in bulk), so that
  // their entries left in waiter sets can be taken off.
  std::unordered_set<uint64_t> gone_ ABSL_GUARDED_BY(mu_);
};

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_DOORBELLS_H_
