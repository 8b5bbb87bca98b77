// frames: N threads send M framed messages concurrently on ONE socket (TCP
// or UDP); the receiver checks that every frame arrived intact. The same
// binary runs with and without liboffload.so, on the same host and across
// a veth, and can be built with -fsanitize=thread or =address.
//
//   frames recv tcp|udp --bind IP --port-file F --expect N [--recv-threads R]
//                       [--timeout S]
//   frames send tcp|udp --to IP --port P --threads N --msgs M [--timeout S]
//
// Frame: a 24-byte header {magic, payload length, thread, seq, checksum of
// header fields + payload (FNV-1a 64, low/high)} and a payload derived from
// (thread, seq), 1..kMaxTcpPayload bytes (TCP) or 1..kMaxUdpPayload (UDP).
//
// Linux makes one send() atomic with respect to other senders on the same
// socket unless the call has to wait for send-buffer room (then it may be
// interleaved, for TCP). So that the expectation is exact on the kernel,
// the receiver returns flow-control credit: it writes the 8-byte count of
// bytes it has consumed back on the same socket (UDP: to the sender's
// address), and senders keep at most kWindow bytes in flight. That also
// makes a reader thread receive on the socket while the senders send.
//
// recv prints one summary line and exits 0 when every expected frame was
// received intact, in per-thread order (TCP), or with only drops (UDP):
//   tcp frames=N ok=K torn=T out_of_order=O bytes=B
//   udp datagrams=N ok=K corrupt=C dup=D dropped=X
// For UDP, drops are counted apart from corruption; the exit status is 0
// when corrupt == 0 and dup == 0 (the caller decides what drop rate is
// acceptable). send prints "sent N frames, credit stalls S" and exits 0
// when every send() returned the whole frame.

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr uint32_t kMagic = 0x46524d31;  // "FRM1"
constexpr size_t kHeader = 24;
constexpr uint32_t kMaxTcpPayload = 3000;
constexpr uint32_t kMaxUdpPayload = 1400;  // one frame on a 1500-byte MTU
constexpr int64_t kWindow = 64 * 1024;     // well below the send buffer we set
constexpr int kSndBuf = 256 * 1024;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

uint64_t Fnv(uint64_t h, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

uint32_t PayloadLen(bool udp, uint32_t thread, uint32_t seq) {
  const uint32_t max = udp ? kMaxUdpPayload : kMaxTcpPayload;
  return 1 + uint32_t(Mix((uint64_t(thread) << 32) | seq) % max);
}

void Put32(uint8_t* p, uint32_t v) {
  v = htonl(v);
  memcpy(p, &v, 4);
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return ntohl(v);
}

uint64_t FrameSum(const uint8_t* hdr, const uint8_t* payload, uint32_t len) {
  uint64_t h = Fnv(0xcbf29ce484222325ULL, hdr, 16);
  return Fnv(h, payload, len);
}

// Builds frame (thread, seq) into `out`.
void BuildFrame(bool udp, uint32_t thread, uint32_t seq, std::vector<uint8_t>* out) {
  const uint32_t len = PayloadLen(udp, thread, seq);
  out->resize(kHeader + len);
  uint8_t* f = out->data();
  Put32(f, kMagic);
  Put32(f + 4, len);
  Put32(f + 8, thread);
  Put32(f + 12, seq);
  uint64_t x = Mix((uint64_t(seq) << 32) ^ thread ^ 0x9e3779b97f4a7c15ULL);
  for (uint32_t i = 0; i < len; ++i) {
    if (i % 8 == 0) x = Mix(x + i);
    f[kHeader + i] = uint8_t(x >> (8 * (i % 8)));
  }
  const uint64_t sum = FrameSum(f, f + kHeader, len);
  Put32(f + 16, uint32_t(sum));
  Put32(f + 20, uint32_t(sum >> 32));
}

// Checks a received frame; returns false when torn or corrupt.
bool FrameOk(const uint8_t* f, size_t n, uint32_t* thread, uint32_t* seq) {
  if (n < kHeader || Get32(f) != kMagic) return false;
  const uint32_t len = Get32(f + 4);
  if (len == 0 || len > kMaxTcpPayload || n != kHeader + len) return false;
  const uint64_t sum = FrameSum(f, f + kHeader, len);
  if (Get32(f + 16) != uint32_t(sum) || Get32(f + 20) != uint32_t(sum >> 32)) return false;
  *thread = Get32(f + 8);
  *seq = Get32(f + 12);
  return true;
}

struct Args {
  std::string mode, proto, bind = "127.0.0.1", to = "127.0.0.1", port_file;
  int port = 0, threads = 8, msgs = 1000, recv_threads = 1, timeout = 60;
  long expect = 0;
};

bool ParseArgs(int argc, char** argv, Args* a) {
  if (argc < 3) return false;
  a->mode = argv[1];
  a->proto = argv[2];
  if (a->proto != "tcp" && a->proto != "udp") return false;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--bind") a->bind = v;
    else if (k == "--to") a->to = v;
    else if (k == "--port") a->port = atoi(v);
    else if (k == "--port-file") a->port_file = v;
    else if (k == "--threads") a->threads = atoi(v);
    else if (k == "--msgs") a->msgs = atoi(v);
    else if (k == "--recv-threads") a->recv_threads = atoi(v);
    else if (k == "--timeout") a->timeout = atoi(v);
    else if (k == "--expect") a->expect = atol(v);
    else return false;
  }
  return true;
}

sockaddr_in Addr(const std::string& ip, int port) {
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

void WritePortFile(const std::string& path, int fd) {
  sockaddr_in a = {};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string tmp = path + ".tmp";
  FILE* f = fopen(tmp.c_str(), "w");
  if (f == nullptr) return;
  fprintf(f, "%u\n", ntohs(a.sin_port));
  fclose(f);
  rename(tmp.c_str(), path.c_str());
}

// Reads exactly n bytes; returns n, 0 on EOF before any byte, -1 on error
// or a partial read at EOF; gives up at `deadline_ms`.
ssize_t ReadFull(int fd, uint8_t* buf, size_t n, int64_t deadline_ms) {
  size_t got = 0;
  while (got < n) {
    pollfd p = {fd, POLLIN, 0};
    const int64_t left = deadline_ms - NowMs();
    if (left <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    const int r = poll(&p, 1, int(left < 1000 ? left : 1000));
    if (r < 0 && errno != EINTR) return -1;
    if (r <= 0) continue;
    const ssize_t k = recv(fd, buf + got, n - got, 0);
    if (k == 0) return got == 0 ? 0 : -1;
    if (k < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -1;
    }
    got += size_t(k);
  }
  return ssize_t(n);
}

// ------------------------------------------------------------------- recv

int RecvTcp(const Args& a) {
  const int l = socket(AF_INET, SOCK_STREAM, 0);
  const int on = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in addr = Addr(a.bind, 0);
  if (bind(l, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(l, 4) != 0) {
    perror("bind/listen");
    return 2;
  }
  WritePortFile(a.port_file, l);
  const int64_t deadline = NowMs() + int64_t(a.timeout) * 1000;
  pollfd p = {l, POLLIN, 0};
  if (poll(&p, 1, a.timeout * 1000) != 1) {
    fprintf(stderr, "no connection within %d s\n", a.timeout);
    return 3;
  }
  const int c = accept(l, nullptr, nullptr);
  if (c < 0) {
    perror("accept");
    return 3;
  }
  // Credits are 8-byte writes: without NODELAY, Nagle holds each one back
  // until the previous is acknowledged (delayed ACK: up to 40 ms).
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  std::vector<int64_t> next(4096, 0);  // per sender thread: the next seq
  long frames = 0, ok = 0, torn = 0, out_of_order = 0;
  uint64_t bytes = 0, credited = 0;
  std::vector<uint8_t> buf(kHeader + kMaxTcpPayload);
  const char* end = "eof";
  for (;;) {
    ssize_t k = ReadFull(c, buf.data(), kHeader, deadline);
    if (k == 0) break;
    if (k < 0) {
      end = errno == ETIMEDOUT ? "timeout" : strerror(errno);
      break;
    }
    const uint32_t len = Get32(buf.data() + 4);
    if (Get32(buf.data()) != kMagic || len == 0 || len > kMaxTcpPayload) {
      ++torn;
      fprintf(stderr, "torn header at byte %llu after %ld good frames\n",
              static_cast<unsigned long long>(bytes), ok);
      end = "torn (stream out of sync)";
      break;
    }
    k = ReadFull(c, buf.data() + kHeader, len, deadline);
    if (k <= 0) {
      end = k == 0 ? "eof inside a frame" : (errno == ETIMEDOUT ? "timeout" : strerror(errno));
      ++torn;
      break;
    }
    ++frames;
    bytes += kHeader + len;
    uint32_t thread, seq;
    if (!FrameOk(buf.data(), kHeader + len, &thread, &seq)) {
      ++torn;
      if (torn <= 3) {
        fprintf(stderr, "torn frame (bad checksum) at byte %llu after %ld good frames\n",
                static_cast<unsigned long long>(bytes), ok);
      }
    } else if (thread >= next.size() || next[thread] != int64_t(seq)) {
      ++out_of_order;
      if (out_of_order <= 3) {
        fprintf(stderr, "thread %u seq %u out of order (want %lld)\n", thread, seq,
                thread < next.size() ? static_cast<long long>(next[thread]) : -1LL);
      }
      if (thread < next.size()) next[thread] = int64_t(seq) + 1;
    } else {
      ++ok;
      next[thread] = int64_t(seq) + 1;
    }
    if (bytes - credited >= 4096) {
      credited = bytes;
      uint64_t v = credited;
      if (send(c, &v, sizeof(v), MSG_NOSIGNAL) != sizeof(v)) {
        end = "credit send failed";
        break;
      }
    }
  }
  uint64_t v = bytes;
  send(c, &v, sizeof(v), MSG_NOSIGNAL);
  printf("tcp frames=%ld ok=%ld torn=%ld out_of_order=%ld bytes=%llu end=%s\n", frames, ok, torn,
         out_of_order, static_cast<unsigned long long>(bytes), end);
  fflush(stdout);
  close(c);
  close(l);
  return (ok == a.expect && torn == 0 && out_of_order == 0 && strcmp(end, "eof") == 0) ? 0 : 1;
}

int RecvUdp(const Args& a) {
  const int u = socket(AF_INET, SOCK_DGRAM, 0);
  const int rcv = 4 << 20;
  setsockopt(u, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  sockaddr_in addr = Addr(a.bind, 0);
  if (bind(u, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    perror("bind");
    return 2;
  }
  WritePortFile(a.port_file, u);
  const int64_t deadline = NowMs() + int64_t(a.timeout) * 1000;
  std::mutex mu;  // guards seen and the counters
  long ok = 0, corrupt = 0, dup = 0, datagrams = 0, foreign = 0;
  uint64_t bytes = 0;
  std::atomic<int64_t> last_rx{0};
  std::atomic<bool> done{false};
  // Times each (thread, seq) was received, per sender thread.
  std::vector<std::vector<uint32_t>> per_thread(4096);
  auto worker = [&] {
    std::vector<uint8_t> buf(65536);
    while (!done) {
      pollfd p = {u, POLLIN, 0};
      const int r = poll(&p, 1, 100);
      if (r <= 0) {
        const int64_t now = NowMs();
        const int64_t last = last_rx.load();
        if (now > deadline || (last != 0 && now - last > 2000)) done = true;
        continue;
      }
      sockaddr_in from = {};
      socklen_t flen = sizeof(from);
      const ssize_t n = recvfrom(u, buf.data(), buf.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 0) continue;
      last_rx = NowMs();
      uint32_t thread = 0, seq = 0;
      const bool good = FrameOk(buf.data(), size_t(n), &thread, &seq) && thread < 4096;
      uint64_t credit = 0;
      {
        std::lock_guard<std::mutex> g(mu);
        ++datagrams;
        bytes += uint64_t(n);
        credit = bytes;
        if (!good) {
          ++corrupt;
          if (corrupt <= 3) fprintf(stderr, "corrupt datagram of %zd bytes\n", n);
        } else {
          auto& v = per_thread[thread];
          if (v.size() <= seq) v.resize(size_t(seq) + 1, 0);
          if (v[seq]++) {
            ++dup;
          } else {
            ++ok;
          }
        }
        if (a.expect > 0 && ok >= a.expect) done = true;
      }
      // Credit back to the sender every datagram (cumulative, loss-tolerant).
      if (sendto(u, &credit, sizeof(credit), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from),
                 flen) < 0) {
        ++foreign;  // counted only for the report
      }
    }
  };
  std::vector<std::thread> ts;
  for (int i = 0; i < (a.recv_threads > 0 ? a.recv_threads : 1); ++i) ts.emplace_back(worker);
  for (auto& t : ts) t.join();
  const long dropped = a.expect - ok;
  printf("udp datagrams=%ld ok=%ld corrupt=%ld dup=%ld dropped=%ld bytes=%llu credit_errors=%ld\n",
         datagrams, ok, corrupt, dup, dropped, static_cast<unsigned long long>(bytes), foreign);
  fflush(stdout);
  close(u);
  return (corrupt == 0 && dup == 0) ? 0 : 1;
}

// ------------------------------------------------------------------- send

int Send(const Args& a) {
  const bool udp = a.proto == "udp";
  const int s = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &kSndBuf, sizeof(kSndBuf));
  if (!udp) {  // frames are smaller than an MSS: no Nagle/delayed-ACK stalls
    const int on = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  }
  sockaddr_in to = Addr(a.to, a.port);
  if (connect(s, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    perror("connect");
    return 2;
  }
  const int64_t deadline = NowMs() + int64_t(a.timeout) * 1000;
  std::atomic<int64_t> reserved{0};  // bytes handed to send() so far
  std::atomic<int64_t> credit{0};    // bytes the receiver has consumed
  std::atomic<bool> stop{false};
  std::mutex credit_mu;  // with credit_cv: senders sleep until credit moves
  std::condition_variable credit_cv;
  std::atomic<long> stalls{0}, errors{0}, sent{0};
  // The credit reader: receives on the socket while the senders send.
  std::thread reader([&] {
    uint8_t b[8];
    while (!stop) {
      pollfd p = {s, POLLIN, 0};
      if (poll(&p, 1, 100) != 1) continue;
      ssize_t k;
      if (udp) {
        k = recv(s, b, sizeof(b), MSG_DONTWAIT);
        if (k != 8) continue;
      } else {
        k = ReadFull(s, b, 8, deadline);
        if (k != 8) break;
      }
      uint64_t v;
      memcpy(&v, b, 8);
      int64_t cur = credit.load();
      while (int64_t(v) > cur && !credit.compare_exchange_weak(cur, int64_t(v))) {
      }
      std::lock_guard<std::mutex> g(credit_mu);
      credit_cv.notify_all();
    }
    stop = true;  // EOF or error: nobody will credit us any more
    std::lock_guard<std::mutex> g(credit_mu);
    credit_cv.notify_all();
  });
  auto worker = [&](uint32_t thread) {
    std::vector<uint8_t> f;
    for (uint32_t seq = 0; seq < uint32_t(a.msgs); ++seq) {
      BuildFrame(udp, thread, seq, &f);
      const int64_t mine = reserved.fetch_add(int64_t(f.size())) + int64_t(f.size());
      // Wait for credit: at most kWindow bytes in flight. A dropped
      // datagram never comes back as credit: after 200 ms without enough,
      // UDP counts a stall and writes the missing bytes off.
      int64_t waited_from = 0;
      {
        // The condition is checked under credit_mu, which the reader takes
        // to notify after it moved credit: no wake-up is lost.
        std::unique_lock<std::mutex> g(credit_mu);
        while (mine - credit.load() > kWindow && NowMs() < deadline && !(stop && !udp)) {
          if (waited_from == 0) waited_from = NowMs();
          if (udp && NowMs() - waited_from > 200) {
            ++stalls;
            int64_t cur = credit.load();
            while (mine - kWindow > cur && !credit.compare_exchange_weak(cur, mine - kWindow)) {
            }
            break;
          }
          credit_cv.wait_for(g, std::chrono::milliseconds(10));
        }
      }
      const ssize_t k = send(s, f.data(), f.size(), MSG_NOSIGNAL);
      if (k != ssize_t(f.size())) {
        if (errors++ < 3) {
          fprintf(stderr, "thread %u seq %u: send returned %zd of %zu (%s)\n", thread, seq, k,
                  f.size(), k < 0 ? strerror(errno) : "short");
        }
        if (!udp) return;
      } else {
        ++sent;
      }
    }
  };
  std::vector<std::thread> ts;
  for (int i = 0; i < a.threads; ++i) ts.emplace_back(worker, uint32_t(i));
  for (auto& t : ts) t.join();
  if (!udp) {
    shutdown(s, SHUT_WR);
    // Wait (bounded) for the receiver's final credit or EOF.
    while (credit.load() < reserved.load() && NowMs() < deadline && !stop) {
      std::this_thread::yield();
      if (credit.load() >= reserved.load()) break;
      usleep(1000);  // poll interval for the reader's progress
    }
  }
  stop = true;
  reader.join();
  printf("sent %ld frames, credit stalls %ld, send errors %ld\n", sent.load(), stalls.load(),
         errors.load());
  fflush(stdout);
  close(s);
  return errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!ParseArgs(argc, argv, &a) || (a.mode != "recv" && a.mode != "send") ||
      (a.mode == "recv" && a.port_file.empty()) || (a.mode == "send" && a.port == 0)) {
    fprintf(stderr,
            "usage: frames recv tcp|udp --bind IP --port-file F --expect N [--recv-threads R] "
            "[--timeout S]\n       frames send tcp|udp --to IP --port P --threads N --msgs M "
            "[--timeout S]\n");
    return 2;
  }
  if (a.mode == "recv") return a.proto == "tcp" ? RecvTcp(a) : RecvUdp(a);
  return Send(a);
}
