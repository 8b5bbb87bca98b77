// offload-hold: many idle TCP connections and one busy one (the scale
// scenario of offload-bench; see kUsage).

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/bench/arg_reader.h"
#include "tools/bench/socket_util.h"

namespace {

namespace tools = offload::tools;

constexpr char kUsage[] = R"(usage:
  offload-hold server --port P [--listeners K] [--idle-timeout SEC]
  offload-hold client --port P [--listeners K] --conns N [--duration SEC]
                      [--idle SEC] [--watch-pid PID]...

Holds N idle TCP connections between one client and one server process and
measures what they cost, on the kernel or under offload:

The server listens on 127.0.0.1 ports P .. P+K-1 (K listeners, so that more
connections than one port's ephemeral range can be held; default 1), accepts
every connection and echoes whatever arrives on it. It exits when idle for
--idle-timeout seconds (default: never).

The client raises its descriptor limit, opens N connections spread over the
K ports, then one more on which it runs a 64 B ping-pong for --duration
seconds (default 3) beside the idle ones. It then stays idle for --idle
seconds (default 1) and measures the CPU time of every --watch-pid process
(offloadd, say) meanwhile, and finally sends one byte on every idle
connection and checks that each comes back. It prints one line:

  hold: conns=N connect_s=S p50_us=X p99_us=Y fds_per_conn=F
        pss_kib_per_conn=M sys_kib_per_conn=Z watch_cpu_pct=C echoed=E

p50/p99 are half round trips (as sockperf reports them). pss_kib_per_conn:
the growth of the proportional set size of the client, the server and every
--watch-pid process from before the connections to the end, divided by N
(shared memory counted once). sys_kib_per_conn: the
machine's MemAvailable drop while the connections are held, divided by N
(kernel socket memory included). Both are taken after the echo check, when
every connection has carried data.

exit status: 0 ok, 1 a connection failed or an echo was wrong, 2 usage error
)";

int Usage(const std::string& error) {
  std::cerr << "offload-hold: " << error << "\nrun 'offload-hold --help' for usage\n";
  return tools::kExitUsage;
}

int Fail(const std::string& what) {
  std::cerr << "offload-hold: " << what << "\n";
  return tools::kExitFailure;
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Raises the descriptor limit to at least `want`: the hard limit too where
// the process may (root), else the soft one up to the hard one.
void RaiseFdLimit(uint64_t want) {
  rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= want) return;
  rlimit up = {static_cast<rlim_t>(want), std::max<rlim_t>(r.rlim_max, want)};
  if (setrlimit(RLIMIT_NOFILE, &up) == 0) return;
  r.rlim_cur = std::min<rlim_t>(r.rlim_max, want);
  setrlimit(RLIMIT_NOFILE, &r);
}

// Sum of "Pss:" in /proc/PID/smaps_rollup, KiB (0 if unreadable).
uint64_t PssKib(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/smaps_rollup");
  std::string key;
  uint64_t v = 0;
  while (f >> key) {
    if (key == "Pss:") {
      f >> v;
      return v;
    }
  }
  return 0;
}

uint64_t MemAvailableKib() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  uint64_t v = 0;
  while (f >> key) {
    if (key == "MemAvailable:") {
      f >> v;
      return v;
    }
  }
  return 0;
}

// utime + stime of PID, in clock ticks.
uint64_t CpuTicks(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/stat");
  std::string line;
  std::getline(f, line);
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(line.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return utime + stime;
}

// Descriptors open in this process (entries of /proc/self/fd, less the
// directory's own).
size_t OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  size_t n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n > 0 ? n - 1 : 0;
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t k = read(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

int ConnectTo(uint16_t port) {
  absl::StatusOr<sockaddr_in> a = tools::MakeAddress("127.0.0.1", port);
  if (!a.ok()) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&*a), sizeof(*a)) != 0) {
    const int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

int RunServer(uint16_t port, uint64_t listeners, uint64_t idle_s) {
  RaiseFdLimit(uint64_t{1} << 19);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return Fail(absl::StrCat("epoll_create1: ", strerror(errno)));
  std::vector<tools::UniqueFd> ls;
  // The first port listens last: once it answers, every listener does.
  for (uint64_t i = listeners; i-- > 0;) {
    absl::StatusOr<tools::UniqueFd> l =
        tools::BindSocket(SOCK_STREAM, "127.0.0.1", static_cast<uint16_t>(port + i), 4096);
    if (!l.ok()) return Fail(std::string(l.status().message()));
    fcntl(l->get(), F_SETFL, O_NONBLOCK);
    epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t{1} << 32) | static_cast<uint32_t>(l->get());
    if (epoll_ctl(ep, EPOLL_CTL_ADD, l->get(), &ev) != 0) {
      return Fail(absl::StrCat("epoll_ctl: ", strerror(errno)));
    }
    ls.push_back(std::move(*l));
  }
  std::cout << "listening on 127.0.0.1:" << port << ".." << port + listeners - 1 << std::endl;
  std::vector<epoll_event> evs(1024);
  uint64_t accepted = 0;
  char buf[4096];
  const int timeout_ms = idle_s > 0 ? static_cast<int>(idle_s * 1000) : -1;
  for (;;) {
    const int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(absl::StrCat("epoll_wait: ", strerror(errno)));
    if (n == 0) break;  // idle
    for (int i = 0; i < n; ++i) {
      const int fd = static_cast<int>(evs[i].data.u64 & 0xffffffffu);
      if (evs[i].data.u64 >> 32) {
        for (;;) {
          const int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (c < 0) break;
          const int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          epoll_event ev = {};
          ev.events = EPOLLIN;
          ev.data.u64 = static_cast<uint32_t>(c);
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) != 0) {
            return Fail(absl::StrCat("epoll_ctl: ", strerror(errno)));
          }
          ++accepted;
        }
        continue;
      }
      const ssize_t k = read(fd, buf, sizeof(buf));
      if (k > 0) {
        if (!WriteAll(fd, buf, static_cast<size_t>(k))) close(fd);
      } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(fd);  // the client is done with it (closing removes it from the set)
      }
    }
  }
  std::cout << "accepted " << accepted << " connections" << std::endl;
  return tools::kExitOk;
}

double Percentile(std::vector<int64_t>* v, double p) {
  if (v->empty()) return 0;
  const size_t at = std::min(v->size() - 1, static_cast<size_t>(p / 100.0 * v->size()));
  std::nth_element(v->begin(), v->begin() + static_cast<ptrdiff_t>(at), v->end());
  return static_cast<double>((*v)[at]);
}

int RunClient(uint16_t port, uint64_t listeners, uint64_t conns, uint64_t duration_s,
              uint64_t idle_s, const std::vector<std::string>& watch) {
  RaiseFdLimit(conns + 256);
  const std::string self = std::to_string(getpid());
  const uint64_t avail0 = MemAvailableKib();
  const size_t fds0 = OpenFds();
  uint64_t pss0 = PssKib(self);
  for (const std::string& p : watch) pss0 += PssKib(p);
  std::vector<int> idle;
  idle.reserve(conns);
  const int64_t t0 = NowNs();
  for (uint64_t i = 0; i < conns; ++i) {
    const int fd = ConnectTo(static_cast<uint16_t>(port + i % listeners));
    if (fd < 0) {
      return Fail(absl::StrCat("connection ", i + 1, " of ", conns, ": ", strerror(errno)));
    }
    idle.push_back(fd);
  }
  const double connect_s = static_cast<double>(NowNs() - t0) / 1e9;

  // The busy connection beside the idle ones.
  const int ping = ConnectTo(port);
  if (ping < 0) return Fail(absl::StrCat("ping connection: ", strerror(errno)));
  char msg[64];
  std::memset(msg, 'p', sizeof(msg));
  std::vector<int64_t> half_rtt_ns;
  const int64_t end = NowNs() + static_cast<int64_t>(duration_s) * 1000000000;
  for (uint64_t i = 0; NowNs() < end && i < 50000000; ++i) {
    const int64_t s = NowNs();
    if (!WriteAll(ping, msg, sizeof(msg)) || !ReadAll(ping, msg, sizeof(msg))) {
      return Fail(absl::StrCat("ping-pong: ", strerror(errno)));
    }
    half_rtt_ns.push_back((NowNs() - s) / 2);
  }
  if (half_rtt_ns.empty()) return Fail("ping-pong made no round trip");

  // Idle: what the watched processes spend while nothing moves.
  const long hz = sysconf(_SC_CLK_TCK);
  std::vector<uint64_t> ticks0;
  for (const std::string& p : watch) ticks0.push_back(CpuTicks(p));
  const int64_t i0 = NowNs();
  timespec nap = {static_cast<time_t>(idle_s), 0};
  while (nanosleep(&nap, &nap) != 0 && errno == EINTR) {
  }
  const double idle_wall = static_cast<double>(NowNs() - i0) / 1e9;
  double watch_cpu_pct = 0;
  for (size_t i = 0; i < watch.size(); ++i) {
    watch_cpu_pct += 100.0 * static_cast<double>(CpuTicks(watch[i]) - ticks0[i]) /
                     static_cast<double>(hz) / idle_wall;
  }

  // Every idle connection carries one byte each way.
  uint64_t echoed = 0;
  for (size_t i = 0; i < idle.size(); ++i) {
    const char b = static_cast<char>('a' + i % 26);
    if (!WriteAll(idle[i], &b, 1)) return Fail(absl::StrCat("echo send ", i, ": ", strerror(errno)));
  }
  for (size_t i = 0; i < idle.size(); ++i) {
    char b = 0;
    if (!ReadAll(idle[i], &b, 1)) return Fail(absl::StrCat("echo recv ", i, ": ", strerror(errno)));
    if (b != static_cast<char>('a' + i % 26)) return Fail(absl::StrCat("echo ", i, " came back wrong"));
    ++echoed;
  }

  // Costs, with every connection having carried data.
  const size_t fds = OpenFds() - fds0;
  uint64_t pss1 = PssKib(self);
  for (const std::string& p : watch) pss1 += PssKib(p);
  const uint64_t pss = pss1 > pss0 ? pss1 - pss0 : 0;
  const uint64_t avail1 = MemAvailableKib();
  const double n = static_cast<double>(std::max<uint64_t>(conns, 1));
  char line[512];
  std::snprintf(line, sizeof(line),
                "hold: conns=%llu connect_s=%.3f p50_us=%.3f p99_us=%.3f fds_per_conn=%.3f "
                "pss_kib_per_conn=%.3f sys_kib_per_conn=%.3f watch_cpu_pct=%.3f echoed=%llu",
                static_cast<unsigned long long>(conns), connect_s,
                Percentile(&half_rtt_ns, 50) / 1000.0, Percentile(&half_rtt_ns, 99) / 1000.0,
                static_cast<double>(fds) / n, static_cast<double>(pss) / n,
                avail0 > avail1 ? static_cast<double>(avail0 - avail1) / n : 0.0, watch_cpu_pct,
                static_cast<unsigned long long>(echoed));
  std::cout << line << std::endl;
  for (int fd : idle) close(fd);
  close(ping);
  return tools::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  tools::ArgReader args(argc, argv);
  std::string mode, pid;
  std::vector<std::string> watch;
  uint64_t port = 0, listeners = 1, conns = 0, duration = 3, idle = 1, idle_timeout = 0;
  while (args.Next()) {
    std::string arg;
    if (args.Flag("--help", "-h")) {
      std::cout << kUsage;
      return tools::kExitOk;
    } else if (mode.empty() && args.Positional(&arg)) {
      mode = arg;
    } else if (args.Uint("--port", "-p", 1, 65535, &port)) {
    } else if (args.Uint("--listeners", "", 1, 64, &listeners)) {
    } else if (args.Uint("--conns", "-n", 0, 10000000, &conns)) {
    } else if (args.Uint("--duration", "", 1, 3600, &duration)) {
    } else if (args.Uint("--idle", "", 0, 3600, &idle)) {
    } else if (args.Uint("--idle-timeout", "", 1, 86400, &idle_timeout)) {
    } else if (args.Value("--watch-pid", "", &pid)) {
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) {
        return Usage("--watch-pid needs a process id, got '" + pid + "'");
      }
      watch.push_back(pid);
    } else {
      args.Unknown();
    }
  }
  if (!args.error().empty()) return Usage(args.error());
  if (port == 0) return Usage("--port P is required");
  if (port + listeners - 1 > 65535) return Usage("--port P + --listeners K passes 65535");
  if (mode == "server") return RunServer(static_cast<uint16_t>(port), listeners, idle_timeout);
  if (mode == "client") {
    return RunClient(static_cast<uint16_t>(port), listeners, conns, duration, idle, watch);
  }
  return Usage(mode.empty() ? "missing mode: 'server' or 'client'"
                            : absl::StrCat("unknown mode '", mode, "'"));
}
