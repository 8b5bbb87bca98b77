// Bounded spinning for the waits of wait.cc, mux.cc and epoll.cc
// (ops.h SpinStep): a pause per step, a yield every OFFLOAD_SPIN_YIELD_NS,
// and a back-off that makes the thread sleep at once for a while when
// those yields show a busy task shares its CPU.

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdint>

#include "client/config.h"
#include "client/ops.h"

namespace offload {
namespace client {


namespace {
// Set when a yield handed our CPU to a busy task: this thread then sleeps
// right away for a while instead of spinning (see SpinStep).
thread_local int64_t t_no_spin_until_ns = 0;
constexpr int64_t kStolenNs = 50000;
constexpr int64_t kNoSpinNs = 1000000;         // first back-off: 1 ms
constexpr int64_t kMaxNoSpinNs = 1000000000;   // doubling up to 1 s
// Current back-off; doubles while spinning keeps losing the CPU, back to
// kNoSpinNs as soon as a spin pays off (SpinSucceeded).
thread_local int64_t t_backoff_ns = kNoSpinNs;
}  // namespace

void SpinSucceeded() { t_backoff_ns = kNoSpinNs; }

bool SpinAllowed() { return t_no_spin_until_ns == 0 || NowNs() >= t_no_spin_until_ns; }

namespace {
int64_t ThreadCpuNs() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

bool SpinStep(uint64_t i) {
  // Spinning pays only while this thread owns its CPU. Every
  // OFFLOAD_SPIN_YIELD_NS we yield (a peer pinned to our CPU gets to run)
  // and, once the wait is long enough to tell, compare the CPU time we got
  // with the wall time: well below it, a runnable task shares our CPU and
  // spinning would starve it (or wait for it a whole time slice), so this
  // thread sleeps right away for a while. The CPU clock is a system call
  // (no vDSO for thread clocks): a short wait never reads it.
  static thread_local int64_t t_wall0 = 0, t_cpu0 = 0, t_last_yield_ns = 0;
  const int64_t every_ns = Config().spin_yield_ns;
  if (every_ns <= 0) {
    CpuRelax();
    return true;
  }
  if (i == 0) {
    t_wall0 = t_last_yield_ns = NowNs();
    t_cpu0 = -1;  // read at the first yield past kStolenNs / 2
  }
  if ((i & 15) != 15) {
    CpuRelax();
    return true;
  }
  const int64_t t0 = NowNs();
  if (t0 - t_last_yield_ns < every_ns) {
    CpuRelax();
    return true;
  }
  sched_yield();
  const int64_t t1 = NowNs();
  const int64_t since_yield = t1 - t0;
  t_last_yield_ns = t1;
  bool stolen = since_yield >= kStolenNs;
  if (!stolen && t_cpu0 < 0 && t1 - t_wall0 >= kStolenNs / 2) {
    t_wall0 = t1;
    t_cpu0 = ThreadCpuNs();
  } else if (!stolen && t_cpu0 >= 0 && t1 - t_wall0 >= kStolenNs) {
    stolen = (ThreadCpuNs() - t_cpu0) * 4 < (t1 - t_wall0) * 3;
  }
  if (stolen) {
    t_no_spin_until_ns = t1 + t_backoff_ns;
    t_backoff_ns = std::min(t_backoff_ns * 2, kMaxNoSpinNs);
    return false;
  }
  return true;
}

}  // namespace client
}  // namespace offload
