// Facts about a Linux network interface read from the kernel (ioctl and
// sysfs): index, MAC, MTU, RX queue count. Setup path only.

#ifndef OFFLOAD_DAEMON_NIC_NETDEV_H_
#define OFFLOAD_DAEMON_NIC_NETDEV_H_

#include <string>

#include "absl/status/statusor.h"
#include "daemon/nic/nic.h"

namespace offload::nic {

// Fills name, ifindex, mac, mtu, hw_rx_queues and checksum_offload (kRxPartial
// for a veth) of the interface `name` in
// the calling thread's network namespace. NotFound if there is no such
// interface; Internal with errno text for other failures.
absl::StatusOr<InterfaceInfo> QueryInterface(const std::string& name);

// Number of RX queues of `name`, counted from <sysfs_root>/class/net/<name>/
// queues/rx-*. Returns at least 1.
uint32_t CountRxQueues(const std::string& sysfs_root, const std::string& name);

}  // namespace offload::nic

#endif  // OFFLOAD_DAEMON_NIC_NETDEV_H_
