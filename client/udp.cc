// Offloaded UDP: every offloaded UDP socket is registered with the daemon
// as a receiver; a send to another offloaded socket on the host goes into a
// datagram ring brokered for that (sender, receiver) pair, anything else to
// the kernel through the shadow socket. A receiver polls its rings and,
// every OFFLOAD_RX_UDP_POLL_OS_RATIO polls, its shadow (kernel senders).

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>

#include <algorithm>

#include "client/attach.h"
#include "client/config.h"
#include "client/decision.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"
#include "daemon/shm/wakeup.h"

namespace offload {
namespace client {

namespace {

constexpr size_t kMaxNoRing = 64;
constexpr uint64_t kFullRingSpins = 4096;

bool RegisterUdp(Socket* s) { return RegisterEndpoint(s, shm::MsgType::kUdpBind, 0); }

void AdoptNewRings(Socket* s) {
  if (!s->has_new_rings.load(std::memory_order_acquire)) return;
  pthread_mutex_lock(&s->mu);
  for (InRing* r : s->new_rings) s->in_rings.push_back(r);
  s->new_rings.clear();
  s->has_new_rings.store(false, std::memory_order_relaxed);
  pthread_mutex_unlock(&s->mu);
}

// Drops incoming rings whose sender is gone and that are empty.
void ReapRings(Socket* s) {
  for (size_t i = 0; i < s->in_rings.size();) {
    InRing* r = s->in_rings[i];
    if (r->c.SenderGone() && r->c.Empty()) {
      shm::Msg m = {};
      m.type = shm::MsgType::kDgramClose;
      m.id = r->id;
      m.value = 0;
      SendAsync(m);
      delete r;
      s->in_rings.erase(s->in_rings.begin() + i);
    } else {
      ++i;
    }
  }
}

// Makes sure the shadow has a local port (Linux autobinds on first send).
bool EnsureBound(Socket* s) {
  if (s->bound) return true;
  sockaddr_in any = {};
  any.sin_family = AF_INET;
  if (Real().bind(s->fd, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0 && errno != EINVAL) {
    return false;
  }
  socklen_t len = sizeof(s->local);
  Real().getsockname(s->fd, reinterpret_cast<sockaddr*>(&s->local), &len);
  s->bound = true;
  return true;
}

OutRing* OpenRing(Socket* s, const sockaddr_in* dst) {
  const uint64_t key = (uint64_t{dst->sin_addr.s_addr} << 16) | dst->sin_port;
  if (std::find(s->no_ring.begin(), s->no_ring.end(), key) != s->no_ring.end()) return nullptr;
  shm::ArenaHeader* a = Arena();
  if (a == nullptr || !shm::PortBit(a->udp_ports, ntohs(dst->sin_port))) return nullptr;
  if (!Decide(s, rules::Role::kUdpSender, &s->local, dst)) {
    if (s->no_ring.size() < kMaxNoRing) s->no_ring.push_back(key);
    return nullptr;
  }
  shm::Msg m = {};
  m.type = shm::MsgType::kUdpOpen;
  m.id = s->reg_id;
  m.local.addr = s->local.sin_addr.s_addr;
  m.local.port = s->local.sin_port;
  m.remote.addr = dst->sin_addr.s_addr;
  m.remote.port = dst->sin_port;
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, nullptr, 0, &r, rfds, &nr)) return nullptr;
  if (r.type != shm::MsgType::kDgram || nr != 2) {
    for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
    if (s->no_ring.size() < kMaxNoRing) s->no_ring.push_back(key);
    return nullptr;
  }
  shm::UniqueFd memfd(rfds[0]);
  auto* o = new OutRing();
  o->efd.reset(rfds[1]);
  o->map = shm::Mapping::MapShared(memfd.get(), shm::DgramSegmentBytes(r.value));
  auto* h = o->map.as<shm::DgramHeader>();
  if (!o->map.valid() || h->magic != shm::kDgramMagic || h->capacity != r.value) {
    delete o;
    shm::Msg c = {};
    c.type = shm::MsgType::kDgramClose;
    c.id = r.id;
    c.value = 1;
    SendAsync(c);
    return nullptr;
  }
  o->p.Init(h);
  o->id = r.id;
  o->dst_addr = dst->sin_addr.s_addr;
  o->dst_port = dst->sin_port;
  s->out_rings.push_back(o);
  return o;
}

}  // namespace

void UdpAfterBind(Socket* s) {
  socklen_t len = sizeof(s->local);
  Real().getsockname(s->fd, reinterpret_cast<sockaddr*>(&s->local), &len);
  s->bound = true;
  if (s->path.load() != Path::kUndecided) return;
  if (!Decide(s, rules::Role::kUdpReceiver, &s->local, nullptr)) {
    OnKernel(s, s->fallback, nullptr);
    return;
  }
  s->path.store(Path::kUdp, std::memory_order_release);  // ring offers may arrive now
  if (!RegisterUdp(s)) {
    OnKernel(s, Arena() == nullptr ? shm::Fallback::kDaemonAbsent : shm::Fallback::kLimit,
             nullptr);
    return;
  }
  OnOffloaded(s, Path::kUdp);
}

ssize_t UdpSend(Socket* s, const iovec* iov, int iovcnt, int flags, const sockaddr_in* dst) {
  if (s->path.load(std::memory_order_relaxed) == Path::kUndecided) {
    if (!EnsureBound(s)) return kUseKernel;
    UdpAfterBind(s);
    if (s->path.load() != Path::kUdp) return kUseKernel;
  }
  if (dst == nullptr) {
    if (!s->connected) return kUseKernel;  // ENOTCONN / EDESTADDRREQ from the kernel
    dst = &s->remote;
  }
  if (s->reg_gen != AttachGeneration() && EnsureAttached()) RegisterUdp(s);
  OutRing* ring = nullptr;
  for (size_t i = 0; i < s->out_rings.size(); ++i) {
    OutRing* r = s->out_rings[i];
    if (r->dst_port == dst->sin_port && r->dst_addr == dst->sin_addr.s_addr) {
      if (r->p.ReaderClosedForSender()) {
        // The receiver went away: back to the kernel for this destination.
        shm::Msg m = {};
        m.type = shm::MsgType::kDgramClose;
        m.id = r->id;
        m.value = 1;
        SendAsync(m);
        delete r;
        s->out_rings.erase(s->out_rings.begin() + i);
        return kUseKernel;
      }
      ring = r;
      break;
    }
  }
  if (ring == nullptr) ring = OpenRing(s, dst);
  if (ring == nullptr) return kUseKernel;
  size_t len = 0;
  for (int i = 0; i < iovcnt; ++i) len += iov[i].iov_len;
  if (len > shm::kMaxDatagram) {
    errno = EMSGSIZE;
    return -1;
  }
  bool kick = false;
  // A full ring: give the receiver a moment (it may share our CPU), then
  // drop as a full socket receive buffer does.
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  for (uint64_t i = 0;; ++i) {
    if (ring->p.Push(iov, iovcnt, len, &kick)) {
      if (kick) shm::Kick(ring->efd.get());
      Add(s->slot->tx_bytes, len);
      Add(s->slot->tx_msgs, 1);
      break;
    }
    if (nonblock || i >= kFullRingSpins) {
      Add(s->slot->drops, 1);
      break;
    }
    SpinStep(i);
  }
  return static_cast<ssize_t>(len);
}

bool UdpHasData(Socket* s) {
  AdoptNewRings(s);
  for (InRing* r : s->in_rings) {
    if (!r->c.Empty()) return true;
  }
  return false;
}

size_t UdpNextSize(Socket* s) {
  AdoptNewRings(s);
  for (InRing* r : s->in_rings) {
    size_t len;
    if (r->c.Front(&len) != nullptr) return len;
  }
  return 0;
}

ssize_t UdpRecv(Socket* s, msghdr* msg, int flags) {
  const bool nonblock = s->nonblock || (flags & MSG_DONTWAIT);
  const int ratio = Config().udp_os_ratio;
  for (;;) {
    AdoptNewRings(s);
    const size_t n = s->in_rings.size();
    for (size_t k = 0; k < n; ++k) {
      InRing* r = s->in_rings[(s->rr + k) % n];
      size_t len;
      const uint8_t* p = r->c.Front(&len);
      if (p == nullptr) continue;
      s->rr = static_cast<uint32_t>((s->rr + k + 1) % n);
      size_t copied = 0;
      for (size_t i = 0; i < msg->msg_iovlen && copied < len; ++i) {
        const size_t c = std::min(msg->msg_iov[i].iov_len, len - copied);
        memcpy(msg->msg_iov[i].iov_base, p + copied, c);
        copied += c;
      }
      msg->msg_flags = copied < len ? MSG_TRUNC : 0;
      if (msg->msg_name != nullptr) {
        sockaddr_in from = {};
        from.sin_family = AF_INET;
        from.sin_addr.s_addr = r->src_addr;
        from.sin_port = r->src_port;
        memcpy(msg->msg_name, &from, std::min<size_t>(msg->msg_namelen, sizeof(from)));
        msg->msg_namelen = sizeof(from);
      }
      msg->msg_controllen = 0;
      if (!(flags & MSG_PEEK)) {
        r->c.Pop(len);
        Add(s->slot->rx_bytes, len);
        Add(s->slot->rx_msgs, 1);
      }
      return static_cast<ssize_t>((flags & MSG_TRUNC) ? len : copied);
    }
    // Every `ratio` polls (and before blocking) look at the kernel side.
    if (++s->os_poll_count >= static_cast<uint32_t>(ratio) || nonblock) {
      s->os_poll_count = 0;
      const ssize_t k = Real().recvmsg(s->fd, msg, flags | MSG_DONTWAIT);
      if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return k;
    }
    ReapRings(s);
    if (nonblock) {
      Add(s->slot->rx_eagain, 1);
      errno = EAGAIN;
      return -1;
    }
    const int rc = WaitSocket(s, EPOLLIN, s->rcvtimeo_ms);
    if (rc != 0) {
      errno = rc;
      return -1;
    }
    s->os_poll_count = ratio;  // woken: check the kernel first thing
  }
}

}  // namespace client
}  // namespace offload
