// Socket-API fidelity for TCP connections an engine serves (docs/
// tcp-conformance.md "What the client and the shared-memory ABI must
// carry"): the socket options the engine applies, the values getsockopt()
// and ioctl() read from it, MSG_MORE / MSG_EOR, and the errno of an
// engine's close. Nothing here runs on the uncontended send/receive path
// of a pipe (pipe_io.cc calls in only for MSG_MORE / MSG_EOR sends and for
// a connection already reset).
//
// Options: every setsockopt() the kernel accepted on the shadow is kept in
// TcpState::opts (this process's copy, what connect()/listen() send to
// offloadd so that TCP_MAXSEG and SO_RCVBUF shape the SYN); once the
// socket is an engine connection, the socket's options live in its pipe
// record (shm::EngineRequests, shared by every holder) and a change is a
// read-modify-write under the record's seqlock, then a ring of the engine.
//
// Values: getsockopt(TCP_MAXSEG / TCP_INFO / SO_SNDBUF / SO_RCVBUF) and
// ioctl(SIOCOUTQ / SIOCOUTQNSD) ask the engine (a query counter in the
// record, the engine answers in shm::EngineAnswers and wakes the futex);
// once the engine gave the connection up, its last answer is read.

#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <string.h>
#include <sys/ioctl.h>

#include <algorithm>

#include "client/attach.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"
#include "shm/futex.h"

namespace offload {
namespace client {

namespace {

// How long a getsockopt waits for an engine's answer before it answers
// from the shadow instead (the engine is stuck or offloadd is gone).
constexpr int64_t kQueryTimeoutNs = 500'000'000;

bool IsEnginePipe(Socket* s) {
  return s->path.load(std::memory_order_acquire) == Path::kPipe && s->pipe != nullptr &&
         s->pipe->engine;
}

// Applies one accepted option to `o`. False when it is none of ours.
bool ApplyOption(shm::SockOpts* o, int level, int name, const void* val, socklen_t len) {
  if (val == nullptr) return false;
  if (level == SOL_SOCKET && name == SO_LINGER) {
    if (len < sizeof(linger)) return false;
    const linger* l = static_cast<const linger*>(val);
    if (l->l_onoff != 0 && l->l_linger == 0) {
      o->flags |= shm::kOptLingerZero;
    } else {
      o->flags &= ~shm::kOptLingerZero;
    }
    return true;
  }
  if (len < sizeof(int)) return false;
  int v;
  memcpy(&v, val, sizeof(v));
  auto flag = [&](uint32_t bit) {
    if (v != 0) {
      o->flags |= bit;
    } else {
      o->flags &= ~bit;
    }
    return true;
  };
  if (level == SOL_SOCKET) {
    switch (name) {
      case SO_KEEPALIVE: return flag(shm::kOptKeepalive);
      case SO_RCVBUF: o->rcvbuf = static_cast<uint32_t>(std::max(v, 0)); return true;
      case SO_SNDBUF: o->sndbuf = static_cast<uint32_t>(std::max(v, 0)); return true;
      default: return false;
    }
  }
  if (level != IPPROTO_TCP) return false;
  switch (name) {
    case TCP_NODELAY: return flag(shm::kOptNodelay);
    case TCP_CORK: return flag(shm::kOptCork);
    case TCP_KEEPIDLE: o->keepidle_s = static_cast<uint32_t>(v); return true;
    case TCP_KEEPINTVL: o->keepintvl_s = static_cast<uint32_t>(v); return true;
    case TCP_KEEPCNT: o->keepcnt = static_cast<uint32_t>(v); return true;
    case TCP_USER_TIMEOUT: o->user_timeout_ms = static_cast<uint32_t>(v); return true;
    case TCP_MAXSEG: o->maxseg = static_cast<uint32_t>(v); return true;
    default: return false;
  }
}

bool AnySet(const shm::SockOpts& o) {
  static const shm::SockOpts kNone = {};
  return memcmp(&o, &kNone, sizeof(o)) != 0;
}

// Wakes the engine if it sleeps (it watches the TX ring's reader line, as
// for a send). After the store it is to see.
void RingEngine(PipeEnd* p) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  shm::RingWaitLine* w = &p->tx.indexes()->reader_wait;
  if (const uint32_t bits = shm::TakeArmed(w)) WakeLine(w, bits);
}

// Read-modify-write of the record's options under its seqlock (shm/pipe.h
// EngineRequests). `fn(SockOpts*)` edits them; returns whether it changed
// anything.
template <typename Fn>
bool EditRecordOptions(PipeEnd* p, Fn&& fn, bool nodelay_push = false) {
  shm::EngineRequests& rq = p->rec->req;
  uint32_t seq = rq.opts_seq.load(std::memory_order_relaxed);
  for (uint64_t i = 0;; ++i) {
    if ((seq & 1) == 0 && rq.opts_seq.compare_exchange_weak(seq, seq + 1,
                                                            std::memory_order_acquire)) {
      break;
    }
    SpinStep(i);
    seq = rq.opts_seq.load(std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_release);  // the odd value before the words
  uint32_t w[shm::kSockOptWords];
  for (uint32_t i = 0; i < shm::kSockOptWords; ++i) w[i] = rq.opts[i].load(std::memory_order_relaxed);
  shm::SockOpts o;
  memcpy(&o, w, sizeof(o));
  const bool changed = fn(&o) || nodelay_push;
  if (changed) {
    if (nodelay_push) {
      rq.nodelay_pushes.store(rq.nodelay_pushes.load(std::memory_order_relaxed) + 1,
                              std::memory_order_relaxed);
    }
    rq.opts_tail.store(p->tx.indexes()->tail.load(std::memory_order_acquire),
                       std::memory_order_relaxed);
    memcpy(w, &o, sizeof(o));
    for (uint32_t i = 0; i < shm::kSockOptWords; ++i) rq.opts[i].store(w[i], std::memory_order_relaxed);
    // Pairs with the engine's load-acquire of the sequence.
    rq.opts_seq.store(seq + 2, std::memory_order_release);
    RingEngine(p);
  } else {
    rq.opts_seq.store(seq, std::memory_order_release);  // nothing written: back to even
  }
  return changed;
}

struct EngineValues {
  uint32_t v[shm::kNumValues];
  uint64_t info[shm::kTcpInfoBytes / 8];
};

// Asks the engine for fresh values (or reads its last ones). False when it
// cannot answer (the connect failed before the engine had a connection,
// the engine is gone or stuck): the caller answers from the shadow.
bool QueryEngine(PipeEnd* p, EngineValues* out) {
  shm::EngineRequests& rq = p->rec->req;
  shm::EngineAnswers& a = p->rec->ans;
  if (a.final_answer.load(std::memory_order_acquire) == 0) {
    const int engine_end = 1 - p->end;
    if (p->connect_failed ||
        ((p->rec->ctl.closed.load(std::memory_order_acquire) >> engine_end) & 1)) {
      return false;
    }
    const uint32_t ticket = rq.query.fetch_add(1, std::memory_order_acq_rel) + 1;
    RingEngine(p);
    const int64_t deadline = NowNs() + kQueryTimeoutNs;
    for (;;) {
      // Pairs with the engine's release exchange after the values.
      const uint32_t done = a.answered.load(std::memory_order_acquire);
      if (static_cast<int32_t>(done - ticket) >= 0) break;
      if (a.final_answer.load(std::memory_order_acquire) != 0) break;
      const int64_t left = deadline - NowNs();
      if (left <= 0) {
        Log(3, "the engine did not answer a getsockopt in time; the kernel socket answers");
        return false;
      }
      shm::FutexWait(&a.answered, done, std::min<int64_t>(left, 10'000'000));
    }
  }
  for (uint64_t i = 0;; ++i) {
    const uint32_t s1 = a.seq.load(std::memory_order_acquire);
    if (s1 & 1) {
      SpinStep(i);
      continue;
    }
    for (uint32_t k = 0; k < shm::kNumValues; ++k) out->v[k] = a.values[k].load(std::memory_order_relaxed);
    for (uint32_t k = 0; k < shm::kTcpInfoBytes / 8; ++k) {
      out->info[k] = a.info[k].load(std::memory_order_relaxed);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (a.seq.load(std::memory_order_relaxed) == s1) break;
  }
  return true;
}

// sizeof(struct tcp_info) of the running kernel, asked once of a kernel
// socket (`fd`, the shadow).
socklen_t KernelTcpInfoBytes(int fd) {
  static std::atomic<socklen_t> bytes{0};
  socklen_t b = bytes.load(std::memory_order_relaxed);
  if (b != 0) return b;
  alignas(8) char buf[1024];
  socklen_t len = sizeof(buf);
  b = Real().getsockopt(fd, IPPROTO_TCP, TCP_INFO, buf, &len) == 0 && len > 0
          ? len
          : static_cast<socklen_t>(sizeof(struct tcp_info));
  bytes.store(b, std::memory_order_relaxed);
  return b;
}

}  // namespace

void TcpOptionSet(Socket* s, int level, int name, const void* val, socklen_t len) {
  if (s->type != SOCK_STREAM) return;
  if (level == IPPROTO_TCP && name == TCP_INQ && val != nullptr && len >= sizeof(int)) {
    int v;
    memcpy(&v, val, sizeof(v));
    s->tcp->inq = v != 0;
    return;
  }
  shm::SockOpts o = s->tcp->opts;
  if (!ApplyOption(&o, level, name, val, len)) return;
  const bool changed = memcmp(&o, &s->tcp->opts, sizeof(o)) != 0;
  s->tcp->opts = o;
  if (changed && s->path.load(std::memory_order_acquire) == Path::kListener) {
    TcpListenerOptionsChanged(s);
    return;
  }
  if (!IsEnginePipe(s)) return;
  // Linux pushes pending data at every setsockopt(TCP_NODELAY, non-zero).
  const bool push = level == IPPROTO_TCP && name == TCP_NODELAY && (o.flags & shm::kOptNodelay);
  EditRecordOptions(
      s->pipe.get(),
      [&](shm::SockOpts* cur) {
        shm::SockOpts next = *cur;
        ApplyOption(&next, level, name, val, len);
        if (memcmp(&next, cur, sizeof(next)) == 0) return false;
        *cur = next;
        return true;
      },
      push);
}

void PublishInitialOptions(Socket* s) {
  if (!IsEnginePipe(s) || !AnySet(s->tcp->opts)) return;
  const shm::SockOpts o = s->tcp->opts;
  EditRecordOptions(s->pipe.get(), [&](shm::SockOpts* cur) {
    if (memcmp(cur, &o, sizeof(o)) == 0) return false;
    *cur = o;
    return true;
  });
}

void InheritListenerOptions(Socket* ls, Socket* c) {
  if (!AnySet(ls->tcp->opts)) return;
  const shm::SockOpts& o = ls->tcp->opts;
  c->tcp->opts = o;
  // The child's kernel socket reports what Linux's clone of the listener
  // would (getsockopt on the accepted fd).
  auto set_int = [&](int level, int name, uint32_t v) {
    const int iv = static_cast<int>(v);
    Real().setsockopt(c->fd, level, name, &iv, sizeof(iv));
  };
  if (o.flags & shm::kOptNodelay) set_int(IPPROTO_TCP, TCP_NODELAY, 1);
  if (o.flags & shm::kOptCork) set_int(IPPROTO_TCP, TCP_CORK, 1);
  if (o.flags & shm::kOptKeepalive) set_int(SOL_SOCKET, SO_KEEPALIVE, 1);
  if (o.flags & shm::kOptLingerZero) {
    const linger l = {1, 0};
    Real().setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    c->tcp->linger_abort = true;
    // The close that resets is liboffload's own (shm::CloseEnd).
    if (c->pipe != nullptr) c->pipe->me().flags.fetch_or(shm::kEndLingerAbort, std::memory_order_acq_rel);
  }
  if (o.keepidle_s != 0) set_int(IPPROTO_TCP, TCP_KEEPIDLE, o.keepidle_s);
  if (o.keepintvl_s != 0) set_int(IPPROTO_TCP, TCP_KEEPINTVL, o.keepintvl_s);
  if (o.keepcnt != 0) set_int(IPPROTO_TCP, TCP_KEEPCNT, o.keepcnt);
  if (o.user_timeout_ms != 0) set_int(IPPROTO_TCP, TCP_USER_TIMEOUT, o.user_timeout_ms);
  if (o.rcvbuf != 0) set_int(SOL_SOCKET, SO_RCVBUF, o.rcvbuf);
  if (o.sndbuf != 0) set_int(SOL_SOCKET, SO_SNDBUF, o.sndbuf);
  // The engine's child already has the options the listener had at
  // listen(); this adds what was set on the listener since.
  PublishInitialOptions(c);
}

namespace {

// TCP_INFO of a same-host pipe: no TCP runs there, so what Linux would
// show for a loopback connection in the same state (the shadow's own is a
// socket that never connected: TCP_CLOSE). The state follows the FINs and
// a reset; the rest are loopback's usual values.
void PipeTcpInfo(Socket* s, void* val, socklen_t* len) {
  // tcpi_state values (the kernel's TCP states, include/net/tcp_states.h).
  constexpr uint8_t kEstablished = 1, kSynSent = 2, kFinWait2 = 5, kClose = 7, kCloseWait = 8;
  PipeEnd* p = s->pipe.get();
  struct tcp_info ti = {};
  const uint32_t shut = p->rx.Shut();
  const bool wr_shut = p->flags() & shm::kEndShutWr;
  if (p->connecting.load(std::memory_order_relaxed)) {
    ti.tcpi_state = kSynSent;
  } else if (shut == shm::kShutRst || (shut != 0 && wr_shut)) {
    ti.tcpi_state = kClose;
  } else if (shut != 0) {
    ti.tcpi_state = kCloseWait;
  } else if (wr_shut) {
    ti.tcpi_state = kFinWait2;
  } else {
    ti.tcpi_state = kEstablished;
  }
  ti.tcpi_options = TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE;
  ti.tcpi_snd_wscale = 7;
  ti.tcpi_rcv_wscale = 7;
  ti.tcpi_rto = 200000;  // TCP_RTO_MIN, in microseconds
  ti.tcpi_ato = 40000;
  ti.tcpi_snd_mss = 32768;
  ti.tcpi_rcv_mss = 32768;
  ti.tcpi_advmss = 65483;
  ti.tcpi_rtt = 10;
  ti.tcpi_rttvar = 5;
  ti.tcpi_snd_ssthresh = 0x7fffffff;
  ti.tcpi_snd_cwnd = 10;
  ti.tcpi_reordering = 3;
  ti.tcpi_rcv_space = 65483;
  const socklen_t n = std::min<socklen_t>(*len, KernelTcpInfoBytes(s->fd));
  const socklen_t known = std::min<socklen_t>(n, sizeof(ti));
  memcpy(val, &ti, known);
  if (n > known) memset(static_cast<char*>(val) + known, 0, n - known);
  *len = n;
}

}  // namespace

bool TcpOptionGet(Socket* s, int level, int name, void* val, socklen_t* len, int* rc) {
  if (val != nullptr && len != nullptr && level == IPPROTO_TCP && name == TCP_INFO &&
      s->type == SOCK_STREAM && s->path.load(std::memory_order_acquire) == Path::kPipe &&
      !s->pipe->engine) {
    if (static_cast<int>(*len) < 0) {
      errno = EINVAL;
      *rc = -1;
      return true;
    }
    PipeTcpInfo(s, val, len);
    *rc = 0;
    return true;
  }
  if (val == nullptr || len == nullptr || !IsEnginePipe(s)) return false;
  int value_index = -1;
  if (level == IPPROTO_TCP && name == TCP_MAXSEG) value_index = shm::kValMaxseg;
  if (level == SOL_SOCKET && name == SO_SNDBUF) value_index = shm::kValSndbuf;
  if (level == SOL_SOCKET && name == SO_RCVBUF) value_index = shm::kValRcvbuf;
  const bool info = level == IPPROTO_TCP && name == TCP_INFO;
  if (value_index < 0 && !info) return false;
  if (static_cast<int>(*len) < 0) {
    errno = EINVAL;
    *rc = -1;
    return true;
  }
  // A connect in flight that already failed has no engine connection left.
  if (s->pipe->connecting.load(std::memory_order_acquire)) ConnectProgress(s);
  EngineValues v;
  if (!QueryEngine(s->pipe.get(), &v)) return false;
  if (info) {
    // Linux copies min(len, sizeof(struct tcp_info)) bytes, the running
    // kernel's struct (newer than our headers, perhaps): the fields the
    // engine does not know read 0.
    const socklen_t n = std::min<socklen_t>(*len, KernelTcpInfoBytes(s->fd));
    const socklen_t known = std::min<socklen_t>(n, shm::kTcpInfoBytes);
    memcpy(val, v.info, known);
    if (n > known) memset(static_cast<char*>(val) + known, 0, n - known);
    *len = n;
  } else {
    const int iv = static_cast<int>(v.v[value_index]);
    const socklen_t n = std::min<socklen_t>(*len, sizeof(iv));
    memcpy(val, &iv, n);
    *len = n;
  }
  *rc = 0;
  return true;
}

bool TcpOptionIoctl(Socket* s, unsigned long req, void* arg, int* rc) {
  if (arg == nullptr || (req != SIOCOUTQ && req != SIOCOUTQNSD) || !IsEnginePipe(s)) return false;
  EngineValues v;
  if (!QueryEngine(s->pipe.get(), &v)) return false;
  *static_cast<int*>(arg) =
      static_cast<int>(v.v[req == SIOCOUTQ ? shm::kValOutq : shm::kValNotsent]);
  *rc = 0;
  return true;
}

void PipeRecvControl(Socket* s, msghdr* msg) {
  const size_t room = msg->msg_controllen;
  msg->msg_controllen = 0;
  if (s->tcp == nullptr || !s->tcp->inq || s->path.load(std::memory_order_acquire) != Path::kPipe) {
    return;
  }
  // Linux tcp_inq_hint: the bytes left to read, or 1 at the end of the
  // stream when none are left (so that a reader knows to read again).
  PipeEnd* p = s->pipe.get();
  int inq = static_cast<int>(std::min<size_t>(p->rx.ReadableShared(), INT32_MAX));
  if (inq == 0 && p->rx.Shut() != 0) inq = 1;
  if (msg->msg_control == nullptr || room < CMSG_SPACE(sizeof(inq))) {
    msg->msg_flags |= MSG_CTRUNC;
    return;
  }
  cmsghdr* c = static_cast<cmsghdr*>(msg->msg_control);
  c->cmsg_level = IPPROTO_TCP;  // SOL_TCP
  c->cmsg_type = TCP_CM_INQ;
  c->cmsg_len = CMSG_LEN(sizeof(inq));
  memcpy(CMSG_DATA(c), &inq, sizeof(inq));
  msg->msg_controllen = CMSG_SPACE(sizeof(inq));
}

int ResetErrno(const PipeEnd* p) {
  const int e = p->rec->ans.close_error.load(std::memory_order_relaxed);
  return e != 0 ? e : ECONNRESET;
}

int TakeResetError(PipeEnd* p) {
  if (!p->engine || p->rx.Shut() != shm::kShutRst) return 0;
  if (p->me().flags.fetch_or(shm::kEndRstReported, std::memory_order_acq_rel) &
      shm::kEndRstReported) {
    return 0;
  }
  return ResetErrno(p);
}

void EngineSendMarks(PipeEnd* p, size_t n, bool last, int flags) {
  if (!p->engine) return;
  const uint64_t end = p->tx.pending_tail() + n;
  shm::EngineRequests& rq = p->rec->req;
  // Both before the tail store-release of this chunk (the engine reads
  // them after its load-acquire of that tail).
  if (flags & MSG_MORE) rq.more_tail.store(end, std::memory_order_relaxed);
  if ((flags & MSG_EOR) && last) {
    const uint32_t c = rq.eor_count.load(std::memory_order_relaxed);
    p->rec->eor_ends[c % shm::kMaxEorEnds].store(end, std::memory_order_relaxed);
    rq.eor_count.store(c + 1, std::memory_order_release);
  }
}

}  // namespace client
}  // namespace offload
