// The wire plane's reports (daemon/wire/wire_stats.h) as control-protocol
// messages: offloadctl status (interfaces) and stats (engines, NIC queues).
// Pure functions.

#ifndef OFFLOAD_DAEMON_CONTROL_WIRE_STATS_H_
#define OFFLOAD_DAEMON_CONTROL_WIRE_STATS_H_

#include <vector>

#include "daemon/wire/wire_stats.h"
#include "offload/v1/control.pb.h"

namespace offload::control {

std::vector<v1::InterfaceStatus> ToProto(const std::vector<wire::InterfaceReport>& reports);
std::vector<v1::EngineStats> ToProto(const std::vector<wire::EngineReport>& reports);
// A queue's drops are the sum of its drop reasons and the kernel's drop
// counters (rx_drops, tx_drops).
std::vector<v1::NicStats> ToProto(const std::vector<wire::QueueReport>& reports);

}  // namespace offload::control

#endif  // OFFLOAD_DAEMON_CONTROL_WIRE_STATS_H_
