// DoorbellRegistry (doorbells.h).

#include "daemon/session/doorbells.h"

#include "shm/ring.h"
#include "shm/wakeup.h"

namespace offload {
namespace session {

namespace {
constexpr uint32_t kMaxIndex = 32767;
}  // namespace

uint32_t DoorbellRegistry::AddProcess(shm::UniqueFd efd) {
  absl::MutexLock l(&mu_);
  if (processes_.empty()) processes_.resize(1);
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else if (processes_.size() <= kMaxIndex) {
    index = static_cast<uint32_t>(processes_.size());
    processes_.emplace_back();
  } else {
    return 0;
  }
  Entry& e = processes_[index];
  e.gen = static_cast<uint16_t>(e.gen + 1 == 0 ? 1 : e.gen + 1);
  e.used = true;
  e.efd = std::move(efd);
  return index << 16 | e.gen;
}

void DoorbellRegistry::RemoveProcess(uint32_t id) {
  absl::MutexLock l(&mu_);
  const uint32_t index = id >> 16;
  if ((id & shm::kEngineDoorbellBit) || index == 0 || index >= processes_.size()) return;
  Entry& e = processes_[index];
  if (!e.used || e.gen != (id & 0xffff)) return;
  e.used = false;
  e.efd.reset();
  free_.push_back(index);
}

void DoorbellRegistry::AddEngine(uint32_t engine, int efd) {
  absl::MutexLock l(&mu_);
  if (engines_.size() <= engine) engines_.resize(engine + 1, -1);
  engines_[engine] = efd;
}

int DoorbellRegistry::FdLocked(uint32_t id) const {
  if (id & shm::kEngineDoorbellBit) {
    const uint32_t engine = id & ~shm::kEngineDoorbellBit;
    return engine < engines_.size() ? engines_[engine] : -1;
  }
  const uint32_t index = id >> 16;
  if (index == 0 || index >= processes_.size()) return -1;
  const Entry& e = processes_[index];
  return e.used && e.gen == (id & 0xffff) ? e.efd.get() : -1;
}

void DoorbellRegistry::KickDoorbell(uint32_t id) {
  absl::MutexLock l(&mu_);
  const int fd = FdLocked(id);
  if (fd >= 0) shm::Kick(fd);
}

}  // namespace session
}  // namespace offload
