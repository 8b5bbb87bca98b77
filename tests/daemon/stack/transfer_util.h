// Drives bulk transfers between the two stacks of a LoopbackPair.
#ifndef OFFLOAD_TESTS_DAEMON_STACK_TRANSFER_UTIL_H_
#define OFFLOAD_TESTS_DAEMON_STACK_TRANSFER_UTIL_H_

#include <memory>
#include <vector>

#include "tests/testing/loopback.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {

// One connection A (client) -> B (server) carrying `bytes` from A to B.
struct Conn {
  stack::FlowId client = 0;
  stack::FlowId server = 0;
  std::unique_ptr<testing::OwnedRing> ctx;  // client rings
  std::unique_ptr<testing::OwnedRing> crx;
  testing::OwnedRing* stx = nullptr;        // server rings (provider-owned)
  testing::OwnedRing* srx = nullptr;
  std::unique_ptr<StreamTransfer> stream;
  bool client_closed = false;
  bool server_closed = false;
  bool server_eof = false;
  bool client_done = false;  // kEventClosed seen on client
  bool server_done = false;
};

// Runs `n` connections each sending `bytes` from A to B; the client shuts
// down after sending, the server closes on EOF. Returns false on timeout.
// `congestion` selects the algorithm on the client.
// `ipv6`: B listens dual-stack on :: (TcpListen6) and A connects to B's
// local_ip6 (TcpConnect6).
bool RunTransfers(LoopbackPair* lp, int n, uint64_t bytes, const char* congestion,
                  uint64_t max_ns, std::vector<Conn>* conns, uint32_t ring_bytes = 1 << 20,
                  bool ipv6 = false);

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_DAEMON_STACK_TRANSFER_UTIL_H_
