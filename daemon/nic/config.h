// Plain configuration of the NIC layer. The lead maps the protobuf
// DaemonConfig onto these structs; nothing here knows about protobuf.

#ifndef OFFLOAD_DAEMON_NIC_CONFIG_H_
#define OFFLOAD_DAEMON_NIC_CONFIG_H_

#include <cstdint>
#include <string>

namespace offload::nic {

enum class DriverKind {
  kAuto,   // verbs if the netdev is backed by an RDMA device, else af_xdp.
  kAfXdp,  // AF_XDP sockets + XDP steering program (any Linux NIC, veth).
  kVerbs,  // rdma-core raw-packet QPs with ibv_create_flow steering.
};

// Whether the af_xdp driver may, must, or must not bind in zero-copy mode.
enum class ZeroCopy {
  kPrefer,   // zero-copy if the driver supports it, copy mode otherwise.
  kRequire,  // fail at start-up if zero-copy is unavailable.
  kDisable,  // always copy mode.
};

// How the XDP steering program is attached (af_xdp only).
enum class XdpAttachMode {
  kAuto,     // native (driver) mode, generic (SKB) mode if native fails.
  kNative,   // XDP_FLAGS_DRV_MODE only.
  kGeneric,  // XDP_FLAGS_SKB_MODE only.
};

struct InterfaceConfig {
  std::string name;  // netdev name, e.g. "eth0".
  DriverKind driver = DriverKind::kAuto;
  uint32_t num_queues = 1;  // queues 0..num_queues-1 are opened.
  ZeroCopy zero_copy = ZeroCopy::kPrefer;
  XdpAttachMode xdp_mode = XdpAttachMode::kAuto;
  // Buffers per queue (UMEM frames / verbs pool entries). Power of two.
  uint32_t frames_per_queue = 4096;
  // Size of each ring (RX, TX, fill, completion; CQ depth for verbs).
  // Power of two, at most frames_per_queue / 2.
  uint32_t ring_size = 1024;
  // Maximum number of steered flows (size of the XDP flow map).
  uint32_t max_flows = 65536;
  // Root of the sysfs tree; tests point it at a fake tree.
  std::string sysfs_root = "/sys";
};

const char* DriverKindName(DriverKind kind);

}  // namespace offload::nic

#endif  // OFFLOAD_DAEMON_NIC_CONFIG_H_
