// DoorbellRegistry (doorbells.h).

#include "daemon/session/doorbells.h"

#include "shm/ring.h"
#include "shm/wakeup.h"

namespace offload {
namespace session {

bool DoorbellRegistry::AddProcess(uint64_t id, shm::UniqueFd efd, shm::UniqueFd hints) {
  if (id == 0 || shm::DoorbellOf(id) != id || !efd.valid()) return false;
  Bell b;
  b.efd = std::move(efd);
  if (hints.valid()) {
    b.hints = shm::MapHintRing(hints.get());
    if (!b.hints.valid()) return false;
    b.hints_fd = std::move(hints);
  }
  absl::MutexLock l(&mu_);
  gone_.erase(id);
  return processes_.emplace(id, std::move(b)).second;
}

std::vector<int> DoorbellRegistry::RemoveProcess(uint64_t id) {
  absl::MutexLock l(&mu_);
  auto it = processes_.find(id);
  if (it == processes_.end()) return {};
  std::vector<int> askers(it->second.askers.begin(), it->second.askers.end());
  processes_.erase(it);
  constexpr size_t kMaxGone = 1 << 16;
  if (gone_.size() >= kMaxGone) gone_.clear();
  gone_.insert(id);
  return askers;
}

void DoorbellRegistry::NoteAsker(uint64_t id, int asker) {
  absl::MutexLock l(&mu_);
  auto it = processes_.find(shm::DoorbellOf(id));
  if (it != processes_.end()) it->second.askers.insert(asker);
}

void DoorbellRegistry::ForgetAsker(uint64_t id, int asker) {
  absl::MutexLock l(&mu_);
  auto it = processes_.find(shm::DoorbellOf(id));
  if (it != processes_.end()) it->second.askers.erase(asker);
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
  auto it = processes_.find(shm::DoorbellOf(id));
  return it == processes_.end() ? -1 : it->second.efd.get();
}

shm::KickResult DoorbellRegistry::KickDoorbell(uint64_t id) {
  absl::MutexLock l(&mu_);
  if (!(id & shm::kEngineDoorbellBit)) {
    auto it = processes_.find(shm::DoorbellOf(id));
    if (it == processes_.end()) {
      return gone_.count(shm::DoorbellOf(id)) ? shm::KickResult::kGone
                                               : shm::KickResult::kUnknown;
    }
    // The token first: the owner drains hints after the eventfd wakes it.
    if (const uint32_t token = shm::TokenOf(id); token != 0 && it->second.hints.valid()) {
      shm::PostHint(it->second.hints.as<shm::HintRing>(), token);
    }
    shm::Kick(it->second.efd.get());
    return shm::KickResult::kKicked;
  }
  const int fd = FdLocked(id);
  if (fd >= 0) {
    shm::Kick(fd);
    return shm::KickResult::kKicked;
  }
  return shm::KickResult::kUnknown;
}

}  // namespace session
}  // namespace offload
