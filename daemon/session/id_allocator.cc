// Host-unique ids continued across restarts (see id_allocator.h).

#include "daemon/session/id_allocator.h"

#include <errno.h>

#include <cstdio>
#include <cstring>

#include "spdlog/spdlog.h"

namespace offload {
namespace session {

uint32_t IdAllocator::Next() {
  if (!loaded_ || next_ == limit_) Reserve();
  const uint32_t id = next_++;
  if (next_ == 0) next_ = 1;  // 0 means "none" everywhere
  return id;
}

void IdAllocator::Reserve() {
  constexpr uint32_t kBlock = 1u << 20;
  if (!loaded_) {
    loaded_ = true;
    if (FILE* f = fopen(path_.c_str(), "r")) {
      unsigned long v = 0;
      if (fscanf(f, "%lu", &v) == 1 && v != 0 && v <= 0xffffffffUL) {
        next_ = static_cast<uint32_t>(v);
        spdlog::info("ids continue from {} ({}): processes of an earlier offloadd may hold "
                     "lower ones",
                     next_, path_);
      }
      fclose(f);
    }
  }
  uint32_t limit = next_ + kBlock;
  if (limit < next_ || limit == 0) limit = 1;  // wraps: the next block starts at 1
  // Written before any id of the block is handed out: a crash leaves a
  // value no id was issued from.
  const std::string tmp = path_ + ".tmp";
  bool saved = false;
  if (FILE* f = fopen(tmp.c_str(), "w")) {
    saved = fprintf(f, "%u\n", limit) > 0;
    saved = fclose(f) == 0 && saved && rename(tmp.c_str(), path_.c_str()) == 0;
  }
  if (!saved) {
    spdlog::warn("cannot record the id reservation in {} ({}): after a restart, processes "
                 "that outlive this offloadd may confuse old and new ids",
                 path_, strerror(errno));
  }
  limit_ = limit;
}

}  // namespace session
}  // namespace offload
