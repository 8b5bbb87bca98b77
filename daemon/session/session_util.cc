// Small helpers shared by the SessionManager's .cc files.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/session/session_internal.h"

namespace offload {
namespace session {

bool SetPortWord(std::atomic<uint64_t>* words, uint16_t port_host, bool on) {
  const uint64_t bit = uint64_t{1} << (port_host & 63);
  // Release: pairs with the client's acquire load in shm::PortBit().
  if (on) return words[port_host >> 6].fetch_or(bit, std::memory_order_release) & bit;
  return words[port_host >> 6].fetch_and(~bit, std::memory_order_release) & bit;
}

}  // namespace session
}  // namespace offload
