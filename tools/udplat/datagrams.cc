// offload-udplat's datagrams: the pattern, its check, and receiving one
// datagram by copy, by zero copy or in the filter callback (udplat.h).

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <vector>

#include "tools/udplat/udplat.h"

namespace udplat {

Options g_opt;
offload_api_t* g_api = nullptr;
std::vector<uint8_t> g_pattern;  // byte i of every datagram, except the ends
bool g_bad = false;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t CpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void Fill(uint8_t* p, uint32_t seq, size_t size) {
  memcpy(p, g_pattern.data(), size);
  memcpy(p, &seq, 4);
  memcpy(p + size - 4, &seq, 4);
}

// The datagram's sequence number if it is intact, else reports it and
// returns kFin - 2 (never a valid number).
uint32_t Check(const uint8_t* p, size_t len) {
  uint32_t head, tail;
  if (len != g_opt.size) {
    fprintf(stderr, "udplat: BAD datagram: %zu bytes, expected %zu\n", len, g_opt.size);
    g_bad = true;
    return kFin - 2;
  }
  memcpy(&head, p, 4);
  memcpy(&tail, p + len - 4, 4);
  if (head != tail || memcmp(p + 4, g_pattern.data() + 4, len - 8) != 0) {
    fprintf(stderr, "udplat: BAD datagram: seq %u/%u, content differs\n", head, tail);
    g_bad = true;
    return kFin - 2;
  }
  return head;
}

bool SendSeq(int fd, const sockaddr_in& to, uint32_t seq, uint8_t* buf) {
  Fill(buf, seq, g_opt.size);
  return sendto(fd, buf, g_opt.size, 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) ==
         static_cast<ssize_t>(g_opt.size);
}

// --- receiving, three ways ---------------------------------------------
// Each side has one handler: OnDatagram(payload, len, from). Copy and
// zcopy call it from Receive(); callback mode from the filter callback.
Handler g_handler = nullptr;
namespace {
uint64_t g_filtered = 0, g_filtered_seen = 0;  // datagrams the callback took
std::vector<offload_packet_t> g_held;          // zcopy: packets not freed yet

// Frees the packets zcopy holds, in one call.
void FreeHeld(int fd) {
  if (g_held.empty()) return;
  if (g_api->free_packets(fd, g_held.data(), g_held.size()) != 0) {
    perror("udplat: free_packets");
    g_bad = true;
  }
  g_held.clear();
}
}  // namespace

const char* RxName() {
  static char name[32];
  switch (g_opt.rx) {
    case Rx::kCopy:
      return "copy";
    case Rx::kCallback:
      return "callback";
    case Rx::kZcopy:
      if (g_opt.free_batch <= 1) return "zcopy";
      snprintf(name, sizeof(name), "zcopyb%zu", g_opt.free_batch);
      return name;
  }
  return "?";
}

// A busy receiver that found nothing gives the CPU away now and then (this
// host may have fewer CPUs than spinning processes), as the library's own
// spinning does.
void BusyIdle() {
  static unsigned idle = 0;
  if ((++idle & 15) == 0) sched_yield();
}

namespace {
offload_recv_callback_retval_t Filter(int fd, size_t sz_iov, iovec iov[], offload_info_t* info,
                                      void*) {
  if (sz_iov != 1) {
    fprintf(stderr, "udplat: BAD: %zu iovecs\n", sz_iov);
    g_bad = true;
    return OFFLOAD_PACKET_DROP;
  }
  g_handler(fd, static_cast<const uint8_t*>(iov[0].iov_base), iov[0].iov_len, *info->src);
  ++g_filtered;
  return OFFLOAD_PACKET_DROP;  // consumed here, in place
}
}  // namespace

// Receives one datagram (or, in callback mode, runs the callback on what
// is there) and hands it to the handler. False on EAGAIN / timeout.
bool Receive(int fd, uint8_t* buf, size_t buflen) {
  const int dontwait = (g_opt.busy || g_opt.rx == Rx::kCallback) ? MSG_DONTWAIT : 0;
  sockaddr_in from = {};
  socklen_t flen = sizeof(from);
  switch (g_opt.rx) {
    case Rx::kCopy: {
      const ssize_t n =
          recvfrom(fd, buf, buflen, dontwait, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 0) return false;
      g_handler(fd, buf, static_cast<size_t>(n), from);
      return true;
    }
    case Rx::kZcopy: {
      alignas(8) uint8_t desc[256];
      int flags = dontwait;
      const int n = g_api->recvfrom_zcopy(fd, desc, sizeof(desc), &flags,
                                          reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 0) {
        const int e = errno;
        FreeHeld(fd);  // nothing more now: give back what the batch holds
        errno = e;
        return false;
      }
      if (!(flags & OFFLOAD_MSG_ZCOPY)) {  // a copy after all (a kernel sender)
        g_handler(fd, desc, static_cast<size_t>(n), from);
        return true;
      }
      auto* pk = reinterpret_cast<offload_packets_t*>(desc);
      offload_packet_t* p = &pk->pkts[0];
      g_handler(fd, static_cast<const uint8_t*>(p->iov[0].iov_base), p->iov[0].iov_len, from);
      if (g_opt.free_batch <= 1) {  // the descriptor's packet is a packets array of one
        if (g_api->free_packets(fd, p, 1) != 0) {
          perror("udplat: free_packets");
          g_bad = true;
        }
        return true;
      }
      g_held.emplace_back();
      g_held.back().packet_id = p->packet_id;
      if (g_held.size() >= g_opt.free_batch) FreeHeld(fd);
      return true;
    }
    case Rx::kCallback: {
      // The callback consumes what the rings bring; this drives it, and
      // gets what came through the kernel (not offloaded senders).
      const ssize_t n = recvfrom(fd, buf, buflen, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from),
                                 &flen);
      if (n >= 0) g_handler(fd, buf, static_cast<size_t>(n), from);
      const bool any = n >= 0 || g_filtered != g_filtered_seen;
      g_filtered_seen = g_filtered;
      return any;
    }
  }
  return false;
}

int Socket() {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    perror("udplat: socket");
    exit(1);
  }
  int big = 4 << 20;  // the kernel path's fair share of buffering
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  if (g_opt.rx == Rx::kCallback && g_api->register_recv_callback(fd, Filter, nullptr) != 0) {
    perror("udplat: register_recv_callback (is the socket offloaded?)");
    exit(1);
  }
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a = {};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return a.sin_port;
}

}  // namespace udplat
