// verbs driver: raw-packet QPs and ibv_create_flow steering (see header).

#include "daemon/verbs/verbs_driver.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/nic/netdev.h"
#include "daemon/verbs/flow_spec.h"

namespace offload::verbs {
namespace {

absl::Status VerbsError(const std::string& what, int err) {
  std::string msg = absl::StrCat(what, ": ", strerror(err));
  if (err == EPERM || err == EACCES) {
    return absl::PermissionDeniedError(
        absl::StrCat(msg, " (raw packet QPs need CAP_NET_RAW)"));
  }
  if (err == EOPNOTSUPP || err == ENOSYS) {
    return absl::FailedPreconditionError(absl::StrCat(
        msg,
        " (the device does not support raw packet QPs / flow steering;"
        " use driver af_xdp)"));
  }
  return absl::InternalError(msg);
}

}  // namespace

absl::StatusOr<std::unique_ptr<VerbsQueue>> VerbsQueue::Create(
    ibv_context* ctx, ibv_pd* pd, uint8_t port, uint32_t queue_id,
    const nic::InterfaceConfig& config) {
  std::unique_ptr<VerbsQueue> q(new VerbsQueue());
  q->queue_id_ = queue_id;
  q->num_bufs_ = config.frames_per_queue;
  q->ring_size_ = std::min(config.ring_size, config.frames_per_queue / 2);
  q->pool_size_ = size_t{q->num_bufs_} * kBufSize;
  void* pool = mmap(nullptr, q->pool_size_, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (pool == MAP_FAILED) return VerbsError("mmap of the buffer pool", errno);
  q->pool_ = static_cast<uint8_t*>(pool);
  q->mr_.reset(ibv_reg_mr(pd, q->pool_, q->pool_size_, IBV_ACCESS_LOCAL_WRITE));
  if (!q->mr_) return VerbsError("ibv_reg_mr", errno);
  q->channel_.reset(ibv_create_comp_channel(ctx));
  if (!q->channel_) return VerbsError("ibv_create_comp_channel", errno);
  int flags = fcntl(q->channel_->fd, F_GETFL);
  fcntl(q->channel_->fd, F_SETFL, flags | O_NONBLOCK);
  const int depth = static_cast<int>(q->num_bufs_ / 2);
  q->rx_cq_.reset(ibv_create_cq(ctx, depth, nullptr, q->channel_.get(), 0));
  if (!q->rx_cq_) return VerbsError("ibv_create_cq (rx)", errno);
  q->tx_cq_.reset(ibv_create_cq(ctx, depth, nullptr, nullptr, 0));
  if (!q->tx_cq_) return VerbsError("ibv_create_cq (tx)", errno);

  ibv_qp_init_attr init;
  memset(&init, 0, sizeof(init));
  init.qp_type = IBV_QPT_RAW_PACKET;
  init.send_cq = q->tx_cq_.get();
  init.recv_cq = q->rx_cq_.get();
  init.cap.max_send_wr = static_cast<uint32_t>(depth);
  init.cap.max_recv_wr = static_cast<uint32_t>(depth);
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  q->qp_.reset(ibv_create_qp(pd, &init));
  if (!q->qp_) return VerbsError("ibv_create_qp(IBV_QPT_RAW_PACKET)", errno);

  // Raw packet QP state machine: RESET -> INIT (port) -> RTR -> RTS.
  ibv_qp_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.qp_state = IBV_QPS_INIT;
  attr.port_num = port;
  if (int err =
          ibv_modify_qp(q->qp_.get(), &attr, IBV_QP_STATE | IBV_QP_PORT)) {
    return VerbsError("ibv_modify_qp(INIT)", err);
  }
  memset(&attr, 0, sizeof(attr));
  attr.qp_state = IBV_QPS_RTR;
  if (int err = ibv_modify_qp(q->qp_.get(), &attr, IBV_QP_STATE)) {
    return VerbsError("ibv_modify_qp(RTR)", err);
  }
  attr.qp_state = IBV_QPS_RTS;
  if (int err = ibv_modify_qp(q->qp_.get(), &attr, IBV_QP_STATE)) {
    return VerbsError("ibv_modify_qp(RTS)", err);
  }
  // First half of the pool receives, second half transmits.
  const uint32_t rx_bufs = q->num_bufs_ / 2;
  std::vector<uint64_t> rx(rx_bufs);
  for (uint32_t i = 0; i < rx_bufs; ++i) rx[i] = i;
  if (!q->PostRecv(rx.data(), rx.size())) {
    return VerbsError("ibv_post_recv", errno);
  }
  for (uint32_t i = rx_bufs; i < q->num_bufs_; ++i) q->free_tx_.push_back(i);
  q->stash_.reserve(kStash);
  return q;
}

VerbsQueue::~VerbsQueue() {
  // Verbs objects before the memory they reference.
  qp_.reset();
  tx_cq_.reset();
  rx_cq_.reset();
  channel_.reset();
  mr_.reset();
  if (pool_ != nullptr) munmap(pool_, pool_size_);
}

bool VerbsQueue::PostRecv(const uint64_t* indexes, size_t n) {
  // One chained post per burst (one doorbell), at most 64 WRs per chain.
  constexpr size_t kChain = 64;
  ibv_sge sge[kChain];
  ibv_recv_wr wr[kChain];
  for (size_t done = 0; done < n;) {
    size_t m = std::min(kChain, n - done);
    for (size_t i = 0; i < m; ++i) {
      uint64_t idx = indexes[done + i];
      sge[i].addr = reinterpret_cast<uintptr_t>(Buffer(idx));
      sge[i].length = kBufSize;
      sge[i].lkey = mr_->lkey;
      wr[i].wr_id = idx;
      wr[i].sg_list = &sge[i];
      wr[i].num_sge = 1;
      wr[i].next = (i + 1 < m) ? &wr[i + 1] : nullptr;
    }
    ibv_recv_wr* bad = nullptr;
    if (ibv_post_recv(qp_.get(), wr, &bad) != 0) return false;
    done += m;
  }
  return true;
}

void VerbsQueue::PollRxCq() const {
  if (stash_head_ < stash_.size()) return;
  stash_.clear();
  stash_head_ = 0;
  ibv_wc wc[kStash];
  int n = ibv_poll_cq(rx_cq_.get(), kStash, wc);
  for (int i = 0; i < n; ++i) stash_.push_back(wc[i]);
}

size_t VerbsQueue::RxBurst(nic::RxFrame* frames, size_t max) {
  counters_.polls.Increment();
  size_t out = 0;
  uint64_t bytes = 0;
  uint64_t repost[kStash];
  size_t nrepost = 0;
  while (out < max) {
    PollRxCq();
    if (stash_head_ == stash_.size()) break;
    const ibv_wc& wc = stash_[stash_head_++];
    if (wc.status != IBV_WC_SUCCESS || wc.byte_len > kBufSize) {
      counters_.Drop(nic::DropReason::kRxTruncated);
      if (wc.wr_id < num_bufs_ / 2 && nrepost < kStash)
        repost[nrepost++] = wc.wr_id;
      continue;
    }
    frames[out].data = Buffer(wc.wr_id);
    frames[out].len = wc.byte_len;
    frames[out].handle = wc.wr_id;
    bytes += wc.byte_len;
    ++out;
  }
  if (nrepost > 0 && !PostRecv(repost, nrepost)) {
    counters_.ring_full.Increment();
  }
  if (out == 0) counters_.empty_polls.Increment();
  counters_.rx_packets.Add(out);
  counters_.rx_bytes.Add(bytes);
  return out;
}

void VerbsQueue::ReleaseRx(const nic::RxFrame* frames, size_t n) {
  uint64_t idx[kStash];
  for (size_t done = 0; done < n;) {
    size_t m = std::min<size_t>(kStash, n - done);
    for (size_t i = 0; i < m; ++i) idx[i] = frames[done + i].handle;
    if (!PostRecv(idx, m)) counters_.ring_full.Increment();
    done += m;
  }
}

size_t VerbsQueue::AllocTx(nic::TxFrame* frames, size_t n) {
  if (free_tx_.size() < n) ReclaimTx();
  size_t got = 0;
  while (got < n && !free_tx_.empty()) {
    uint64_t idx = free_tx_.back();
    free_tx_.pop_back();
    frames[got++] = {Buffer(idx), kBufSize, 0, idx};
  }
  if (got < n) counters_.Drop(nic::DropReason::kTxNoBuffer, n - got);
  return got;
}

void VerbsQueue::FreeTx(const nic::TxFrame* frames, size_t n) {
  for (size_t i = 0; i < n; ++i) free_tx_.push_back(frames[i].handle);
}

size_t VerbsQueue::SubmitTx(const nic::TxFrame* frames, size_t n) {
  constexpr size_t kChain = 64;
  const size_t room = num_bufs_ / 2 - tx_in_flight_;
  n = std::min({n, room, kChain});
  if (n == 0) {
    counters_.ring_full.Increment();
    return 0;
  }
  ibv_sge sge[kChain];
  ibv_send_wr wr[kChain];
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    sge[i].addr = reinterpret_cast<uintptr_t>(frames[i].data);
    sge[i].length = frames[i].len;
    sge[i].lkey = mr_->lkey;
    memset(&wr[i], 0, sizeof(wr[i]));
    wr[i].wr_id = frames[i].handle;
    wr[i].sg_list = &sge[i];
    wr[i].num_sge = 1;
    wr[i].opcode = IBV_WR_SEND;
    wr[i].send_flags = IBV_SEND_SIGNALED;  // completion returns the buffer
    wr[i].next = (i + 1 < n) ? &wr[i + 1] : nullptr;
    bytes += frames[i].len;
  }
  ibv_send_wr* bad = nullptr;
  if (ibv_post_send(qp_.get(), wr, &bad) != 0) {
    // WRs before `bad` were posted.
    size_t posted = bad == nullptr ? 0 : static_cast<size_t>(bad - wr);
    counters_.Drop(nic::DropReason::kTxError, n - posted);
    n = posted;
  }
  tx_in_flight_ += n;
  counters_.tx_packets.Add(n);
  counters_.tx_bytes.Add(bytes);
  return n;
}

size_t VerbsQueue::ReclaimTx() {
  if (tx_in_flight_ == 0) return 0;
  ibv_wc wc[kStash];
  int n = ibv_poll_cq(tx_cq_.get(), kStash, wc);
  for (int i = 0; i < n; ++i) {
    if (wc[i].status != IBV_WC_SUCCESS) {
      counters_.Drop(nic::DropReason::kTxError);
    }
    free_tx_.push_back(wc[i].wr_id);
  }
  if (n > 0) tx_in_flight_ -= static_cast<size_t>(n);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

bool VerbsQueue::RxPending() const {
  PollRxCq();
  return stash_head_ < stash_.size();
}

bool VerbsQueue::ArmWakeup() {
  if (!cq_armed_) {
    // Request an event for the next completion, then re-poll: a completion
    // that landed before the request would not raise one.
    if (ibv_req_notify_cq(rx_cq_.get(), 0) == 0) cq_armed_ = true;
  }
  return !RxPending();
}

void VerbsQueue::AckWakeup() {
  ibv_cq* cq = nullptr;
  void* ctx = nullptr;
  if (ibv_get_cq_event(channel_.get(), &cq, &ctx) == 0) {
    ibv_ack_cq_events(cq, 1);
    cq_armed_ = false;
    counters_.wakeups.Increment();
  }
}

absl::StatusOr<std::unique_ptr<VerbsDriver>> VerbsDriver::Create(
    const nic::InterfaceConfig& config) {
  absl::StatusOr<RdmaDevice> dev =
      FindRdmaDevice(config.sysfs_root, config.name);
  if (!dev.ok()) return dev.status();
  absl::StatusOr<nic::InterfaceInfo> info = nic::QueryInterface(config.name);
  if (!info.ok()) return info.status();
  if (config.num_queues == 0 || config.frames_per_queue < 2 ||
      (config.frames_per_queue & (config.frames_per_queue - 1)) != 0) {
    return absl::InvalidArgumentError(
        "num_queues must be >= 1 and frames_per_queue a power of two");
  }
  std::unique_ptr<VerbsDriver> d(new VerbsDriver());
  d->device_ = *dev;
  d->info_ = *std::move(info);
  d->info_.driver = nic::DriverKind::kVerbs;
  d->info_.num_queues = config.num_queues;
  d->info_.zero_copy = true;  // the NIC DMAs straight into our pool

  int num = 0;
  ibv_device** list = ibv_get_device_list(&num);
  if (list == nullptr) return VerbsError("ibv_get_device_list", errno);
  for (int i = 0; i < num && !d->ctx_; ++i) {
    if (d->device_.name == ibv_get_device_name(list[i])) {
      d->ctx_.reset(ibv_open_device(list[i]));
    }
  }
  ibv_free_device_list(list);
  if (!d->ctx_) {
    return absl::NotFoundError(absl::StrCat(
        "RDMA device ", d->device_.name, " of ", config.name,
        " cannot be opened (is its rdma-core provider, e.g. libmlx5, "
        "installed?)"));
  }
  d->pd_.reset(ibv_alloc_pd(d->ctx_.get()));
  if (!d->pd_) return VerbsError("ibv_alloc_pd", errno);
  for (uint32_t q = 0; q < config.num_queues; ++q) {
    absl::StatusOr<std::unique_ptr<VerbsQueue>> queue = VerbsQueue::Create(
        d->ctx_.get(), d->pd_.get(), d->device_.port, q, config);
    if (!queue.ok()) return queue.status();
    d->queues_.push_back(*std::move(queue));
  }
  return d;
}

VerbsDriver::~VerbsDriver() {
  std::lock_guard<std::mutex> lock(mu_);
  flows_.clear();  // rules first: traffic returns to the kernel at once
}

absl::Status VerbsDriver::Steer(const nic::FlowKey& flow, uint32_t queue) {
  if (std::string why = nic::ValidateFlowKey(flow); !why.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot steer ", flow.ToString(), ": ", why));
  }
  if (queue >= queues_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot steer ", flow.ToString(), " to queue ", queue,
                     ": ", queues_.size(), " queues open"));
  }
  if (flow.ipv6) {  // FlowRule builds IPv4 specs only
    return absl::UnimplementedError(
        absl::StrCat("cannot steer ", flow.ToString(), ": no IPv6 flow rules on verbs"));
  }
  FlowRule rule(flow, info_.mac, device_.port);
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<ibv_flow, FlowDeleter> f(
      ibv_create_flow(queues_[queue]->qp(), rule.mutable_attr()));
  if (!f) {
    return VerbsError(absl::StrCat("ibv_create_flow for ", flow.ToString()),
                      errno);
  }
  flows_[KeyOf(flow)] = std::move(f);  // replaces (destroys) an older rule
  return absl::OkStatus();
}

absl::Status VerbsDriver::Unsteer(const nic::FlowKey& flow) {
  std::lock_guard<std::mutex> lock(mu_);
  if (flows_.erase(KeyOf(flow)) == 0) {
    return absl::NotFoundError(
        absl::StrCat("flow ", flow.ToString(), " is not steered"));
  }
  return absl::OkStatus();
}

}  // namespace offload::verbs
