// One AF_XDP socket bound to one queue of an interface, with its own UMEM:
// the af_xdp driver's NicQueue.
//
// Ring protocol (net/xdp/xsk_queue.h in the kernel): each ring has one
// producer and one consumer. The producer writes entries, then publishes the
// producer index with a store-release; the consumer reads the producer index
// with a load-acquire before reading entries, and publishes its consumer
// index with a store-release after it is done with them; the producer reads
// the consumer index with a load-acquire before reusing slots. The libxdp
// inline helpers (xdp/xsk.h) implement exactly these barriers; each call site
// below names the one it relies on.
//
// need_wakeup (XDP_USE_NEED_WAKEUP): the kernel sets XDP_RING_NEED_WAKEUP on
// the fill ring when it ran out of fill buffers and stopped polling, and on
// the TX ring when it will not look at the ring until it is kicked (always
// so in copy mode). We kick only when the flag is set: recvfrom(MSG_DONTWAIT)
// for the fill ring, sendto(MSG_DONTWAIT) for TX.
//
// Thread safety: see NicQueue. One owning thread; Stats() from any thread.

#ifndef OFFLOAD_DAEMON_XDP_AF_XDP_QUEUE_H_
#define OFFLOAD_DAEMON_XDP_AF_XDP_QUEUE_H_

#include <xdp/xsk.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/nic/config.h"
#include "daemon/nic/nic.h"
#include "daemon/xdp/umem.h"

namespace offload::xdp {

class AfXdpQueue : public nic::NicQueue {
 public:
  // Creates a socket on queue `queue_id` of `ifname`, binds it (zero-copy
  // per `config.zero_copy`, falling back to copy mode if preferred) and
  // inserts it into the XSKMAP `xsks_map_fd` at index `queue_id`.
  // Errors: InvalidArgument (ring sizes), FailedPrecondition (zero-copy
  // required but unsupported), PermissionDenied, Internal (errno text).
  static absl::StatusOr<std::unique_ptr<AfXdpQueue>> Create(
      const std::string& ifname, uint32_t queue_id,
      const nic::InterfaceConfig& config, int xsks_map_fd);

  ~AfXdpQueue() override;

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
  void AckWakeup() override {}
  int WaitFd() const override { return fd_; }
  nic::QueueStats Stats() const override;

  bool zero_copy() const { return zero_copy_; }

 private:
  AfXdpQueue() = default;
  absl::Status Bind(const std::string& ifname, uint32_t bind_flags,
                    const nic::InterfaceConfig& config, int xsks_map_fd);
  void Teardown();
  // Moves free frames into the fill ring.
  void RefillFromPool();
  // Kicks the kernel to process the TX ring if it asked for it.
  void KickTx();
  // Kicks the kernel to look at the fill ring if it asked for it.
  void KickFill();

  uint32_t queue_id_ = 0;
  bool zero_copy_ = false;
  int fd_ = -1;  // owned by xsk_
  std::unique_ptr<Umem> umem_;
  xsk_socket* xsk_ = nullptr;
  // Mutable: the cached indexes advance on const peeks (RxPending).
  mutable xsk_ring_cons rx_ = {};
  xsk_ring_prod tx_ = {};
  size_t tx_in_flight_ = 0;
  bool tx_kick_pending_ = false;  // a kick returned EAGAIN/EBUSY: retry.
};

}  // namespace offload::xdp

#endif  // OFFLOAD_DAEMON_XDP_AF_XDP_QUEUE_H_
