// The exported libc entry points of liboffload.so. Each looks the fd up in
// the fd table (one atomic load) and either passes straight through to libc
// or runs the offloaded operation. Every function is noexcept; results are
// translated into errno here and in ops.h. This file only looks up and
// dispatches: connect's state machine is in connect.cc, select() in
// select.cc, the options and flags the library keeps in sockopt.cc, the
// I/O calls in interpose_io.cc, process calls (exec, spawn) in
// interpose_proc.cc.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "client/attach.h"
#include "client/channels.h"
#include "client/shadow_ports.h"
#include "client/config.h"
#include "client/decision.h"
#include "client/fd_table.h"
#include "client/inet_name.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/offload_extra.h"
#include "client/ops.h"

using offload::client::EpollEntry;
using offload::client::EpollSet;
using offload::client::FdObject;
using offload::client::kUseKernel;
using offload::client::ObjKind;
using offload::client::Path;
using offload::client::Real;
using offload::client::Socket;

namespace offload {
namespace client {
namespace {

// Closes our side of `fd`'s object (the kernel fd is closed by the caller).
void ReleaseFd(int fd) {
  FdObject* o = ExchangeObject(fd, nullptr);
  if (o == nullptr) return;
  if (o->fd_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    if (o->kind == ObjKind::kSocket) Teardown(static_cast<Socket*>(o));
    // The epoll instance is gone: release the sockets it watched.
    if (o->kind == ObjKind::kEpoll) EpollSetClosed(static_cast<EpollSet*>(o));
    Unref(o);
  }
}

void Install(int fd, FdObject* o) {
  FdObject* old = ExchangeObject(fd, o);
  if (old != nullptr) {
    // A stale object (the fd was closed behind our back, e.g. by a raw
    // syscall): forget it.
    if (old->fd_refs.fetch_sub(1) == 1) {
      if (old->kind == ObjKind::kSocket) Teardown(static_cast<Socket*>(old));
      Unref(old);
    }
  }
}

void DupInto(int oldfd, int newfd) {
  FdObject* o = GetObject(oldfd);
  if (newfd == oldfd) return;
  ReleaseFd(newfd);  // the kernel closed whatever newfd was
  if (o == nullptr) return;
  o->fd_refs.fetch_add(1, std::memory_order_relaxed);
  Install(newfd, o);
}

int ThreadOffloadApi(int offload, pthread_t tid) {
  SetLocalThreadOffload(tid, offload != 0);
  return 0;
}

int AddConfRuleApi(const char* line) { return AddLocalRule(line); }

offload_api_t g_api = {ThreadOffloadApi,
                       AddConfRuleApi,
                       OFFLOAD_EXTRA_API_THREAD_OFFLOAD | OFFLOAD_EXTRA_API_ADD_CONF_RULE |
                           OFFLOAD_EXTRA_API_RECVFROM_ZCOPY | OFFLOAD_EXTRA_API_FREE_PACKETS |
                           OFFLOAD_EXTRA_API_REGISTER_RECV_CALLBACK,
                       RegisterRecvCallback,
                       RecvfromZcopy,
                       FreePackets};

void ChildAfterFork() {
  AttachAtForkChild();
  ChannelsAtForkChild();
  ShadowPortsAtForkChild();
  ResetArmsAfterFork();
  ResetUdpLocksAfterFork();
}

void WriteStatsFile() {
  const char* path = Config().stats_file;
  if (path[0] == '\0' || g_fd_table == nullptr) return;
  FILE* f = fopen(path, "w");
  if (f == nullptr) return;
  fprintf(f, "# offload socket statistics, pid %d\n", getpid());
  for (int fd = 0; fd < g_fd_table_size; ++fd) {
    Socket* s = GetSocket(fd);
    if (s == nullptr) continue;
    const shm::SocketSlot& c = *s->slot;
    const Path p = s->path.load();
    fprintf(f,
            "fd %d %s %s fallback=%u rx_bytes=%lu rx_msgs=%lu tx_bytes=%lu tx_msgs=%lu "
            "rx_eagain=%lu tx_eagain=%lu errors=%lu drops=%lu\n",
            fd, s->type == SOCK_STREAM ? "tcp" : "udp",
            p == Path::kPipe ? "pipe" : p == Path::kListener ? "listener"
                                      : p == Path::kUdp    ? "udp-ring"
                                                           : "kernel",
            static_cast<unsigned>(s->fallback), c.rx_bytes.load(), c.rx_msgs.load(),
            c.tx_bytes.load(), c.tx_msgs.load(), c.rx_eagain.load(), c.tx_eagain.load(),
            c.errors.load(), c.drops.load());
  }
  fclose(f);
}

__attribute__((constructor)) void Init() {
  Real();
  LoadConfig();
  InitLog();
  InitFdTable();
  pthread_atfork(nullptr, nullptr, ChildAfterFork);
  g_on_attached = RehomeSlots;
  // Offloaded sockets inherited across exec (inetd style, pass_fds).
  AdoptInherited();
}

__attribute__((destructor)) void Fini() { WriteStatsFile(); }

}  // namespace
}  // namespace client
}  // namespace offload

namespace oc = offload::client;

#define EXPORT extern "C" __attribute__((visibility("default")))

EXPORT offload_api_t* offload_get_api(void) noexcept { return &oc::g_api; }

EXPORT int socket(int domain, int type, int protocol) noexcept {
  const int fd = Real().socket(domain, type, protocol);
  const int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0 || (domain != AF_INET && domain != AF_INET6) || oc::g_fd_table == nullptr) {
    return fd;
  }
  if (!((base == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP)) ||
        (base == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP)))) {
    return fd;
  }
  const bool thread_on = oc::ThreadOffloadEnabled();
  if (thread_on) oc::EnsureAttached();
  Socket* s = oc::NewSocket(fd, base, (type & SOCK_NONBLOCK) != 0, domain);
  s->thread_offload = thread_on;
  if (!thread_on) {
    oc::OnKernel(s, offload::shm::Fallback::kThreadOff, nullptr);
  } else if (s->slot_index < 0 && oc::Arena() != nullptr) {
    // Every counter slot of the arena is taken (max_sockets_per_process):
    // this socket stays on the kernel rather than running unaccounted.
    oc::OnKernel(s, offload::shm::Fallback::kLimit, "socket slots");
  }
  oc::Install(fd, s);
  return fd;
}

EXPORT int close(int fd) noexcept {
  oc::ReleaseFd(fd);
  return Real().close(fd);
}

EXPORT int shutdown(int fd, int how) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s != nullptr && s->path.load() == Path::kPipe) return oc::PipeShutdown(s, how);
  if (s != nullptr && s->udp != nullptr) return oc::UdpShutdown(s, how);
  return Real().shutdown(fd, how);
}

namespace {
void ReleaseRange(unsigned int first, unsigned int last) {
  const unsigned int end = std::min<unsigned int>(last, oc::g_fd_table_size - 1);
  for (unsigned int fd = first; fd <= end && fd < static_cast<unsigned int>(oc::g_fd_table_size);
       ++fd) {
    if (oc::GetObject(static_cast<int>(fd)) != nullptr) oc::ReleaseFd(static_cast<int>(fd));
  }
}
}  // namespace

EXPORT int close_range(unsigned int first, unsigned int last, int flags) noexcept {
  const int rc = Real().close_range(first, last, flags);
  if (rc == 0 && !(flags & CLOSE_RANGE_CLOEXEC) && first <= last) ReleaseRange(first, last);
  return rc;
}

EXPORT void closefrom(int lowfd) noexcept {
  if (lowfd < 0) lowfd = 0;
  ReleaseRange(static_cast<unsigned int>(lowfd), ~0u);
  Real().closefrom(lowfd);
}

EXPORT int bind(int fd, const sockaddr* addr, socklen_t len) noexcept {
  const int rc = Real().bind(fd, addr, len);
  Socket* s = oc::GetSocket(fd);
  if (rc != 0 || s == nullptr || !oc::IsInetOf(s->family, addr, len)) return rc;
  socklen_t l = sizeof(s->local);
  Real().getsockname(fd, &s->local.sa, &l);
  s->bound = true;
  s->slot->state = static_cast<uint8_t>(offload::shm::SocketState::kBound);
  oc::UpdateSlotAddrs(s);
  if (s->type == SOCK_DGRAM && s->path.load() == Path::kUndecided) oc::UdpAfterBind(s);
  return rc;
}

EXPORT int listen(int fd, int backlog) noexcept {
  const int rc = Real().listen(fd, backlog);
  Socket* s = oc::GetSocket(fd);
  if (rc == 0 && s != nullptr && s->type == SOCK_STREAM) oc::TcpAfterListen(s, backlog);
  return rc;
}

EXPORT int connect(int fd, const sockaddr* addr, socklen_t len) noexcept {
  return oc::ConnectImpl(fd, addr, len);  // connect.cc
}

EXPORT int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s != nullptr && s->path.load() == Path::kListener) return oc::TcpAccept(s, addr, len, flags);
  return Real().accept4(fd, addr, len, flags);
}

EXPORT int accept(int fd, sockaddr* addr, socklen_t* len) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s != nullptr && s->path.load() == Path::kListener) return oc::TcpAccept(s, addr, len, 0);
  return Real().accept(fd, addr, len);
}

EXPORT int getsockopt(int fd, int level, int name, void* val, socklen_t* len) noexcept {
  if (fd == -1 && level == SOL_SOCKET && name == SO_OFFLOAD_GET_API && val != nullptr &&
      len != nullptr && *len >= sizeof(void*)) {
    offload_api_t* api = &oc::g_api;
    memcpy(val, &api, sizeof(api));
    *len = sizeof(api);
    return 0;
  }
  return oc::GetsockoptImpl(fd, level, name, val, len);  // sockopt.cc
}

EXPORT int setsockopt(int fd, int level, int name, const void* val, socklen_t len) noexcept {
  return oc::SetsockoptImpl(fd, level, name, val, len);  // sockopt.cc
}

EXPORT int getsockname(int fd, sockaddr* addr, socklen_t* len) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr || s->path.load() != Path::kPipe || addr == nullptr || len == nullptr) {
    return Real().getsockname(fd, addr, len);
  }
  oc::CopyName(s->local, addr, len);
  return 0;
}

EXPORT int getpeername(int fd, sockaddr* addr, socklen_t* len) noexcept {
  Socket* s = oc::GetOffloaded(fd);
  if (s == nullptr || s->path.load() != Path::kPipe) return Real().getpeername(fd, addr, len);
  if (addr == nullptr || len == nullptr) {
    errno = EFAULT;
    return -1;
  }
  oc::CopyName(s->remote, addr, len);
  return 0;
}

namespace {

int FcntlImpl(int fd, int cmd, long arg) {
  Socket* s = oc::GetSocket(fd);
  if (s == nullptr) {
    const int rc = Real().fcntl(fd, cmd, arg);
    if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) oc::DupInto(fd, rc);
    return rc;
  }
  switch (cmd) {
    case F_GETFL: {
      const int fl = Real().fcntl(fd, cmd);
      if (fl < 0) return fl;
      return oc::GetNonblock(s) ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    }
    case F_SETFL: {
      long real_arg = arg;
      if (s->path.load() == Path::kListener) real_arg |= O_NONBLOCK;  // see TcpAfterListen
      const int rc = Real().fcntl(fd, cmd, real_arg);
      if (rc == 0) oc::SetNonblock(s, (arg & O_NONBLOCK) != 0);
      return rc;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      const int rc = Real().fcntl(fd, cmd, arg);
      if (rc >= 0) oc::DupInto(fd, rc);
      return rc;
    }
    default:
      return Real().fcntl(fd, cmd, arg);
  }
}
}  // namespace

EXPORT int fcntl(int fd, int cmd, ...) noexcept {
  va_list ap;
  va_start(ap, cmd);
  const long arg = va_arg(ap, long);
  va_end(ap);
  return FcntlImpl(fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...) noexcept {
  va_list ap;
  va_start(ap, cmd);
  const long arg = va_arg(ap, long);
  va_end(ap);
  return FcntlImpl(fd, cmd, arg);
}

EXPORT int ioctl(int fd, unsigned long req, ...) noexcept {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  Socket* s = oc::GetSocket(fd);
  if (s != nullptr && req == FIONBIO && arg != nullptr) {
    const bool on = *static_cast<int*>(arg) != 0;
    if (s->path.load() == Path::kListener) {
      oc::SetNonblock(s, on);
      return 0;
    }
    const int rc = Real().ioctl(fd, req, arg);
    if (rc == 0) oc::SetNonblock(s, on);
    return rc;
  }
  int orc = 0;
  if (s != nullptr && oc::TcpOptionIoctl(s, req, arg, &orc)) return orc;
  if (s != nullptr && req == FIONREAD && arg != nullptr) {
    const Path p = s->path.load();
    if (p == Path::kPipe) {
      *static_cast<int*>(arg) = static_cast<int>(oc::PipeReadable(s));
      return 0;
    }
    if (p == Path::kUdp && oc::UdpHasData(s)) {
      *static_cast<int*>(arg) = static_cast<int>(oc::UdpNextSize(s));
      return 0;
    }
  }
  return Real().ioctl(fd, req, arg);
}

EXPORT int poll(pollfd* fds, nfds_t n, int timeout) noexcept {
  return oc::PollImpl(fds, n, timeout < 0 ? -1 : int64_t{timeout} * 1000000, nullptr);
}

EXPORT int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t fdslen) noexcept {
  if (fdslen / sizeof(*fds) < n) abort();
  return poll(fds, n, timeout);
}

EXPORT int ppoll(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask) noexcept {
  const int64_t t = ts == nullptr ? -1 : int64_t(ts->tv_sec) * 1000000000 + ts->tv_nsec;
  if (mask == nullptr && t == -1) return oc::PollImpl(fds, n, -1, nullptr);
  return oc::PollImpl(fds, n, t, mask);
}

EXPORT int __ppoll_chk(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask,
                       size_t fdslen) noexcept {
  if (fdslen / sizeof(*fds) < n) abort();
  return ppoll(fds, n, ts, mask);
}

EXPORT int select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv) noexcept {
  const int64_t t = tv == nullptr ? -1 : int64_t(tv->tv_sec) * 1000000000 + tv->tv_usec * 1000;
  return oc::SelectImpl(nfds, r, w, e, t, nullptr);
}

EXPORT int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const timespec* ts,
                   const sigset_t* mask) noexcept {
  const int64_t t = ts == nullptr ? -1 : int64_t(ts->tv_sec) * 1000000000 + ts->tv_nsec;
  return oc::SelectImpl(nfds, r, w, e, t, mask);
}

EXPORT int epoll_create(int size) noexcept { return Real().epoll_create(size); }
EXPORT int epoll_create1(int flags) noexcept { return Real().epoll_create1(flags); }

EXPORT int epoll_ctl(int epfd, int op, int fd, epoll_event* ev) noexcept {
  return oc::EpollCtlImpl(epfd, op, fd, ev);
}

EXPORT int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) noexcept {
  return oc::EpollWaitImpl(epfd, events, maxevents, timeout, nullptr);
}

EXPORT int epoll_pwait(int epfd, epoll_event* events, int maxevents, int timeout,
                       const sigset_t* mask) noexcept {
  return oc::EpollWaitImpl(epfd, events, maxevents, timeout, mask);
}

EXPORT int dup(int fd) noexcept {
  const int nfd = Real().dup(fd);
  if (nfd >= 0) oc::DupInto(fd, nfd);
  return nfd;
}

EXPORT int dup2(int fd, int nfd) noexcept {
  const int rc = Real().dup2(fd, nfd);
  if (rc >= 0 && fd != nfd) oc::DupInto(fd, rc);
  return rc;
}

EXPORT int dup3(int fd, int nfd, int flags) noexcept {
  const int rc = Real().dup3(fd, nfd, flags);
  if (rc >= 0) oc::DupInto(fd, rc);
  return rc;
}

EXPORT pid_t fork(void) noexcept {
  // Every offloaded socket will be held by two processes: offloadd follows
  // them from now on (sharing.cc).
  oc::ShareAllBeforeFork();
  return Real().fork();
}

// vfork shares the parent's memory; our fork handlers would corrupt it, so
// vfork is a fork (as VMA does). The child only execs or exits anyway.
EXPORT pid_t vfork(void) noexcept { return fork(); }

EXPORT int daemon(int nochdir, int noclose) noexcept { return Real().daemon(nochdir, noclose); }
