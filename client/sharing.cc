// Sockets held by several processes: what makes an offloaded socket behave
// like a kernel socket across fork, exec and SCM_RIGHTS.
//
// A socket this process created and never gave away is exclusive: its last
// close here is its last close anywhere, so the library ends a pipe end
// itself, at once (tcp.cc ClosePipeEnd), and offloadd ends it if the
// process dies. Before a socket can be held elsewhere -- fork, an exec it
// survives, an SCM_RIGHTS message, posix_spawn -- the library tells offloadd
// (kShare, with the socket itself: the message in flight keeps the socket
// alive until offloadd has seen it), and from then on offloadd follows the
// kernel's reference count of the socket's file and ends it when the last
// holder anywhere has closed it (daemon/session/socket_watch.h).
//
// A process that received an offloaded socket by exec or SCM_RIGHTS finds
// it out by asking offloadd (kAdopt, the socket as proof) and maps what it
// needs: the pipe's channel, or the listener's accept queue.
//
// Not followed: copies made by means that bypass libc's fork/exec/sendmsg
// and system()/popen() (raw clone or execve system calls, pidfd_getfd);
// such a copy of an exclusive socket may see it closed when its creator
// closes it.

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <unordered_map>

#include "client/attach.h"
#include "client/channels.h"
#include "client/fd_table.h"
#include "client/inet_name.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"

namespace offload {
namespace client {

namespace {

bool Shareable(Socket* s) {
  const Path p = s->path.load(std::memory_order_acquire);
  return (p == Path::kPipe || p == Path::kListener) && !s->shared.load(std::memory_order_acquire);
}

}  // namespace

void ShareSocket(Socket* s) {
  if (!Shareable(s)) return;
  s->shared.store(true, std::memory_order_release);
  s->slot->share.store(shm::kSlotShared, std::memory_order_release);
  if (s->path.load(std::memory_order_acquire) == Path::kListener) return;  // always watched
  PipeEnd* p = s->pipe.get();
  p->me().flags.fetch_or(shm::kEndShared, std::memory_order_acq_rel);
  shm::Msg m = {};
  m.type = shm::MsgType::kShare;
  m.kind = shm::kSharePipe;
  m.id = p->channel_id;
  m.slot = p->slot;
  m.gen = p->gen;
  m.end = static_cast<uint32_t>(p->end);
  if (Arena() == nullptr) {
    // No offloadd to follow it: the connection ends when offloadd comes
    // back and the last holder closes it, or with the peer.
    Log(2, "fd %d is shared by another process while offloadd is away; its close is not "
           "followed until offloadd is back",
        s->fd);
  }
  SendAsync(m, &s->fd, 1);
}

void ShareAllBeforeFork() {
  for (int fd = 0; fd < g_fd_table_size; ++fd) {
    Socket* s = GetSocket(fd);
    if (s == nullptr) continue;
    if (Shareable(s)) ShareSocket(s);
    DemoteSharedUdp(s);
  }
}

void ShareSurvivorsBeforeExec() {
  for (int fd = 0; fd < g_fd_table_size; ++fd) {
    Socket* s = GetSocket(fd);
    if (s == nullptr) continue;
    const bool udp = s->path.load(std::memory_order_acquire) == Path::kUdp;
    if (!udp && !Shareable(s)) continue;
    const int fl = Real().fcntl(fd, F_GETFD);
    if (fl < 0 || (fl & FD_CLOEXEC)) continue;
    if (udp) {
      DemoteSharedUdp(s);
    } else {
      ShareSocket(s);
    }
  }
}

void ShareFdsInMessage(const msghdr* msg) {
  if (msg == nullptr || msg->msg_control == nullptr) return;
  for (cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(msg), c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (Socket* s = GetSocket(fd)) {
        ShareSocket(s);
        DemoteSharedUdp(s);
      }
    }
  }
}

namespace {

// Asks offloadd what the socket `fd` (not in our table) is and installs
// our handle on it. `seen`: inode -> fd already adopted in this pass (a
// dup of it is installed as a dup).
void AdoptFd(int fd, std::unordered_map<uint64_t, int>* seen) {
  if (GetObject(fd) != nullptr) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  int domain = 0, type = 0;
  socklen_t len = sizeof(domain);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
      (domain != AF_INET && domain != AF_INET6)) {
    return;
  }
  len = sizeof(type);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return;
  if (seen != nullptr) {
    auto it = seen->find(st.st_ino);
    if (it != seen->end()) {
      if (FdObject* o = GetObject(it->second)) {
        o->fd_refs.fetch_add(1, std::memory_order_relaxed);
        FdObject* old = ExchangeObject(fd, o);
        if (old != nullptr) Unref(old);
      }
      return;
    }
  }
  if (!EnsureAttached()) return;
  shm::Msg m = {};
  m.type = shm::MsgType::kAdopt;
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, &fd, 1, &r, rfds, &nr)) return;
  shm::UniqueFd memfd(nr > 0 ? rfds[0] : -1);
  for (int i = 1; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
  if (r.type != shm::MsgType::kAdopted) return;  // a kernel socket: nothing to do
  const int fl = Real().fcntl(fd, F_GETFL);
  Socket* s = NewSocket(fd, SOCK_STREAM, fl >= 0 && (fl & O_NONBLOCK), domain);
  s->shared.store(true, std::memory_order_release);
  bool ok = false;
  if (r.kind == shm::kSharePipe) {
    shm::ChannelMap* chan = AddChannel(std::move(memfd));
    ok = chan != nullptr && chan->id() == r.id &&
         AttachPipeEnd(s, chan, r.slot, r.gen, static_cast<int>(r.end),
                       r.value64 == shm::kChannelEngine);
    if (ok) {
      PipeEnd* p = s->pipe.get();
      s->nonblock = p->flags() & shm::kEndNonblock;
      s->local = NameIn(p->me().local, domain);
      s->remote = NameIn(p->peer().local, domain);
      s->bound = true;
    }
  } else if (r.kind == shm::kShareListener) {
    shm::ListenerHeader* hdr = AcquireListener(r.id, std::move(memfd));
    ok = hdr != nullptr && AttachListener(s, r.id, hdr);
    if (ok) {
      s->nonblock = hdr->app_flags.load(std::memory_order_relaxed) & shm::kListenerNonblock;
      s->local = NameIn(hdr->local, domain);
      s->bound = true;
      s->tcp->backlog = static_cast<int>(r.value);  // a SOCK_STREAM Socket (above)
      s->slot->listener_id = r.id;
    } else if (hdr != nullptr) {
      ReleaseListener(r.id);
    }
  }
  if (!ok) {
    Log(2, "fd %d: could not map the offloaded socket it holds", fd);
    Teardown(s);
    Unref(s);
    return;
  }
  FdObject* old = ExchangeObject(fd, s);
  if (old != nullptr) Unref(old);
  OnOffloaded(s, s->pipe != nullptr ? Path::kPipe : Path::kListener);
  if (s->pipe != nullptr) {
    PipeEnd* p = s->pipe.get();
    s->slot->channel_id = p->channel_id;
    s->slot->pipe_slot = p->slot;
    s->slot->pipe_gen = p->gen;
    s->slot->pipe_end = static_cast<uint8_t>(p->end);
    if (p->engine) s->slot->path = static_cast<uint8_t>(shm::SocketPath::kEngine);
  }
  s->slot->share.store(shm::kSlotShared, std::memory_order_release);
  if (seen != nullptr) (*seen)[st.st_ino] = fd;
  Log(4, "fd %d: adopted an offloaded %s", fd, s->pipe != nullptr ? "connection" : "listener");
}

}  // namespace

void AdoptFdsInMessage(const msghdr* msg) {
  if (msg == nullptr || msg->msg_control == nullptr || msg->msg_controllen == 0) return;
  for (cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(msg), c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      AdoptFd(fd, nullptr);
    }
  }
}

void AdoptInherited() {
  // Only sockets matter, and a process usually inherits none: one pass
  // over /proc/self/fd, attaching only if an inet stream socket is there.
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return;
  const int dfd = dirfd(d);
  int fds[256];
  int n = 0;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const int fd = atoi(e->d_name);
    if (fd == dfd || n == 256) continue;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) fds[n++] = fd;
  }
  closedir(d);
  std::unordered_map<uint64_t, int> seen;
  for (int i = 0; i < n; ++i) AdoptFd(fds[i], &seen);
}

void RehomeSlots() {
  // A new arena (a forked child's own session, or a restarted offloadd's):
  // every socket gets a slot of it (statistics; the daemon's view of what
  // this process holds).
  const uint32_t gen = AttachGeneration();
  for (int fd = 0; fd < g_fd_table_size; ++fd) {
    Socket* s = GetSocket(fd);
    if (s == nullptr || s->slot_gen == gen || s->fd != fd || s->slot_index < 0) continue;
    shm::SocketSlot old;
    memcpy(static_cast<void*>(&old), s->slot, sizeof(old));
    s->slot_index = -1;
    AllocSlot(s);
    shm::SocketSlot* slot = s->slot;
    slot->inode = old.inode;
    slot->state = old.state;
    slot->path = old.path;
    slot->fallback = old.fallback;
    slot->rule_id = old.rule_id;
    slot->local_addr = old.local_addr;
    slot->local_port = old.local_port;
    slot->remote_addr = old.remote_addr;
    slot->remote_port = old.remote_port;
    slot->family = old.family;
    memcpy(slot->local_addr6, old.local_addr6, sizeof(slot->local_addr6));
    memcpy(slot->remote_addr6, old.remote_addr6, sizeof(slot->remote_addr6));
    memcpy(slot->fallback_detail, old.fallback_detail, sizeof(slot->fallback_detail));
    slot->channel_id = old.channel_id;
    slot->pipe_slot = old.pipe_slot;
    slot->pipe_gen = old.pipe_gen;
    slot->pipe_end = old.pipe_end;
    slot->listener_id = old.listener_id;
    slot->share.store(s->shared.load() ? shm::kSlotShared : shm::kSlotExclusive,
                      std::memory_order_release);
  }
}

}  // namespace client
}  // namespace offload
