// Engine threads per core (see header).

#include "daemon/engine/engine_set.h"

#include <sched.h>

#include "absl/strings/str_cat.h"

namespace offload::engine {

std::vector<std::vector<nic::NicQueue*>> AssignQueues(
    const std::vector<nic::NicDriver*>& drivers, uint32_t num_engines) {
  std::vector<std::vector<nic::NicQueue*>> out(num_engines);
  if (num_engines == 0) return out;
  for (nic::NicDriver* d : drivers) {
    for (size_t q = 0; q < d->num_queues(); ++q) {
      out[d->queue(q)->id() % num_engines].push_back(d->queue(q));
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<EngineSet>> EngineSet::Create(
    const EngineSetConfig& config, const std::vector<nic::NicDriver*>& drivers,
    const ProcessorFactory& factory) {
  if (config.num_cores == 0) {
    return absl::InvalidArgumentError("num_cores must be at least 1");
  }
  if (!config.cores.empty() && config.cores.size() != config.num_cores) {
    return absl::InvalidArgumentError(
        absl::StrCat("cores lists ", config.cores.size(),
                     " CPUs for num_cores ", config.num_cores));
  }
  std::vector<int> cpus = config.cores;
  if (cpus.empty()) {
    cpu_set_t allowed;
    std::vector<int> usable;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &allowed)) usable.push_back(c);
      }
    }
    for (uint32_t i = 0; i < config.num_cores; ++i) {
      cpus.push_back(usable.empty() ? -1 : usable[i % usable.size()]);
    }
  }
  std::vector<std::vector<nic::NicQueue*>> queues =
      AssignQueues(drivers, config.num_cores);
  std::unique_ptr<EngineSet> set(new EngineSet());
  for (uint32_t i = 0; i < config.num_cores; ++i) {
    EngineConfig ec;
    ec.name = absl::StrCat("engine", i);
    ec.core = cpus[i];
    ec.poll_budget_us = config.poll_budget_us;
    auto e = Engine::Create(ec, std::move(queues[i]), factory(i));
    if (!e.ok()) return e.status();
    set->engines_.push_back(*std::move(e));
  }
  return set;
}

absl::Status EngineSet::Start() {
  for (size_t i = 0; i < engines_.size(); ++i) {
    absl::Status s = engines_[i]->Start();
    if (!s.ok()) {
      for (size_t j = 0; j < i; ++j) engines_[j]->Stop();
      return s;
    }
  }
  return absl::OkStatus();
}

void EngineSet::Stop() {
  for (auto& e : engines_) e->Stop();
}

}  // namespace offload::engine
