// A wire UDP socket's rings (see header).
#include "daemon/wire/app_dgram.h"

#include <errno.h>
#include <fcntl.h>

#include <cstring>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "shm/dgram_ring.h"
#include "shm/segment.h"
#include "shm/wakeup.h"

namespace offload::wire {

absl::StatusOr<std::shared_ptr<AppDgram>> AppDgram::Create(uint32_t capacity, int app_efd,
                                                           uint32_t local_addr,
                                                           uint16_t local_port,
                                                           uint16_t max_payload) {
  if (capacity < 2 * shm::DgramRecordBytes(shm::kMaxDatagram) || capacity > (1u << 30) ||
      (capacity & (capacity - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "datagram ring capacity ", capacity, " is not a power of two in [",
        2 * shm::DgramRecordBytes(shm::kMaxDatagram), ", 2^30]"));
  }
  std::shared_ptr<AppDgram> d(new AppDgram());
  d->memfd_ =
      shm::MakeSealedMemfd("offload-wire-udp", shm::WireUdpSegmentBytes(capacity), &d->map_);
  if (!d->memfd_.valid()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create a ", shm::WireUdpSegmentBytes(capacity),
                     "-byte datagram segment: ", strerror(errno)));
  }
  d->app_efd_.reset(fcntl(app_efd, F_DUPFD_CLOEXEC, 0));
  if (!d->app_efd_.valid()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot duplicate the socket's eventfd: ", strerror(errno)));
  }
  d->capacity_ = capacity;
  d->max_payload_ = max_payload;
  for (shm::DgramHeader* slot : {d->tx_header(), d->rx_header()}) {
    auto* h = new (slot) shm::DgramHeader();
    h->magic = shm::kDgramMagic;
    h->capacity = capacity;
    h->flags = shm::kDgramAddrPerRecord;
  }
  d->tx_header()->src_addr = local_addr;
  d->tx_header()->src_port = local_port;
  d->tx_header()->max_payload = max_payload;
  return d;
}

void AppDgram::KickApp() const { shm::Kick(app_efd_.get()); }

}  // namespace offload::wire
