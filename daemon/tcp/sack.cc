// RFC 6675 scoreboard helpers; see sack.h.
#include "daemon/tcp/sack.h"

#include <algorithm>

#include "daemon/tcp/tcp.h"

namespace offload::tcp {

uint32_t LostBoundary(const Tcb& tcb, uint32_t dupthresh) {
  const auto& sb = tcb.scoreboard;
  uint32_t ranges = 0;
  uint64_t bytes = 0;
  const uint64_t byte_limit = uint64_t{dupthresh - 1} * tcb.snd_mss;
  // RFC 8985: unSACKed data sent before delivered data, past the reordering
  // window (tcp_rack.cc).
  uint32_t boundary = tcb.snd_una;
  if (SeqGt(tcb.rack_lost_end, boundary) && SeqLeq(tcb.rack_lost_end, tcb.snd_max)) {
    boundary = tcb.rack_lost_end;
  }
  // Once reordering was seen, only RACK's time-based marks count (the
  // SACK-count rule would call every reordered segment lost).
  if (tcb.rack_reord) return boundary;
  for (size_t i = sb.size(); i > 0; --i) {
    const auto& r = sb[i - 1];
    ++ranges;
    bytes += r.end - r.start;
    if (ranges >= dupthresh || bytes > byte_limit) return SeqMax(r.start, boundary);
  }
  return boundary;
}

uint32_t Pipe(const Tcb& tcb, uint32_t lost_boundary) {
  const auto& sb = tcb.scoreboard;
  uint32_t pipe = 0;
  // (a) unSACKed octets not considered lost: [boundary, snd_max).
  uint32_t b = SeqMax(lost_boundary, tcb.snd_una);
  if (SeqLt(b, tcb.snd_max)) pipe += (tcb.snd_max - b) - sb.CoveredIn(b, tcb.snd_max);
  // (b) unSACKed octets already retransmitted: [snd_una, HighRxt).
  if (SeqLt(tcb.snd_una, tcb.high_rxt)) {
    uint32_t e = SeqMin(tcb.high_rxt, tcb.snd_max);
    if (SeqLt(tcb.snd_una, e)) pipe += (e - tcb.snd_una) - sb.CoveredIn(tcb.snd_una, e);
  }
  return pipe;
}

bool UpdateScoreboard(TcpContext* ctx, Tcb* tcb, const TcpOptions& opts,
                      uint32_t seg_ack) {
  bool newly = false;
  for (uint8_t i = 0; i < opts.num_sack; ++i) {
    SackBlock b = opts.sack[i];
    if (!SeqLt(b.start, b.end)) continue;
    // RFC 2883 4: a first block below the cumulative ACK, or inside the
    // second block, reports a duplicate (D-SACK), not new data.
    if (i == 0 && (SeqLeq(b.end, seg_ack) ||
                   (opts.num_sack > 1 && SeqGeq(b.start, opts.sack[1].start) &&
                    SeqLeq(b.end, opts.sack[1].end)))) {
      ctx->ctr->dsacks_received++;
      tcb->dsack_dups++;
      internal::UndoOnDsack(ctx, tcb, b.start, b.end);
      continue;
    }
    // RFC 2018 / RFC 5961-style sanity: only data we sent and not yet acked.
    if (SeqGt(b.end, tcb->snd_max) || SeqLeq(b.end, tcb->snd_una)) continue;
    uint32_t s = SeqMax(b.start, tcb->snd_una);
    uint32_t before = tcb->scoreboard.CoveredIn(s, b.end);
    if (before == b.end - s) continue;
    if (tcb->scoreboard.Add(s, b.end)) newly = true;
    tcb->sent.Sack(s, b.end, [&](const SentSeg& seg) { internal::RackOnDelivered(ctx, tcb, seg); });
  }
  return newly;
}

bool NextSegRetransmit(const Tcb& tcb, uint32_t lost_boundary, bool rule3,
                       uint32_t* seq, uint32_t* max_len) {
  const auto& sb = tcb.scoreboard;
  if (tcb.rack_lost_rtx && !rule3) {
    // RFC 8985: a retransmission found lost goes again, first.
    for (size_t i = 0; i < tcb.sent.size(); ++i) {
      const SentSeg& r = tcb.sent[i];
      if (!SeqLt(r.start, tcb.high_rxt)) break;
      if (!r.lost || r.retrans || r.sacked || !SeqGt(r.end, tcb.snd_una)) continue;
      uint32_t s = SeqMax(r.start, tcb.snd_una);
      int k;
      while (SeqLt(s, r.end) && (k = sb.Find(s)) >= 0) s = sb[k].end;
      if (!SeqLt(s, r.end)) continue;
      uint32_t e = r.end;
      for (size_t j = 0; j < sb.size(); ++j) {
        if (SeqGt(sb[j].start, s)) {
          e = SeqMin(e, sb[j].start);
          break;
        }
      }
      *seq = s;
      *max_len = e - s;
      return true;
    }
  }
  uint32_t s = SeqMax(tcb.high_rxt, tcb.snd_una);
  uint32_t limit = rule3 ? tcb.snd_max : SeqMin(lost_boundary, tcb.snd_max);
  // Walk forward over SACKed ranges to the first unSACKed octet >= s.
  for (size_t i = 0; i < sb.size() && SeqLt(s, limit); ++i) {
    const auto& r = sb[i];
    if (SeqLeq(r.end, s)) continue;
    if (SeqLt(s, r.start)) {
      *seq = s;
      *max_len = SeqMin(r.start, limit) - s;
      return true;
    }
    s = r.end;  // s is inside this range: skip it
  }
  if (SeqLt(s, limit)) {
    *seq = s;
    *max_len = limit - s;
    return true;
  }
  return false;
}

}  // namespace offload::tcp
