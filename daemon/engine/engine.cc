// Engine thread loop (see header).

#include "daemon/engine/engine.h"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "absl/strings/str_cat.h"

namespace offload::engine {

TimeNs MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return TimeNs{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(
    const EngineConfig& config, std::vector<nic::NicQueue*> queues,
    std::unique_ptr<PacketProcessor> processor) {
  if (processor == nullptr) {
    return absl::InvalidArgumentError("an engine needs a packet processor");
  }
  if (config.rx_burst == 0 || config.rx_burst > kMaxRxBurst) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rx_burst must be in 1..", kMaxRxBurst, ", got ", config.rx_burst));
  }
  std::unique_ptr<Engine> e(
      new Engine(config, std::move(queues), std::move(processor)));
  absl::StatusOr<std::unique_ptr<Doorbell>> doorbell = Doorbell::Create();
  if (!doorbell.ok()) return doorbell.status();
  e->doorbell_ = *std::move(doorbell);
  e->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (e->epoll_fd_ < 0) {
    return absl::InternalError(
        absl::StrCat("epoll_create1: ", strerror(errno)));
  }
  // data.u64: queue index, or the number of queues for the doorbell.
  epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.u64 = e->queues_.size();
  if (epoll_ctl(e->epoll_fd_, EPOLL_CTL_ADD, e->doorbell_->fd(), &ev) != 0) {
    return absl::InternalError(
        absl::StrCat("epoll_ctl(doorbell): ", strerror(errno)));
  }
  for (size_t i = 0; i < e->queues_.size(); ++i) {
    ev.data.u64 = i;
    if (epoll_ctl(e->epoll_fd_, EPOLL_CTL_ADD, e->queues_[i]->WaitFd(), &ev) !=
        0) {
      return absl::InternalError(absl::StrCat(
          "epoll_ctl(queue ", e->queues_[i]->id(), "): ", strerror(errno)));
    }
  }
  return e;
}

Engine::Engine(const EngineConfig& config, std::vector<nic::NicQueue*> queues,
               std::unique_ptr<PacketProcessor> processor)
    : config_(config),
      queues_(std::move(queues)),
      processor_(std::move(processor)) {
  for (nic::NicQueue* q : queues_) {
    tx_.push_back(std::make_unique<TxBatch>(q));
    tx_ptrs_.push_back(tx_.back().get());
  }
}

Engine::~Engine() {
  Stop();
  tx_.clear();  // returns unsent TX buffers to the queues
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

absl::Status Engine::Start() {
  if (thread_.joinable())
    return absl::FailedPreconditionError("already started");
  stop_.store(false, std::memory_order_relaxed);
  std::promise<absl::Status> started;
  std::future<absl::Status> result = started.get_future();
  thread_ = std::thread([this, &started] {
    pthread_setname_np(pthread_self(), config_.name.substr(0, 15).c_str());
    if (config_.core >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(config_.core, &set);
      int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      if (err != 0) {
        started.set_value(absl::InvalidArgumentError(
            absl::StrCat("cannot pin ", config_.name, " to core ", config_.core,
                         ": ", strerror(err),
                         "; check num_cores/cores against the CPUs this "
                         "process may use")));
        return;
      }
    }
    running_.store(true, std::memory_order_release);
    started.set_value(absl::OkStatus());
    Loop();
    running_.store(false, std::memory_order_release);
  });
  absl::Status status = result.get();
  if (!status.ok()) thread_.join();
  return status;
}

void Engine::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_relaxed);
  // Ring unconditionally via a no-op command so a sleeping engine wakes.
  Post([] {});
  thread_.join();
}

void Engine::Post(CommandQueue::Command command) {
  commands_.Post(std::move(command));
  doorbell_->Ring();
}

absl::Status Engine::RunSync(CommandQueue::Command command,
                             absl::Duration timeout) {
  if (std::this_thread::get_id() == thread_.get_id()) {
    return absl::FailedPreconditionError(
        "RunSync called from the engine thread itself");
  }
  if (!running_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError(
        absl::StrCat(config_.name, " is not running"));
  }
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  Post([command = std::move(command), done] {
    command();
    done->set_value();
  });
  if (f.wait_for(absl::ToChronoNanoseconds(timeout)) !=
      std::future_status::ready) {
    return absl::DeadlineExceededError(
        absl::StrCat(config_.name, " did not run the command within ",
                     absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

size_t Engine::Iterate(TimeNs now) {
  size_t work = 0;
  size_t ran = commands_.RunPending();
  counters_.commands.Add(ran);
  work += ran;

  nic::RxFrame frames[kMaxRxBurst];
  for (size_t i = 0; i < queues_.size(); ++i) {
    size_t n = queues_[i]->RxBurst(frames, config_.rx_burst);
    if (n == 0) continue;
    processor_->OnFrames(i, frames, n, now, *tx_[i]);
    queues_[i]->ReleaseRx(frames, n);
    work += n;
  }
  if (processor_->NextTimerDeadline() <= now) {
    processor_->OnTimers(now);
    counters_.timer_runs.Increment();
    ++work;
  }
  work += processor_->PollTx(tx_ptrs_.data(), tx_ptrs_.size(), now);
  for (size_t i = 0; i < queues_.size(); ++i) {
    tx_[i]->Flush();
    queues_[i]->ReclaimTx();
  }
  return work;
}

void Engine::Loop() {
  const TimeNs budget = TimeNs{config_.poll_budget_us} * 1000;
  // Idle spinning must not starve a thread that shares our core (an
  // application, the kernel's side of a connection on a small host): it
  // gets the CPU at our next yield, so yield often. sched_yield returns at
  // once when nothing else is runnable (~0.5 us on a VM). The same period
  // as the client library's OFFLOAD_SPIN_YIELD_NS default.
  constexpr TimeNs kIdleYieldNs = 1000;
  TimeNs last_work = MonotonicNowNs();
  TimeNs last_yield = last_work;
  while (!stop_.load(std::memory_order_relaxed)) {
    TimeNs now = MonotonicNowNs();
    counters_.loops.Increment();
    if (Iterate(now) > 0) {
      counters_.busy_polls.Increment();
      last_work = now;
      continue;
    }
    if (now - last_work < budget) {
      counters_.idle_polls.Increment();
      if (now - last_yield >= kIdleYieldNs) {
        sched_yield();
        last_yield = MonotonicNowNs();
      }
      continue;
    }
    Sleep(processor_->NextTimerDeadline());
    last_work = MonotonicNowNs();  // spin again after any wake-up
  }
}

void Engine::Sleep(TimeNs deadline) {
  doorbell_->PrepareToSleep();
  // (c) in doorbell.h: every work source, after the fence.
  bool must_run = commands_.Pending() || processor_->HasPendingWork() ||
                  stop_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < queues_.size(); ++i) {
    // Arms RX notification; false if frames are already waiting.
    if (!queues_[i]->ArmWakeup()) must_run = true;
  }
  if (must_run) {
    doorbell_->Awake();
    counters_.aborted_sleeps.Increment();
    return;
  }
  timespec ts;
  timespec* timeout = nullptr;
  if (deadline != kNoDeadline) {
    TimeNs left = deadline - MonotonicNowNs();
    if (left < 0) left = 0;
    ts.tv_sec = left / 1000000000;
    ts.tv_nsec = left % 1000000000;
    timeout = &ts;
  }
  counters_.sleeps.Increment();
  epoll_event events[16];
  int n = epoll_pwait2(epoll_fd_, events, 16, timeout, nullptr);
  doorbell_->Awake();
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u64 == queues_.size()) {
      counters_.wakeups.Increment();
    } else {
      queues_[events[i].data.u64]->AckWakeup();
    }
  }
}

}  // namespace offload::engine
