// WirePlane: IPv6 routing of TCP connections (see wire_plane.h).

#include <cstring>

#include "daemon/wire/engine_flows.h"
#include "daemon/wire/wire_plane.h"

namespace offload::wire {

absl::StatusOr<WireRoute> WirePlane::RouteTo6(const net::Ip6Addr& remote_ip,
                                              uint16_t remote_port) const {
  if (interface_ == nullptr) return absl::FailedPreconditionError("the wire path is stopped");
  netlink::Ip6 dst;
  std::memcpy(dst.data(), remote_ip.b, 16);
  absl::StatusOr<WireRoute> out = kernel_->RouteTo6(dst);
  if (!out.ok()) return out;
  // Flows spread over the engines by peer, as RouteTo does for IPv4.
  uint64_t w[2];
  std::memcpy(w, remote_ip.b, 16);
  const uint64_t h = ((w[0] ^ w[1]) + remote_port) * 0x9e3779b97f4a7c15ull;
  out->engine = static_cast<uint32_t>((h >> 32) % flows_.size());
  out->queue = flows_[out->engine]->queue();
  return out;
}

}  // namespace offload::wire
