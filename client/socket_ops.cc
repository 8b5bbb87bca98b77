// Socket lifecycle: creation, the offload/kernel transition, teardown.

#include <arpa/inet.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "client/attach.h"
#include "client/config.h"
#include "client/fd_table.h"
#include "client/inet_name.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"
#include "client/shadow_ports.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

UdpState::~UdpState() {
  // In this order, as the members' own destruction would not be.
  in_rings.clear();
  extra.store(nullptr, std::memory_order_relaxed);
  extra_owned.reset();
  new_rings.clear();
  out_rings.clear();
}

Socket::~Socket() { pthread_mutex_destroy(&mu); }

Socket* NewSocket(int fd, int type, bool nonblock, int family) {
  auto* s = new Socket();
  s->serial = NextSerial();
  s->fd = fd;
  s->type = type;
  s->family = family;
  s->nonblock = nonblock;
  if (type == SOCK_DGRAM) s->udp.reset(new UdpState());
  if (type == SOCK_STREAM) s->tcp.reset(new TcpState());
  AllocSlot(s);
  // The shadow's inode identifies the socket (offloadd, offloadctl stats,
  // ss -e).
  struct stat st;
  if (fstat(fd, &st) == 0) s->inode = st.st_ino;
  s->slot->inode = s->inode;
  s->slot->family = static_cast<uint8_t>(family);
  return s;
}

constexpr uint8_t kZero16[16] = {};

void UpdateSlotAddrs(Socket* s) {
  shm::SocketSlot* slot = s->slot;
  const shm::SockAddr l = Canonical(s->local), r = Canonical(s->remote);
  // IPv4 and v4-mapped addresses in the IPv4 fields, the others in the
  // IPv6 ones (abi.h SocketSlot).
  slot->local_addr = l.family == AF_INET ? shm::V4Of(l) : 0;
  slot->remote_addr = r.family == AF_INET ? shm::V4Of(r) : 0;
  memcpy(slot->local_addr6, l.family == AF_INET6 ? l.addr : kZero16, 16);
  memcpy(slot->remote_addr6, r.family == AF_INET6 ? r.addr : kZero16, 16);
  slot->local_port = l.port;
  slot->remote_port = r.port;
}

bool V6Only(const Socket* s) {
  if (s->family != AF_INET6) return false;
  int on = 0;
  socklen_t len = sizeof(on);
  return Real().getsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, &len) == 0 && on != 0;
}

void OnKernel(Socket* s, shm::Fallback why, const char* detail) {
  s->fallback = why;
  s->slot->fallback = static_cast<uint8_t>(why);
  s->slot->rule_id = s->rule_id;
  s->slot->path = static_cast<uint8_t>(shm::SocketPath::kKernel);
  if (detail != nullptr) snprintf(s->slot->fallback_detail, sizeof(s->slot->fallback_detail), "%s", detail);
  s->path.store(Path::kKernel, std::memory_order_release);
  WakeUndecidedReceivers(s);  // io.cc: they receive from the kernel again
}

void OnOffloaded(Socket* s, Path path) {
  s->fallback = shm::Fallback::kNone;
  shm::SocketSlot* slot = s->slot;
  slot->fallback = 0;
  slot->rule_id = s->rule_id;
  slot->path = static_cast<uint8_t>(path == Path::kUdp ? shm::SocketPath::kUdpRing
                                                       : shm::SocketPath::kPipe);
  if (path == Path::kPipe && s->pipe != nullptr) {
    PipeEnd* p = s->pipe.get();
    // The socket's own options, set before it was offloaded, are the
    // socket's (every holder reads them from the end's state).
    uint32_t set = 0;
    if (s->tcp->linger_abort) set |= shm::kEndLingerAbort;  // kPipe: a TCP socket
    if (s->nonblock) set |= shm::kEndNonblock;
    if (set != 0) p->me().flags.fetch_or(set, std::memory_order_acq_rel);
    if (s->rcvtimeo_ms >= 0) p->me().rcvtimeo_ms.store(static_cast<int32_t>(s->rcvtimeo_ms));
    if (s->sndtimeo_ms >= 0) p->me().sndtimeo_ms.store(static_cast<int32_t>(s->sndtimeo_ms));
  }
  if (path == Path::kListener && s->listener != nullptr && s->nonblock) {
    s->listener->hdr->app_flags.fetch_or(shm::kListenerNonblock, std::memory_order_relaxed);
  }
  slot->state = static_cast<uint8_t>(path == Path::kListener ? shm::SocketState::kListen
                                     : path == Path::kPipe   ? shm::SocketState::kEstablished
                                                             : shm::SocketState::kBound);
  UpdateSlotAddrs(s);
  // Move kernel epoll registrations of the fd to user-space readiness.
  pthread_mutex_lock(&s->mu);
  std::vector<KernelEpollReg> regs;
  regs.swap(s->epolls);
  pthread_mutex_unlock(&s->mu);
  s->path.store(path, std::memory_order_release);
  WakeUndecidedReceivers(s);  // io.cc: they receive from the rings now
  for (const KernelEpollReg& r : regs) {
    Real().epoll_ctl(r.epfd, EPOLL_CTL_DEL, s->fd, nullptr);
    epoll_event ev = {};
    ev.events = r.events;
    ev.data = r.data;
    EpollCtlImpl(r.epfd, EPOLL_CTL_ADD, s->fd, &ev);
  }
  if (Config().debug) DebugLine("enabled bypass on fd %d", s->fd);
  Log(4, "fd %d offloaded (%s)", s->fd,
      path == Path::kPipe ? "pipe" : path == Path::kListener ? "listener" : "udp");
}

void Teardown(Socket* s) {
  s->closed = true;
  // Out of every epoll set first, while its wait lines are still ours to
  // disarm.
  EpollForgetSocket(s);
  if (s->efd.valid()) shm::Kick(s->efd.get());  // blocked UDP waiters see `closed`
  const bool inherited = s->serial < g_fork_serial;
  const Path path = s->path.load(std::memory_order_acquire);
  if (path == Path::kPipe) {
    ClosePipeEnd(s);
  } else if (path == Path::kListener) {
    CloseListenerRef(s);
  } else if (path == Path::kUdp && !inherited && !s->udp_shared.load(std::memory_order_acquire)) {
    ReleaseUdpEndpoint(s);
  }
  s->slot->state = static_cast<uint8_t>(shm::SocketState::kClosed);
  ReleaseShadowPort(s);
  FreeSlot(s);
}

}  // namespace client
}  // namespace offload
