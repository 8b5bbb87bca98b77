// One engine's flows: the command side (connect, listen, close, UDP),
// stack events, the engine loop's hooks, the listeners' children and accept
// queues (see engine_flows.h). The application-pipe protocol the engine
// speaks for each flow is in engine_pipes.cc.
#include "daemon/wire/engine_flows.h"

#include <arpa/inet.h>
#include <errno.h>

#include <cstring>
#include <string>
#include <utility>

#include "daemon/wire/family.h"
#include "daemon/wire/steering.h"
#include "shm/fence.h"
#include "shm/futex.h"
#include "spdlog/spdlog.h"

namespace offload::wire {

void EngineFlows::set_stack(stack::Stack* stack) {
  stack_ = stack;
  udp_.set_stack(stack);
}

void EngineFlows::Connect(uint64_t cookie, const TcpConnectParams& p, const nic::FlowKey& key) {
  stack::FlowId id = stack::kInvalidFlow;
  const tcp::RingMemory tx = p.pipe != nullptr ? p.pipe->TxMemory() : p.tx;
  const tcp::RingMemory rx = p.pipe != nullptr ? p.pipe->RxMemory() : p.rx;
  int err = p.ipv6 ? stack_->TcpConnect6(p.remote_ip6, p.remote_port, p.local_port, tx, rx,
                                          cookie, &id, nullptr, &p.options)
                   : stack_->TcpConnect(p.remote_ip, p.remote_port, p.local_port, tx, rx,
                                        cookie, &id, nullptr, &p.options);
  if (err != 0) {
    if (p.pipe != nullptr) {
      // Pairs with the connector's load-acquire in its connect().
      p.pipe->record()->ctl.connect_status.store(err, std::memory_order_release);
      Wake(&p.pipe->from_wire().reader_wait);
    }
    if (p.listener != nullptr) p.listener->OnTcpEvents(tcp::kEventError | tcp::kEventClosed, err);
    plane_->steering().Release(queue_, key);
    return;
  }
  Entry e;
  e.id = id;
  e.listener = p.listener;
  e.key = key;
  e.pipe = p.pipe;
  e.connect_pending = p.pipe != nullptr;
  Insert(cookie, std::move(e));
}

void EngineFlows::Listen(uint64_t cookie, const TcpListenParams& p, const nic::FlowKey& key,
                         int* result) {
  stack::FlowId id = stack::kInvalidFlow;
  *result = p.ipv6 ? stack_->TcpListen6(p.local_ip6, p.port, p.v6only, p.backlog, cookie, &id,
                                        &p.options)
                    : stack_->TcpListen(p.local_ip, p.port, p.backlog, cookie, &id, &p.options);
  if (*result == 0) listeners_[cookie] = ListenEntry{id, p, key, DualStackKey(p)};
}

void EngineFlows::SetAcceptTarget(uint64_t cookie, std::shared_ptr<AcceptTarget> target) {
  auto it = listeners_.find(cookie);
  if (it == listeners_.end()) return;
  it->second.params.target = std::move(target);
  it->second.accept_tail = 0;  // a new segment's ring starts empty
}

void EngineFlows::SetListenerOptions(uint64_t cookie, const tcp::SocketOptions& options) {
  auto it = listeners_.find(cookie);
  if (it == listeners_.end()) return;
  if (const int err = stack_->TcpSetOptions(it->second.id, options); err != 0) {
    spdlog::debug("wire: a listener's socket options were refused: {}", strerror(err));
  }
  it->second.params.options = options;
}

void EngineFlows::CloseListener(uint64_t cookie) {
  auto it = listeners_.find(cookie);
  if (it == listeners_.end()) return;
  stack_->TcpClose(it->second.id);  // resets the children not accepted
  plane_->steering().Release(queue_, it->second.key);
  if (it->second.key4.local_port != 0) plane_->steering().Release(queue_, it->second.key4);
  listeners_.erase(it);
}

void EngineFlows::Send(uint64_t cookie, bool more) {
  if (Entry* e = Find(cookie)) stack_->TcpSend(e->id, more);
}

void EngineFlows::ReceiveCredit(uint64_t cookie) {
  if (Entry* e = Find(cookie)) stack_->TcpReceiveCredit(e->id);
}

void EngineFlows::Close(uint64_t cookie, bool abort) {
  auto it = flows_.find(cookie);
  if (it == flows_.end()) return;
  Entry& e = it->second;
  if (e.pipe != nullptr && !abort) PollPipe(e, false);  // the application's last bytes and shutdown
  if (abort) {
    stack_->TcpAbort(e.id);
  } else {
    stack_->TcpClose(e.id);
  }
  Entry closing = e;
  Erase(it);
  closing_.push_back(std::move(closing));  // keeps the pipe mapped while the stack uses it
  OnPoll();  // an already closed connection is gone right away
}

void EngineFlows::BindUdp(uint64_t cookie, const UdpBindParams& p, int* result) {
  *result = p.ipv6 ? udp_.Bind6(cookie, p.local_ip6, p.v6only, p.port, p.reuse, p.rings)
                   : udp_.Bind(cookie, p.local_ip, p.port, p.reuse, p.rings);
}

bool EngineFlows::AllocateRings(uint64_t listener_cookie, tcp::RingMemory* tx,
                                tcp::RingMemory* rx) {
  auto l = listeners_.find(listener_cookie);
  if (l == listeners_.end() || l->second.params.target == nullptr) return false;
  absl::StatusOr<std::shared_ptr<AppPipe>> pipe =
      AppPipe::Create(l->second.params.target->channel, 1, 0);
  if (!pipe.ok()) {
    if (alloc_failures_++ % 1024 == 0) {
      spdlog::warn("wire: refusing a connection on port {}: {}", l->second.params.port,
                   std::string(pipe.status().message()));
    }
    return false;
  }
  *tx = (*pipe)->TxMemory();
  *rx = (*pipe)->RxMemory();
  unaccepted_[tx->base] = std::move(*pipe);
  return true;
}

void EngineFlows::ReleaseRings(const tcp::RingMemory& tx, const tcp::RingMemory&) {
  unaccepted_.erase(tx.base);  // accepted children hold their own reference
}

void EngineFlows::OnFlowEvents(const stack::FlowEvent* events, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const stack::FlowEvent& ev = events[i];
    if (ev.kind == stack::FlowKind::kUdp) {
      udp_.OnEvent(ev);
      continue;
    }
    auto it = flows_.find(ev.cookie);
    if (it == flows_.end() || it->second.id != ev.flow) {
      auto l = listeners_.find(ev.cookie);
      if (l != listeners_.end() && l->second.id == ev.flow &&
          (ev.events & tcp::kEventAcceptable)) {
        AcceptChildren(l->second);
      }
      continue;
    }
    Entry& entry = it->second;
    if (entry.pipe != nullptr && (ev.events & tcp::kEventClosed)) {
      // The last values (TCP_INFO of the closed connection) stay readable.
      Answer(entry, entry.pipe->record()->req.query.load(std::memory_order_acquire), true);
    }
    if (entry.pipe != nullptr) PublishToPipe(entry, ev.events, ev.error);
    FlowListener* listener = entry.listener;
    if (ev.events & tcp::kEventClosed) {
      // The connection is gone: release the handle, give the flow back to
      // the kernel, then tell the owner (last event it receives).
      const stack::FlowId id = entry.id;
      const nic::FlowKey key = entry.key;
      std::shared_ptr<AppPipe> pipe = entry.pipe;
      Erase(it);
      stack_->TcpClose(id);
      plane_->steering().Release(queue_, key);
      if (pipe != nullptr) pipe->EngineDone();
    }
    if (listener != nullptr) listener->OnTcpEvents(ev.events, ev.error);
  }
}

void EngineFlows::OnPoll() {
  active_.store(stack_->ActiveConnections(), std::memory_order_relaxed);
  // Frames that fail their checksum are dropped. A veth's partial checksums
  // are accepted (nic::ChecksumOffload::kRxPartial); what is left is a
  // corrupting link or a virtual device of another kind whose sender leaves
  // checksums to an offload. Silence would look like a hang: say so at the
  // 1st, 10th, 100th... failure.
  const uint64_t bad = stack_->counters().rx_checksum_errors;
  if (bad > csum_logged_ && (csum_logged_ == 0 || bad >= csum_logged_ * 10)) {
    csum_logged_ = bad;
    spdlog::warn(
        "wire: dropped {} received frame(s) with a bad IP/TCP/UDP checksum so far; if the "
        "sender is on this host behind a virtual link, it may leave checksums to an offload "
        "that does not exist: turn it off on the sending end (ethtool -K <dev> tx off)",
        bad);
  }
  for (size_t i = 0; i < closing_.size();) {
    uint32_t lip, rip;
    uint16_t lport, rport;
    if (stack_->TcpGetAddresses(closing_[i].id, &lip, &lport, &rip, &rport) == 0) {
      ++i;  // still finishing (FIN exchange, TIME-WAIT)
      continue;
    }
    plane_->steering().Release(queue_, closing_[i].key);
    if (closing_[i].pipe != nullptr) closing_[i].pipe->EngineDone();
    closing_[i] = std::move(closing_.back());
    closing_.pop_back();
  }
}

size_t EngineFlows::PollApplications() {
  if (armed_) Disarm();
  size_t work = 0;
  for (Entry* e : pipes_) work += PollPipe(*e);
  // The last holder of an application's socket closed it (shm::CloseEnd
  // stored kShutRst when it left unread data or asked for an abort).
  // Close() takes its last bytes first.
  if (!app_closed_.empty()) {
    std::vector<Entry*> closed;
    closed.swap(app_closed_);
    for (Entry* e : closed) {
      // Closed while connecting: the connection is abandoned (Linux:
      // close() in SYN-SENT; the peer's SYN-ACK then meets a RST).
      const bool abort = e->connect_pending ||
                         e->pipe->to_wire().shut.load(std::memory_order_acquire) == shm::kShutRst;
      for (auto& [cookie, entry] : flows_) {
        if (&entry == e) {
          Close(cookie, abort);
          break;
        }
      }
    }
  }
  work += udp_.PollApplications();
  return work;
}

bool EngineFlows::ArmApplicationWakeups() {
  if (!ArmWakeups()) return false;
  return RecheckAfterArm();
}

bool EngineFlows::ArmWakeups() {
  if (pipes_.empty() && udp_.size() == 0) return false;
  udp_.SetSleepFlags();
  for (Entry* e : pipes_) {
    // We are the only reader of the application's TX ring and the only
    // writer of its RX ring: our doorbell is listed there (Insert). A
    // close during the handshake wakes us through the first.
    shm::ArmWait(&e->pipe->to_wire().reader_wait, shm::kArmDoorbell);
    e->armed = true;
    if (e->connect_pending) continue;
    // Consumed RX space matters only when the window has closed enough
    // for an update to be due (receiver-side SWS avoidance, RFC 9293
    // 3.8.6.2.2); otherwise an application's receive need not wake us.
    shm::RingIndexes& fw = e->pipe->from_wire();
    e->armed_rx_credit =
        fw.tail.load(std::memory_order_relaxed) - fw.head.load(std::memory_order_relaxed) >
        e->pipe->capacity() / 2;
    if (e->armed_rx_credit) shm::ArmWait(&fw.writer_wait, shm::kArmDoorbell);
  }
  armed_ = true;
  return true;
}

bool EngineFlows::RecheckAfterArm() {
  shm::HeavyFence();
  // An application streaming into a pipe may have skipped its fence
  // (fence.h lazy producers): one barrier before the re-checks.
  for (Entry* e : pipes_) {
    if (!e->connect_pending &&
        e->pipe->to_wire().writer_lazy.load(std::memory_order_seq_cst) != 0) {
      shm::PeerBarrier();
      break;
    }
  }
  if (udp_.RecheckAfterFence()) return true;
  for (Entry* e : pipes_) {
    // Connecting or not: a close whose wake-up found us not yet armed.
    if (AppCloseCommitted(*e->pipe)) return true;
    if (RequestsPending(*e)) return true;
    if (e->connect_pending) continue;
    shm::RingIndexes& tw = e->pipe->to_wire();
    if (tw.tail.load(std::memory_order_seq_cst) != e->tx_tail_seen ||
        (!e->tx_shut_done && tw.shut.load(std::memory_order_seq_cst) != 0) ||
        e->pipe->from_wire().head.load(std::memory_order_seq_cst) != e->rx_head_seen) {
      return true;
    }
  }
  return false;
}

void EngineFlows::UnsteerAll() {
  // offloadd is stopping: every connection it served reads as reset
  // (ECONNRESET) in the applications, as if the peer had sent RST.
  for (auto& [cookie, e] : flows_) {
    if (e.pipe == nullptr) continue;
    shm::RingIndexes& tw = e.pipe->to_wire();
    shm::RingIndexes& fw = e.pipe->from_wire();
    int32_t pending = shm::kConnectPending;
    e.pipe->record()->ctl.connect_status.compare_exchange_strong(pending, ECONNRESET,
                                                                  std::memory_order_acq_rel);
    fw.shut.store(shm::kShutRst, std::memory_order_release);
    tw.reader_closed.store(shm::kReaderClosedUnread, std::memory_order_release);
    Wake(&fw.reader_wait);
    Wake(&tw.writer_wait);
  }
  for (auto& [cookie, e] : flows_) plane_->steering().Release(queue_, e.key);
  for (Entry& e : closing_) plane_->steering().Release(queue_, e.key);
  for (auto& [cookie, l] : listeners_) plane_->steering().Release(queue_, l.key);
  pipes_.clear();
  udp_.Clear();
  flows_.clear();
  closing_.clear();
  listeners_.clear();
  unaccepted_.clear();
}

EngineFlows::Entry* EngineFlows::Find(uint64_t cookie) {
  auto it = flows_.find(cookie);
  return it == flows_.end() ? nullptr : &it->second;
}

void EngineFlows::Insert(uint64_t cookie, Entry e) {
  const bool pipe = e.pipe != nullptr;
  Entry& stored = flows_[cookie] = std::move(e);
  if (pipe) {
    stored.tx_tail_seen = stored.pipe->to_wire().tail.load(std::memory_order_acquire);
    stored.rx_head_seen = stored.pipe->from_wire().head.load(std::memory_order_acquire);
    // The application kicks our doorbell when it wakes what we arm.
    shm::AddWaiter(&stored.pipe->to_wire().reader_wait, doorbell_id());
    shm::AddWaiter(&stored.pipe->from_wire().writer_wait, doorbell_id());
    pipes_.push_back(&stored);  // unordered_map nodes do not move
  }
}

void EngineFlows::Erase(std::unordered_map<uint64_t, Entry>::iterator it) {
  Entry& e = it->second;
  if (e.pipe != nullptr && e.armed) {
    e.armed = false;
    shm::DisarmWait(&e.pipe->to_wire().reader_wait, shm::kArmDoorbell);
    if (e.armed_rx_credit) shm::DisarmWait(&e.pipe->from_wire().writer_wait, shm::kArmDoorbell);
  }
  if (it->second.pipe != nullptr) {
    for (size_t i = 0; i < pipes_.size(); ++i) {
      if (pipes_[i] == &it->second) {
        pipes_[i] = pipes_.back();
        pipes_.pop_back();
        break;
      }
    }
  }
  flows_.erase(it);
}

void EngineFlows::AcceptChildren(ListenEntry& l) {
  for (int i = 0; i < 256; ++i) {
    const uint64_t cookie = plane_->next_cookie();
    stack::FlowId child = stack::kInvalidFlow;
    if (stack_->TcpAccept(l.id, cookie, &child) != 0) return;
    tcp::RingMemory tx, rx;
    AcceptedConnection c;
    if (stack_->TcpGetRings(child, &tx, &rx) != 0 ||
        stack_->TcpGetAddresses(child, &c.local_ip, &c.local_port, &c.remote_ip,
                                &c.remote_port) != 0 ||
        stack_->TcpGetAddresses6(child, &c.ipv6, &c.local_ip6, &c.local_port, &c.remote_ip6,
                                 &c.remote_port) != 0) {
      stack_->TcpAbort(child);
      continue;
    }
    auto u = unaccepted_.find(tx.base);
    if (u == unaccepted_.end()) {
      stack_->TcpAbort(child);
      continue;
    }
    c.pipe = std::move(u->second);
    unaccepted_.erase(u);
    // Its own steering entry, so the connection outlives its listener.
    const nic::FlowKey key = ChildKey(c);
    plane_->steering().TrySteer(queue_, key);
    c.flow = WireFlow{engine_, cookie};
    Entry e;
    e.id = child;
    e.key = key;
    e.pipe = c.pipe;
    shm::PipeRecord* rec = c.pipe->record();
    rec->end[0].local = c.ipv6 ? FromV6(c.remote_ip6, c.remote_port)
                               : shm::FromV4(htonl(c.remote_ip), htons(c.remote_port));
    rec->end[1].local = c.ipv6 ? FromV6(c.local_ip6, c.local_port)
                               : shm::FromV4(htonl(c.local_ip), htons(c.local_port));
    Insert(cookie, std::move(e));
    AcceptTarget* t = l.params.target.get();
    if (t != nullptr && t->listener != nullptr &&
        t->listener->state.load(std::memory_order_acquire) != shm::kListening) {
      Close(cookie, /*abort=*/true);  // its socket is gone: as a closed listener, reset
      continue;
    }
    if (t != nullptr && t->listener != nullptr) {
      const shm::AcceptEntry entry{c.pipe->channel()->id(), c.pipe->slot(), c.pipe->gen(), 0};
      if (!shm::PostEngineConnection(t->listener, engine_, entry, &l.accept_tail)) {
        // The application does not keep up (accept queue full): refuse it
        // as a full backlog would.
        Close(cookie, /*abort=*/true);
        continue;
      }
      // StoreLoad: the post before the arm load (pairs with the acceptor's
      // arm RMW + fence + re-check). Every non-exclusive acceptor and one
      // exclusive one, as Linux; the wake-up stays owed while acceptors
      // sleep, and the post count spreads the exclusive wake-ups.
      shm::LightFence();
      const shm::WaiterSet set = shm::AcceptWaiters(t->listener);
      WakeWaitLine(&t->listener->accept_wait, shm::TakeArmedKeepDoorbell(&t->listener->accept_wait),
                   plane_->app_waker(), set,
                   static_cast<uint32_t>(t->listener->posted.load(std::memory_order_relaxed) % set.n));
    } else if (l.params.sink != nullptr) {
      l.params.sink->OnAccepted(l.params.token, c);
    } else {
      Close(cookie, /*abort=*/true);
    }
  }
}

}  // namespace offload::wire
