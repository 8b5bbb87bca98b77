// EngineUdp: one engine's UDP endpoints that serve applications' sockets
// through AppDgram rings (app_dgram.h).
//
// Per endpoint: a stack::Stack UDP endpoint bound to the port the kernel
// reserved for the application's shadow socket, the application's TX ring
// (read every engine loop iteration with shm::CheckedDgramConsumer: each
// record becomes a Stack::UdpSendTo to the record's destination) and its RX
// ring (each kUdpReadable event drains the stack endpoint with
// Stack::UdpRecvFrom straight into the ring; the record carries the
// source). A full RX ring drops the datagram and counts it in the ring's
// `drops` (the socket's receive-buffer drops); a TX record to an invalid
// destination (0.0.0.0/8, loopback, class E, broadcast, port 0, a
// multicast group with TTL 0) is dropped and counted in the TX ring's
// `drops`. A TX ring that breaks the format (a corrupt or hostile process)
// is no longer read.
//
// IPv6 (Bind6, an AF_INET6 socket): records to and from IPv6 peers carry
// their address in front of the datagram (abi.h kDgramAddr6); IPv4 peers
// of a dual-stack socket use plain IPv4 records (the client shows them
// v4-mapped). An IPv6 TX record to ::, loopback, a v4-mapped, link-local
// or multicast address (IPv6 groups are the kernel's) is dropped and
// counted in the TX ring's `drops`.
//
// Multicast: a record to a group leaves to the group's MAC with the
// record's TTL (IP_MULTICAST_TTL, default 1). An endpoint that joined a
// group (JoinGroup) receives the group's datagrams to its port; every
// member endpoint on the port gets a copy (udp::UdpTable).
//
// Wake-ups: no syscall per datagram while both sides poll. Before the
// engine sleeps it sets every TX ring's reader_wait arm (SetSleepFlags),
// fences once and re-checks (RecheckAfterFence); the application's producer
// then kicks the engine's doorbell. The engine kicks the application's
// eventfd only when the RX ring's reader_wait arm (the application
// sleeps on receive) or the TX ring's writer_wait arm (it sleeps on a
// full TX ring) is set, once per batch.
//
// Thread safety: everything runs on the engine thread (commands, the loop),
// or on the controlling thread after the engine stopped.

#ifndef OFFLOAD_DAEMON_WIRE_ENGINE_UDP_H_
#define OFFLOAD_DAEMON_WIRE_ENGINE_UDP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "shm/dgram_ring.h"
#include "daemon/stack/stack.h"
#include "daemon/wire/app_dgram.h"

namespace offload::wire {

struct EngineUdpCounters {
  uint64_t tx_datagrams = 0;  // handed to the stack
  uint64_t rx_datagrams = 0;  // written into RX rings
  uint64_t rx_drops = 0;      // RX ring full
  uint64_t tx_drops = 0;      // invalid destination, or refused by the stack (EMSGSIZE, ...)
  uint64_t corrupt_rings = 0; // TX rings that broke the format
};

class EngineUdp {
 public:
  // Datagrams taken from one TX ring per iteration (fairness between
  // sockets, bounded work per loop).
  static constexpr size_t kTxBurst = 256;

  EngineUdp() = default;
  EngineUdp(const EngineUdp&) = delete;
  EngineUdp& operator=(const EngineUdp&) = delete;

  // REQUIRES: before any other call; `stack` outlives this object.
  void set_stack(stack::Stack* stack) { stack_ = stack; }

  // Binds a stack endpoint (`local_ip` host order, 0 = any; `port` host
  // order, != 0) served through `rings`. Returns 0 or the stack's errno
  // (EADDRINUSE, ENOBUFS, EADDRNOTAVAIL).
  int Bind(uint64_t cookie, uint32_t local_ip, uint16_t port, bool reuse,
           std::shared_ptr<AppDgram> rings);
  // The same for an AF_INET6 socket (Stack::UdpBind6: ::, the interface's
  // IPv6 address or a v4-mapped one; `v6only`: IPV6_V6ONLY).
  int Bind6(uint64_t cookie, const net::Ip6Addr& local_ip, bool v6only, uint16_t port,
            bool reuse, std::shared_ptr<AppDgram> rings);
  // Closes the endpoint (datagrams still in its rings are dropped). An
  // unknown cookie is ignored.
  void Close(uint64_t cookie);
  // Multicast membership of the endpoint's stack endpoint (group host
  // order). Returns 0, EBADF (unknown cookie) or the stack's errno (EINVAL
  // not a group, EADDRINUSE already a member, ENOBUFS 20 groups;
  // EADDRNOTAVAIL not a member).
  int JoinGroup(uint64_t cookie, uint32_t group);
  int LeaveGroup(uint64_t cookie, uint32_t group);

  // Sends what applications appended to their TX rings (up to kTxBurst
  // datagrams per ring). Returns the number of records handled (0: none).
  size_t PollApplications();
  // A stack event of kind kUdp: drains the endpoint into its RX ring.
  // Returns the datagrams delivered.
  size_t OnEvent(const stack::FlowEvent& ev);

  // The sleep side of the handshake, in two halves around one HeavyFence
  // shared with the TCP pipes. RecheckAfterFence returns true if a TX ring
  // got records meanwhile (do not sleep).
  void SetSleepFlags();
  bool RecheckAfterFence() const;
  void CancelSleep();

  size_t size() const { return list_.size(); }
  const EngineUdpCounters& counters() const { return counters_; }
  // Forgets every endpoint without touching the stack (it is being
  // destroyed).
  void Clear();

 private:
  struct Endpoint {
    stack::FlowId id = stack::kInvalidFlow;
    std::shared_ptr<AppDgram> rings;
    shm::CheckedDgramConsumer tx;
    shm::DgramProducer rx;
    bool broken = false;  // TX ring corrupt: no longer read
    bool ipv6 = false;    // an AF_INET6 socket's: IPv6 records (abi.h kDgramAddr6)
  };

  void Attach(uint64_t cookie, stack::FlowId id, bool ipv6, std::shared_ptr<AppDgram> rings);
  // One TX record to its IPv4 destination, or to an IPv6 one (its address
  // in front). Return the stack's errno, or EINVAL for a record or
  // destination the engine does not send.
  int SendRecord4(Endpoint& e, const shm::CheckedDgramConsumer::Record& r);
  int SendRecord6(Endpoint& e, const shm::CheckedDgramConsumer::Record& r);
  // One datagram with an IPv6 source into the RX ring; false if it is empty.
  bool DeliverOne6(Endpoint& e, uint32_t max, size_t* delivered);

  size_t DrainTx(Endpoint& e);
  size_t DeliverRx(Endpoint& e);

  stack::Stack* stack_ = nullptr;
  std::unordered_map<uint64_t, Endpoint> endpoints_;  // by cookie
  std::vector<Endpoint*> list_;                       // nodes do not move
  std::unique_ptr<uint8_t[]> scratch_;                // a datagram that does not fit in place
  EngineUdpCounters counters_;
};

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_ENGINE_UDP_H_
