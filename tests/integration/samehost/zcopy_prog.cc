// The extra API's zero-copy UDP receive and receive callback
// (client/offload_extra.h), checked against a real offloadd under
// liboffload.so. One check per process (run by zcopy_test):
//
//   zcopy_prog basic          content, source, order of recvfrom_zcopy; free in order
//   zcopy_prog out_of_order   free out of order; double free / foreign id ENOENT
//   zcopy_prog ring_full      a held buffer fills the ring: later datagrams are
//                             dropped, the held bytes stay intact, and once it is
//                             freed the whole ring is usable again
//   zcopy_prog batch_free     one free_packets call for the packets of two rings
//                             gives their space back; an unknown id midway frees
//                             exactly the packets before it
//   zcopy_prog callback       DROP / HOLD / RECV, once per datagram, in this
//                             thread; poll readiness after DROP; HOLD freed later
//   zcopy_prog kernel         sockets the API cannot apply to: kernel sockets,
//                             a kernel sender's datagram, non-sockets, a socket
//                             shared by fork (VMA's answers)
//   zcopy_prog death          a process killed while holding a full ring: another
//                             receiver is never affected, and the port works
//                             again for a new socket
//   zcopy_prog noapi          without liboffload.so: no offload_get_api
//   zcopy_prog wire PORTFILE N  on the wire, against a kernel sender
//                             (udp_zcopy_wire_test.sh)
//
// Exit status: number of failed expectations. Every wait is for a
// condition, bounded by a generous deadline only to turn a hang into a
// failure.

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "client/offload_extra.h"

namespace {

int g_failures = 0;

#define EXPECT(cond)                                                                      \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fprintf(stderr, "FAIL %s:%d: %s (errno %d %s)\n", __FILE__, __LINE__, #cond, errno, \
              strerror(errno));                                                           \
      ++g_failures;                                                                       \
    }                                                                                     \
  } while (0)
#define REQUIRE(cond)                                                                     \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fprintf(stderr, "FAIL %s:%d: %s (errno %d %s)\n", __FILE__, __LINE__, #cond, errno, \
              strerror(errno));                                                           \
      return ++g_failures;                                                                \
    }                                                                                     \
  } while (0)

offload_api_t* Api() {
  auto get = reinterpret_cast<offload_api_t* (*)()>(dlsym(RTLD_DEFAULT, "offload_get_api"));
  offload_api_t* api = get != nullptr ? get() : nullptr;
  constexpr uint64_t kNeed = OFFLOAD_EXTRA_API_RECVFROM_ZCOPY | OFFLOAD_EXTRA_API_FREE_PACKETS |
                             OFFLOAD_EXTRA_API_REGISTER_RECV_CALLBACK;
  if (api == nullptr || (api->cap_mask & kNeed) != kNeed) return nullptr;
  return api;
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A UDP socket bound to 127.0.0.1:`port` (0: any), 5 s receive timeout.
int Udp(uint16_t port = 0) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a = Loopback(port);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return -1;
  timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a = {};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// Datagram `seq` of `size` bytes: the sequence number, then bytes derived
// from it and their offset.
std::string Payload(uint32_t seq, size_t size) {
  std::string p(size, '\0');
  for (size_t i = 0; i < size; ++i) p[i] = static_cast<char>((seq * 131 + i * 7) & 0xff);
  if (size >= 4) memcpy(&p[0], &seq, 4);
  return p;
}
bool IsPayload(const void* data, size_t len, uint32_t seq, size_t size) {
  return len == size && memcmp(data, Payload(seq, size).data(), size) == 0;
}

bool SendTo(int tx, uint16_t port, uint32_t seq, size_t size, int flags = 0) {
  const std::string p = Payload(seq, size);
  sockaddr_in to = Loopback(port);
  return sendto(tx, p.data(), p.size(), flags, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
         static_cast<ssize_t>(size);
}

// One zero-copy receive into `desc`; returns its length (or -1), the
// packet in *pkt, the flags out in *flags.
struct Desc {
  alignas(8) unsigned char buf[256];
  offload_packets_t* d() { return reinterpret_cast<offload_packets_t*>(buf); }
  offload_packet_t* p() { return &d()->pkts[0]; }
};
int Zrecv(offload_api_t* api, int fd, Desc* desc, int* flags, sockaddr_in* from = nullptr) {
  sockaddr_in f = {};
  socklen_t flen = sizeof(f);
  const int n = api->recvfrom_zcopy(fd, desc->buf, sizeof(desc->buf), flags,
                                    reinterpret_cast<sockaddr*>(&f), &flen);
  if (from != nullptr) *from = f;
  return n;
}
// The same into a sockaddr_in6 (an AF_INET6 socket); *from_len its length.
int Zrecv6(offload_api_t* api, int fd, Desc* desc, int* flags, sockaddr_in6* from,
           socklen_t* from_len) {
  *from = {};
  *from_len = sizeof(*from);
  return api->recvfrom_zcopy(fd, desc->buf, sizeof(desc->buf), flags,
                             reinterpret_cast<sockaddr*>(from), from_len);
}
int FreeOne(offload_api_t* api, int fd, void* id) {
  offload_packet_t p = {};
  p.packet_id = id;
  return api->free_packets(fd, &p, 1);
}

// ---------------------------------------------------------------- checks

int Basic(offload_api_t* api) {
  const int rx = Udp(), tx = Udp();
  REQUIRE(rx >= 0 && tx >= 0);
  const uint16_t port = PortOf(rx);
  // Sizes from 1 byte to a 64 KiB datagram; the last 20 after the ring has
  // been reused.
  const size_t sizes[] = {1, 7, 8, 9, 100, 1024, 1472, 4096, 9000, 65507};
  uint32_t seq = 0;
  for (int round = 0; round < 3; ++round) {
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); ++k) {
      REQUIRE(SendTo(tx, port, seq + static_cast<uint32_t>(k), sizes[k]));
    }
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); ++k) {
      Desc desc;
      int flags = 0;
      sockaddr_in from;
      const int n = Zrecv(api, rx, &desc, &flags, &from);
      REQUIRE(n == static_cast<int>(sizes[k]));
      EXPECT(flags & OFFLOAD_MSG_ZCOPY);
      EXPECT(desc.d()->n_packet_num == 1);
      EXPECT(desc.p()->sz_iov == 1);
      EXPECT(desc.p()->iov[0].iov_len == sizes[k]);
      EXPECT(IsPayload(desc.p()->iov[0].iov_base, desc.p()->iov[0].iov_len,
                       seq + static_cast<uint32_t>(k), sizes[k]));
      EXPECT(from.sin_family == AF_INET && from.sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
             ntohs(from.sin_port) == PortOf(tx));
      EXPECT(FreeOne(api, rx, desc.p()->packet_id) == 0);
    }
    seq += 100;
  }
  // A receiver that never blocks (MSG_DONTWAIT in a loop) gets a new
  // sender's ring too, with and without the extra API.
  for (const bool zc : {false, true}) {
    const int nb = Udp();
    REQUIRE(nb >= 0);
    REQUIRE(SendTo(tx, PortOf(nb), 42, 77));
    const int64_t deadline = NowMs() + 5000;
    int got = -1;
    Desc dz;
    while (got < 0 && NowMs() < deadline) {
      int fl = MSG_DONTWAIT;
      got = zc ? Zrecv(api, nb, &dz, &fl) : static_cast<int>(recv(nb, dz.buf, sizeof(dz.buf), MSG_DONTWAIT));
      if (got >= 0 && zc) {
        EXPECT((fl & OFFLOAD_MSG_ZCOPY) && IsPayload(dz.p()->iov[0].iov_base, got, 42, 77));
        EXPECT(FreeOne(api, nb, dz.p()->packet_id) == 0);
      } else if (got >= 0) {
        EXPECT(IsPayload(dz.buf, got, 42, 77));
      }
    }
    EXPECT(got == 77);
    close(nb);
  }
  // Non-blocking with nothing queued: EAGAIN; a small buffer: ENOBUFS.
  Desc desc;
  int flags = MSG_DONTWAIT;
  EXPECT(Zrecv(api, rx, &desc, &flags) == -1 && errno == EAGAIN);
  REQUIRE(SendTo(tx, port, 7, 64));
  char small[39];
  flags = 0;
  EXPECT(api->recvfrom_zcopy(rx, small, sizeof(small), &flags, nullptr, nullptr) == -1 &&
         errno == ENOBUFS);
  // Nothing was consumed; a copying recv on the same socket still gets it.
  char buf[128];
  EXPECT(recv(rx, buf, sizeof(buf), 0) == 64 && IsPayload(buf, 64, 7, 64));
  // MSG_PEEK copies (zero copy does not apply) and leaves it queued.
  REQUIRE(SendTo(tx, port, 8, 200));
  Desc peek;
  flags = MSG_PEEK;
  EXPECT(api->recvfrom_zcopy(rx, peek.buf, sizeof(peek.buf), &flags, nullptr, nullptr) == 200);
  EXPECT(!(flags & OFFLOAD_MSG_ZCOPY) && IsPayload(peek.buf, 200, 8, 200));
  flags = 0;
  EXPECT(Zrecv(api, rx, &desc, &flags) == 200 && (flags & OFFLOAD_MSG_ZCOPY));
  EXPECT(FreeOne(api, rx, desc.p()->packet_id) == 0);
  close(rx);
  close(tx);
  return 0;
}

int Drain(offload_api_t* api, int rx, uint32_t* next, size_t size);

int OutOfOrder(offload_api_t* api) {
  const int rx = Udp(), tx = Udp();
  REQUIRE(rx >= 0 && tx >= 0);
  const uint16_t port = PortOf(rx);
  for (uint32_t i = 0; i < 5; ++i) REQUIRE(SendTo(tx, port, i, 300 + i));
  Desc d[5];
  for (uint32_t i = 0; i < 5; ++i) {
    int flags = 0;
    REQUIRE(Zrecv(api, rx, &d[i], &flags) == static_cast<int>(300 + i));
    EXPECT(flags & OFFLOAD_MSG_ZCOPY);
  }
  // Mixed with a copying receive while all five are held.
  REQUIRE(SendTo(tx, port, 5, 305));
  char buf[512];
  EXPECT(recv(rx, buf, sizeof(buf), 0) == 305 && IsPayload(buf, 305, 5, 305));
  // Free 3, 1, 4 (nothing released: 0 is held), check all contents, then 0, 2.
  for (int i : {3, 1, 4}) EXPECT(FreeOne(api, rx, d[i].p()->packet_id) == 0);
  // A burst larger than the ring: nothing may overwrite 0 and 2.
  for (uint32_t seq = 10; seq < 1010; ++seq) SendTo(tx, port, seq, 1000, MSG_DONTWAIT);
  uint32_t next = 10;
  const int burst = Drain(api, rx, &next, 1000);
  EXPECT(burst > 0 && burst < 1000);
  for (uint32_t i : {0u, 2u}) {
    EXPECT(IsPayload(d[i].p()->iov[0].iov_base, d[i].p()->iov[0].iov_len, i, 300 + i));
  }
  EXPECT(FreeOne(api, rx, d[3].p()->packet_id) == -1 && errno == ENOENT);  // twice
  int x;
  EXPECT(FreeOne(api, rx, &x) == -1 && errno == ENOENT);  // not a packet of ours
  // A batch: packets of a packets array.
  offload_packet_t both[2] = {};
  both[0].packet_id = d[0].p()->packet_id;
  both[1].packet_id = d[2].p()->packet_id;
  EXPECT(api->free_packets(rx, both, 2) == 0);
  // Freed on a socket that does not hold it: ENOENT.
  const int other = Udp();
  REQUIRE(SendTo(tx, port, 9, 99));
  Desc e;
  int flags = 0;
  REQUIRE(Zrecv(api, rx, &e, &flags) == 99);
  EXPECT(FreeOne(api, other, e.p()->packet_id) == -1 && errno == ENOENT);
  EXPECT(FreeOne(api, rx, e.p()->packet_id) == 0);
  close(other);
  close(rx);
  close(tx);
  return 0;
}

// Drains `rx` without blocking, alternating zero copy (freed at once) and
// copying receives; checks each datagram is the next of the sequence from
// *next (gaps allowed: drops). Returns the number received.
int Drain(offload_api_t* api, int rx, uint32_t* next, size_t size) {
  int got = 0;
  for (;;) {
    if (got % 2 == 1) {
      char buf[2048];
      const ssize_t n = recv(rx, buf, sizeof(buf), MSG_DONTWAIT);
      if (n < 0) break;
      uint32_t seq = 0;
      memcpy(&seq, buf, 4);
      EXPECT(seq >= *next && IsPayload(buf, n, seq, size));
      *next = seq + 1;
      ++got;
      continue;
    }
    Desc d;
    int flags = MSG_DONTWAIT;
    const int n = Zrecv(api, rx, &d, &flags);
    if (n < 0) break;
    uint32_t seq = 0;
    memcpy(&seq, d.p()->iov[0].iov_base, 4);
    EXPECT(seq >= *next && IsPayload(d.p()->iov[0].iov_base, n, seq, size));
    *next = seq + 1;
    EXPECT(FreeOne(api, rx, d.p()->packet_id) == 0);
    ++got;
  }
  return got;
}

int RingFull(offload_api_t* api) {
  const int rx = Udp(), tx = Udp();
  REQUIRE(rx >= 0 && tx >= 0);
  const uint16_t port = PortOf(rx);
  constexpr size_t kSize = 1000;
  // Hold datagram 0; stream the rest, draining (and freeing) as we go.
  REQUIRE(SendTo(tx, port, 0, kSize));
  Desc held;
  int flags = 0;
  REQUIRE(Zrecv(api, rx, &held, &flags) == static_cast<int>(kSize));
  REQUIRE(flags & OFFLOAD_MSG_ZCOPY);
  uint32_t next = 1;
  int received = 0;
  const uint32_t kSent = 20000;  // 20 MB: many times any ring
  for (uint32_t seq = 1; seq < kSent; ++seq) {
    SendTo(tx, port, seq, kSize, MSG_DONTWAIT);
    if (seq % 32 == 0) received += Drain(api, rx, &next, kSize);
  }
  received += Drain(api, rx, &next, kSize);
  // The ring could not wrap over the held datagram: at most a ring's worth
  // got through, the rest was dropped.
  printf("held one, sent %u, received %d\n", kSent - 1, received);
  EXPECT(received > 0 && received < static_cast<int>(kSent) / 2);
  EXPECT(IsPayload(held.p()->iov[0].iov_base, held.p()->iov[0].iov_len, 0, kSize));
  // Freed: the whole ring is usable again. A ring's worth less one
  // datagram, sent without draining, all arrives.
  EXPECT(FreeOne(api, rx, held.p()->packet_id) == 0);
  const int fill = received - 1;
  const uint32_t first = kSent + 10;
  for (int i = 0; i < fill; ++i) REQUIRE(SendTo(tx, port, first + i, kSize, MSG_DONTWAIT));
  next = first;
  const int again = Drain(api, rx, &next, kSize);
  printf("after free: sent %d, received %d\n", fill, again);
  EXPECT(again == fill && next == first + static_cast<uint32_t>(fill));
  close(rx);
  close(tx);
  return 0;
}

// Drains `rx` by copying, without blocking; counts what came from each of
// `src` (ports) and checks every payload. Returns false on a bad one.
bool CountFrom(int rx, const uint16_t src[2], size_t size, int got[2]) {
  bool ok = true;
  for (;;) {
    char buf[2048];
    sockaddr_in from = {};
    socklen_t flen = sizeof(from);
    const ssize_t n = recvfrom(rx, buf, sizeof(buf), MSG_DONTWAIT,
                               reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) return ok;
    uint32_t seq = 0;
    memcpy(&seq, buf, 4);
    ok = ok && IsPayload(buf, n, seq, size);
    for (int k = 0; k < 2; ++k) got[k] += ntohs(from.sin_port) == src[k];
  }
}

// free_packets with the packets of two rings in one call: each ring's space
// comes back (in ring order) before the call returns, and an id in the
// middle that is not held frees -- and gives back the space of -- exactly
// the packets before it (ENOENT).
int BatchFree(offload_api_t* api) {
  const int rx = Udp(), tx[2] = {Udp(), Udp()};
  REQUIRE(rx >= 0 && tx[0] >= 0 && tx[1] >= 0);
  const uint16_t port = PortOf(rx), src[2] = {PortOf(tx[0]), PortOf(tx[1])};
  constexpr size_t kSize = 1000;
  for (int k = 0; k < 2; ++k) {  // each sender's ring is in place
    REQUIRE(SendTo(tx[k], port, k, kSize));
    Desc d;
    int flags = 0;
    REQUIRE(Zrecv(api, rx, &d, &flags) == static_cast<int>(kSize) && (flags & OFFLOAD_MSG_ZCOPY));
    REQUIRE(FreeOne(api, rx, d.p()->packet_id) == 0);
  }
  // Fill both rings (more than a ring each: the rest is dropped), hold all.
  for (uint32_t seq = 10; seq < 1010; ++seq) {
    for (int k = 0; k < 2; ++k) SendTo(tx[k], port, seq, kSize, MSG_DONTWAIT);
  }
  std::vector<Desc> held;
  std::vector<int> ring_of;
  int per[2] = {0, 0};
  for (;;) {
    Desc d;
    int flags = MSG_DONTWAIT;
    sockaddr_in from = {};
    const int n = Zrecv(api, rx, &d, &flags, &from);
    if (n < 0) break;
    REQUIRE(n == static_cast<int>(kSize) && (flags & OFFLOAD_MSG_ZCOPY));
    held.push_back(d);
    ring_of.push_back(ntohs(from.sin_port) == src[1] ? 1 : 0);
    ++per[ring_of.back()];
  }
  printf("held %d + %d\n", per[0], per[1]);
  REQUIRE(per[0] > 4 && per[1] > 4);
  // Everything in one call, with an id we never handed out in the middle.
  const size_t h = held.size() / 2;
  std::vector<offload_packet_t> pkts(held.size() + 1);
  int bogus = 0;
  int freed[2] = {0, 0};
  for (size_t i = 0, j = 0; i < pkts.size(); ++i) {
    pkts[i].packet_id = i == h ? static_cast<void*>(&bogus) : held[j++].p()->packet_id;
    if (i < h) ++freed[ring_of[i]];
  }
  errno = 0;
  EXPECT(api->free_packets(rx, pkts.data(), pkts.size()) == -1 && errno == ENOENT);
  EXPECT(api->free_packets(rx, pkts.data(), 1) == -1 && errno == ENOENT);  // freed already
  // The freed packets' space is back in both rings (less one record for
  // the padding at the ring's end); what is still held is intact.
  for (int k = 0; k < 2; ++k) {
    for (int i = 0; i < freed[k] - 1; ++i) REQUIRE(SendTo(tx[k], port, 2000 + i, kSize, MSG_DONTWAIT));
  }
  int got[2] = {0, 0};
  EXPECT(CountFrom(rx, src, kSize, got));
  printf("freed %d + %d, then received %d + %d\n", freed[0], freed[1], got[0], got[1]);
  EXPECT(got[0] == freed[0] - 1 && got[1] == freed[1] - 1);
  for (size_t i = h; i < held.size(); ++i) {
    uint32_t seq = 0;
    memcpy(&seq, held[i].p()->iov[0].iov_base, 4);
    EXPECT(IsPayload(held[i].p()->iov[0].iov_base, held[i].p()->iov[0].iov_len, seq, kSize));
  }
  // The rest in one call: both rings are whole again.
  EXPECT(api->free_packets(rx, pkts.data() + h + 1, pkts.size() - h - 1) == 0);
  for (int k = 0; k < 2; ++k) {
    for (int i = 0; i < per[k] - 1; ++i) REQUIRE(SendTo(tx[k], port, 3000 + i, kSize, MSG_DONTWAIT));
  }
  got[0] = got[1] = 0;
  EXPECT(CountFrom(rx, src, kSize, got));
  printf("all freed: received %d + %d\n", got[0], got[1]);
  EXPECT(got[0] == per[0] - 1 && got[1] == per[1] - 1);
  close(rx);
  close(tx[0]);
  close(tx[1]);
  return 0;
}

struct CbState {
  int calls = 0;
  bool wrong_thread = false;
  bool bad_info = false;
  pthread_t thread;
  std::vector<std::pair<void*, iovec>> held;
  std::vector<uint32_t> seen;
  offload_api_t* api = nullptr;
  int deadlock_checks = 0;
};

offload_recv_callback_retval_t Filter(int fd, size_t sz_iov, iovec iov[], offload_info_t* info,
                                      void* context) {
  auto* st = static_cast<CbState*>(context);
  ++st->calls;
  if (!pthread_equal(st->thread, pthread_self())) st->wrong_thread = true;
  if (sz_iov != 1 || info == nullptr || info->struct_sz != sizeof(*info) ||
      info->payload_sz != iov[0].iov_len || info->src == nullptr ||
      info->src->sin_addr.s_addr != htonl(INADDR_LOOPBACK) || info->packet_id == nullptr) {
    st->bad_info = true;
  }
  uint32_t seq = 0;
  memcpy(&seq, iov[0].iov_base, 4);
  st->seen.push_back(seq);
  if (seq == 1000) {
    // Receiving or freeing on the same socket from inside: EDEADLK.
    char b[8];
    if (recv(fd, b, sizeof(b), MSG_DONTWAIT) == -1 && errno == EDEADLK) ++st->deadlock_checks;
    offload_packet_t p = {};
    p.packet_id = info->packet_id;
    if (st->api->free_packets(fd, &p, 1) == -1 && errno == EDEADLK) ++st->deadlock_checks;
    return OFFLOAD_PACKET_DROP;
  }
  switch (seq % 3) {
    case 0:
      return OFFLOAD_PACKET_DROP;
    case 1:
      st->held.push_back({info->packet_id, iov[0]});
      return OFFLOAD_PACKET_HOLD;
    default:
      return OFFLOAD_PACKET_RECV;
  }
}

int Callback(offload_api_t* api) {
  const int rx = Udp(), tx = Udp();
  REQUIRE(rx >= 0 && tx >= 0);
  const uint16_t port = PortOf(rx);
  CbState st;
  st.thread = pthread_self();
  st.api = api;
  REQUIRE(api->register_recv_callback(rx, Filter, &st) == 0);
  constexpr uint32_t kCount = 30;
  for (uint32_t i = 0; i < kCount; ++i) REQUIRE(SendTo(tx, port, i, 200 + i));
  // recv sees only the RECV ones (2, 5, 8, ...), in order, copied.
  for (uint32_t i = 2; i < kCount; i += 3) {
    char buf[512];
    sockaddr_in from = {};
    socklen_t flen = sizeof(from);
    const ssize_t n = recvfrom(rx, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
    EXPECT(n == static_cast<ssize_t>(200 + i) && IsPayload(buf, n, i, 200 + i));
    EXPECT(ntohs(from.sin_port) == PortOf(tx));
  }
  char buf[512];
  EXPECT(recv(rx, buf, sizeof(buf), MSG_DONTWAIT) == -1 && errno == EAGAIN);
  EXPECT(st.calls == static_cast<int>(kCount));
  EXPECT(!st.wrong_thread && !st.bad_info);
  for (uint32_t i = 0; i < st.seen.size(); ++i) EXPECT(st.seen[i] == i);
  // The held ones are intact, and free_packets gives them back (in reverse).
  EXPECT(st.held.size() == kCount / 3);
  for (size_t k = 0; k < st.held.size(); ++k) {
    const uint32_t seq = static_cast<uint32_t>(3 * k + 1);
    EXPECT(IsPayload(st.held[k].second.iov_base, st.held[k].second.iov_len, seq, 200 + seq));
  }
  for (size_t k = st.held.size(); k-- > 0;) EXPECT(FreeOne(api, rx, st.held[k].first) == 0);
  st.held.clear();
  // poll: datagrams the callback drops do not make the socket readable,
  // and the callback runs in the polling thread.
  st.seen.clear();
  st.calls = 0;
  REQUIRE(SendTo(tx, port, 30, 10));
  REQUIRE(SendTo(tx, port, 33, 10));
  pollfd p = {rx, POLLIN, 0};
  // Wait (bounded) until the callback has seen both, then poll says no.
  const int64_t deadline = NowMs() + 5000;
  while (st.calls < 2 && NowMs() < deadline) poll(&p, 1, 100);
  EXPECT(st.calls == 2);
  p.revents = 0;
  EXPECT(poll(&p, 1, 0) == 0);
  // One it accepts makes it readable; recvfrom_zcopy then delivers it
  // without asking the callback again.
  REQUIRE(SendTo(tx, port, 35, 50));
  EXPECT(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN));
  EXPECT(st.calls == 3);
  Desc d;
  int flags = 0;
  EXPECT(Zrecv(api, rx, &d, &flags) == 50 && (flags & OFFLOAD_MSG_ZCOPY));
  EXPECT(IsPayload(d.p()->iov[0].iov_base, 50, 35, 50));
  EXPECT(st.calls == 3);
  EXPECT(FreeOne(api, rx, d.p()->packet_id) == 0);
  // Receiving or freeing from inside the callback: EDEADLK, not a hang.
  REQUIRE(SendTo(tx, port, 1000, 16));
  EXPECT(recv(rx, buf, sizeof(buf), MSG_DONTWAIT) == -1 && errno == EAGAIN);
  EXPECT(st.deadlock_checks == 2);
  // Unregistered: everything is delivered again.
  REQUIRE(api->register_recv_callback(rx, nullptr, nullptr) == 0);
  const int before = st.calls;
  REQUIRE(SendTo(tx, port, 36, 20));
  EXPECT(recv(rx, buf, sizeof(buf), 0) == 20 && IsPayload(buf, 20, 36, 20));
  EXPECT(st.calls == before);
  close(rx);
  close(tx);
  return 0;
}

offload_recv_callback_retval_t Never(int, size_t, iovec*, offload_info_t*, void* context) {
  ++*static_cast<int*>(context);
  return OFFLOAD_PACKET_DROP;
}

int Kernel(offload_api_t* api) {
  // A socket this thread creates with offload off: a kernel socket.
  REQUIRE(api->thread_offload(0, pthread_self()) == 0);
  const int krx = Udp(), ktx = Udp();
  REQUIRE(api->thread_offload(1, pthread_self()) == 0);
  REQUIRE(krx >= 0 && ktx >= 0);
  int calls = 0;
  EXPECT(api->register_recv_callback(krx, Never, &calls) == -1 && errno == EINVAL);
  int x;
  EXPECT(FreeOne(api, krx, &x) == -1 && errno == EINVAL);
  REQUIRE(SendTo(ktx, PortOf(krx), 1, 100));
  Desc d;
  int flags = OFFLOAD_MSG_ZCOPY_FORCE;
  EXPECT(Zrecv(api, krx, &d, &flags) == -1 && errno == EIO);  // forced: no copy
  flags = OFFLOAD_MSG_ZCOPY;  // stale bit in: cleared on a copy
  sockaddr_in from;
  EXPECT(Zrecv(api, krx, &d, &flags, &from) == 100);
  EXPECT(!(flags & OFFLOAD_MSG_ZCOPY) && IsPayload(d.buf, 100, 1, 100));
  EXPECT(ntohs(from.sin_port) == PortOf(ktx));
  // Not a socket at all.
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  EXPECT(api->register_recv_callback(fds[0], Never, &calls) == -1 && errno == EINVAL);
  EXPECT(FreeOne(api, fds[0], &x) == -1 && errno == EINVAL);
  close(fds[0]);
  close(fds[1]);
  // An offloaded receiver, a kernel sender: the datagram arrives through
  // the kernel side and is copied (forced: EIO, and it stays queued).
  const int rx = Udp();
  REQUIRE(rx >= 0);
  EXPECT(api->register_recv_callback(rx, Never, &calls) == 0);
  REQUIRE(SendTo(ktx, PortOf(rx), 2, 120));
  pollfd p = {rx, POLLIN, 0};
  EXPECT(poll(&p, 1, 5000) == 1);
  flags = OFFLOAD_MSG_ZCOPY_FORCE;
  EXPECT(Zrecv(api, rx, &d, &flags) == -1 && errno == EIO);
  flags = 0;
  EXPECT(Zrecv(api, rx, &d, &flags, &from) == 120);
  EXPECT(!(flags & OFFLOAD_MSG_ZCOPY) && IsPayload(d.buf, 120, 2, 120));
  EXPECT(calls == 0);  // kernel datagrams never go through the callback
  EXPECT(api->register_recv_callback(rx, nullptr, nullptr) == 0);
  // Shared by fork: back on the kernel. Hold one first.
  const int tx = Udp();
  REQUIRE(tx >= 0);
  REQUIRE(SendTo(tx, PortOf(rx), 3, 130));
  Desc held;
  flags = 0;
  REQUIRE(Zrecv(api, rx, &held, &flags) == 130 && (flags & OFFLOAD_MSG_ZCOPY));
  REQUIRE(SendTo(tx, PortOf(rx), 4, 140));  // queued in the ring at the fork
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int st = 0;
  EXPECT(waitpid(child, &st, 0) == child);
  EXPECT(api->register_recv_callback(rx, Never, &calls) == -1 && errno == EINVAL);
  flags = OFFLOAD_MSG_ZCOPY_FORCE;
  EXPECT(Zrecv(api, rx, &d, &flags) == -1 && errno == EIO);
  flags = 0;
  EXPECT(Zrecv(api, rx, &d, &flags) == 140);  // what the ring held, copied
  EXPECT(!(flags & OFFLOAD_MSG_ZCOPY) && IsPayload(d.buf, 140, 4, 140));
  REQUIRE(SendTo(tx, PortOf(rx), 5, 150));  // now through the kernel
  flags = 0;
  EXPECT(Zrecv(api, rx, &d, &flags) == 150);
  EXPECT(!(flags & OFFLOAD_MSG_ZCOPY) && IsPayload(d.buf, 150, 5, 150));
  EXPECT(IsPayload(held.p()->iov[0].iov_base, held.p()->iov[0].iov_len, 3, 130));
  EXPECT(FreeOne(api, rx, held.p()->packet_id) == 0);
  EXPECT(FreeOne(api, rx, held.p()->packet_id) == -1 && errno == ENOENT);
  close(rx);
  close(tx);
  close(krx);
  close(ktx);
  return 0;
}

// Reads exactly `n` bytes from pipe `fd`.
bool ReadFull(int fd, void* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t k = read(fd, static_cast<char*>(buf) + got, n - got);
    if (k <= 0) return false;
    got += static_cast<size_t>(k);
  }
  return true;
}

int Death(offload_api_t* api) {
  // The child is forked before any socket exists (a fork would send
  // existing UDP sockets back to the kernel).
  int up[2];
  REQUIRE(pipe(up) == 0);
  const pid_t child = fork();
  if (child == 0) {
    close(up[0]);
    const int rx = Udp();
    uint16_t port = rx >= 0 ? PortOf(rx) : 0;
    if (write(up[1], &port, sizeof(port)) != sizeof(port)) _exit(1);
    // Hold everything that arrives, never free, until killed.
    int held = 0;
    for (;;) {
      Desc d;
      int flags = 0;
      const int n = Zrecv(api, rx, &d, &flags);
      if (n > 0 && (flags & OFFLOAD_MSG_ZCOPY) && ++held == 1) {
        if (write(up[1], "h", 1) != 1) _exit(1);
      }
    }
  }
  close(up[1]);
  uint16_t port = 0;
  REQUIRE(ReadFull(up[0], &port, sizeof(port)) && port != 0);
  const int tx = Udp(), other = Udp();
  REQUIRE(tx >= 0 && other >= 0);
  REQUIRE(SendTo(tx, port, 0, 1000));
  char h;
  REQUIRE(ReadFull(up[0], &h, 1));  // it holds zero-copy buffers now
  // Fill its ring (it holds all) while another receiver gets everything.
  uint32_t next = 0;
  int got = 0;
  for (uint32_t seq = 1; seq < 5000; ++seq) {
    SendTo(tx, port, seq, 1000, MSG_DONTWAIT);
    EXPECT(SendTo(tx, PortOf(other), seq, 100, MSG_DONTWAIT));
    if (seq % 16 == 0) got += Drain(api, other, &next, 100);
  }
  got += Drain(api, other, &next, 100);
  EXPECT(got == 4999);
  kill(child, SIGKILL);
  int st = 0;
  EXPECT(waitpid(child, &st, 0) == child);
  // The port works for a new socket: once offloadd has ended the dead
  // process's rings, sends to it arrive again, and all of them.
  const int rx2 = Udp(port);
  REQUIRE(rx2 >= 0);
  const int64_t deadline = NowMs() + 20000;
  bool through = false;
  uint32_t probe = 100000;
  while (!through && NowMs() < deadline) {
    SendTo(tx, port, probe++, 64);
    pollfd p = {rx2, POLLIN, 0};
    if (poll(&p, 1, 50) == 1) through = true;
  }
  REQUIRE(through);
  char buf[2048];
  while (recv(rx2, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
  for (uint32_t seq = 0; seq < 200; ++seq) REQUIRE(SendTo(tx, port, 200000 + seq, 500));
  for (uint32_t seq = 0; seq < 200; ++seq) {
    const ssize_t n = recv(rx2, buf, sizeof(buf), 0);
    EXPECT(n == 500 && IsPayload(buf, 500, 200000 + seq, 500));
  }
  // And the other receiver still works.
  REQUIRE(SendTo(tx, PortOf(other), 7777, 100));
  EXPECT(recv(other, buf, sizeof(buf), 0) == 100 && IsPayload(buf, 100, 7777, 100));
  close(rx2);
  close(tx);
  close(other);
  return 0;
}

// On the wire (tests/integration/wire/udp_zcopy_wire_test.sh): a kernel
// sender in another namespace sends datagram i (Payload(i, size(i))) and
// waits for a 4-byte ack before the next. The engine's RX ring is this
// socket's only ring, so OFFLOAD_MSG_ZCOPY proves the engine delivered.
// First half: recvfrom_zcopy, up to 4 held at once and freed newest
// first. Second half: a callback that DROPs odd datagrams (acking them from
// inside the callback) and RECVs even ones, received by zero copy.
size_t WireSize(uint32_t i) { return 1 + (i * 97) % 1400; }

// `v6`: an AF_INET6 socket on :: and an IPv6 sender (the engine's records
// then carry a 16-byte source in front of the datagram).
int Wire(offload_api_t* api, const char* port_file, uint32_t count, bool v6) {
  const int rx = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  sockaddr_in6 any = {};  // INADDR_ANY / ::: served by the engine too
  any.sin6_family = v6 ? AF_INET6 : AF_INET;
  REQUIRE(rx >= 0 && bind(rx, reinterpret_cast<sockaddr*>(&any),
                          v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in)) == 0);
  timeval tv = {10, 0};
  setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  FILE* f = fopen(std::string(std::string(port_file) + ".tmp").c_str(), "w");
  REQUIRE(f != nullptr);
  fprintf(f, "%u\n", PortOf(rx));
  fclose(f);
  REQUIRE(rename((std::string(port_file) + ".tmp").c_str(), port_file) == 0);
  auto ack = [&](uint32_t seq, const sockaddr_in6& to) {
    return sendto(rx, &seq, 4, 0, reinterpret_cast<const sockaddr*>(&to),
                  v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in)) == 4;
  };
  // A real remote source, in the socket's family.
  auto remote = [&](const sockaddr_in6& from, socklen_t len) {
    if (!v6) {
      const auto* f4 = reinterpret_cast<const sockaddr_in*>(&from);
      return len == sizeof(sockaddr_in) && f4->sin_family == AF_INET &&
             f4->sin_addr.s_addr != htonl(INADDR_LOOPBACK) && f4->sin_port != 0;
    }
    return len == sizeof(sockaddr_in6) && from.sin6_family == AF_INET6 &&
           !IN6_IS_ADDR_V4MAPPED(&from.sin6_addr) && !IN6_IS_ADDR_LOOPBACK(&from.sin6_addr) &&
           from.sin6_port != 0 && from.sin6_flowinfo == 0 && from.sin6_scope_id == 0;
  };
  std::vector<Desc> held;
  uint32_t i = 0;
  int zcopied = 0;
  for (; i < count / 2; ++i) {
    Desc d;
    int flags = 0;
    sockaddr_in6 from;
    socklen_t flen;
    const int n = Zrecv6(api, rx, &d, &flags, &from, &flen);
    REQUIRE(n == static_cast<int>(WireSize(i)));
    if (flags & OFFLOAD_MSG_ZCOPY) {
      ++zcopied;
      EXPECT(IsPayload(d.p()->iov[0].iov_base, d.p()->iov[0].iov_len, i, WireSize(i)));
      held.push_back(d);
    } else {
      EXPECT(IsPayload(d.buf, n, i, WireSize(i)));
    }
    EXPECT(remote(from, flen));
    if (held.size() == 4 || i + 1 == count / 2) {
      // Newest first; each still intact while later ones arrived.
      for (size_t k = held.size(); k-- > 0;) {
        Desc& h = held[k];
        uint32_t seq;
        memcpy(&seq, h.p()->iov[0].iov_base, 4);
        EXPECT(IsPayload(h.p()->iov[0].iov_base, h.p()->iov[0].iov_len, seq, WireSize(seq)));
        EXPECT(FreeOne(api, rx, h.p()->packet_id) == 0);
      }
      held.clear();
    }
    REQUIRE(ack(i, from));
  }
  struct WireCb {
    int rx;
    int dropped = 0;
    bool bad = false;
  } st{rx};
  auto cb = [](int fd, size_t, iovec iov[], offload_info_t* info,
               void* ctx) -> offload_recv_callback_retval_t {
    auto* w = static_cast<WireCb*>(ctx);
    uint32_t seq = 0;
    memcpy(&seq, iov[0].iov_base, 4);
    if (!IsPayload(iov[0].iov_base, iov[0].iov_len, seq, WireSize(seq))) w->bad = true;
    if (seq % 2 == 0) return OFFLOAD_PACKET_RECV;
    ++w->dropped;
    // An AF_INET6 socket's callback gets a sockaddr_in6 behind info->src.
    const socklen_t src_len = info->src->sin_family == AF_INET6 ? sizeof(sockaddr_in6)
                                                                : sizeof(sockaddr_in);
    if (sendto(fd, &seq, 4, 0, reinterpret_cast<const sockaddr*>(info->src), src_len) != 4) {
      w->bad = true;
    }
    return OFFLOAD_PACKET_DROP;
  };
  REQUIRE(api->register_recv_callback(rx, cb, &st) == 0);
  for (; i < count; ++i) {
    if (i % 2 == 1) continue;  // dropped (and acked) by the callback
    Desc d;
    int flags = 0;
    sockaddr_in6 from;
    socklen_t flen;
    const int n = Zrecv6(api, rx, &d, &flags, &from, &flen);
    REQUIRE(n == static_cast<int>(WireSize(i)));
    EXPECT(remote(from, flen));
    EXPECT(flags & OFFLOAD_MSG_ZCOPY);
    uint32_t seq = 0;
    memcpy(&seq, d.p()->iov[0].iov_base, 4);
    EXPECT(seq == i && IsPayload(d.p()->iov[0].iov_base, n, i, WireSize(i)));
    EXPECT(FreeOne(api, rx, d.p()->packet_id) == 0);
    REQUIRE(ack(i, from));
  }
  // A last odd one is acked by the callback when something polls.
  int odd = 0;
  for (uint32_t k = count / 2; k < count; ++k) odd += k % 2;
  pollfd p = {rx, POLLIN, 0};
  const int64_t deadline = NowMs() + 10000;
  while (st.dropped < odd && NowMs() < deadline) poll(&p, 1, 100);
  EXPECT(st.dropped == odd);
  EXPECT(!st.bad);
  printf("wire: %u datagrams, %d of the first %u by zero copy, %d dropped by the callback\n",
         count, zcopied, count / 2, st.dropped);
  EXPECT(zcopied == static_cast<int>(count / 2));
  close(rx);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IONBF, 0);
  if (argc < 2) {
    fprintf(stderr, "usage: zcopy_prog CHECK\n");
    return 2;
  }
  const std::string check = argv[1];
  offload_api_t* api = Api();
  if (check == "noapi") {
    // Without the library there is no API, and getsockopt says so too.
    offload_api_t* via = nullptr;
    socklen_t len = sizeof(via);
    EXPECT(api == nullptr);
    EXPECT(getsockopt(-1, SOL_SOCKET, SO_OFFLOAD_GET_API, &via, &len) == -1);
    return g_failures;
  }
  if (api == nullptr) {
    fprintf(stderr, "FAIL: no offload_get_api with the zero-copy capability bits\n");
    return 1;
  }
  offload_api_t* via = nullptr;
  socklen_t len = sizeof(via);
  EXPECT(getsockopt(-1, SOL_SOCKET, SO_OFFLOAD_GET_API, &via, &len) == 0 && via == api);
  int rc;
  if (check == "basic") {
    rc = Basic(api);
  } else if (check == "out_of_order") {
    rc = OutOfOrder(api);
  } else if (check == "ring_full") {
    rc = RingFull(api);
  } else if (check == "batch_free") {
    rc = BatchFree(api);
  } else if (check == "callback") {
    rc = Callback(api);
  } else if (check == "kernel") {
    rc = Kernel(api);
  } else if (check == "death") {
    rc = Death(api);
  } else if ((check == "wire" || check == "wire6") && argc == 4) {
    rc = Wire(api, argv[2], static_cast<uint32_t>(atoi(argv[3])), check == "wire6");
  } else {
    fprintf(stderr, "unknown check %s\n", check.c_str());
    return 2;
  }
  (void)rc;
  printf("%s %s\n", g_failures == 0 ? "PASS" : "FAIL", check.c_str());
  return g_failures;
}
