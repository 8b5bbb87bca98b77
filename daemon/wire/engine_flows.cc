// One engine's flows, pipes and listeners (see engine_flows.h).
#include "daemon/wire/engine_flows.h"

#include <arpa/inet.h>
#include <errno.h>

#include <cstring>
#include <string>
#include <utility>

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
  int err = stack_->TcpConnect(p.remote_ip, p.remote_port, p.local_port, tx, rx, cookie, &id,
                               nullptr, &p.options);
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
  *result = stack_->TcpListen(p.local_ip, p.port, p.backlog, cookie, &id, &p.options);
  if (*result == 0) listeners_[cookie] = ListenEntry{id, p, key};
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
  *result = udp_.Bind(cookie, p.local_ip, p.port, p.reuse, p.rings);
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
    if (e->pipe->AppClosed()) return true;
    if (RequestsPending(*e)) return true;
    if (e->connect_pending) continue;
    shm::RingIndexes& tw = e->pipe->to_wire();
    if (tw.tail.load(std::memory_order_seq_cst) != e->tx_tail_seen ||
        (!e->tx_shut_done && tw.shut.load(std::memory_order_seq_cst) != 0) ||
        e->pipe->AppClosed() ||
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

size_t EngineFlows::PollPipe(Entry& e, bool check_closed) {
  if (check_closed && e.pipe->AppClosed()) {
    // Closed by the caller after the scan (Close() erases entries).
    app_closed_.push_back(&e);
    return 1;
  }
  size_t work = 0;
  PublishedOptions opts;
  const bool opts_new = ReadOptions(e, &opts);
  bool opts_after_data = false;
  if (!e.connect_pending) {
    shm::RingIndexes& tw = e.pipe->to_wire();
    // Acquire: pairs with the application's store-release of shut (after
    // its last tail) and of tail (after its data); shut first, so a seen
    // shutdown comes with every byte before it.
    const uint32_t shut = e.tx_shut_done ? 0 : tw.shut.load(std::memory_order_acquire);
    const uint64_t tail = tw.tail.load(std::memory_order_acquire);
    // Options published after every byte we are about to hand over apply
    // after them; otherwise (bytes written after the change) first.
    opts_after_data = opts_new && tail != e.tx_tail_seen && opts.at_tail >= tail;
    if (opts_new && !opts_after_data) {
      ApplyOptions(e, opts);
      ++work;
    }
    if (tail != e.tx_tail_seen) {
      e.tx_tail_seen = tail;
      // Stored before the tail we loaded (acquire): record ends and MSG_MORE
      // of the sends it covers.
      shm::EngineRequests& rq = e.pipe->record()->req;
      const uint32_t eor = rq.eor_count.load(std::memory_order_acquire);
      if (eor != e.eor_seen) MarkRecordEnds(e, eor);
      const bool more = rq.more_tail.load(std::memory_order_relaxed) == tail;
      stack_->TcpSend(e.id, more);  // validates the tail itself (tcp::TxRing)
      ++work;
    }
    if (shut != 0) {
      e.tx_shut_done = true;
      stack_->TcpShutdown(e.id, false, true);
      ++work;
    }
    // Pairs with the application's store-release of head after reading.
    const uint64_t head = e.pipe->from_wire().head.load(std::memory_order_acquire);
    if (head != e.rx_head_seen) {
      e.rx_head_seen = head;
      stack_->TcpReceiveCredit(e.id);
      ++work;
    }
  } else if (opts_new) {
    ApplyOptions(e, opts);  // on the SYN-SENT connection
    ++work;
  }
  if (opts_after_data) {
    ApplyOptions(e, opts);
    ++work;
  }
  // A query last: its answer covers what the application did before it.
  const uint32_t q = e.pipe->record()->req.query.load(std::memory_order_acquire);
  if (q != e.query_seen) {
    e.query_seen = q;
    Answer(e, q, false);
    ++work;
  }
  return work;
}

bool EngineFlows::RequestsPending(const Entry& e) {
  const shm::EngineRequests& rq = e.pipe->record()->req;
  // An odd sequence is a holder halfway through its write: it rings us
  // when it is done.
  const uint32_t os = rq.opts_seq.load(std::memory_order_seq_cst);
  return ((os & 1) == 0 && os != e.opts_seq_seen) ||
         rq.query.load(std::memory_order_seq_cst) != e.query_seen;
}

bool EngineFlows::ReadOptions(Entry& e, PublishedOptions* o) {
  shm::EngineRequests& rq = e.pipe->record()->req;
  // Seqlock read (shm/pipe.h EngineRequests): the words between two equal
  // even loads of the sequence; pairs with the holder's store-release.
  const uint32_t os = rq.opts_seq.load(std::memory_order_acquire);
  if (os == e.opts_seq_seen || (os & 1) != 0) return false;
  uint32_t w[shm::kSockOptWords];
  for (uint32_t i = 0; i < shm::kSockOptWords; ++i) w[i] = rq.opts[i].load(std::memory_order_relaxed);
  o->at_tail = rq.opts_tail.load(std::memory_order_relaxed);
  o->nodelay_pushes = rq.nodelay_pushes.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (rq.opts_seq.load(std::memory_order_relaxed) != os) return false;  // next poll
  e.opts_seq_seen = os;
  std::memcpy(&o->opts, w, sizeof(o->opts));
  return true;
}

void EngineFlows::ApplyOptions(Entry& e, const PublishedOptions& o) {
  // A NODELAY turned on or a CORK turned off pushes pending data now.
  if (const int err = stack_->TcpSetOptions(e.id, ToSocketOptions(o.opts)); err != 0) {
    spdlog::debug("wire: an application's socket options were refused: {}", strerror(err));
  }
  // TCP_NODELAY set again (already on, or under TCP_CORK): one push.
  if (o.nodelay_pushes != e.nodelay_pushes_seen) {
    e.nodelay_pushes_seen = o.nodelay_pushes;
    if (o.opts.flags & shm::kOptNodelay) stack_->TcpSetOption(e.id, tcp::TcpOpt::kNoDelay, 1);
  }
}

void EngineFlows::Answer(Entry& e, uint32_t q, bool final) {
  shm::EngineAnswers& a = e.pipe->record()->ans;
  tcp::SocketValues v;
  tcp::TcpInfo info;
  std::memset(&info, 0, sizeof(info));
  if (stack_->TcpGetSocketValues(e.id, &v) != 0 || stack_->TcpGetInfo(e.id, &info) != 0) return;
  static_assert(sizeof(info) <= shm::kTcpInfoBytes, "struct tcp_info fits the answer");
  uint64_t words[shm::kTcpInfoBytes / 8] = {};
  std::memcpy(words, &info, sizeof(info));
  // Seqlock write: odd, the values, even (readers retry across it).
  const uint32_t s = a.seq.load(std::memory_order_relaxed);
  a.seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  const uint32_t vals[shm::kNumValues] = {v.maxseg, v.sndbuf, v.rcvbuf, v.inq, v.outq, v.notsent};
  for (uint32_t i = 0; i < shm::kNumValues; ++i) a.values[i].store(vals[i], std::memory_order_relaxed);
  for (uint32_t i = 0; i < shm::kTcpInfoBytes / 8; ++i) {
    a.info[i].store(words[i], std::memory_order_relaxed);
  }
  a.seq.store(s + 2, std::memory_order_release);
  if (final) a.final_answer.store(1, std::memory_order_release);
  // Pairs with the querying thread's load-acquire (then its futex wait).
  const uint32_t prev = a.answered.exchange(q, std::memory_order_acq_rel);
  // Only a connection that was ever queried can have a thread waiting (a
  // close of one that never was costs no system call).
  if (prev != q || (final && q != 0)) shm::FutexWakeAll(&a.answered);
}

void EngineFlows::MarkRecordEnds(Entry& e, uint32_t count) {
  shm::PipeRecord* r = e.pipe->record();
  uint32_t from = e.eor_seen;
  if (count - from > shm::kMaxEorEnds) from = count - shm::kMaxEorEnds;  // the oldest are lost
  for (uint32_t i = from; i != count; ++i) {
    // Validated by the stack (an index outside the queued data is refused).
    stack_->TcpMarkRecordEnd(e.id, r->eor_ends[i % shm::kMaxEorEnds].load(std::memory_order_relaxed));
  }
  e.eor_seen = count;
}

void EngineFlows::Disarm() {
  for (Entry* e : pipes_) {
    if (!e->armed) continue;
    e->armed = false;
    shm::DisarmWait(&e->pipe->to_wire().reader_wait, shm::kArmDoorbell);
    if (e->armed_rx_credit) shm::DisarmWait(&e->pipe->from_wire().writer_wait, shm::kArmDoorbell);
  }
  udp_.CancelSleep();
  armed_ = false;
}

void EngineFlows::Wake(shm::RingWaitLine* w) {
  // StoreLoad: what the sleeper waits for (an index, shut, connect_status)
  // was stored before; pairs with its arm RMW + fence + re-check.
  shm::LightFence();
  const uint32_t bits = shm::TakeArmed(w);
  if (bits != 0) WakeWaitLine(w, bits, plane_->app_waker());
}

void EngineFlows::PublishToPipe(Entry& e, uint32_t events, int error) {
  AppPipe& p = *e.pipe;
  shm::RingIndexes& tw = p.to_wire();
  shm::RingIndexes& fw = p.from_wire();
  if (e.connect_pending) {
    if (events & tcp::kEventConnected) {
      e.connect_pending = false;
      e.tx_tail_seen = tw.tail.load(std::memory_order_acquire);
      e.rx_head_seen = fw.head.load(std::memory_order_acquire);
      // Pairs with the connector's load-acquire in its connect().
      p.record()->ctl.connect_status.store(0, std::memory_order_release);
      Wake(&fw.reader_wait);
      Wake(&tw.writer_wait);  // EPOLLOUT of a non-blocking connect
    } else if (events & (tcp::kEventError | tcp::kEventClosed)) {
      p.record()->ctl.connect_status.store(error != 0 ? error : ECONNREFUSED,
                                           std::memory_order_release);
      Wake(&fw.reader_wait);
      Wake(&tw.writer_wait);
      return;
    }
  }
  // Pairs with the application's load-acquire of shut once its ring is
  // empty (ByteRingConsumer), and of reader_closed before a send.
  bool readers = false, writers = false;
  if ((events & (tcp::kEventError | tcp::kEventClosed)) && error != 0) {
    // The errno the application's calls report (ETIMEDOUT after a user
    // timeout or keep-alive, ECONNRESET...); before the release stores.
    p.record()->ans.close_error.store(error, std::memory_order_relaxed);
    fw.shut.store(shm::kShutRst, std::memory_order_release);
    tw.reader_closed.store(shm::kReaderClosedUnread, std::memory_order_release);
    readers = writers = true;
  } else {
    if (events & tcp::kEventPeerFin) {
      fw.shut.store(shm::kShutFin, std::memory_order_release);
      readers = true;
    }
    if (events & tcp::kEventClosed) {
      tw.reader_closed.store(shm::kReaderClosed, std::memory_order_release);
      readers = writers = true;
    }
  }
  if (events & tcp::kEventReadable) readers = true;  // RX tail stored by the stack
  if (events & tcp::kEventWritable) writers = true;  // TX head stored by the stack
  if (readers) Wake(&fw.reader_wait);
  if (writers) Wake(&tw.writer_wait);
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
    const nic::FlowKey key = nic::FlowKey::Connection(nic::IpProto::kTcp, c.local_ip,
                                                      c.local_port, c.remote_ip, c.remote_port);
    plane_->steering().TrySteer(queue_, key);
    c.flow = WireFlow{engine_, cookie};
    Entry e;
    e.id = child;
    e.key = key;
    e.pipe = c.pipe;
    shm::PipeRecord* rec = c.pipe->record();
    rec->end[0].local = shm::FromV4(htonl(c.remote_ip), htons(c.remote_port));
    rec->end[1].local = shm::FromV4(htonl(c.local_ip), htons(c.local_port));
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
