#include "client/libc.h"

#include <dlfcn.h>
#include <pthread.h>

namespace offload {
namespace client {

namespace {

RealLibc g_real;
pthread_once_t g_once = PTHREAD_ONCE_INIT;

template <typename T>
void Resolve(T* fn, const char* name) {
  *fn = reinterpret_cast<T>(dlsym(RTLD_NEXT, name));
}

void ResolveAll() {
  RealLibc& r = g_real;
  Resolve(&r.socket, "socket");
  Resolve(&r.accept, "accept");
  Resolve(&r.accept4, "accept4");
  Resolve(&r.bind, "bind");
  Resolve(&r.listen, "listen");
  Resolve(&r.connect, "connect");
  Resolve(&r.close, "close");
  Resolve(&r.shutdown, "shutdown");
  Resolve(&r.read, "read");
  Resolve(&r.readv, "readv");
  Resolve(&r.write, "write");
  Resolve(&r.writev, "writev");
  Resolve(&r.recv, "recv");
  Resolve(&r.recvfrom, "recvfrom");
  Resolve(&r.recvmsg, "recvmsg");
  Resolve(&r.recvmmsg, "recvmmsg");
  Resolve(&r.send, "send");
  Resolve(&r.sendto, "sendto");
  Resolve(&r.sendmsg, "sendmsg");
  Resolve(&r.sendmmsg, "sendmmsg");
  Resolve(&r.getsockopt, "getsockopt");
  Resolve(&r.setsockopt, "setsockopt");
  Resolve(&r.getsockname, "getsockname");
  Resolve(&r.getpeername, "getpeername");
  Resolve(&r.fcntl, "fcntl");
  Resolve(&r.ioctl, "ioctl");
  Resolve(&r.select, "select");
  Resolve(&r.pselect, "pselect");
  Resolve(&r.poll, "poll");
  Resolve(&r.ppoll, "ppoll");
  Resolve(&r.epoll_create, "epoll_create");
  Resolve(&r.epoll_create1, "epoll_create1");
  Resolve(&r.epoll_ctl, "epoll_ctl");
  Resolve(&r.epoll_wait, "epoll_wait");
  Resolve(&r.epoll_pwait, "epoll_pwait");
  Resolve(&r.dup, "dup");
  Resolve(&r.dup2, "dup2");
  Resolve(&r.dup3, "dup3");
  Resolve(&r.fork, "fork");
  Resolve(&r.daemon, "daemon");
  Resolve(&r.sendfile, "sendfile");
  Resolve(&r.close_range, "close_range");
  Resolve(&r.closefrom, "closefrom");
  Resolve(&r.execve, "execve");
  Resolve(&r.execv, "execv");
  Resolve(&r.execvp, "execvp");
  Resolve(&r.execvpe, "execvpe");
  Resolve(&r.fexecve, "fexecve");
  Resolve(&r.posix_spawn, "posix_spawn");
  Resolve(&r.posix_spawnp, "posix_spawnp");
  Resolve(&r.system, "system");
  Resolve(&r.popen, "popen");
}

}  // namespace

const RealLibc& Real() {
  pthread_once(&g_once, ResolveAll);
  return g_real;
}

}  // namespace client
}  // namespace offload
