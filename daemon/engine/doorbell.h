// The wake-up an engine thread sleeps on, rung by whoever gives it work
// (application rings, the control plane's command queue).
//
// Protocol (no lost wake-ups, no timing heuristics):
//   engine (consumer)                     producer
//   sleeping_ = true          (a)         publish work (store-release)
//   fence(seq_cst)            (b)         fence(seq_cst)             (d)
//   re-check all work sources (c)         if (sleeping_) write eventfd (e)
//   epoll_wait(eventfd, ...)
//   sleeping_ = false, drain eventfd
// The two seq_cst fences (b) and (d) pair: either the producer's load in (e)
// sees (a) and it rings, or the engine's re-check (c) sees the published
// work and it does not sleep. An eventfd write while the engine is awake
// is harmless: the next epoll_wait returns at once and the engine loops.
//
// Thread safety: Ring() from any thread; the rest from the engine thread.

#ifndef OFFLOAD_DAEMON_ENGINE_DOORBELL_H_
#define OFFLOAD_DAEMON_ENGINE_DOORBELL_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace offload::engine {

class Doorbell {
 public:
  static absl::StatusOr<std::unique_ptr<Doorbell>> Create();
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;
  ~Doorbell();

  // Producer side. REQUIRES: the work was published before the call.
  void Ring();

  // Consumer side: announce the intent to sleep, then re-check. Includes
  // fence (b).
  void PrepareToSleep();
  // Consumer side: awake again; drains the eventfd.
  void Awake();

  // Readable (EPOLLIN) when rung while sleeping.
  int fd() const { return fd_; }
  // Number of eventfd writes (actual wake-ups sent).
  uint64_t rings() const { return rings_.load(std::memory_order_relaxed); }

 private:
  explicit Doorbell(int fd) : fd_(fd) {}

  const int fd_;
  std::atomic<bool> sleeping_{false};  // (a)/(e): see the protocol above
  std::atomic<uint64_t> rings_{0};
};

}  // namespace offload::engine

#endif  // OFFLOAD_DAEMON_ENGINE_DOORBELL_H_
