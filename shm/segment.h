// Creation of the sealed shared-memory segments the daemon hands to
// processes (arenas, pipes, datagram rings).
//
// Thread safety: any thread.

#ifndef OFFLOAD_SHM_SEGMENT_H_
#define OFFLOAD_SHM_SEGMENT_H_

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>

#include "shm/unique_fd.h"

namespace offload {
namespace shm {

// Creates a memfd of `bytes`, sealed against shrinking and growing (a
// process cannot make the daemon fault by truncating it), and maps it into
// `*map`. Returns an invalid fd on failure (errno set).
inline UniqueFd MakeSealedMemfd(const char* name, size_t bytes, Mapping* map) {
  UniqueFd fd(memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return fd;
  if (ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0 ||
      fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return UniqueFd();
  }
  *map = Mapping::MapShared(fd.get(), bytes);
  if (!map->valid()) return UniqueFd();
  return fd;
}

}  // namespace shm
}  // namespace offload

#endif  // OFFLOAD_SHM_SEGMENT_H_
