// The engine half of the TCP socket options an application sets and reads
// on an offloaded connection: one plain struct the application side carries
// (through the shared-memory ABI) and the stack applies, and the values
// getsockopt() must report (TCP_MAXSEG, SO_SNDBUF, SO_RCVBUF), computed the
// way Linux computes them.
//
// Who writes what, when (the contract with the client/ABI side):
//   - The application side owns a SocketOptions per socket, updated by every
//     setsockopt() it accepts (validated as Linux validates: see
//     TcpSetOption's errors) and by MSG_MORE / MSG_EOR per send.
//   - It hands the whole struct to the engine with every change
//     (Stack::TcpSetOptions, a copy: the engine trusts nothing in shared
//     memory); options set before connect()/listen() travel with the
//     connect/listen request (Stack::TcpConnect/TcpListen `options`), so
//     TCP_MAXSEG and SO_RCVBUF shape the SYN, and a listener's options are
//     inherited by its children as on Linux.
//   - getsockopt(TCP_INFO / TCP_MAXSEG / SO_SNDBUF / SO_RCVBUF) reads the
//     engine's answer (Stack::TcpGetInfo, TcpGetSocketValues).
//
// Thread safety: as tcp.h (the engine thread that owns the Tcb).
#ifndef OFFLOAD_DAEMON_TCP_SOCKET_OPTIONS_H_
#define OFFLOAD_DAEMON_TCP_SOCKET_OPTIONS_H_

#include <cstdint>

#include "daemon/tcp/tcb.h"

namespace offload::tcp {

// Option values as the application passed them to setsockopt(); 0 means
// "not set" (the sysctl default applies) where the option has no 0 value.
struct SocketOptions {
  bool nodelay = false;           // TCP_NODELAY; turning it on flushes
  bool cork = false;              // TCP_CORK; turning it off flushes
  bool keepalive = false;         // SO_KEEPALIVE
  bool linger_zero = false;       // SO_LINGER {1, 0}: close() resets
  uint32_t keepidle_s = 0;        // TCP_KEEPIDLE (0: tcp_keepalive_time)
  uint32_t keepintvl_s = 0;       // TCP_KEEPINTVL (0: tcp_keepalive_intvl)
  uint32_t keepcnt = 0;           // TCP_KEEPCNT (0: tcp_keepalive_probes)
  uint32_t user_timeout_ms = 0;   // TCP_USER_TIMEOUT (0: off)
  uint32_t maxseg = 0;            // TCP_MAXSEG (0: not set); shapes the SYN's MSS
  uint32_t rcvbuf = 0;            // SO_RCVBUF as passed (0: not set; autotuned)
  uint32_t sndbuf = 0;            // SO_SNDBUF as passed (0: not set; autotuned)
};

// What getsockopt() reports for an offloaded connection.
struct SocketValues {
  uint32_t maxseg = 0;  // TCP_MAXSEG: Linux's mss_cache (the negotiated
                        // payload per segment less timestamp option bytes),
                        // or the value set before the connection exists
  uint32_t sndbuf = 0;  // SO_SNDBUF (Linux: doubled value set, or autotuned)
  uint32_t rcvbuf = 0;  // SO_RCVBUF
  uint32_t inq = 0;     // TCP_INQ / SIOCINQ: in-order bytes not yet read
  uint32_t outq = 0;    // SIOCOUTQ: bytes queued and not yet acknowledged
  uint32_t notsent = 0; // SIOCOUTQNSD: bytes queued and never sent
};

// Applies every field of `opts` that differs from the connection's current
// values, through TcpSetOption (so a TCP_NODELAY turned on or a TCP_CORK
// turned off pushes pending data out at once). Returns 0, or the first
// errno (EINVAL) of an invalid value; fields before it are applied.
int TcpApplyOptions(TcpContext* ctx, Tcb* tcb, const SocketOptions& opts);

// The options in force on `tcb`, in SocketOptions terms.
SocketOptions TcpReadOptions(const Tcb& tcb);

// getsockopt() values (see SocketValues).
SocketValues TcpGetSocketValues(const TcpConfig& cfg, const Tcb& tcb);

// MSG_EOR: the record ends at application TX index `tx_index` (the ring
// tail right after the send() that carried MSG_EOR). No segment will carry
// bytes on both sides of it. Returns 0, or EINVAL when the index is not
// within the queued data (untrusted input; counted as bad_app_index), or
// ENOBUFS when kMaxEorMarks records are already pending (the mark is
// dropped: the bytes may then share a segment).
int TcpMarkRecordEnd(TcpContext* ctx, Tcb* tcb, uint64_t tx_index);

}  // namespace offload::tcp

#endif  // OFFLOAD_DAEMON_TCP_SOCKET_OPTIONS_H_
