// TCP protocol engine entry points (RFC 9293 with RFC 5961, 6298, 6528,
// 6582, 6675, 7323, 2018, 5681, 6928, 9438). Pure protocol logic: segments in
// (parsed frames), segments out (written into caller buffers), time from
// TcpContext::now_ns. The host (daemon/stack) owns demultiplexing, listeners,
// the connection pool, neighbour resolution and the event queue.
//
// Thread safety: every function must be called on the engine thread that
// owns the Tcb and context.
#ifndef OFFLOAD_DAEMON_TCP_TCP_H_
#define OFFLOAD_DAEMON_TCP_TCP_H_

#include <linux/tcp.h>

#include <cstddef>
#include <cstdint>

#include "daemon/net/frame.h"
#include "daemon/tcp/options.h"
#include "daemon/tcp/tcb.h"

namespace offload::tcp {

using TcpInfo = struct tcp_info;

// Maximum bytes TcpOutput() writes for one frame: Ethernet + 20 IP + 60 TCP
// + MSS payload. Output buffers must hold at least 14 + mtu bytes.
inline size_t MaxFrameLen(const TcpConfig& cfg) { return net::kEthHeaderLen + cfg.mtu; }

// The receive window scale offered in a SYN or SYN,ACK (RFC 7323 2.3; see
// TcpConfig::rcv_space_max). `user_rcvbuf` 0: SO_RCVBUF not set.
uint8_t InitialWindowScale(const TcpConfig& cfg, uint32_t user_rcvbuf);

// Prepares a fresh Tcb (identity and buffers already set by the host):
// options from config, congestion control, timers. REQUIRES: state kClosed.
void TcbInit(TcpContext* ctx, Tcb* tcb);

// Active open (RFC 9293 3.10.1): chooses the ISS (RFC 6528 via `iss`), enters
// SYN-SENT and schedules the SYN.
void TcpConnect(TcpContext* ctx, Tcb* tcb, uint32_t iss, uint32_t ts_offset);

// Passive open of `child` from a SYN received by a listener (RFC 9293
// 3.10.7.2): enters SYN-RECEIVED and schedules the SYN,ACK.
void TcpAcceptSyn(TcpContext* ctx, Tcb* child, const net::ParsedFrame& seg,
                  const TcpOptions& opts, uint32_t iss, uint32_t ts_offset);

// Processes one segment for `tcb` (any state but LISTEN/CLOSED; RFC 9293
// 3.10.7.3 and 3.10.7.4). May close the connection (host callbacks).
void TcpInput(TcpContext* ctx, Tcb* tcb, const net::ParsedFrame& seg);

// Writes at most one Ethernet frame for `tcb` into `buf` (capacity `cap`,
// >= MaxFrameLen). Returns its length, or 0 when there is nothing (more) to
// send now. Call repeatedly until it returns 0.
size_t TcpOutput(TcpContext* ctx, Tcb* tcb, uint8_t* buf, size_t cap);

// Handles expired deadlines of `tcb` (the host calls it when tcb->timer
// fires), then re-arms the timer.
void TcpOnTimer(TcpContext* ctx, Tcb* tcb);

// (Re)arms tcb->timer at the earliest pending deadline.
void TcpArmTimer(TcpContext* ctx, Tcb* tcb);

// --- Application requests ---

// New bytes were appended to the TX ring (send()); `more` = MSG_MORE.
void TcpSendReady(TcpContext* ctx, Tcb* tcb, bool more);
// The application consumed bytes from the RX ring (recv()).
void TcpReceiveCredit(TcpContext* ctx, Tcb* tcb);
// shutdown(SHUT_WR): FIN after the queued data (RFC 9293 3.10.4).
void TcpShutdownWrite(TcpContext* ctx, Tcb* tcb);
// close(): graceful (FIN) unless unread data remains or SO_LINGER {1,0}, in
// which case the connection is reset (RFC 9293 3.10.4, RFC 2525 2.17).
void TcpClose(TcpContext* ctx, Tcb* tcb);
// Abortive close (RFC 9293 3.10.5): RST if synchronized, then CLOSED.
void TcpAbort(TcpContext* ctx, Tcb* tcb, int error);
// setsockopt. Returns 0 or an errno value (EINVAL).
int TcpSetOption(TcpContext* ctx, Tcb* tcb, TcpOpt opt, int value);
// TCP_CONGESTION. Returns 0 or ENOENT.
int TcpSetCongestion(TcpContext* ctx, Tcb* tcb, const char* name);

// TCP_INFO, with Linux's units (microseconds, segments).
void TcpFillInfo(const TcpContext& ctx, const Tcb& tcb, TcpInfo* info);

// Builds the RST a host sends for a segment that matches no connection
// (RFC 9293 3.10.7.1): <SEQ=SEG.ACK><CTL=RST> if ACK set, else
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Returns 0 (nothing to send)
// if the segment itself is a RST. `buf` must hold 54 + padding bytes.
size_t BuildResetForSegment(const net::ParsedFrame& seg, const net::MacAddr& src_mac,
                            uint8_t* buf, size_t cap);

// SYN cookies (RFC 4987 3.6, syncookie.h). Writes the SYN,ACK answering
// `seg` (a SYN to a listener whose queue is full) with ISN `cookie` into
// `buf` (>= MaxFrameLen) and keeps no state: `scratch` is a Tcb the host
// reuses for this, with identity, MACs, adv_mss (TcbInit) and the
// listener's user_rcvbuf set. Returns the frame length (0 if `cap` is too
// small). Counts syncookies_sent.
size_t TcpBuildCookieSynAck(TcpContext* ctx, Tcb* scratch, const net::ParsedFrame& seg,
                            const TcpOptions& opts, uint32_t cookie, uint32_t ts_offset,
                            uint8_t* buf, size_t cap);

// Completes a cookie handshake: `child` (fresh, identity and rings set,
// TcbInit done) enters ESTABLISHED from the ACK `seg` whose cookie encoded
// `mss` (SynCookieCheck), with the window scale and SACK from its TSecr
// when timestamps are in use. Calls the host's ChildEstablished, then
// processes any data or FIN the ACK carries. Returns false (nothing done)
// if the timestamp-encoded options are invalid.
bool TcpAcceptCookie(TcpContext* ctx, Tcb* child, const net::ParsedFrame& seg, uint16_t mss,
                     uint32_t ts_offset);

// Builds a RST (RST,ACK when `with_ack`, acknowledging `ack`) for `tcb`
// with sequence number `seq` (RFC 9293 3.10.5 abort, 3.10.7.4 unacceptable
// ACK in SYN-RECEIVED). Returns the frame length.
size_t BuildResetForTcb(TcpContext* ctx, Tcb* tcb, uint8_t* buf, size_t cap,
                        uint32_t seq, uint32_t ack, bool with_ack);

// Segment length counting SYN and FIN (RFC 9293 3.4 SEG.LEN).
inline uint32_t SegLen(const net::ParsedFrame& seg) {
  return seg.payload_len + ((seg.tcp_flags & net::kTcpSyn) ? 1 : 0) +
         ((seg.tcp_flags & net::kTcpFin) ? 1 : 0);
}

// Internal helpers shared by tcp_input/output/timer (not for the host).
namespace internal {
// The option block for a segment with `flags` (tcp_segment.cc).
void PrepareOptions(TcpContext* ctx, Tcb* tcb, uint8_t flags, OptionsToWrite* out);
// Writes one segment (payload [seq, seq + len) from the TX ring) into `buf`
// and returns its length. `prebuilt`: options from PrepareOptions (null:
// built here); `window_field` >= 0 replaces the window SelectWindow chooses.
size_t EmitSegment(TcpContext* ctx, Tcb* tcb, uint8_t* buf, uint32_t seq, uint32_t len,
                   uint8_t flags, const OptionsToWrite* prebuilt = nullptr,
                   int32_t window_field = -1);
// Negotiates options from a SYN or SYN,ACK (RFC 7323 2.2/3.2, RFC 2018 2,
// RFC 9293 3.7.1) and sets the effective send MSS.
void NegotiateOptions(TcpContext* ctx, Tcb* tcb, const TcpOptions& o);
// RFC 6928 initial window, Linux quick-ACK mode at connection start.
void InitCongestionWindow(TcpContext* ctx, Tcb* tcb);
// RFC 9293 3.10.7.4 seventh and eighth (tcp_receive.cc): segment text and
// FIN. `seq`/`data`/`len` are already trimmed to start at or after RCV.NXT.
void ProcessData(TcpContext* ctx, Tcb* tcb, uint32_t seq, const uint8_t* data,
                 uint32_t len, bool fin);
void EnterState(TcpContext* ctx, Tcb* tcb, TcpState s);
void CloseConnection(TcpContext* ctx, Tcb* tcb, int error);
void UpdateRto(TcpContext* ctx, Tcb* tcb, int64_t rtt_us);
void RestartRtxTimer(TcpContext* ctx, Tcb* tcb);
void MaybeArmProbe(TcpContext* ctx, Tcb* tcb);
// `timeout` shortened so that it expires no later than TCP_USER_TIMEOUT after
// the oldest unacknowledged transmission (at least 1 ms).
uint64_t ClampToUserTimeout(const TcpContext* ctx, const Tcb* tcb, uint64_t timeout);
// RFC 8985 7.2 probe timeout, or 0 when no loss probe may be scheduled.
uint64_t ProbeTimeout(const TcpContext* ctx, const Tcb* tcb);
uint32_t TsNow(const TcpContext* ctx, const Tcb* tcb);
uint32_t ReceiveWindow(const Tcb* tcb);
void ScheduleAck(TcpContext* ctx, Tcb* tcb, bool now);
void EnterTimeWait(TcpContext* ctx, Tcb* tcb);
bool ChallengeAckAllowed(TcpContext* ctx);
// Linux tcp_oow_rate_limited: at most one ACK per invalid_ratelimit_ns per
// connection in answer to out-of-window / invalid segments. Returns true
// (and counts) when the ACK must be suppressed.
bool OowRateLimited(TcpContext* ctx, Tcb* tcb);
// RFC 5961 challenge ACK, subject to the per-connection and per-stack limits.
void SendChallengeAck(TcpContext* ctx, Tcb* tcb);
// RFC 9293 3.10.7.4 fifth step for synchronized states: returns false if the
// segment must be dropped.
bool ProcessAck(TcpContext* ctx, Tcb* tcb, const net::ParsedFrame& seg, const TcpOptions& opts);
// Send-window update (SND.WL1/SND.WL2 rule).
void UpdateWindow(TcpContext* ctx, Tcb* tcb, const net::ParsedFrame& seg);
// RFC 6937 PRR: sets cwnd from Tcb::acked_sacked (this ACK's DeliveredData)
// while in SACK recovery.
void PrrUpdate(TcpContext* ctx, Tcb* tcb, bool una_advanced);
// PrrUpdate's cwnd step alone (prr_delivered unchanged): again for the same
// ACK once RACK has marked losses and the pipe shrank.
void PrrSetCwnd(TcpContext* ctx, Tcb* tcb, bool una_advanced);
// Fast retransmit: enters RFC 6675 SACK / RFC 6582 NewReno recovery.
void EnterRecovery(TcpContext* ctx, Tcb* tcb);
// Records cwnd/ssthresh before a window reduction (recovery or RTO) so that
// D-SACKs can undo it; keeps the older record if one is still armed.
void ArmUndo(Tcb* tcb);
// A D-SACK reported [start, end) received twice; it counts against the
// episode's retransmissions and may undo the reduction.
void UndoOnDsack(TcpContext* ctx, Tcb* tcb, uint32_t start, uint32_t end);
// RFC 8985 6.2 steps 1-3 (tcp_rack.cc): `seg` was delivered (cumulatively
// ACKed or newly SACKed) by the ACK being processed.
void RackOnDelivered(TcpContext* ctx, Tcb* tcb, const SentSeg& seg);
// RFC 8985 6.2 step 5 after an ACK: marks losses, arms or cancels the
// reordering timer.
void RackAfterAck(TcpContext* ctx, Tcb* tcb);
// The reordering timer fired.
void RackOnTimeout(TcpContext* ctx, Tcb* tcb);
// A D-SACK arrived: widen the reordering window (RFC 8985 6.2 step 4).
void RackOnDsack(TcpContext* ctx, Tcb* tcb);
// Loss recovery ended: let a widened reordering window decay.
void RackOnRecoveryExit(Tcb* tcb);
}  // namespace internal

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_TCP_H_
