// Shared pieces of offload-udplat (udplat.cc): options, the datagram
// pattern and its check, and receiving one datagram three ways (copy,
// zero copy, filter callback). One process-wide state: the tool runs one
// mode per process.
#ifndef OFFLOAD_TOOLS_UDPLAT_UDPLAT_H_
#define OFFLOAD_TOOLS_UDPLAT_UDPLAT_H_

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <vector>

#include "client/offload_extra.h"

namespace udplat {

enum class Rx { kCopy, kZcopy, kCallback };

struct Options {
  bool pingpong = true;
  bool rxcost = false;  // --mode rxcost
  Rx rx = Rx::kCopy;
  size_t size = 64;
  uint64_t count = 100000;
  uint64_t warmup = 1000;
  bool busy = false;
  size_t free_batch = 1;  // --free-batch: zcopy frees this many packets per free_packets call
  int server_cpu = -1, client_cpu = -1;  // --cpus S,C
};

constexpr uint32_t kFin = 0xffffffffu;     // throughput: end marker
constexpr uint32_t kReport = 0xfffffffeu;  // throughput: the server's report
constexpr size_t kMinSize = 8;             // sequence number at both ends
// The report: kReport, received, gaps, first-to-last ns, bad, receive CPU
// ns over `sampled` datagrams, sampled.
constexpr size_t kReportWords = 7;

extern Options g_opt;
extern offload_api_t* g_api;
extern std::vector<uint8_t> g_pattern;  // byte i of every datagram, except the ends
extern bool g_bad;

int64_t NowNs();
int64_t CpuNs();  // the calling thread's CPU time
void Fill(uint8_t* p, uint32_t seq, size_t size);
// The datagram's sequence number if it is intact, else reports it and
// returns kFin - 2 (never a valid number).
uint32_t Check(const uint8_t* p, size_t len);
bool SendSeq(int fd, const sockaddr_in& to, uint32_t seq, uint8_t* buf);

// Each side has one handler: OnDatagram(payload, len, from). Copy and
// zcopy call it from Receive(); callback mode from the filter callback.
using Handler = void (*)(int fd, const uint8_t* p, size_t len, const sockaddr_in& from);
extern Handler g_handler;

// A busy receiver that found nothing gives the CPU away now and then.
void BusyIdle();
// Receives one datagram (or, in callback mode, runs the callback on what
// is there) and hands it to the handler. False on EAGAIN / timeout.
// zcopy with --free-batch N: the packet is held and freed with the others
// of its batch in one free_packets call, when N are held or a receive
// finds nothing (never more than N are held).
bool Receive(int fd, uint8_t* buf, size_t buflen);
// The receive mode's name in the output: copy, zcopy, zcopyb<N>, callback.
const char* RxName();
// A UDP socket bound to 127.0.0.1:0 (with the filter callback registered
// in callback mode); exits on failure.
int Socket();
uint16_t PortOf(int fd);

}  // namespace udplat

#endif  // OFFLOAD_TOOLS_UDPLAT_UDPLAT_H_
