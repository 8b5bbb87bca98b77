// The verbs NIC driver: rdma-core raw-packet QPs on an RDMA-capable NIC
// (Mellanox/NVIDIA ConnectX via mlx5), the way Mellanox VMA owns queues.
//
// Per queue: one IBV_QPT_RAW_PACKET QP, an RX CQ bound to a completion
// channel (the queue's WaitFd), a TX CQ, and a registered buffer pool (half
// RX, half TX). Steering is one ibv_create_flow() rule per steered flow on
// the QP of the chosen queue; there is no catch-all rule, so everything not
// steered keeps flowing to the kernel's netdev.
//
// Lifetime: RAII over every verbs object (context, PD, MR, CQs, channel, QP,
// flows); destruction removes the flow rules first.
// Thread safety: see nic::NicDriver.
//
// Testing: this machine has no RDMA device. Device discovery, flow-rule
// construction and the start-up error are unit-tested; the data path needs
// hardware (or rxe, which lacks raw-packet QPs).

#ifndef OFFLOAD_DAEMON_VERBS_VERBS_DRIVER_H_
#define OFFLOAD_DAEMON_VERBS_VERBS_DRIVER_H_

#include <infiniband/verbs.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/nic/config.h"
#include "daemon/nic/nic.h"
#include "daemon/verbs/device_discovery.h"

namespace offload::verbs {

struct ContextDeleter {
  void operator()(ibv_context* c) const { ibv_close_device(c); }
};
struct PdDeleter {
  void operator()(ibv_pd* p) const { ibv_dealloc_pd(p); }
};
struct MrDeleter {
  void operator()(ibv_mr* m) const { ibv_dereg_mr(m); }
};
struct CqDeleter {
  void operator()(ibv_cq* c) const { ibv_destroy_cq(c); }
};
struct ChannelDeleter {
  void operator()(ibv_comp_channel* c) const { ibv_destroy_comp_channel(c); }
};
struct QpDeleter {
  void operator()(ibv_qp* q) const { ibv_destroy_qp(q); }
};
struct FlowDeleter {
  void operator()(ibv_flow* f) const { ibv_destroy_flow(f); }
};

class VerbsQueue : public nic::NicQueue {
 public:
  static constexpr uint32_t kBufSize = 2048;  // >= MTU 1500 + headers
  static constexpr int kStash = 64;           // CQ entries polled at once

  static absl::StatusOr<std::unique_ptr<VerbsQueue>> Create(
      ibv_context* ctx, ibv_pd* pd, uint8_t port, uint32_t queue_id,
      const nic::InterfaceConfig& config);
  ~VerbsQueue() override;

  uint32_t id() const override { return queue_id_; }
  size_t RxBurst(nic::RxFrame* frames, size_t max) override;
  void ReleaseRx(const nic::RxFrame* frames, size_t n) override;
  size_t AllocTx(nic::TxFrame* frames, size_t n) override;
  void FreeTx(const nic::TxFrame* frames, size_t n) override;
  size_t SubmitTx(const nic::TxFrame* frames, size_t n) override;
  size_t ReclaimTx() override;
  size_t TxInFlight() const override { return tx_in_flight_; }
  bool RxPending() const override;
  bool ArmWakeup() override;
  void AckWakeup() override;
  int WaitFd() const override { return channel_->fd; }

  ibv_qp* qp() { return qp_.get(); }

 private:
  VerbsQueue() = default;
  uint8_t* Buffer(uint64_t index) const { return pool_ + index * kBufSize; }
  // Posts receive WRs for buffer indexes [0, n). Returns false on error.
  bool PostRecv(const uint64_t* indexes, size_t n);
  // Moves completions from the RX CQ into the stash (RxPending peeks).
  void PollRxCq() const;

  uint32_t queue_id_ = 0;
  uint32_t num_bufs_ = 0;
  uint32_t ring_size_ = 0;
  uint8_t* pool_ = nullptr;  // mmap'd, num_bufs_ * kBufSize
  size_t pool_size_ = 0;
  std::unique_ptr<ibv_mr, MrDeleter> mr_;
  std::unique_ptr<ibv_comp_channel, ChannelDeleter> channel_;
  std::unique_ptr<ibv_cq, CqDeleter> rx_cq_;
  std::unique_ptr<ibv_cq, CqDeleter> tx_cq_;
  std::unique_ptr<ibv_qp, QpDeleter> qp_;
  std::vector<uint64_t> free_tx_;  // TX buffer indexes
  size_t tx_in_flight_ = 0;
  // RX completions polled but not yet returned by RxBurst (RxPending polls
  // the CQ, which consumes entries).
  mutable std::vector<ibv_wc> stash_;
  mutable size_t stash_head_ = 0;
  bool cq_armed_ = false;  // ibv_req_notify_cq done, event not yet acked
};

class VerbsDriver : public nic::NicDriver {
 public:
  // Opens the RDMA device behind `config.name` (found under
  // config.sysfs_root). Errors: NotFound (no RDMA device: the message says
  // to use af_xdp), FailedPrecondition (device without raw-packet QP
  // support), PermissionDenied (raw packet QPs need CAP_NET_RAW), Internal.
  static absl::StatusOr<std::unique_ptr<VerbsDriver>> Create(
      const nic::InterfaceConfig& config);
  ~VerbsDriver() override;

  const nic::InterfaceInfo& info() const override { return info_; }
  size_t num_queues() const override { return queues_.size(); }
  nic::NicQueue* queue(size_t i) override { return queues_[i].get(); }
  absl::Status Steer(const nic::FlowKey& flow, uint32_t queue) override;
  absl::Status Unsteer(const nic::FlowKey& flow) override;

 private:
  VerbsDriver() = default;
  using Key = std::tuple<int, uint32_t, uint16_t, uint32_t, uint16_t>;
  static Key KeyOf(const nic::FlowKey& f) {
    return {static_cast<int>(f.proto), f.local_ip, f.local_port, f.remote_ip,
            f.remote_port};
  }

  nic::InterfaceInfo info_;
  RdmaDevice device_;
  std::unique_ptr<ibv_context, ContextDeleter> ctx_;
  std::unique_ptr<ibv_pd, PdDeleter> pd_;
  std::vector<std::unique_ptr<VerbsQueue>> queues_;
  std::mutex mu_;
  std::map<Key, std::unique_ptr<ibv_flow, FlowDeleter>> flows_;  // mu_
};

}  // namespace offload::verbs

#endif  // OFFLOAD_DAEMON_VERBS_VERBS_DRIVER_H_
