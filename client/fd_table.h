// fd -> FdObject map of the preload library, plus small helpers used by the
// interposed calls. Lookups are one atomic load: the cost of an interposed
// call on a socket we do not manage.
//
// Thread safety: Get/Set/Exchange are atomic per fd; see socket.h for object
// lifetimes.

#ifndef OFFLOAD_CLIENT_FD_TABLE_H_
#define OFFLOAD_CLIENT_FD_TABLE_H_

#include <atomic>
#include <cstdint>

#include "client/socket.h"

namespace offload {
namespace client {

// Allocates the table (sized from RLIMIT_NOFILE). Idempotent.
void InitFdTable();

extern std::atomic<FdObject*>* g_fd_table;
extern int g_fd_table_size;

inline FdObject* GetObject(int fd) {
  if (fd < 0 || fd >= g_fd_table_size || g_fd_table == nullptr) return nullptr;
  return g_fd_table[fd].load(std::memory_order_acquire);
}
inline Socket* GetSocket(int fd) {
  FdObject* o = GetObject(fd);
  return (o != nullptr && o->kind == ObjKind::kSocket) ? static_cast<Socket*>(o) : nullptr;
}
// A socket on an offloaded path (pipe, listener, udp); null otherwise.
inline Socket* GetOffloaded(int fd) {
  Socket* s = GetSocket(fd);
  if (s == nullptr) return nullptr;
  const Path p = s->path.load(std::memory_order_acquire);
  return (p == Path::kKernel || p == Path::kUndecided) ? nullptr : s;
}
inline EpollSet* GetEpoll(int fd) {
  FdObject* o = GetObject(fd);
  return (o != nullptr && o->kind == ObjKind::kEpoll) ? static_cast<EpollSet*>(o) : nullptr;
}

// Installs `o` at `fd` (release); returns what was there. `fd` out of range:
// returns null and installs nothing.
FdObject* ExchangeObject(int fd, FdObject* o);

// Drops one memory reference; deletes the object at zero.
void Unref(FdObject* o);

uint64_t NextSerial();

// Counter helpers: single writer per socket side, so a relaxed
// load + store is enough (no locked instruction on the fast path).
inline void Add(std::atomic<uint64_t>& c, uint64_t v) {
  c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_FD_TABLE_H_
