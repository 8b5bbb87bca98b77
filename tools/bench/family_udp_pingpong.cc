// UDP ping-pong of either family for tools/bench/wire_family_compare.sh
// --udp (sockperf 3.7 has no IPv6): the same command line and output as
// offload-pingpong, so family_sample.sh drives it unchanged.
//
//   family_udp_pingpong server ADDR PORT
//       binds ADDR:PORT (AF_INET6 when ADDR has a ':'), prints "listening",
//       echoes every datagram to its source until killed.
//   family_udp_pingpong pingpong ADDR PORT SIZE SECS
//       one datagram in flight for SECS seconds; prints
//       "pingpong size=N round_trips=R p50_us=X p99_us=Y".
//   family_udp_pingpong throughput ADDR PORT SIZE SECS
//       16 datagrams in flight (echoes counted, a lost one re-sent after
//       100 ms); prints "throughput size=N msg_per_s=X" (echoes per second).
//
// Every echo is compared with what was sent. Exit status 1 on error.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Addr {
  sockaddr_storage ss = {};
  socklen_t len = 0;
  int family = AF_INET;
};

bool Parse(const char* host, int port, Addr* a) {
  if (std::strchr(host, ':') != nullptr) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&a->ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(port));
    a->len = sizeof(*s6);
    a->family = AF_INET6;
    return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1;
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(&a->ss);
  s4->sin_family = AF_INET;
  s4->sin_port = htons(static_cast<uint16_t>(port));
  a->len = sizeof(*s4);
  return inet_pton(AF_INET, host, &s4->sin_addr) == 1;
}

double NowUs() {
  using namespace std::chrono;
  return duration<double, std::micro>(steady_clock::now().time_since_epoch()).count();
}

int Server(const Addr& a) {
  const int fd = socket(a.family, SOCK_DGRAM, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0) {
    perror("bind");
    return 1;
  }
  std::printf("listening\n");
  std::fflush(stdout);
  std::vector<char> buf(65536);
  for (;;) {
    sockaddr_storage from;
    socklen_t flen = sizeof(from);
    const ssize_t n = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from),
                               &flen);
    if (n < 0) continue;
    sendto(fd, buf.data(), static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), flen);
  }
}

// Waits up to `ms` for an echo of `want` bytes; true when it matched `sent`.
bool Echo(int fd, const std::vector<char>& sent, std::vector<char>* buf, int ms) {
  pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0) return false;
  const ssize_t n = recv(fd, buf->data(), buf->size(), 0);
  return n == static_cast<ssize_t>(sent.size()) &&
         std::memcmp(buf->data(), sent.data(), sent.size()) == 0;
}

int Client(const Addr& a, bool pingpong, size_t size, double secs) {
  const int fd = socket(a.family, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0) {
    perror("connect");
    return 1;
  }
  std::vector<char> msg(size, 'u'), buf(65536);
  const double end = NowUs() + secs * 1e6;
  std::vector<double> rtt;
  uint64_t echoes = 0, bad = 0;
  const int window = pingpong ? 1 : 16;
  for (int i = 0; i < window; ++i) send(fd, msg.data(), msg.size(), 0);
  double sent_at = NowUs();
  while (NowUs() < end) {
    if (!Echo(fd, msg, &buf, 100)) {
      // Lost (or a stray): put one back in flight.
      ++bad;
      send(fd, msg.data(), msg.size(), 0);
      sent_at = NowUs();
      continue;
    }
    const double now = NowUs();
    if (pingpong) rtt.push_back(now - sent_at);
    ++echoes;
    sent_at = NowUs();
    send(fd, msg.data(), msg.size(), 0);
  }
  if (echoes == 0) {
    std::fprintf(stderr, "no echo\n");
    return 1;
  }
  if (bad > echoes / 100 + 5) std::fprintf(stderr, "%llu losses\n", (unsigned long long)bad);
  if (pingpong) {
    std::sort(rtt.begin(), rtt.end());
    std::printf("pingpong size=%zu round_trips=%zu p50_us=%.3f p99_us=%.3f\n", size, rtt.size(),
                rtt[rtt.size() / 2], rtt[rtt.size() * 99 / 100]);
  } else {
    std::printf("throughput size=%zu msg_per_s=%.0f\n", size, echoes / secs);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Addr a;
  if (argc < 4 || !Parse(argv[2], std::atoi(argv[3]), &a)) {
    std::fprintf(stderr, "usage: %s server|pingpong|throughput ADDR PORT [SIZE SECS]\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "server") return Server(a);
  if (argc != 6) return 2;
  return Client(a, mode == "pingpong", static_cast<size_t>(std::atol(argv[4])),
                std::atof(argv[5]));
}
