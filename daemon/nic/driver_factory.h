// Opens a network interface with the driver its configuration asks for.
// DriverKind::kAuto picks verbs when the netdev is backed by an RDMA device
// (/sys/class/net/<if>/device/infiniband/ exists), af_xdp otherwise.

#ifndef OFFLOAD_DAEMON_NIC_DRIVER_FACTORY_H_
#define OFFLOAD_DAEMON_NIC_DRIVER_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "daemon/nic/config.h"
#include "daemon/nic/nic.h"

namespace offload::nic {

// The concrete driver kAuto resolves to for `config` (kAfXdp or kVerbs);
// other kinds are returned unchanged.
DriverKind ResolveDriverKind(const InterfaceConfig& config);

// Opens `config.name` with the resolved driver. Errors are the drivers'
// (see AfXdpDriver::Create, VerbsDriver::Create); asking for verbs on an
// interface without an RDMA device is NotFound with a message naming the
// interface and suggesting af_xdp. When the OFFLOADD_FAULT environment
// variable asks for faults (fault_spec.h), the driver is wrapped in a
// FaultNicDriver and a warning is logged; a malformed value is
// InvalidArgument naming the bad token, before the interface is opened.
absl::StatusOr<std::unique_ptr<NicDriver>> OpenDriver(
    const InterfaceConfig& config);

}  // namespace offload::nic

#endif  // OFFLOAD_DAEMON_NIC_DRIVER_FACTORY_H_
