// Client knobs, read once from the environment. Every OFFLOAD_<NAME> is also
// accepted as VMA_<NAME> (OFFLOAD_ wins when both are set).
//
// Thread safety: Config() is initialised by the library constructor (or the
// first interposed call) and read-only afterwards.

#ifndef OFFLOAD_CLIENT_CONFIG_H_
#define OFFLOAD_CLIENT_CONFIG_H_

#include <cstdint>

namespace offload {
namespace client {

struct ClientConfig {
  int trace_level = 3;             // OFFLOAD_TRACELEVEL: 0 panic .. 6 func_all
  char log_file[256] = {};         // OFFLOAD_LOG_FILE ("" = stderr)
  int log_details = 0;             // OFFLOAD_LOG_DETAILS: 1 adds pid/tid
  bool debug = false;              // OFFLOAD_DEBUG=1: "offload: enabled bypass on fd N"
  char application_id[64] = {};    // OFFLOAD_APPLICATION_ID
  bool offloaded_sockets = true;   // OFFLOAD_OFFLOADED_SOCKETS (0: opt-in per thread)
  int64_t rx_poll = 20000;         // OFFLOAD_RX_POLL: spins before sleeping in recv (-1 = forever)
  int64_t select_poll_us = 200;    // OFFLOAD_SELECT_POLL: µs of spinning in poll/select/epoll
  int udp_os_ratio = 100;          // OFFLOAD_RX_UDP_POLL_OS_RATIO: ring polls per kernel check
  int select_os_ratio = 10;        // OFFLOAD_SELECT_POLL_OS_RATIO
  char stats_file[256] = {};       // OFFLOAD_STATS_FILE: written at exit
  char run_dir[200] = "/run/offloadd";  // OFFLOAD_RUN_DIR
  char program[32] = {};           // basename of the program (/proc/self/comm)
  // OFFLOAD_SPIN_YIELD_NS: sched_yield() after this much spinning so a peer
  // sharing our CPU can run, and check we still own the CPU (0 = never).
  // A task woken onto our CPU while we spin (the kernel end of a connection
  // on the same host, a thread of the same process) waits for our next
  // yield, about half this period on average: the scheduler does not preempt
  // a spinner for it. 1 us keeps that wait below the price of a reschedule
  // IPI on a VM; a yield with nothing else runnable costs ~0.5 us there.
  int64_t spin_yield_ns = 1000;
  // OFFLOAD_RX_SLIP: bytes a receiver in a stream lets the sender get ahead
  // before it reads (client/README.md, "Streams of small messages"; 0 = off).
  int64_t rx_slip = 8192;
};

const ClientConfig& Config();
// Re-reads the environment (library constructor; after fork nothing changes).
void LoadConfig();

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_CONFIG_H_
