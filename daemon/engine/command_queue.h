// Work the control plane posts to an engine thread (steer a flow, add a
// socket, ...). The engine checks one atomic flag per loop iteration and
// takes the mutex only when commands are pending, so the per-packet path
// never locks.
//
// Thread safety: Post() from any thread; RunPending() from the engine
// thread only.

#ifndef OFFLOAD_DAEMON_ENGINE_COMMAND_QUEUE_H_
#define OFFLOAD_DAEMON_ENGINE_COMMAND_QUEUE_H_

#include <atomic>
#include <functional>
#include <mutex>
#include <vector>

namespace offload::engine {

class CommandQueue {
 public:
  using Command = std::function<void()>;

  // Queues `command`. The caller rings the engine's doorbell afterwards.
  void Post(Command command) {
    std::lock_guard<std::mutex> lock(mu_);
    commands_.push_back(std::move(command));
    // Release: pairs with the acquire in Pending(); the mutex already orders
    // the vector, this makes the flag itself the publication point.
    pending_.store(true, std::memory_order_release);
  }

  // Cheap check, no lock.
  bool Pending() const { return pending_.load(std::memory_order_acquire); }

  // Runs every queued command in posting order; returns how many ran.
  size_t RunPending() {
    if (!Pending()) return 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.swap(commands_);
      pending_.store(false, std::memory_order_relaxed);
    }
    size_t n = running_.size();
    for (Command& c : running_) c();
    running_.clear();  // keeps capacity: no steady-state allocation
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<Command> commands_;  // guarded by mu_
  std::vector<Command> running_;   // engine thread only
  std::atomic<bool> pending_{false};
};

}  // namespace offload::engine

#endif  // OFFLOAD_DAEMON_ENGINE_COMMAND_QUEUE_H_
