// The XDP steering program of the af_xdp driver: loading it from the image
// embedded in the binary, attaching it to an interface, and editing its maps.
//
// Attachment goes through libxdp. With a bpffs mounted, libxdp attaches the
// program behind its multi-program dispatcher (so it can coexist with other
// libxdp programs) and pins the dispatcher state there. Without bpffs
// (common in containers, and the case on our CI) libxdp falls back by itself
// to attaching the program alone ("legacy" attach, plain XDP_FLAGS_*_MODE);
// we rely on that fallback instead of mounting bpffs behind the
// administrator's back. Either way nothing is pinned by us: the program and
// its maps live exactly as long as they are attached or referenced.
//
// Mode: native (driver) XDP first, generic (SKB) XDP if the driver refuses.
// veth supports native XDP, and AF_XDP sockets on veth then work in copy
// mode; redirecting *into* a veth (ndo_xdp_xmit, not used here) would
// additionally need an XDP program or GRO on the peer, which AF_XDP RX/TX does
// not need: RX is the XDP_REDIRECT on the receiving veth's own NAPI, TX goes
// through the socket's generic xmit path.
//
// Ownership and crash recovery: the instance driving an interface holds an
// abstract unix socket named after the ifindex (per network namespace,
// released by the kernel when the process dies, even by SIGKILL). Attach
// first claims that name -- failing with FailedPrecondition if a live
// instance holds it -- and then treats a program named
// OFFLOAD_XDP_PROG_NAME still on the interface as left by a dead instance:
// it is detached and replaced, no manual step needed. A foreign program is
// left alone and attach fails with FailedPrecondition.
//
// Thread safety: map edits (SetFlow/DeleteFlow) and ReadStats are bpf(2)
// syscalls, safe from any thread. Attach/destruction are single-threaded.

#ifndef OFFLOAD_DAEMON_XDP_STEER_PROGRAM_H_
#define OFFLOAD_DAEMON_XDP_STEER_PROGRAM_H_

#include <array>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "daemon/nic/config.h"
#include "daemon/nic/flow.h"
#include "daemon/xdp/bpf/steer_maps.h"

struct bpf_object;
struct xdp_program;

namespace offload::xdp {

using SteerStats = std::array<uint64_t, OFFLOAD_STAT_COUNT>;

// Converts a host-order FlowKey into the BPF map key (network order, zero
// padding).
offload_flow_key ToBpfKey(const nic::FlowKey& key);

class SteerProgram {
 public:
  // Loads the embedded program with a flow map of `max_flows` entries and
  // attaches it to `ifindex` in `mode`, replacing a stale program of ours.
  // Errors: FailedPrecondition (another XDP program is attached), Internal
  // / PermissionDenied (load or attach failed; libbpf's message included).
  static absl::StatusOr<std::unique_ptr<SteerProgram>> Attach(
      int ifindex, nic::XdpAttachMode mode, uint32_t max_flows);

  // Loads the program without attaching it, for BPF_PROG_TEST_RUN tests.
  static absl::StatusOr<std::unique_ptr<SteerProgram>> LoadForTest(
      uint32_t max_flows);

  // Detaches an offload_steer program left on `ifindex`. Returns true if one
  // was found. Errors: FailedPrecondition if a foreign program is attached.
  static absl::StatusOr<bool> DetachStale(int ifindex);

  SteerProgram(const SteerProgram&) = delete;
  SteerProgram& operator=(const SteerProgram&) = delete;
  // Detaches the program (if attached) and releases it and its maps.
  ~SteerProgram();

  // Inserts/updates a flow -> queue entry. ResourceExhausted if the map is
  // full, InvalidArgument for a bad key.
  absl::Status SetFlow(const nic::FlowKey& key, uint32_t queue);
  // NotFound if the flow is absent.
  absl::Status DeleteFlow(const nic::FlowKey& key);
  // True if `key` is in the flow map.
  bool HasFlow(const nic::FlowKey& key) const;

  // Sums the per-CPU statistics.
  absl::StatusOr<SteerStats> ReadStats() const;

  int prog_fd() const;
  int xsks_map_fd() const { return xsks_map_fd_; }
  int flows_map_fd() const { return flows_map_fd_; }
  // True if attached in native (driver) mode, false for generic mode.
  bool native() const { return native_; }

 private:
  SteerProgram() = default;
  static absl::StatusOr<std::unique_ptr<SteerProgram>> Open(uint32_t max_flows);

  bpf_object* obj_ = nullptr;
  xdp_program* prog_ = nullptr;
  int ifindex_ = 0;  // 0: not attached.
  bool native_ = false;
  int flows_map_fd_ = -1;
  int xsks_map_fd_ = -1;
  int stats_map_fd_ = -1;
  int claim_fd_ = -1;  // ownership socket, see ClaimInterface()
};

}  // namespace offload::xdp

#endif  // OFFLOAD_DAEMON_XDP_STEER_PROGRAM_H_
