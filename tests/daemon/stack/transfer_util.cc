#include "tests/daemon/stack/transfer_util.h"

#include <map>

#include "gtest/gtest.h"
#include "tests/testing/owned_ring.h"

namespace offload::testing {

bool RunTransfers(LoopbackPair* lp, int n, uint64_t bytes, const char* congestion,
                  uint64_t max_ns, std::vector<Conn>* conns, uint32_t ring_bytes, bool ipv6) {
  stack::FlowId listener;
  if (ipv6) {
    EXPECT_EQ(lp->b().TcpListen6(net::Ip6Addr{}, 5001, false, 1024, 99, &listener), 0);
  } else {
    EXPECT_EQ(lp->b().TcpListen(0, 5001, 1024, 99, &listener), 0);
  }
  conns->clear();
  conns->resize(n);
  std::map<stack::FlowId, Conn*> by_client, by_server;
  const uint32_t b_ip = lp->b().config().local_ip;
  for (int i = 0; i < n; ++i) {
    Conn& c = (*conns)[i];
    c.ctx = std::make_unique<testing::OwnedRing>(ring_bytes);
    c.crx = std::make_unique<testing::OwnedRing>(ring_bytes);
    c.stream = std::make_unique<StreamTransfer>(i + 1, bytes);
    if (ipv6) {
      EXPECT_EQ(lp->a().TcpConnect6(lp->b().config().local_ip6, 5001, 0, c.ctx->memory(),
                                    c.crx->memory(), i, &c.client, congestion),
                0);
    } else {
      EXPECT_EQ(lp->a().TcpConnect(b_ip, 5001, 0, c.ctx->memory(), c.crx->memory(), i,
                                   &c.client, congestion),
                0);
    }
    by_client[c.client] = &c;
  }
  size_t pending_accept = 0;
  int next_server = 0;
  lp->on_event = [&](stack::Stack& s, const stack::FlowEvent& ev) {
    if (&s == &lp->b() && ev.flow == listener) {
      pending_accept++;
      return;
    }
    if (&s == &lp->a()) {
      Conn* c = by_client[ev.flow];
      if (c == nullptr) return;
      if (ev.events & tcp::kEventClosed) {
        const tcp::Tcb* t = lp->a().TcbForTest(ev.flow);
        EXPECT_EQ(ev.error, 0) << "client closed with error; state=" << (t ? tcp::TcpStateName(t->state) : "?")
            << " una=" << (t ? t->snd_una - t->iss : 0) << " nxt=" << (t ? t->snd_nxt - t->iss : 0)
            << " max=" << (t ? t->snd_max - t->iss : 0) << " wnd=" << (t ? t->snd_wnd : 0)
            << " cwnd=" << (t ? t->snd_cwnd : 0) << " rtx=" << (t ? t->retransmits : 0)
            << " persist_backoff=" << (t ? t->persist_backoff : 0) << " sb=" << (t ? t->scoreboard.size() : 0)
            << " fin_q=" << (t ? t->fin_queued : 0) << " fin_sent=" << (t ? t->fin_sent : 0)
            << " data_end=" << (t ? t->DataEndSeq() - t->iss : 0) << " recov=" << (t ? t->in_recovery : 0);
        c->client_done = true;
      }
    } else {
      Conn* c = by_server[ev.flow];
      if (c == nullptr) return;
      if (ev.events & tcp::kEventPeerFin) c->server_eof = true;
      if (ev.events & tcp::kEventClosed) {
        EXPECT_EQ(ev.error, 0) << "server closed with error";
        c->server_done = true;
      }
    }
  };
  lp->on_step = [&]() {
    // kEventAcceptable is coalesced: accept until EAGAIN.
    while (pending_accept > 0) {
      stack::FlowId child;
      int err = lp->b().TcpAccept(listener, 0, &child);
      if (err != 0) {
        pending_accept = 0;
        break;
      }
      // Match the child to its client by the client's local port.
      net::Ip6Addr lip, rip;
      uint16_t lport, rport;
      bool v6;
      lp->b().TcpGetAddresses6(child, &v6, &lip, &lport, &rip, &rport);
      for (auto& [id, c] : by_client) {
        net::Ip6Addr a_lip, a_rip;
        uint16_t a_lport, a_rport;
        lp->a().TcpGetAddresses6(id, &v6, &a_lip, &a_lport, &a_rip, &a_rport);
        if (a_lport == rport && c->server == 0) {
          c->server = child;
          const tcp::Tcb* t = lp->b().TcbForTest(child);
          c->stx = lp->provider_b().Find(t->tx.memory().base);
          c->srx = lp->provider_b().Find(t->rx.memory().base);
          by_server[child] = c;
          break;
        }
      }
      ++next_server;
    }
    for (auto& c : *conns) {
      if (!c.client_closed && c.client != 0) {
        if (c.stream->Produce(c.ctx.get())) lp->a().TcpSend(c.client);
        if (c.stream->all_sent()) {
          lp->a().TcpShutdown(c.client, false, true);
          c.client_closed = true;
        }
      }
      if (c.server != 0 && c.srx != nullptr) {
        if (c.stream->Consume(c.srx) > 0) lp->b().TcpReceiveCredit(c.server);
        if (c.server_eof && !c.server_closed && c.srx->AppUsed() == 0) {
          lp->b().TcpClose(c.server);
          c.server_closed = true;
        }
      }
    }
  };
  bool ok = lp->RunUntil(
      [&]() {
        for (auto& c : *conns) {
          if (!c.stream->complete() || !c.server_closed) return false;
        }
        return true;
      },
      max_ns);
  lp->on_step = nullptr;
  lp->on_event = nullptr;
  return ok;
}

}  // namespace offload::testing
