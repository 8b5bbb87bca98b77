// The extra API's zero-copy receive (recvfrom_zcopy, free_packets) and
// receive filter callback (register_recv_callback) for offloaded UDP
// sockets; the contract is in offload_extra.h.
//
// A datagram is one record in one of the socket's incoming rings (a
// same-host sender's, or the engine's RX ring). Lending it means moving
// the ring's read position past it without moving the shared head, which
// is what gives space back to the producer (DgramConsumer::Skip /
// PublishHead). Each ring keeps a bitmap of its records still lent (one
// bit per 8-byte slot, at the record's start); the shared head follows the
// read position while nothing is lent, and otherwise stops at the oldest
// lent record: a free walks the head forward over every record that is no
// longer lent (freed, copied out, dropped by the callback) up to the next
// lent one or the read position -- once per ring per free_packets call,
// and without walking when the ring has nothing lent any more (the head
// then goes straight to the read position). Space is therefore released in ring
// order, and lent bytes are never reused while lent: held buffers count
// against the socket's receive queue, and a ring they fill drops what comes
// next (the producer's full-ring path), for this socket only.
//
// A socket starts using this file's receive path the first time the extra
// API touches it (UdpState::extra, never reset): UdpRecv, UdpHasData and
// UdpNextSize test that pointer once and come here. The plain path is
// untouched otherwise.
//
// The callback runs in the application thread that receives or polls
// (FilteredFront, under udp->rx_mu), once per datagram in ring order:
// DROP consumes the record, HOLD lends it, RECV remembers the record
// (InRing::accepted) so that it is delivered without asking again.
//
// Sockets held by several processes went back to the kernel
// (DemoteSharedUdp): the API does not apply to them any more; what they
// had lent stays mapped until freed (free_packets then only forgets it).

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <new>

#include "client/attach.h"
#include "client/config.h"
#include "client/fd_table.h"
#include "client/inet_name.h"
#include "client/libc.h"
#include "client/offload_extra.h"
#include "client/ops.h"
#include "client/udp_internal.h"

namespace offload {
namespace client {

// The extra state of `s`, created on first use.
UdpExtra* EnsureExtra(Socket* s) {
  UdpExtra* x = s->udp->extra.load(std::memory_order_acquire);
  if (x != nullptr) return x;
  std::unique_ptr<UdpExtra> fresh(new (std::nothrow) UdpExtra());
  if (fresh == nullptr) return nullptr;
  if (!s->udp->extra.compare_exchange_strong(x, fresh.get(), std::memory_order_acq_rel)) {
    return x;  // another thread installed one first; ours is freed
  }
  // The only thread that gets here for this socket.
  s->udp->extra_owned = std::move(fresh);
  return s->udp->extra_owned.get();
}

namespace {

size_t Slot(const InRing* r, uint64_t pos) { return (pos & (r->c.capacity() - 1)) / 8; }
bool LentBit(const InRing* r, uint64_t pos) {
  const size_t i = Slot(r, pos);
  return r->lent != nullptr && ((r->lent[i / 64] >> (i % 64)) & 1) != 0;
}

// Gives back to the producer every record from the shared head that is no
// longer lent, up to the next lent one or the read position. Nothing while
// the socket is shared (the other holders consume from the shared head).
void Release(Socket* s, InRing* r) {
  if (s->udp_shared.load(std::memory_order_relaxed)) return;
  const uint64_t end = r->c.ReadPos();
  if (r->lent_count == 0) {
    // The common case (the oldest, or only, lent record came back): all of
    // it, without walking the records.
    r->c.PublishHead(end);
    return;
  }
  const size_t cap = r->c.capacity();
  const uint64_t from = r->c.SharedHead();
  uint64_t h = from;
  while (h != end) {
    const size_t pos = h & (cap - 1);
    uint32_t len;
    memcpy(&len, r->c.data() + pos, sizeof(len));
    if (len == shm::kDgramSkip) {
      h += cap - pos;
      continue;
    }
    if (LentBit(r, h)) break;
    h += shm::DgramRecordBytes(len);
  }
  if (h != from) r->c.PublishHead(h);
}

// The front record (Front() just returned it, `len` bytes) is consumed:
// copied out, or dropped.
void Consume(Socket* s, InRing* r, size_t len) {
  r->c.Skip(len);
  Release(s, r);
}

// Lends the front record to the application. False if the bitmap cannot be
// allocated (then nothing changed).
bool Lend(UdpExtra* x, InRing* r, size_t len) {
  if (__builtin_expect(r->lent == nullptr, 0)) {
    const size_t words = (r->c.capacity() / 8 + 63) / 64;
    r->lent.reset(new (std::nothrow) uint64_t[words]());
    if (r->lent == nullptr) return false;
  }
  const size_t i = Slot(r, r->c.ReadPos());
  r->lent[i / 64] |= uint64_t{1} << (i % 64);
  ++r->lent_count;
  ++x->held;
  r->c.Skip(len);
  // The next record's header: the next receive's first touch of the ring.
  __builtin_prefetch(r->c.data() + (r->c.ReadPos() & (r->c.capacity() - 1)));
  return true;
}

// The ring holding the record at ring address `id` (a packet_id we handed
// out) after marking it no longer lent; nullptr if `s` does not hold it.
// Its space is not released yet (Release).
InRing* Unlend(Socket* s, UdpExtra* x, const void* id) {
  const auto* p = static_cast<const uint8_t*>(id);
  for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
    InRing* r = ring.get();
    const uint8_t* base = r->c.data();
    if (p < base || p >= base + r->c.capacity() || ((p - base) & 7) != 0) continue;
    const uint64_t off = static_cast<uint64_t>(p - base);
    if (r->lent_count == 0 || !LentBit(r, off)) return nullptr;
    const size_t i = Slot(r, off);
    r->lent[i / 64] &= ~(uint64_t{1} << (i % 64));
    --r->lent_count;
    --x->held;
    return r;
  }
  return nullptr;
}

}  // namespace

size_t FreeLent(Socket* s, UdpExtra* x, const offload_packet_t* pkts, size_t count) {
  InRing* pending = nullptr;  // a ring with frees not yet released
  size_t i = 0;
  for (; i < count; ++i) {
    InRing* r = Unlend(s, x, pkts[i].packet_id);
    if (r == nullptr) break;
    if (r != pending && pending != nullptr) Release(s, pending);
    pending = r;
  }
  if (pending != nullptr) Release(s, pending);
  return i;
}

namespace {

// The next datagram of ring `r` to deliver, after the receive callback (if
// any) has seen the ones before it: its payload, length and source, or
// nullptr if the ring holds none. Under udp->rx_mu.
const uint8_t* FilteredFrontSlow(Socket* s, UdpExtra* x, InRing* r, size_t* len,
                                 size_t* rec_len, shm::SockAddr* from) {
  for (;;) {
    // The wire ring's records carry their source (an IPv6 one in front of
    // the payload: *rec_len is the record's length, *len the datagram's).
    // A connected socket receives from its peer only (PeerFront drops the
    // others' datagrams).
    const uint8_t* p = PeerFront(s, r, /*shared=*/false, len, rec_len, from, Consume);
    if (p == nullptr) return nullptr;
    const uint64_t pos = r->c.ReadPos();
    if (x->cb == nullptr || pos == r->accepted) return p;
    // In the socket's family: an AF_INET6 socket's callback gets
    // sockaddr_in6 behind the sockaddr_in pointers (offload_extra.h).
    InetName src = NameIn(*from, s->family);
    InetName dst = s->local;
    offload_info_t info = {};
    info.struct_sz = sizeof(info);
    info.packet_id = const_cast<uint8_t*>(p - (*rec_len - *len) - sizeof(shm::DgramRecord));
    info.src = &src.v4;
    info.dst = &dst.v4;
    info.payload_sz = *len;
    const size_t queued = r->c.QueuedBytes() - shm::DgramRecordBytes(*rec_len);
    info.socket_ready_queue_byte_count = queued > UINT32_MAX ? UINT32_MAX : uint32_t(queued);
    iovec iov = {const_cast<uint8_t*>(p), *len};
    x->cb_thread.store(pthread_self(), std::memory_order_relaxed);
    x->in_cb.store(true, std::memory_order_relaxed);
    const offload_recv_callback_retval_t verdict = x->cb(s->fd, 1, &iov, &info, x->cb_ctx);
    x->in_cb.store(false, std::memory_order_relaxed);
    if (verdict == OFFLOAD_PACKET_DROP) {
      Consume(s, r, *rec_len);
      continue;
    }
    if (verdict == OFFLOAD_PACKET_HOLD && Lend(x, r, *rec_len)) {
      Add(s->slot->rx_bytes, *len);
      Add(s->slot->rx_msgs, 1);
      continue;
    }
    // RECV (or anything else; or a HOLD we could not record: delivered).
    r->accepted = pos;
    return p;
  }
}

// FilteredFrontSlow() with the common case inline: a same-host ring (its
// records carry no address to filter on) and no callback.
inline const uint8_t* FilteredFront(Socket* s, UdpExtra* x, InRing* r, size_t* len,
                                    size_t* rec_len, shm::SockAddr* from) {
  if (__builtin_expect(x->cb != nullptr || r->id == 0 || s->connected, 0)) {
    return FilteredFrontSlow(s, x, r, len, rec_len, from);
  }
  const uint8_t* p = r->c.Front(len);
  if (p != nullptr) {
    *rec_len = *len;
    *from = r->src;
  }
  return p;
}

void FillName(const Socket* s, msghdr* msg, const shm::SockAddr& from) {
  if (msg->msg_name == nullptr) return;
  if (s->family == AF_INET && from.family == AF_INET && msg->msg_namelen >= sizeof(sockaddr_in)) {
    // The common case with a fixed-size copy (CopyName's is variable).
    const sockaddr_in v4 = shm::ToSockaddrIn(from);
    memcpy(msg->msg_name, &v4, sizeof(v4));
    msg->msg_namelen = sizeof(v4);
    return;
  }
  CopyName(NameIn(from, s->family), static_cast<sockaddr*>(msg->msg_name), &msg->msg_namelen);
}

}  // namespace

namespace {

// Lends the record Front() returned (payload `p`, `len` bytes, the record
// `rec_len`) through the descriptor recvfrom_zcopy writes. False (errno
// ENOMEM) if it cannot be recorded.
bool LendOut(Socket* s, UdpExtra* x, InRing* r, const uint8_t* p, size_t len, size_t rec_len,
             ZcopyOut* zc) {
  if (!Lend(x, r, rec_len)) {
    errno = ENOMEM;
    return false;
  }
  auto* d = static_cast<offload_packets_t*>(zc->buf);
  d->n_packet_num = 1;
  d->pkts[0].packet_id = const_cast<uint8_t*>(p - (rec_len - len) - sizeof(shm::DgramRecord));
  d->pkts[0].sz_iov = 1;
  d->pkts[0].iov[0].iov_base = const_cast<uint8_t*>(p);
  d->pkts[0].iov[0].iov_len = len;
  zc->zcopy = true;
  return true;
}

// Copies the record Front() returned into `msg` (consuming it unless
// MSG_PEEK); the receive's return value.
ssize_t CopyOut(Socket* s, InRing* r, const uint8_t* p, size_t len, size_t rec_len, msghdr* msg,
                int flags) {
  size_t copied = 0;
  for (size_t i = 0; i < msg->msg_iovlen && copied < len; ++i) {
    const size_t c = std::min(msg->msg_iov[i].iov_len, len - copied);
    memcpy(msg->msg_iov[i].iov_base, p + copied, c);
    copied += c;
  }
  msg->msg_flags = copied < len ? MSG_TRUNC : 0;
  if (!(flags & MSG_PEEK)) Consume(s, r, rec_len);
  return static_cast<ssize_t>((flags & MSG_TRUNC) ? len : copied);
}

}  // namespace

ssize_t UdpRecvExtra(Socket* s, msghdr* msg, int flags, ZcopyOut* zc) {
  UdpExtra* x = s->udp->extra.load(std::memory_order_acquire);
  if (InOwnCallback(x)) {
    errno = EDEADLK;
    return -1;
  }
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  bool waited = false;
  for (;;) {
    MutexGuard rx(&s->udp->rx_mu);
    UdpAdoptNewRings(s);
    if (s->udp_shared.load(std::memory_order_acquire)) {
      // Back on the kernel: the API does not apply any more.
      rx.Unlock();
      if (zc != nullptr && zc->force) {
        errno = EIO;
        return -1;
      }
      return UdpRecvPlain(s, msg, flags);
    }
    // Round robin from udp->rr (no division: this is per datagram).
    const size_t n = s->udp->in_rings.size();
    size_t at = s->udp->rr < n ? s->udp->rr : 0;
    for (size_t k = 0; k < n; ++k, at = at + 1 == n ? 0 : at + 1) {
      InRing* r = s->udp->in_rings[at].get();
      size_t len, rec_len;
      shm::SockAddr from;
      const uint8_t* p = FilteredFront(s, x, r, &len, &rec_len, &from);
      if (p == nullptr) continue;
      s->udp->rr = static_cast<uint32_t>(at + 1 == n ? 0 : at + 1);
      ssize_t ret;
      if (zc != nullptr && !(flags & MSG_PEEK)) {
        if (!LendOut(s, x, r, p, len, rec_len, zc)) return -1;
        msg->msg_flags = 0;
        ret = static_cast<ssize_t>(len);
      } else {
        ret = CopyOut(s, r, p, len, rec_len, msg, flags);
      }
      FillName(s, msg, from);
      msg->msg_controllen = 0;
      if (!(flags & MSG_PEEK)) {
        Add(s->slot->rx_bytes, len);
        Add(s->slot->rx_msgs, 1);
      }
      return ret;
    }
    // Every `ratio` empty polls, and after a wait that found the rings
    // empty (as UdpRecvPlain), look at the kernel side: its datagrams can
    // only be copied.
    if (++s->udp->os_poll_count >= static_cast<uint32_t>(Config().udp_os_ratio) || nonblock ||
        waited) {
      s->udp->os_poll_count = 0;
      if (zc != nullptr && zc->force) {
        char c;
        if (Real().recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0) {
          errno = EIO;  // VMA: a kernel datagram and no copy allowed
          return -1;
        }
      } else {
        const ssize_t k = Real().recvmsg(s->fd, msg, flags | MSG_DONTWAIT);
        if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return k;
      }
    }
    UdpReapRings(s);
    UdpSyncWireDrops(s);
    rx.Unlock();
    const int w = UdpAwaitData(s, nonblock);
    if (w < 0) return -1;
    if (w > 0) return UdpShutdownEnd(msg);
    waited = true;
  }
}

bool UdpHasDataExtra(Socket* s) {
  UdpExtra* x = s->udp->extra.load(std::memory_order_acquire);
  if (InOwnCallback(x)) return false;
  MutexGuard rx(&s->udp->rx_mu);
  UdpAdoptNewRings(s);
  const bool shared = s->udp_shared.load(std::memory_order_acquire);
  if (shared) UdpReapRings(s);
  for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
    InRing* r = ring.get();
    if (shared) {
      if (!r->c.Empty()) return true;
      continue;
    }
    size_t len, rec_len;
    shm::SockAddr from;
    if (FilteredFront(s, x, r, &len, &rec_len, &from) != nullptr) return true;
  }
  return false;
}

size_t UdpNextSizeExtra(Socket* s) {
  UdpExtra* x = s->udp->extra.load(std::memory_order_acquire);
  if (InOwnCallback(x)) return 0;
  MutexGuard rx(&s->udp->rx_mu);
  UdpAdoptNewRings(s);
  const bool shared = s->udp_shared.load(std::memory_order_acquire);
  if (shared) UdpReapRings(s);
  for (const std::unique_ptr<InRing>& ring : s->udp->in_rings) {
    InRing* r = ring.get();
    size_t len, rec_len;
    shm::SockAddr from;
    if (shared ? r->c.Front(&len) != nullptr
               : FilteredFront(s, x, r, &len, &rec_len, &from) != nullptr) {
      return len;
    }
  }
  return 0;
}

}  // namespace client
}  // namespace offload
