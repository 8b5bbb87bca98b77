// What the wire plane reports about itself (offloadctl status / stats):
// plain values read from the interface, the engines and the NIC queues.
// The mapping to the control protocol's messages is the control plane's
// (daemon/control/wire_stats.h).

#ifndef OFFLOAD_DAEMON_WIRE_WIRE_STATS_H_
#define OFFLOAD_DAEMON_WIRE_WIRE_STATS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "daemon/nic/counters.h"
#include "daemon/nic/nic.h"

namespace offload::wire {

enum class LinkState { kGone, kDown, kNoCarrier, kUp };

struct InterfaceReport {
  std::string name;
  nic::DriverKind driver = nic::DriverKind::kAfXdp;
  uint32_t queues = 0;
  bool zero_copy = false;
  LinkState link = LinkState::kGone;
};

struct EngineReport {
  uint32_t id = 0;
  int core = -1;  // -1: not pinned
  uint64_t loops = 0, busy_polls = 0, sleeps = 0, wakeups = 0;
  uint64_t rx_packets = 0, tx_packets = 0;  // of the engine's queues
  uint64_t flows = 0;                       // active TCP connections
  // The stack's counters by name (stack::Stack::ForEachCounter).
  std::vector<std::pair<std::string, uint64_t>> counters;
};

struct QueueReport {
  std::string interface;
  uint32_t queue = 0;
  nic::QueueStats stats;
  uint64_t steered_flows = 0;
};

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_WIRE_STATS_H_
