// The daemon's engine threads: `num_cores` engines, each pinned to one CPU
// and owning the queues that map to it. Queue q of every interface belongs
// to engine q % num_cores, so a flow steered to queue q is handled by one
// engine from NIC to application (mTCP-style flow affinity).
//
// Thread safety: Create/Start/Stop from the controlling thread; engine(i)
// accessors are immutable after Create.

#ifndef OFFLOAD_DAEMON_ENGINE_ENGINE_SET_H_
#define OFFLOAD_DAEMON_ENGINE_ENGINE_SET_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/engine/engine.h"
#include "daemon/nic/nic.h"

namespace offload::engine {

struct EngineSetConfig {
  uint32_t num_cores = 1;
  // CPU of engine i; empty: the i-th CPU this process may run on (wrapping).
  std::vector<int> cores;
  uint32_t poll_budget_us = 50;
};

// Queue lists per engine: result[e] holds queue q of every driver with
// q % num_engines == e, in driver order.
std::vector<std::vector<nic::NicQueue*>> AssignQueues(
    const std::vector<nic::NicDriver*>& drivers, uint32_t num_engines);

class EngineSet {
 public:
  using ProcessorFactory =
      std::function<std::unique_ptr<PacketProcessor>(size_t engine_index)>;

  // Errors: InvalidArgument (num_cores 0, cores list of the wrong length),
  // and Engine::Create's.
  static absl::StatusOr<std::unique_ptr<EngineSet>> Create(
      const EngineSetConfig& config,
      const std::vector<nic::NicDriver*>& drivers,
      const ProcessorFactory& factory);

  // Starts every engine; on error stops the ones already started.
  absl::Status Start();
  void Stop();

  size_t size() const { return engines_.size(); }
  Engine& engine(size_t i) { return *engines_[i]; }
  // The engine that owns queue `queue` of any interface.
  size_t EngineForQueue(uint32_t queue) const {
    return queue % engines_.size();
  }

 private:
  EngineSet() = default;
  std::vector<std::unique_ptr<Engine>> engines_;
};

}  // namespace offload::engine

#endif  // OFFLOAD_DAEMON_ENGINE_ENGINE_SET_H_
