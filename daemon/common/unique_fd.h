// UniqueFd for daemon code: the same RAII fd owner the shared-memory ABI and
// the preload library use (shm/unique_fd.h), so there is one of them.

#ifndef OFFLOAD_DAEMON_COMMON_UNIQUE_FD_H_
#define OFFLOAD_DAEMON_COMMON_UNIQUE_FD_H_

#include "shm/unique_fd.h"

namespace offload {

using UniqueFd = shm::UniqueFd;

}  // namespace offload

#endif  // OFFLOAD_DAEMON_COMMON_UNIQUE_FD_H_
