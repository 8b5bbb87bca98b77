// DoorbellRegistry (doorbells.h).

#include "daemon/session/doorbells.h"

#include "shm/ring.h"
#include "shm/wakeup.h"

namespace offload {
namespace session {

bool DoorbellRegistry::AddProcess(uint64_t id, shm::UniqueFd efd) {
  if (id == 0 || (id & shm::kEngineDoorbellBit) || !efd.valid()) return false;
  absl::MutexLock l(&mu_);
  gone_.erase(id);
  return processes_.emplace(id, std::move(efd)).second;
}

void DoorbellRegistry::RemoveProcess(uint64_t id) {
  absl::MutexLock l(&mu_);
  if (processes_.erase(id) == 0) return;
  constexpr size_t kMaxGone = 1 << 16;
  if (gone_.size() >= kMaxGone) gone_.clear();
  gone_.insert(id);
}

void DoorbellRegistry::AddEngine(uint32_t engine, int efd) {
  absl::MutexLock l(&mu_);
  if (engines_.size() <= engine) engines_.resize(engine + 1, -1);
  engines_[engine] = efd;
}

int DoorbellRegistry::FdLocked(uint64_t id) const {
  if (id & shm::kEngineDoorbellBit) {
    const uint64_t engine = id & ~shm::kEngineDoorbellBit;
    return engine < engines_.size() ? engines_[engine] : -1;
  }
  auto it = processes_.find(id);
  return it == processes_.end() ? -1 : it->second.get();
}

shm::KickResult DoorbellRegistry::KickDoorbell(uint64_t id) {
  absl::MutexLock l(&mu_);
  const int fd = FdLocked(id);
  if (fd >= 0) {
    shm::Kick(fd);
    return shm::KickResult::kKicked;
  }
  return gone_.count(id) ? shm::KickResult::kGone : shm::KickResult::kUnknown;
}

}  // namespace session
}  // namespace offload
