#include "client/fd_table.h"

#include <sys/mman.h>
#include <sys/resource.h>

namespace offload {
namespace client {

std::atomic<FdObject*>* g_fd_table = nullptr;
int g_fd_table_size = 0;

namespace {
std::atomic<uint64_t> g_serial{1};
}

void InitFdTable() {
  if (g_fd_table != nullptr) return;
  struct rlimit rl;
  rlim_t n = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) n = rl.rlim_max;
  if (n > (1u << 20) || n == RLIM_INFINITY) n = 1u << 20;
  if (n < 1024) n = 1024;
  void* p = mmap(nullptr, n * sizeof(std::atomic<FdObject*>), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return;  // everything stays on the kernel
  g_fd_table_size = static_cast<int>(n);
  g_fd_table = static_cast<std::atomic<FdObject*>*>(p);
}

FdObject* ExchangeObject(int fd, FdObject* o) {
  if (fd < 0 || fd >= g_fd_table_size || g_fd_table == nullptr) return nullptr;
  // Release: pairs with the acquire in GetObject().
  return g_fd_table[fd].exchange(o, std::memory_order_acq_rel);
}

void Unref(FdObject* o) {
  if (o != nullptr && o->mem_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete o;
}

uint64_t NextSerial() { return g_serial.fetch_add(1, std::memory_order_relaxed); }

}  // namespace client
}  // namespace offload
