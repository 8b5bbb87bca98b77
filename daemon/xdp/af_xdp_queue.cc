// AF_XDP queue data path (see header for the ring protocol).

#include "daemon/xdp/af_xdp_queue.h"

#include <linux/if_xdp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace offload::xdp {
namespace {

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Ceiling on sendto() kicks per call: copy-mode TX sends at most 32 frames per
// kick (TX_BATCH_SIZE in net/xdp/xsk.c) and returns EAGAIN while more are
// queued, so a full ring needs ring_size / 32 kicks.
constexpr int kMaxTxKicks = 128;

// Bounded wait for a queue still held by a just-closed socket (~2 s).
constexpr int kBusyRetries = 100;
constexpr std::chrono::milliseconds kBusyRetryDelay(20);

}  // namespace

absl::StatusOr<std::unique_ptr<AfXdpQueue>> AfXdpQueue::Create(
    const std::string& ifname, uint32_t queue_id,
    const nic::InterfaceConfig& config, int xsks_map_fd) {
  if (!IsPowerOfTwo(config.ring_size) ||
      !IsPowerOfTwo(config.frames_per_queue) ||
      config.ring_size * 2 > config.frames_per_queue) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ring_size (", config.ring_size, ") and frames_per_queue (",
        config.frames_per_queue,
        ") must be powers of two with ring_size <= frames_per_queue / 2"));
  }
  std::unique_ptr<AfXdpQueue> q(new AfXdpQueue());
  q->queue_id_ = queue_id;
  // A socket closed a moment ago (previous instance, or a restart) keeps
  // the queue busy until the kernel releases its UMEM from a workqueue; bind
  // then fails with EBUSY (reported as Unavailable). Retry for a bounded
  // time, each time from scratch.
  auto bind_with_retry = [&](uint32_t flags) {
    absl::Status status;
    for (int attempt = 0; attempt < kBusyRetries; ++attempt) {
      status = q->Bind(ifname, flags, config, xsks_map_fd);
      if (!absl::IsUnavailable(status)) return status;
      q->Teardown();
      std::this_thread::sleep_for(kBusyRetryDelay);
    }
    return status;
  };
  absl::Status status;
  if (config.zero_copy != nic::ZeroCopy::kDisable) {
    status = bind_with_retry(XDP_ZEROCOPY | XDP_USE_NEED_WAKEUP);
    if (status.ok()) {
      q->zero_copy_ = true;
      return q;
    }
    if (config.zero_copy == nic::ZeroCopy::kRequire) {
      return absl::FailedPreconditionError(absl::StrCat(
          "zero-copy AF_XDP is unavailable on ", ifname, " queue ", queue_id,
          " (", status.message(), "); set zero_copy to prefer or disable"));
    }
    q->Teardown();
  }
  status = bind_with_retry(XDP_COPY | XDP_USE_NEED_WAKEUP);
  if (!status.ok()) return status;
  return q;
}

absl::Status AfXdpQueue::Bind(const std::string& ifname, uint32_t bind_flags,
                              const nic::InterfaceConfig& config,
                              int xsks_map_fd) {
  // Half the frames are for RX (all of them may sit in the fill ring), half
  // for TX (all of them may sit in the completion ring): neither ring can
  // ever overflow.
  const uint32_t half = config.frames_per_queue / 2;
  absl::StatusOr<std::unique_ptr<Umem>> umem =
      Umem::Create(config.frames_per_queue, half, half);
  if (!umem.ok()) return umem.status();
  umem_ = *std::move(umem);

  xsk_socket_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.rx_size = config.ring_size;
  cfg.tx_size = config.ring_size;
  // Our own XDP program is attached by SteerProgram; keep libxdp from loading
  // its default one.
  cfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
  cfg.bind_flags = static_cast<uint16_t>(bind_flags);
  int err = xsk_socket__create(&xsk_, ifname.c_str(), queue_id_, umem_->umem(),
                               &rx_, &tx_, &cfg);
  if (err != 0) {
    xsk_ = nullptr;
    std::string what = absl::StrCat(
        "cannot bind an AF_XDP socket to ", ifname, " queue ", queue_id_,
        (bind_flags & XDP_ZEROCOPY) ? " (zero-copy)" : " (copy mode)", ": ",
        strerror(-err));
    if (err == -EBUSY) return absl::UnavailableError(what);
    return absl::InternalError(what);
  }
  fd_ = xsk_socket__fd(xsk_);
  err = xsk_socket__update_xskmap(xsk_, xsks_map_fd);
  if (err != 0) {
    return absl::InternalError(
        absl::StrCat("cannot insert the AF_XDP socket of queue ", queue_id_,
                     " into the XSKMAP: ", strerror(-err)));
  }
  RefillFromPool();  // first half of the frames: RX
  return absl::OkStatus();
}

void AfXdpQueue::Teardown() {
  if (xsk_ != nullptr) xsk_socket__delete(xsk_);
  xsk_ = nullptr;
  fd_ = -1;
  umem_.reset();
  rx_ = {};
  tx_ = {};
}

AfXdpQueue::~AfXdpQueue() { Teardown(); }

void AfXdpQueue::RefillFromPool() {
  xsk_ring_prod* fill = umem_->fill();
  // Fill up to half the frames; the rest of the pool is for TX.
  const size_t rx_budget = umem_->num_frames() / 2;
  const size_t in_pool = umem_->free_frames();
  const size_t tx_reserve = umem_->num_frames() - rx_budget;
  if (in_pool <= tx_reserve) return;
  // xsk_prod_nb_free: load-acquire of fill->consumer, pairs with the
  // kernel's store-release of the consumer index after it took the
  // addresses (xskq_cons_release), so the slots are free to overwrite.
  uint32_t want = static_cast<uint32_t>(in_pool - tx_reserve);
  want = std::min(want, xsk_prod_nb_free(fill, want));
  if (want == 0) return;
  uint32_t idx;
  if (xsk_ring_prod__reserve(fill, want, &idx) != want) return;
  for (uint32_t i = 0; i < want; ++i) {
    uint64_t addr = 0;
    umem_->PopFree(&addr);  // cannot fail: want <= in_pool
    *xsk_ring_prod__fill_addr(fill, idx + i) = addr;
  }
  // xsk_ring_prod__submit: store-release of fill->producer after the address
  // writes; pairs with the kernel's load-acquire in xskq_cons_peek_addr.
  xsk_ring_prod__submit(fill, want);
}

void AfXdpQueue::KickFill() {
  // Plain read of the flags word: the kernel sets the flag before it stops
  // polling; a stale "clear" only delays us until the next poll, and the
  // engine calls ArmWakeup() (which kicks) before it sleeps.
  if (!xsk_ring_prod__needs_wakeup(umem_->fill())) return;
  counters_.wakeups.Increment();
  recvfrom(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
}

size_t AfXdpQueue::RxBurst(nic::RxFrame* frames, size_t max) {
  counters_.polls.Increment();
  uint32_t idx;
  // xsk_ring_cons__peek: load-acquire of rx->producer; pairs with the
  // kernel's store-release in xskq_prod_submit, so the descriptors read below
  // are complete.
  uint32_t n = xsk_ring_cons__peek(&rx_, static_cast<uint32_t>(max), &idx);
  if (n == 0) {
    counters_.empty_polls.Increment();
    RefillFromPool();  // frames that overflowed into the pool go back to RX
    KickFill();
    return 0;
  }
  size_t out = 0;
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&rx_, idx + i);
    if (!umem_->Contains(d->addr, d->len)) {
      // Cannot come from a correct kernel; never touch such a buffer.
      counters_.Drop(nic::DropReason::kRxInvalidDescriptor);
      continue;
    }
    frames[out].data = umem_->area() + d->addr;
    frames[out].len = d->len;
    frames[out].handle = d->addr;
    bytes += d->len;
    ++out;
  }
  // xsk_ring_cons__release: store-release of rx->consumer after our
  // descriptor reads; pairs with the kernel's load-acquire of the consumer
  // index before it reuses the slots. The buffers themselves are ours until
  // ReleaseRx() puts them in the fill ring.
  xsk_ring_cons__release(&rx_, n);
  counters_.rx_packets.Add(out);
  counters_.rx_bytes.Add(bytes);
  return out;
}

void AfXdpQueue::ReleaseRx(const nic::RxFrame* frames, size_t n) {
  xsk_ring_prod* fill = umem_->fill();
  // Load-acquire of fill->consumer (see RefillFromPool).
  uint32_t room = xsk_prod_nb_free(fill, static_cast<uint32_t>(n));
  uint32_t put = std::min(room, static_cast<uint32_t>(n));
  uint32_t idx;
  if (put > 0 && xsk_ring_prod__reserve(fill, put, &idx) == put) {
    for (uint32_t i = 0; i < put; ++i) {
      *xsk_ring_prod__fill_addr(fill, idx + i) =
          Umem::FrameBase(frames[i].handle);
    }
    // Store-release of fill->producer; pairs with xskq_cons_peek_addr.
    xsk_ring_prod__submit(fill, put);
  } else {
    put = 0;
  }
  if (put < n) counters_.ring_full.Increment();
  for (size_t i = put; i < n; ++i) umem_->PushFree(frames[i].handle);
}

size_t AfXdpQueue::AllocTx(nic::TxFrame* frames, size_t n) {
  if (umem_->free_frames() < n) ReclaimTx();
  size_t got = 0;
  for (; got < n; ++got) {
    uint64_t addr = 0;
    if (!umem_->PopFree(&addr)) break;
    frames[got].data = umem_->area() + addr;
    frames[got].capacity = Umem::kFrameSize;
    frames[got].len = 0;
    frames[got].handle = addr;
  }
  if (got < n) counters_.Drop(nic::DropReason::kTxNoBuffer, n - got);
  return got;
}

void AfXdpQueue::FreeTx(const nic::TxFrame* frames, size_t n) {
  for (size_t i = 0; i < n; ++i) umem_->PushFree(frames[i].handle);
}

size_t AfXdpQueue::SubmitTx(const nic::TxFrame* frames, size_t n) {
  if (n == 0) return 0;
  // Load-acquire of tx->consumer; pairs with the kernel's store-release
  // after it consumed descriptors (xskq_cons_release).
  uint32_t put = std::min(static_cast<uint32_t>(n),
                          xsk_prod_nb_free(&tx_, static_cast<uint32_t>(n)));
  uint32_t idx;
  if (put == 0 || xsk_ring_prod__reserve(&tx_, put, &idx) != put) {
    // Not a drop: the frames stay with the caller, which retries.
    counters_.ring_full.Increment();
    KickTx();
    return 0;
  }
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < put; ++i) {
    xdp_desc* d = xsk_ring_prod__tx_desc(&tx_, idx + i);
    d->addr = frames[i].handle;
    d->len = frames[i].len;
    d->options = 0;
    bytes += frames[i].len;
  }
  // xsk_ring_prod__submit: store-release of tx->producer after the
  // descriptor writes; pairs with the kernel's load-acquire in
  // xskq_cons_peek_desc.
  xsk_ring_prod__submit(&tx_, put);
  tx_in_flight_ += put;
  counters_.tx_packets.Add(put);
  counters_.tx_bytes.Add(bytes);
  if (put < n) counters_.ring_full.Increment();
  tx_kick_pending_ = true;
  KickTx();
  return put;
}

void AfXdpQueue::KickTx() {
  if (!tx_kick_pending_) return;
  // The TX need_wakeup flag is a plain read: the kernel sets it before it
  // stops looking at the ring (and keeps it set in copy mode). If it is
  // clear, the kernel (zero-copy driver NAPI) will see our producer update.
  if (!xsk_ring_prod__needs_wakeup(&tx_)) {
    tx_kick_pending_ = false;
    return;
  }
  for (int i = 0; i < kMaxTxKicks; ++i) {
    counters_.wakeups.Increment();
    if (sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) {
      // Copy mode sends synchronously in batches; done when the ring is
      // drained. Load-acquire of tx->consumer (xsk_prod_nb_free).
      if (xsk_prod_nb_free(&tx_, tx_.size) == tx_.size) {
        tx_kick_pending_ = false;
        return;
      }
      continue;
    }
    if (errno == EAGAIN) continue;  // more than one batch queued
    if (errno == EBUSY || errno == ENOBUFS) return;  // retry from ReclaimTx
    // ENETDOWN, ENXIO...: the frames stay in the ring until the link is
    // back; count it and retry later.
    counters_.Drop(nic::DropReason::kTxError);
    return;
  }
}

size_t AfXdpQueue::ReclaimTx() {
  KickTx();
  if (tx_in_flight_ == 0) return 0;
  xsk_ring_cons* comp = umem_->comp();
  uint32_t idx;
  // xsk_ring_cons__peek: load-acquire of comp->producer; pairs with the
  // kernel's store-release when it completes a frame (xskq_prod_submit_n).
  uint32_t n =
      xsk_ring_cons__peek(comp, static_cast<uint32_t>(tx_in_flight_), &idx);
  for (uint32_t i = 0; i < n; ++i) {
    umem_->PushFree(*xsk_ring_cons__comp_addr(comp, idx + i));
  }
  // Store-release of comp->consumer after reading the addresses; pairs with
  // the kernel's load-acquire before it reuses completion slots.
  if (n > 0) xsk_ring_cons__release(comp, n);
  tx_in_flight_ -= n;
  return n;
}

bool AfXdpQueue::RxPending() const {
  // xsk_cons_nb_avail: load-acquire of rx->producer when the cache is empty.
  return xsk_cons_nb_avail(&rx_, 1) > 0;
}

bool AfXdpQueue::ArmWakeup() {
  // Make sure the kernel can keep receiving while we sleep: give it the fill
  // buffers and kick it if it stopped. EPOLLIN on the socket then reports a
  // non-empty RX ring (xsk_poll), level-triggered, so nothing is lost
  // between this check and epoll_wait().
  KickFill();
  KickTx();
  return !RxPending();
}

nic::QueueStats AfXdpQueue::Stats() const {
  nic::QueueStats stats = NicQueue::Stats();
  xdp_statistics xs;
  socklen_t len = sizeof(xs);
  memset(&xs, 0, sizeof(xs));
  if (fd_ >= 0 && getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &xs, &len) == 0) {
    stats.kernel_rx_dropped = xs.rx_dropped;
    stats.kernel_rx_invalid_descs = xs.rx_invalid_descs;
    stats.kernel_tx_invalid_descs = xs.tx_invalid_descs;
    stats.kernel_rx_ring_full = xs.rx_ring_full;
    stats.kernel_rx_fill_ring_empty = xs.rx_fill_ring_empty_descs;
    stats.kernel_tx_ring_empty = xs.tx_ring_empty_descs;
  }
  return stats;
}

}  // namespace offload::xdp
