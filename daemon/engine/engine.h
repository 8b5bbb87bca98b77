// An engine thread: owns some NIC queues and one PacketProcessor, and loops
//   commands -> RX bursts -> OnFrames -> timers -> PollTx -> TX flush
// spinning while there is work and for up to `poll_budget_us` after the last
// work, then sleeping in epoll_wait on the queues' fds and its doorbell until
// the next timer deadline. An idle engine makes no system calls and uses no
// CPU; a wake-up cannot be lost (see doorbell.h).
//
// Thread safety: Create/Start/Stop/destruction from one controlling thread.
// Post(), RunSync(), doorbell().Ring() and counters() from any thread.
// The processor and the queues are used only by the engine thread once
// started.

#ifndef OFFLOAD_DAEMON_ENGINE_ENGINE_H_
#define OFFLOAD_DAEMON_ENGINE_ENGINE_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/engine/command_queue.h"
#include "daemon/engine/doorbell.h"
#include "daemon/engine/packet_processor.h"
#include "daemon/engine/tx_batch.h"
#include "daemon/nic/counters.h"
#include "daemon/nic/nic.h"

namespace offload::engine {

struct EngineConfig {
  std::string name = "engine";
  int core = -1;                 // CPU to pin the thread to; -1: not pinned
  uint32_t poll_budget_us = 50;  // spin this long after the last work
  size_t rx_burst = 32;          // frames per RxBurst, at most kMaxRxBurst
};

struct EngineCounters {
  nic::SingleWriterCounter loops;           // loop iterations
  nic::SingleWriterCounter busy_polls;      // iterations that found work
  nic::SingleWriterCounter idle_polls;      // iterations spent spinning idle
  nic::SingleWriterCounter sleeps;          // epoll_wait calls
  nic::SingleWriterCounter wakeups;         // sleeps ended by the doorbell
  nic::SingleWriterCounter aborted_sleeps;  // re-check found work
  nic::SingleWriterCounter commands;        // control-plane commands run
  nic::SingleWriterCounter timer_runs;      // OnTimers calls
};

class Engine {
 public:
  static constexpr size_t kMaxRxBurst = 64;

  // `queues` are owned by their driver and must outlive the engine.
  // Errors: InvalidArgument (bad burst, no processor), Internal (epoll).
  static absl::StatusOr<std::unique_ptr<Engine>> Create(
      const EngineConfig& config, std::vector<nic::NicQueue*> queues,
      std::unique_ptr<PacketProcessor> processor);

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  // Stops and joins the thread.
  ~Engine();

  // Starts the thread and pins it. Errors: InvalidArgument if the core is
  // not usable (the thread is not left running).
  absl::Status Start();
  // Asks the thread to finish its iteration and exit; joins it.
  void Stop();

  // Runs `command` on the engine thread at the start of a loop iteration.
  void Post(CommandQueue::Command command);
  // Posts `command` and waits for it to have run. DeadlineExceeded after
  // `timeout`; FailedPrecondition if called from the engine thread or the
  // engine is not running.
  absl::Status RunSync(CommandQueue::Command command, absl::Duration timeout);

  // Rung by producers of work for this engine (application rings).
  Doorbell& doorbell() { return *doorbell_; }
  const EngineCounters& counters() const { return counters_; }
  const EngineConfig& config() const { return config_; }
  size_t num_queues() const { return queues_.size(); }

 private:
  Engine(const EngineConfig& config, std::vector<nic::NicQueue*> queues,
         std::unique_ptr<PacketProcessor> processor);
  void Loop();
  // Returns the amount of work done.
  size_t Iterate(TimeNs now);
  // Re-checks every work source after Doorbell::PrepareToSleep(), then
  // sleeps until woken or `deadline`.
  void Sleep(TimeNs deadline);

  const EngineConfig config_;
  const std::vector<nic::NicQueue*> queues_;
  const std::unique_ptr<PacketProcessor> processor_;
  std::vector<std::unique_ptr<TxBatch>> tx_;
  std::vector<TxBatch*> tx_ptrs_;
  std::unique_ptr<Doorbell> doorbell_;
  int epoll_fd_ = -1;
  CommandQueue commands_;
  EngineCounters counters_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace offload::engine

#endif  // OFFLOAD_DAEMON_ENGINE_ENGINE_H_
