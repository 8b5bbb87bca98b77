// A statistics counter with one writing thread and any number of readers.
//
// The engine thread that owns a queue, a stack or a connection table is the
// only writer; the control plane reads at any time (offloadctl stats). The
// writer does a relaxed load + relaxed store, never a read-modify-write, so
// counting costs a plain add on the per-packet path (no locked instruction);
// readers do relaxed loads. A set of counters read together is therefore not
// a consistent snapshot, which statistics accept.
//
// The counter reads as a uint64_t and counts with ++ and +=, so a struct of
// them reads like a struct of integers (netstat-style counter blocks);
// copying one takes a snapshot of its value.

#ifndef OFFLOAD_DAEMON_COMMON_COUNTER_H_
#define OFFLOAD_DAEMON_COMMON_COUNTER_H_

#include <atomic>
#include <cstdint>

namespace offload::common {

class SingleWriterCounter {
 public:
  SingleWriterCounter() = default;
  SingleWriterCounter(const SingleWriterCounter& other) : value_(other.Get()) {}
  SingleWriterCounter& operator=(const SingleWriterCounter& other) {
    value_.store(other.Get(), std::memory_order_relaxed);
    return *this;
  }

  // REQUIRES (all writes): called only from the owning thread.
  void Add(uint64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void Increment() { Add(1); }
  SingleWriterCounter& operator+=(uint64_t n) {
    Add(n);
    return *this;
  }
  SingleWriterCounter& operator++() {
    Add(1);
    return *this;
  }
  // Postfix yields nothing: `n = c++` would read a value the caller did not
  // mean to race with; count with `c++;` and read with Get().
  void operator++(int) { Add(1); }

  // Any thread.
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }
  operator uint64_t() const { return Get(); }  // NOLINT: reads as an integer

 private:
  std::atomic<uint64_t> value_{0};
};

}  // namespace offload::common

#endif  // OFFLOAD_DAEMON_COMMON_COUNTER_H_
