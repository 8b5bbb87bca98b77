// TCP segment text and FIN (RFC 9293 3.10.7.4 seventh and eighth steps):
// in-order data into the RX ring, out-of-order data held in place and
// SACKed (RFC 2018), the FIN when it becomes in-order, and when to ACK
// (RFC 5681 4.2). Called by the segment-arrival procedure, tcp_input.cc.
#include <algorithm>

#include "daemon/tcp/seq.h"
#include "daemon/tcp/tcp.h"

namespace offload::tcp {

using namespace internal;  // NOLINT: file-local use of the shared helpers

namespace {

// Advances RCV.NXT over contiguous out-of-order data, committing it to the
// RX ring, and processes a FIN that becomes in-order.
void DeliverInOrder(TcpContext* ctx, Tcb* tcb, uint32_t new_bytes) {
  uint32_t end = tcb->rcv_nxt + new_bytes;
  // Every held range the new data reaches (or covers) becomes in-order.
  while (tcb->ooo.PopContiguous(&end)) {
  }
  uint32_t n = end - tcb->rcv_nxt;
  if (n > 0) {
    tcb->rx.Commit(n);
    tcb->rcv_nxt = end;
    tcb->bytes_received += n;
    ctx->host->Notify(tcb, kEventReadable);
  }
}

void ProcessFin(TcpContext* ctx, Tcb* tcb) {
  // RFC 9293 3.10.7.4 eighth: advance RCV.NXT over the FIN, ACK it, signal
  // "connection closing", and change state.
  tcb->rcv_nxt += 1;
  tcb->peer_fin = true;
  tcb->ooo_fin = false;
  ctx->host->Notify(tcb, kEventPeerFin | kEventReadable);
  switch (tcb->state) {
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
      // Linux tcp_fin: CLOSE-WAIT enters "ping-pong" (interactive) mode:
      // the ACK of a lone FIN is delayed, hoping to ride on our own FIN;
      // it goes at once when more than a segment is unacknowledged
      // (__tcp_ack_snd_check), or when no data ever arrived (the delayed
      // ACK timeout, ato, is still 0 until the first data segment).
      tcb->quickack = 0;
      ScheduleAck(ctx, tcb,
                  tcb->data_segs_in == 0 || tcb->rcv_nxt - tcb->last_ack_sent > tcb->rcv_mss);
      EnterState(ctx, tcb, TcpState::kCloseWait);
      break;
    default:
      ScheduleAck(ctx, tcb, true);  // Linux tcp_fin: tcp_send_ack()
      break;
  }
  switch (tcb->state) {
    case TcpState::kFinWait1:
      // FIN-WAIT-1: if our FIN is acked, TIME-WAIT; else CLOSING.
      if (tcb->fin_sent && SeqGt(tcb->snd_una, tcb->fin_seq)) {
        EnterTimeWait(ctx, tcb);
      } else {
        EnterState(ctx, tcb, TcpState::kClosing);
      }
      break;
    case TcpState::kFinWait2:
      EnterTimeWait(ctx, tcb);
      break;
    case TcpState::kTimeWait:
      EnterTimeWait(ctx, tcb);  // restart the 2 MSL timeout
      break;
    default:
      break;  // CLOSE-WAIT, CLOSING, LAST-ACK: remain
  }
}

}  // namespace

namespace internal {

// RFC 9293 3.10.7.4 seventh: segment text. `seq`/`data`/`len` are already
// trimmed to start at or after RCV.NXT.
void ProcessData(TcpContext* ctx, Tcb* tcb, uint32_t seq, const uint8_t* data,
                 uint32_t len, bool fin) {
  const bool had_ooo = !tcb->ooo.empty();
  if (len > 0) {
    tcb->data_segs_in++;
    ctx->ctr->data_segs_in++;
    tcb->last_data_recv_ns = ctx->now_ns;
    if (len > tcb->rcv_mss) tcb->rcv_mss = static_cast<uint16_t>(std::min<uint32_t>(len, 65535));
    uint32_t offset = seq - tcb->rcv_nxt;
    uint32_t room = tcb->rx.free();
    if (offset >= room) {
      ctx->ctr->beyond_buffer_dropped++;
      ScheduleAck(ctx, tcb, true);
      return;
    }
    if (len > room - offset) {
      // More than the buffer can hold (peer overran the window): keep what
      // fits, drop the rest (and the FIN with it).
      len = room - offset;
      fin = false;
      ctx->ctr->beyond_buffer_dropped++;
    }
    if (offset == 0) {
      tcb->rx.WriteAt(0, data, len);
      DeliverInOrder(ctx, tcb, len);
      // Linux tcp_grow_window: the window offered grows by two segments per
      // in-order segment of at least 128 bytes, up to the buffer.
      if (len >= 128 && tcb->rcv_ssthresh < tcb->rx.capacity()) {
        tcb->rcv_ssthresh = std::min(tcb->rcv_ssthresh + 2u * tcb->adv_mss, tcb->rx.capacity());
      }
    } else {
      // Out of order: store in place in the ring, remember the range.
      // RFC 5681 4.2: one immediate duplicate ACK per out-of-order segment,
      // even when several arrive in one receive batch.
      if (tcb->ack_now && tcb->extra_acks < 64) tcb->extra_acks++;
      ctx->ctr->ooo_segments++;
      tcb->rcv_ooopack++;
      if (!tcb->ooo.Add(seq, seq + len)) {
        ctx->ctr->ooo_dropped++;
        ScheduleAck(ctx, tcb, true);
        return;
      }
      tcb->rx.WriteAt(offset, data, len);
      // RFC 2018 4: the first SACK block reports the most recent segment.
      uint8_t n = std::min<uint8_t>(tcb->num_recent_sack, kMaxSackBlocks - 1);
      for (uint8_t i = n; i > 0; --i) tcb->recent_sack[i] = tcb->recent_sack[i - 1];
      tcb->recent_sack[0] = seq;
      tcb->num_recent_sack = n + 1;
    }
  }
  if (fin) {
    uint32_t fin_seq = seq + len;
    if (fin_seq == tcb->rcv_nxt) {
      ProcessFin(ctx, tcb);
      if (had_ooo) ScheduleAck(ctx, tcb, true);  // RFC 5681 4.2: a hole filled
      return;
    }
    tcb->ooo_fin = true;
    tcb->ooo_fin_seq = fin_seq;
  }
  if (tcb->ooo_fin && tcb->ooo_fin_seq == tcb->rcv_nxt) {
    ProcessFin(ctx, tcb);
    if (had_ooo) ScheduleAck(ctx, tcb, true);  // RFC 5681 4.2: a hole filled
    return;
  }
  if (len == 0) return;
  // RFC 5681 4.2 / RFC 9293 3.10.7.4: ACK out-of-order data and hole fills
  // immediately; otherwise at least every second full-sized segment, else
  // delayed (<= 500 ms; Linux 40 ms minimum).
  bool immediate = had_ooo || !tcb->ooo.empty() || tcb->quickack > 0 ||
                   tcb->rcv_nxt - tcb->last_ack_sent >= 2u * tcb->rcv_mss;
  if (tcb->quickack > 0) tcb->quickack--;
  ScheduleAck(ctx, tcb, immediate);
}

}  // namespace internal

}  // namespace offload::tcp
