// Hardware flow steering for the af_xdp driver: ethtool n-tuple rules
// (ETHTOOL_SRXCLSRLINS) that make the NIC deliver a flow to a chosen RX
// queue. AF_XDP can only redirect a packet to the socket of the queue it
// arrived on, so on a multi-queue NIC this is what puts a steered flow on the
// queue -- and thus the engine -- it was steered to. Without n-tuple support
// (veth, virtio, many cloud NICs) RSS decides, and the XDP program counts
// OFFLOAD_STAT_QUEUE_MISMATCH when that differs from the steered queue.
//
// Thread safety: stateless; each call is one ioctl on the given socket.

#ifndef OFFLOAD_DAEMON_XDP_NTUPLE_H_
#define OFFLOAD_DAEMON_XDP_NTUPLE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/nic/flow.h"

namespace offload::xdp {

// Installs a rule steering `flow` to RX queue `queue` of `ifname`, through
// `sock` (any AF_INET socket of the interface's network namespace). Returns
// the rule's location for NTupleDelete. Unimplemented if the driver has no
// n-tuple filters; Internal (errno text) otherwise.
absl::StatusOr<uint32_t> NTupleInsert(int sock, const std::string& ifname,
                                      const nic::FlowKey& flow, uint32_t queue);

// Removes the rule at `location`.
absl::Status NTupleDelete(int sock, const std::string& ifname,
                          uint32_t location);

}  // namespace offload::xdp

#endif  // OFFLOAD_DAEMON_XDP_NTUPLE_H_
