// offload-udplat: UDP ping-pong and throughput between two processes on
// this host, receiving by copy (recvfrom), by zero copy (the extra API's
// recvfrom_zcopy + free_packets) or in a receive filter callback
// (register_recv_callback), after VMA's udp_lat and sockperf's
// --vmazcopyread / --vmarxfiltercb. Every datagram is verified: its
// sequence number (first and last 4 bytes) and every other byte against a
// fixed pattern; any bad datagram fails the run.
//
//   offload-udplat [--mode pingpong|throughput|rxcost] [--rx copy|zcopy|callback]
//                  [--size BYTES] [--count N] [--warmup N] [--busy]
//                  [--free-batch N] [--cpus SERVER_CPU,CLIENT_CPU]
//
// The server is a forked child (forked before any socket exists, so its
// sockets and the client's are each process's own); it binds 127.0.0.1:0.
// Both sides receive the same way (--rx). Under `offload --` the sockets
// are offloaded; the zcopy and callback modes need liboffload.so and fail
// without it.
//
// pingpong: the client sends datagram N, the server echoes it (in callback
//   mode straight from the ring, inside the callback), the client checks
//   the echo; prints round-trip p50/p99/mean and round trips per second.
// throughput: the client sends --count datagrams as fast as it can, then
//   end markers until the server reports; the server counts in-order
//   datagrams and gaps (datagrams dropped on a full ring or buffer, as UDP
//   does) and reports received msg/s and MB/s from first to last datagram,
//   and its receiving thread's CPU time per datagram (recv_cpu_ns_per_msg:
//   robust against other processes taking the CPU; in blocking mode it
//   includes the sleeps' system calls).
//
// rxcost: the receive path alone: one process sends a burst (half a
//   ring) to itself, then receives and verifies it, timing only the
//   receives; prints nanoseconds per datagram.
// --cpus: pins the server and the client process to these CPUs (rxcost:
//   the client's).
// --free-batch N (zcopy, 1-256; default 1): free the received packets N
//   at a time, in one free_packets call (VMA's packets array), and whenever
//   a receive finds nothing; printed as rx=zcopyb<N>.
// --busy: receive with MSG_DONTWAIT in a loop (never sleep); callback mode
// always does (its callback consumes the datagrams, so a blocking receive
// would never return).
//
// Output, one line: "udplat mode=... rx=... size=... key=value ...";
// exit status 0 if every datagram was right, 1 otherwise, 2 on usage.

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "client/offload_extra.h"
#include "tools/udplat/udplat.h"

namespace udplat {
namespace {

// --- server ----------------------------------------------------------------

struct ServerState {
  uint64_t received = 0, gaps = 0;
  uint32_t next = 0;
  int64_t first_ns = 0, last_ns = 0;
  // The receiving thread's CPU time at the first datagram and at every
  // 256th (a system call, so not on every one), and datagrams since the
  // first at that sample: receive CPU per datagram, which other processes
  // taking the CPU away cannot inflate as they do the wall-clock rate.
  int64_t first_cpu = 0, sample_cpu = 0;
  uint64_t sampled = 0;
  bool done = false;
  std::vector<uint8_t> out;
} g_srv;

void ServerPing(int fd, const uint8_t* p, size_t len, const sockaddr_in& from) {
  if (Check(p, len) == kFin - 2) return;
  // Echo the datagram as it is (in callback and zcopy mode from the ring).
  if (sendto(fd, p, len, 0, reinterpret_cast<const sockaddr*>(&from), sizeof(from)) < 0) {
    perror("udplat: server send");
  }
}

void ServerSink(int fd, const uint8_t* p, size_t len, const sockaddr_in& from) {
  const uint32_t seq = Check(p, len);
  if (seq == kFin - 2) return;
  if (seq == kFin) {
    if (g_srv.received == 0) return;  // nothing yet: not ours to answer
    uint64_t report[kReportWords] = {kReport, g_srv.received, g_srv.gaps,
                                     static_cast<uint64_t>(g_srv.last_ns - g_srv.first_ns),
                                     g_bad ? 1u : 0u,
                                     static_cast<uint64_t>(g_srv.sample_cpu - g_srv.first_cpu),
                                     g_srv.sampled};
    sendto(fd, report, sizeof(report), 0, reinterpret_cast<const sockaddr*>(&from), sizeof(from));
    g_srv.done = true;
    return;
  }
  const int64_t now = NowNs();
  if (g_srv.received == 0) {
    g_srv.first_ns = now;
    g_srv.first_cpu = CpuNs();
  }
  g_srv.last_ns = now;
  if (seq < g_srv.next) {
    fprintf(stderr, "udplat: BAD: seq %u after %u (reordered or duplicated)\n", seq, g_srv.next);
    g_bad = true;
    return;
  }
  g_srv.gaps += seq - g_srv.next;
  g_srv.next = seq + 1;
  ++g_srv.received;
  if ((g_srv.received & 255) == 0) {
    g_srv.sample_cpu = CpuNs();
    g_srv.sampled = g_srv.received - 1;
  }
}

[[noreturn]] void Server(int port_pipe) {
  const int fd = Socket();
  const uint16_t port = PortOf(fd);
  if (write(port_pipe, &port, sizeof(port)) != sizeof(port)) _exit(1);
  close(port_pipe);
  std::vector<uint8_t> buf(65536);
  g_handler = g_opt.pingpong ? ServerPing : ServerSink;
  // Ping-pong: serve until the client closes the pipe / kills us.
  while (!g_srv.done) {
    if (!Receive(fd, buf.data(), buf.size())) BusyIdle();
  }
  // Throughput: answer repeated end markers for a moment (without
  // blocking), then leave.
  g_opt.busy = true;
  const int64_t linger_until = NowNs() + 200000000;
  while (NowNs() < linger_until) {
    if (!Receive(fd, buf.data(), buf.size())) BusyIdle();
  }
  _exit(g_bad ? 1 : 0);
}

// --- client ----------------------------------------------------------------

struct ClientState {
  uint32_t expect = 0;
  bool got = false;
  uint64_t report[kReportWords] = {};
  bool reported = false;
} g_cli;

void ClientPong(int, const uint8_t* p, size_t len, const sockaddr_in&) {
  const uint32_t seq = Check(p, len);
  if (seq == kFin - 2) return;
  if (seq != g_cli.expect) {
    fprintf(stderr, "udplat: BAD: pong %u, expected %u\n", seq, g_cli.expect);
    g_bad = true;
    return;
  }
  g_cli.got = true;
}

void ClientReport(int, const uint8_t* p, size_t len, const sockaddr_in&) {
  if (len == sizeof(g_cli.report)) {
    memcpy(g_cli.report, p, len);
    g_cli.reported = g_cli.report[0] == kReport;
  }
}

int Client(uint16_t port, pid_t server) {
  const int fd = Socket();
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = port;
  std::vector<uint8_t> out(g_opt.size), in(65536);
  const char* rx = RxName();
  if (g_opt.pingpong) {
    g_handler = ClientPong;
    std::vector<int64_t> rtt;
    rtt.reserve(g_opt.count);
    int64_t t_start = 0;
    for (uint64_t i = 0; i < g_opt.warmup + g_opt.count && !g_bad; ++i) {
      g_cli.expect = static_cast<uint32_t>(i);
      g_cli.got = false;
      if (i == g_opt.warmup) t_start = NowNs();
      const int64_t t0 = NowNs();
      if (!SendSeq(fd, to, g_cli.expect, out.data())) {
        perror("udplat: send");
        return 1;
      }
      const int64_t give_up = t0 + 5000000000;  // a lost datagram ends the run
      while (!g_cli.got && !g_bad) {
        if (!Receive(fd, in.data(), in.size())) {
          if (errno != EAGAIN && errno != EWOULDBLOCK) break;
          BusyIdle();
        }
        if (!g_cli.got && NowNs() > give_up) {
          fprintf(stderr, "udplat: BAD: pong %u never came\n", g_cli.expect);
          g_bad = true;
        }
      }
      if (i >= g_opt.warmup) rtt.push_back(NowNs() - t0);
    }
    const int64_t elapsed = NowNs() - t_start;
    kill(server, SIGKILL);
    waitpid(server, nullptr, 0);
    if (g_bad || rtt.empty()) {
      printf("udplat mode=pingpong rx=%s size=%zu FAILED\n", rx, g_opt.size);
      return 1;
    }
    double sum = 0;
    for (int64_t v : rtt) sum += static_cast<double>(v);
    std::sort(rtt.begin(), rtt.end());
    auto pct = [&](double q) { return rtt[std::min(rtt.size() - 1, size_t(q * rtt.size()))]; };
    printf("udplat mode=pingpong rx=%s size=%zu count=%zu rtt_p50_us=%.2f rtt_p99_us=%.2f "
           "rtt_mean_us=%.2f roundtrips_per_s=%.0f verified=%zu\n",
           rx, g_opt.size, rtt.size(), pct(0.5) / 1e3, pct(0.99) / 1e3, sum / rtt.size() / 1e3,
           rtt.size() / (elapsed / 1e9), rtt.size());
    return 0;
  }
  // Throughput.
  g_handler = ClientReport;
  const int64_t t0 = NowNs();
  for (uint64_t i = 0; i < g_opt.count; ++i) {
    if (!SendSeq(fd, to, static_cast<uint32_t>(i), out.data())) {
      perror("udplat: send");
      return 1;
    }
  }
  const int64_t t_sent = NowNs();
  // End markers until the report arrives (each a datagram like the others).
  const int64_t give_up = NowNs() + 10000000000;
  while (!g_cli.reported && NowNs() < give_up) {
    SendSeq(fd, to, kFin, out.data());
    const int64_t wait_until = NowNs() + 1000000;
    while (!g_cli.reported && NowNs() < wait_until) {
      const bool busy = g_opt.busy;
      g_opt.busy = true;  // poll for the report without sleeping long
      Receive(fd, in.data(), in.size());
      g_opt.busy = busy;
    }
  }
  int st = 0;
  waitpid(server, &st, 0);
  if (!g_cli.reported || g_cli.report[4] != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    printf("udplat mode=throughput rx=%s size=%zu FAILED (report %d)\n", rx, g_opt.size,
           g_cli.reported);
    return 1;
  }
  const double secs = std::max<double>(1e-9, g_cli.report[3] / 1e9);
  const double rate = (g_cli.report[1] > 1 ? g_cli.report[1] - 1 : 1) / secs;
  const double cpu_per = g_cli.report[6] != 0 ? double(g_cli.report[5]) / g_cli.report[6] : 0;
  printf("udplat mode=throughput rx=%s size=%zu sent=%zu send_msg_per_s=%.0f received=%lu "
         "dropped=%lu recv_msg_per_s=%.0f recv_MB_per_s=%.1f recv_cpu_ns_per_msg=%.1f "
         "verified=%lu\n",
         rx, g_opt.size, g_opt.count, g_opt.count / ((t_sent - t0) / 1e9), g_cli.report[1],
         g_cli.report[2], rate, rate * g_opt.size / 1e6, cpu_per, g_cli.report[1]);
  return 0;
}

// rxcost: the receive path alone, in one process with nobody else on the
// ring: a burst that fits the ring is sent, then received (and verified)
// on its own, timed; --count datagrams in bursts.
uint32_t g_rx_seq = 0;
void CountIn(int, const uint8_t* p, size_t len, const sockaddr_in&) {
  if (Check(p, len) != g_rx_seq) {
    fprintf(stderr, "udplat: BAD: got a datagram out of order (expected %u)\n", g_rx_seq);
    g_bad = true;
  }
  ++g_rx_seq;
}

int RxCost() {
  const int rx = Socket(), tx = Socket();
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = PortOf(rx);
  const size_t burst = std::max<size_t>(1, (128 * 1024) / (g_opt.size + 16));  // half a ring
  std::vector<uint8_t> out(g_opt.size), in(65536);
  g_handler = CountIn;
  int64_t rx_ns = 0;
  double best_ns = 0;  // the cheapest burst per datagram: what preemption cannot inflate
  uint64_t received = 0;
  uint32_t seq = 0;
  const char* rxname = RxName();
  while (received < g_opt.warmup + g_opt.count && !g_bad) {
    for (size_t i = 0; i < burst; ++i) SendSeq(tx, to, seq++, out.data());
    const uint32_t want = seq;
    const int64_t t0 = NowNs();
    while (g_rx_seq < want && !g_bad) {
      if (!Receive(rx, in.data(), in.size()) && errno != EAGAIN && errno != EWOULDBLOCK) {
        perror("udplat: receive");
        return 1;
      }
    }
    if (received >= g_opt.warmup) {
      const int64_t dt = NowNs() - t0;
      rx_ns += dt;
      const double per = static_cast<double>(dt) / burst;
      if (best_ns == 0 || per < best_ns) best_ns = per;
    }
    received += burst;
  }
  if (g_bad) {
    printf("udplat mode=rxcost rx=%s size=%zu FAILED\n", rxname, g_opt.size);
    return 1;
  }
  const uint64_t timed = received - g_opt.warmup;
  printf("udplat mode=rxcost rx=%s size=%zu count=%lu rx_ns_per_msg=%.1f rx_ns_best=%.1f "
         "verified=%lu\n",
         rxname, g_opt.size, timed, static_cast<double>(rx_ns) / timed, best_ns, received);
  return 0;
}

void Pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) perror("udplat: sched_setaffinity");
}

[[noreturn]] void Usage() {
  fprintf(stderr,
          "usage: offload-udplat [--mode pingpong|throughput|rxcost] [--rx copy|zcopy|callback]\n"
          "                      [--size BYTES] [--count N] [--warmup N] [--busy]\n"
          "                      [--free-batch N] [--cpus SERVER_CPU,CLIENT_CPU]\n");
  exit(2);
}

}  // namespace
}  // namespace udplat

int main(int argc, char** argv) {
  using namespace udplat;  // NOLINT: the tool's own namespace
  setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage();
      return argv[++i];
    };
    if (a == "--mode") {
      const std::string v = value();
      if (v != "pingpong" && v != "throughput" && v != "rxcost") Usage();
      g_opt.pingpong = v == "pingpong";
      g_opt.rxcost = v == "rxcost";
    } else if (a == "--rx") {
      const std::string v = value();
      if (v == "copy") {
        g_opt.rx = Rx::kCopy;
      } else if (v == "zcopy") {
        g_opt.rx = Rx::kZcopy;
      } else if (v == "callback") {
        g_opt.rx = Rx::kCallback;
      } else {
        Usage();
      }
    } else if (a == "--size") {
      g_opt.size = strtoul(value().c_str(), nullptr, 10);
    } else if (a == "--count") {
      g_opt.count = strtoull(value().c_str(), nullptr, 10);
    } else if (a == "--warmup") {
      g_opt.warmup = strtoull(value().c_str(), nullptr, 10);
    } else if (a == "--free-batch") {
      g_opt.free_batch = strtoul(value().c_str(), nullptr, 10);
    } else if (a == "--busy") {
      g_opt.busy = true;
    } else if (a == "--cpus") {
      if (sscanf(value().c_str(), "%d,%d", &g_opt.server_cpu, &g_opt.client_cpu) != 2) Usage();
    } else {
      Usage();
    }
  }
  if (g_opt.size < kMinSize || g_opt.size > 65507 || g_opt.count == 0 || g_opt.free_batch == 0 ||
      g_opt.free_batch > 256 ||
      g_opt.count + g_opt.warmup >= kFin - 2) {
    Usage();
  }
  g_pattern.resize(g_opt.size);
  for (size_t i = 0; i < g_opt.size; ++i) g_pattern[i] = static_cast<uint8_t>(i * 7 + 3);
  if (g_opt.rx != Rx::kCopy) {
    auto get = reinterpret_cast<offload_api_t* (*)()>(dlsym(RTLD_DEFAULT, "offload_get_api"));
    g_api = get != nullptr ? get() : nullptr;
    const uint64_t need = g_opt.rx == Rx::kZcopy ? (OFFLOAD_EXTRA_API_RECVFROM_ZCOPY |
                                                    OFFLOAD_EXTRA_API_FREE_PACKETS)
                                                 : OFFLOAD_EXTRA_API_REGISTER_RECV_CALLBACK;
    if (g_api == nullptr || (g_api->cap_mask & need) != need) {
      fprintf(stderr, "udplat: --rx zcopy/callback need liboffload.so (run under offload --)\n");
      return 2;
    }
  }
  if (g_opt.rxcost) {
    Pin(g_opt.client_cpu);
    return RxCost();
  }
  int p[2];
  if (pipe(p) != 0) return 1;
  const pid_t server = fork();  // before any socket exists
  if (server == 0) {
    close(p[0]);
    Pin(g_opt.server_cpu);
    Server(p[1]);
  }
  close(p[1]);
  Pin(g_opt.client_cpu);
  uint16_t port = 0;
  if (read(p[0], &port, sizeof(port)) != sizeof(port)) {
    fprintf(stderr, "udplat: the server did not start\n");
    return 1;
  }
  close(p[0]);
  return Client(port, server);
}
