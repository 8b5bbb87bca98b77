// Maps the protobuf DaemonConfig onto the plain configuration structs of the
// NIC layer, the engine threads and the protocol stack. Pure functions: no
// I/O, so they are tested without root or NICs.

#ifndef OFFLOAD_DAEMON_WIRE_CONFIG_MAPPING_H_
#define OFFLOAD_DAEMON_WIRE_CONFIG_MAPPING_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "daemon/engine/engine_set.h"
#include "daemon/nic/config.h"
#include "daemon/stack/stack.h"
#include "offload/v1/config.pb.h"

namespace offload::wire {

// The NIC-layer config of `config.interfaces(index)`. `queues` 0 means one
// queue per engine (num_cores). zero_copy true asks for zero-copy where the
// driver supports it (kPrefer), false forces copy mode (kDisable). Buffer
// counts follow max_num_buffers (per queue, rounded up to a power of two,
// 512..65536), rings are a quarter of that.
// Errors: InvalidArgument naming the field (index out of range, fewer queues
// than engines: an engine would own no queue and could not transmit).
absl::StatusOr<nic::InterfaceConfig> ToNicConfig(const v1::DaemonConfig& config,
                                                 int index);

// The engine threads: num_cores engines, pinned to cpu_affinity when given
// (cpu_affinity[i] for engine i; a list shorter than num_cores is an error,
// extra entries are ignored), engine_poll_us as the busy-poll budget.
// Errors: InvalidArgument naming cpu_affinity.
absl::StatusOr<engine::EngineSetConfig> ToEngineSetConfig(
    const v1::DaemonConfig& config);

// What the stack of every engine needs beyond the interface's own facts
// (address, MAC, MTU, gateway: filled by the caller from netlink/driver).
stack::StackConfig ToStackConfig(const v1::DaemonConfig& config);

// The proto enum of a resolved NIC driver kind.
v1::Driver ToProtoDriver(nic::DriverKind kind);

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_CONFIG_MAPPING_H_
