// Socket options and file flags of our sockets that the library keeps
// beside the kernel's (interpose.cc dispatches here): SO_ERROR of a pipe,
// SO_RCVTIMEO / SO_SNDTIMEO / SO_LINGER (also in a pipe's shared state),
// the application's SO_REUSEADDR of a shadow that shares its port,
// multicast options (udp_multicast.cc), options that keep a socket on the
// kernel, and O_NONBLOCK. Engine connections' TCP options are in
// tcp_options.cc.

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "client/decision.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"

namespace offload {
namespace client {

namespace {

int64_t TimevalMs(const void* v, socklen_t len) {
  if (v == nullptr || len < sizeof(timeval)) return -1;
  const timeval* tv = static_cast<const timeval*>(v);
  if (tv->tv_sec == 0 && tv->tv_usec == 0) return -1;  // 0 = forever
  return int64_t(tv->tv_sec) * 1000 + (tv->tv_usec + 999) / 1000;
}

}  // namespace

int GetsockoptImpl(int fd, int level, int name, void* val, socklen_t* len) {
  Socket* s = GetOffloaded(fd);
  if (s != nullptr && s->path.load() == Path::kPipe && level == SOL_SOCKET && val != nullptr &&
      len != nullptr && *len >= sizeof(int)) {
    if (name == SO_ERROR) {
      ConnectProgress(s);  // an engine connect that failed leaves its error here
      int err = s->pipe->me().so_error.exchange(0, std::memory_order_acq_rel);
      if (err == 0) err = TakeResetError(s->pipe.get());  // an engine's reset or timeout
      memcpy(val, &err, sizeof(err));
      *len = sizeof(int);
      return 0;
    }
  }
  int rc = 0;
  if (s != nullptr && TcpOptionGet(s, level, name, val, len, &rc)) return rc;
  if (s != nullptr && s->tcp != nullptr && s->tcp->reuseaddr_forced && level == SOL_SOCKET &&
      name == SO_REUSEADDR &&
      val != nullptr && len != nullptr && *len >= sizeof(int)) {
    // The shadow shares its port (shadow_ports.h): the application's value.
    const int v = s->tcp->app_reuseaddr ? 1 : 0;
    memcpy(val, &v, sizeof(v));
    *len = sizeof(int);
    return 0;
  }
  return Real().getsockopt(fd, level, name, val, len);
}

int SetsockoptImpl(int fd, int level, int name, const void* val, socklen_t len) {
  const int rc = Real().setsockopt(fd, level, name, val, len);
  Socket* s = GetSocket(fd);
  if (rc != 0 || s == nullptr) return rc;
  PipeEnd* pe = s->path.load() == Path::kPipe ? s->pipe.get() : nullptr;
  if (s->tcp != nullptr && level == SOL_SOCKET && name == SO_REUSEADDR && val != nullptr &&
      len >= sizeof(int)) {
    s->tcp->app_reuseaddr = *static_cast<const int*>(val) != 0;
  }
  if (level == SOL_SOCKET && name == SO_RCVLOWAT && s->tcp != nullptr && val != nullptr &&
      len >= static_cast<socklen_t>(sizeof(int))) {
    int v;
    memcpy(&v, val, sizeof(v));
    s->tcp->rcvlowat.store(v < 1 ? 1 : v, std::memory_order_relaxed);
  }
  if (level == SOL_SOCKET && name == SO_RCVTIMEO) {
    s->rcvtimeo_ms = TimevalMs(val, len);
    if (pe != nullptr) pe->me().rcvtimeo_ms.store(static_cast<int32_t>(s->rcvtimeo_ms));
  }
  if (level == SOL_SOCKET && name == SO_SNDTIMEO) {
    s->sndtimeo_ms = TimevalMs(val, len);
    if (pe != nullptr) pe->me().sndtimeo_ms.store(static_cast<int32_t>(s->sndtimeo_ms));
  }
  if (level == SOL_SOCKET && name == SO_LINGER && val != nullptr && len >= sizeof(linger)) {
    const linger* l = static_cast<const linger*>(val);
    const bool abort = l->l_onoff != 0 && l->l_linger == 0;
    if (s->tcp != nullptr) s->tcp->linger_abort = abort;  // read by TCP sockets only
    if (pe != nullptr) {
      if (abort) {
        pe->me().flags.fetch_or(shm::kEndLingerAbort, std::memory_order_acq_rel);
      } else {
        pe->me().flags.fetch_and(~shm::kEndLingerAbort, std::memory_order_acq_rel);
      }
    }
  }
  if (level == IPPROTO_IP) UdpMulticastOption(s, name, val, len);
  TcpOptionSet(s, level, name, val, len);  // TCP: kept, and published to an engine
  char detail[sizeof(s->slot->fallback_detail)];
  const Path path = s->path.load();
  (void)pe;
  if ((path == Path::kUndecided || path == Path::kPipe || path == Path::kUdp) &&
      OptionKeepsKernel(level, name, val, len, detail, sizeof(detail))) {
    if (path == Path::kUndecided) {
      // The offload path cannot honour it: this socket stays on the kernel.
      OnKernel(s, shm::Fallback::kUnsupportedOption, detail);
    } else if (path == Path::kUdp) {
      // A datagram socket can still move: the kernel serves it from now on.
      DemoteUdp(s, shm::Fallback::kUnsupportedOption, detail);
    } else {
      // Too late to move a connected socket; say so instead of pretending.
      Log(3, "fd %d: %s set after connect/accept is not applied by the offload path "
                 "(set it before connect, or add a 'use os' rule)", fd, detail);
    }
  }
  return rc;
}

// The application's O_NONBLOCK of `s`: in the socket's shared state for an
// offloaded one (every holder sees it, as the open file's flag in Linux).
void SetNonblock(Socket* s, bool on) {
  s->nonblock = on;
  const Path p = s->path.load();
  if (p == Path::kPipe) {
    if (on) {
      s->pipe->me().flags.fetch_or(shm::kEndNonblock, std::memory_order_acq_rel);
    } else {
      s->pipe->me().flags.fetch_and(~shm::kEndNonblock, std::memory_order_acq_rel);
    }
  } else if (p == Path::kListener) {
    if (on) {
      s->listener->hdr->app_flags.fetch_or(shm::kListenerNonblock);
    } else {
      s->listener->hdr->app_flags.fetch_and(~shm::kListenerNonblock);
    }
  }
}

bool GetNonblock(Socket* s) {
  const Path p = s->path.load();
  if (p == Path::kPipe) return s->pipe->flags() & shm::kEndNonblock;
  if (p == Path::kListener) {
    return s->listener->hdr->app_flags.load() & shm::kListenerNonblock;
  }
  return s->nonblock;
}

}  // namespace client
}  // namespace offload
