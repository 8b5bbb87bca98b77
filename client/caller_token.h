// The calling thread's identity for shm::EndLock (pid << 32 | tid).

#ifndef OFFLOAD_CLIENT_CALLER_TOKEN_H_
#define OFFLOAD_CLIENT_CALLER_TOKEN_H_

#include <cstdint>

namespace offload {
namespace client {

// Cached per thread; a forked child's thread renews it (AttachAtForkChild
// clears the forking thread's copy, the only thread a child has). Inline:
// every send and receive takes it. Defined in doorbells.cc.
extern thread_local uint64_t t_caller_token;
uint64_t NewCallerToken();
inline uint64_t CallerToken() {
  const uint64_t t = t_caller_token;
  return __builtin_expect(t != 0, 1) ? t : NewCallerToken();
}

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_CALLER_TOKEN_H_
