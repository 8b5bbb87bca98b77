// EngineFlows: one engine's side of the wire plane (see wire_plane.h for
// the flows' life cycle). Private to daemon/wire and its tests
// (WirePlane::FlowsForTest): WirePlane owns one per engine and posts
// commands to it. engine_flows.cc holds the commands,
// events and listeners; engine_pipes.cc the application-pipe protocol.

#ifndef OFFLOAD_DAEMON_WIRE_ENGINE_FLOWS_H_
#define OFFLOAD_DAEMON_WIRE_ENGINE_FLOWS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "daemon/engine/stack_processor.h"
#include "daemon/nic/flow.h"
#include "daemon/stack/stack.h"
#include "daemon/tcp/byte_ring.h"
#include "daemon/wire/app_pipe.h"
#include "daemon/wire/engine_udp.h"
#include "daemon/wire/wire_plane.h"

namespace offload::wire {

// One engine's flows: the engine thread's table from cookie to stack flow,
// the stack's event sink, the listeners' BufferProvider, and the servant of
// the application pipes (see the header). Everything except
// active_connections() runs on the engine thread (commands posted by
// WirePlane, or the engine loop), or on the controlling thread after the
// engine stopped.
class EngineFlows : public engine::FlowEventSink, public stack::BufferProvider {
 public:
  EngineFlows(WirePlane* plane, uint32_t engine, uint32_t queue)
      : plane_(plane), engine_(engine), queue_(queue) {}

  void set_stack(stack::Stack* stack);
  stack::Stack* stack() { return stack_; }
  uint32_t queue() const { return queue_; }
  uint64_t active_connections() const {
    return active_.load(std::memory_order_relaxed);
  }

  // Engine thread (command). On failure the owner hears about it (listener
  // or the pipe's connect_status) and the flow is unsteered.
  void Connect(uint64_t cookie, const TcpConnectParams& p, const nic::FlowKey& key);

  void Listen(uint64_t cookie, const TcpListenParams& p, const nic::FlowKey& key, int* result);
  void CloseListener(uint64_t cookie);
  void SetAcceptTarget(uint64_t cookie, std::shared_ptr<AcceptTarget> target);
  void SetListenerOptions(uint64_t cookie, const tcp::SocketOptions& options);

  void Send(uint64_t cookie, bool more);
  void ReceiveCredit(uint64_t cookie);
  void Close(uint64_t cookie, bool abort);

  // UDP endpoints (engine thread, commands).
  void BindUdp(uint64_t cookie, const UdpBindParams& p, int* result);
  void CloseUdp(uint64_t cookie) { udp_.Close(cookie); }
  // Multicast membership of a UDP endpoint (EngineUdp::JoinGroup).
  int JoinUdpGroup(uint64_t cookie, uint32_t group) { return udp_.JoinGroup(cookie, group); }
  int LeaveUdpGroup(uint64_t cookie, uint32_t group) { return udp_.LeaveGroup(cookie, group); }

  // BufferProvider (engine thread): every SYN that creates a child of one
  // of our listeners gets a fresh application pipe.
  bool AllocateRings(uint64_t listener_cookie, tcp::RingMemory* tx,
                     tcp::RingMemory* rx) override;
  void ReleaseRings(const tcp::RingMemory& tx, const tcp::RingMemory&) override;

  // FlowEventSink (engine thread).
  void OnFlowEvents(const stack::FlowEvent* events, size_t n) override;

  void OnPoll() override;

  size_t PollApplications() override;

  // The sleep side of the need-wake-up handshake for every pipe: flags,
  // one heavy fence, re-check (abi.h RingIndexes). ArmWakeups() then
  // RecheckAfterArm(), in one call.
  bool ArmApplicationWakeups() override;
  // Its two halves, separately for tests that step the handshake: sets the
  // need-wake-up flags of every pipe and UDP ring (false: nothing to arm,
  // nothing armed); then the fence and the re-check (true: work arrived,
  // do not sleep). PollApplications() disarms.
  bool ArmWakeups();
  bool RecheckAfterArm();

  // Controlling thread, engine stopped: unsteers every flow still known.
  void UnsteerAll();

 private:
  struct Entry {
    stack::FlowId id = stack::kInvalidFlow;
    FlowListener* listener = nullptr;
    nic::FlowKey key;
    std::shared_ptr<AppPipe> pipe;  // null: a raw-ring flow
    uint64_t tx_tail_seen = 0;      // application TX tail last handed to the stack
    uint64_t rx_head_seen = 0;      // application RX head last credited
    bool tx_shut_done = false;
    bool connect_pending = false;   // active open not yet published
    bool armed = false;             // counted in the TX ring's reader wait line
    bool armed_rx_credit = false;   // and in the RX ring's writer wait line
    // The application's requests (shm::EngineRequests) already handled.
    uint32_t opts_seq_seen = 0;
    uint32_t query_seen = 0;
    uint32_t eor_seen = 0;
    uint32_t nodelay_pushes_seen = 0;
  };
  struct ListenEntry {
    stack::FlowId id = stack::kInvalidFlow;
    TcpListenParams params;
    nic::FlowKey key;
    nic::FlowKey key4;  // a dual-stack listener's IPv4 key (ipv6 && !v6only)
    uint64_t accept_tail = 0;  // our tail of the target's engine accept ring
  };

  Entry* Find(uint64_t cookie);
  void Insert(uint64_t cookie, Entry e);
  void Erase(std::unordered_map<uint64_t, Entry>::iterator it);

  // Hands what the application did on its rings to the stack.
  // `check_closed`: a pipe the application closed is queued in
  // app_closed_ (PollApplications closes it after its scan).
  size_t PollPipe(Entry& e, bool check_closed = true);

  void Disarm();

  // The application's socket options (shm::EngineRequests): true when they
  // changed since the last look, with a consistent copy and the TX tail
  // they were published at.
  struct PublishedOptions {
    shm::SockOpts opts;
    uint64_t at_tail = 0;          // EngineRequests::opts_tail
    uint32_t nodelay_pushes = 0;   // EngineRequests::nodelay_pushes
  };
  bool ReadOptions(Entry& e, PublishedOptions* o);
  void ApplyOptions(Entry& e, const PublishedOptions& o);
  // True when the options or a query wait for PollPipe (wake-up re-check).
  static bool RequestsPending(const Entry& e);

  // True once the application's close of its end is committed: shm::
  // CloseEnd stores the ring's shut and the RX ring's reader_closed, then
  // takes the armed wake-up bits, and only then sets its closed bit. An
  // engine that armed after that take and re-checked before the bit would
  // sleep through the close (it slept through a close in SYN-SENT until
  // the peer's SYN,ACK arrived), and one polling in between would read the
  // close's shut as a shutdown(SHUT_WR) (a FIN for an SO_LINGER {1, 0}
  // close). So the close is recognised by what precedes the wake-up:
  // reader_closed of the RX ring (stored by no one else), or kShutRst on
  // the TX ring (CloseEnd's abort, never a shutdown()); the closed bit too.
  static bool AppCloseCommitted(const AppPipe& p);
  // Writes the connection's getsockopt values and TCP_INFO into the pipe
  // (shm::EngineAnswers) as the answer to query `q`; `final`: the last
  // answer (the connection is gone), and wakes the querying threads.
  void Answer(Entry& e, uint32_t q, bool final);
  // Passes the record ends (MSG_EOR) pushed since the last look.
  void MarkRecordEnds(Entry& e, uint32_t count);

  // Turns stack events into the pipe's state and wakes the application if
  // it sleeps (or waits for its connect).
  void PublishToPipe(Entry& e, uint32_t events, int error);
  // Wakes what sleeps on `w` (after the index or state it waits for).
  void Wake(shm::RingWaitLine* w);
  // This engine's doorbell id (shm/ring.h RingWaitLine::waiters).
  uint64_t doorbell_id() const { return shm::kEngineDoorbellBit | engine_; }

  void AcceptChildren(ListenEntry& l);

  WirePlane* const plane_;
  const uint32_t engine_;
  const uint32_t queue_;  // the engine's first queue: flows are steered here
  stack::Stack* stack_ = nullptr;
  std::unordered_map<uint64_t, Entry> flows_;
  std::vector<Entry*> pipes_;   // the flows of flows_ with an application pipe
  std::vector<Entry> closing_;  // released, protocol still finishing
  std::vector<Entry*> app_closed_;  // found closed by PollPipe, closed after the scan
  std::unordered_map<uint64_t, ListenEntry> listeners_;
  // Children's pipes until accept, by TX ring base.
  std::unordered_map<uint8_t*, std::shared_ptr<AppPipe>> unaccepted_;
  EngineUdp udp_;        // applications' UDP sockets served here
  bool armed_ = false;  // need-wake-up flags set on the pipes and UDP TX rings
  uint64_t alloc_failures_ = 0;
  std::atomic<uint64_t> active_{0};
  // Checksum failures already reported in the log (engine thread only).
  uint64_t csum_logged_ = 0;
};

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_ENGINE_FLOWS_H_
