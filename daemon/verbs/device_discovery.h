// Maps a netdev to the RDMA (verbs) device behind it, from sysfs:
// <sysfs_root>/class/net/<if>/device/infiniband/<ibdev> names the device,
// <sysfs_root>/class/net/<if>/dev_port the 0-based port (verbs port = +1).
// Tests point sysfs_root at a fake tree.

#ifndef OFFLOAD_DAEMON_VERBS_DEVICE_DISCOVERY_H_
#define OFFLOAD_DAEMON_VERBS_DEVICE_DISCOVERY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace offload::verbs {

struct RdmaDevice {
  std::string name;  // e.g. "mlx5_0"
  uint8_t port = 1;  // verbs port number (1-based)
};

// Errors: NotFound if `ifname` has no RDMA device (e.g. veth, virtio, or a
// NIC without rdma-core support); InvalidArgument for a bad name.
absl::StatusOr<RdmaDevice> FindRdmaDevice(const std::string& sysfs_root,
                                          const std::string& ifname);

}  // namespace offload::verbs

#endif  // OFFLOAD_DAEMON_VERBS_DEVICE_DISCOVERY_H_
