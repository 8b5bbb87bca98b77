// RFC 6675 conservative SACK-based loss recovery helpers over the sender's
// scoreboard (Tcb::scoreboard holds the SACKed ranges above SND.UNA).
#ifndef OFFLOAD_DAEMON_TCP_SACK_H_
#define OFFLOAD_DAEMON_TCP_SACK_H_

#include <cstdint>

#include "daemon/tcp/options.h"
#include "daemon/tcp/tcb.h"

namespace offload::tcp {

// RFC 6675 IsLost() as a boundary: every unSACKed octet below the returned
// sequence number is lost (DupThresh discontiguous SACKed ranges above it, or
// more than (DupThresh - 1) * SMSS SACKed bytes above it). Returns snd_una
// when nothing is lost.
uint32_t LostBoundary(const Tcb& tcb, uint32_t dupthresh);

// RFC 6675 SetPipe(): octets believed in flight.
uint32_t Pipe(const Tcb& tcb, uint32_t lost_boundary);

// Records the SACK blocks of an ACK (RFC 2018 4, RFC 2883 D-SACK). Blocks are
// clipped to [snd_una, snd_max]; invalid ones ignored. Returns whether any
// previously unSACKed data became SACKed.
bool UpdateScoreboard(TcpContext* ctx, Tcb* tcb, const TcpOptions& opts,
                      uint32_t seg_ack);

// RFC 6675 NextSeg() rules 1 and 3: a retransmission candidate. Returns
// whether one exists, with its start and maximum length.
bool NextSegRetransmit(const Tcb& tcb, uint32_t lost_boundary, bool rule3,
                       uint32_t* seq, uint32_t* max_len);

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_SACK_H_
