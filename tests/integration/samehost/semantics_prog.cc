// Socket-semantics checks for same-host offload. The same binary runs with
// and without liboffload.so: every check states Linux behaviour, so passing
// without the library proves the expectation and passing with it proves the
// offloaded path matches.
//
//   semantics_prog checks          run every check; exit status = failures
//   semantics_prog echo-server F   TCP+UDP echo on 127.0.0.1:0, port to F
//   semantics_prog echo-client P N N round trips of TCP and UDP to port P
//   semantics_prog blast P         connect to P and stream until killed
//   semantics_prog features        offload-only checks (extra API, fork)
//   semantics_prog sharing [NAME]  sockets shared by processes and threads
//                                  (fork, exec, SCM_RIGHTS; issue 14), each
//                                  check in its own process, 30 s bound
//   semantics_prog paths N MS      every MS create a pair, print its path
//   semantics_prog idle S          blocked server + idle client for S s
//   semantics_prog many N          N pairs open at once; prints the split
//   semantics_prog families-hold S dual-stack listener, IPv4 + IPv6 pairs,
//                                  IPv6 UDP and a kernel IPv6 socket held
//                                  for S s (stats)
//
// SEMANTICS_FAMILY picks the families of the TCP checks' listener and
// connector (issue 18; kFamilies below): inet (default), inet6, dual,
// mapped, v6only, v4mapped_to_inet; the UDP check uses them too.
//
// EXPECT_OFFLOAD=1 additionally asserts that connections are offloaded
// (the shadow kernel socket of an offloaded pipe is not connected, so the
// raw getpeername syscall fails with ENOTCONN); EXPECT_OFFLOAD=0 asserts
// they are kernel connections.

#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace {

int g_failures = 0;
const char* g_check = "";
int g_expect_offload = -1;  // -1: do not check

#define CHECK_TRUE(cond)                                                               \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      fprintf(stderr, "FAIL [%s] %s:%d: %s (errno %d %s)\n", g_check, __FILE__, __LINE__, \
              #cond, errno, strerror(errno));                                          \
      ++g_failures;                                                                    \
      return;                                                                          \
    }                                                                                  \
  } while (0)

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

// The families the TCP checks run with (SEMANTICS_FAMILY): the listener's
// socket and address, the connector's, and the address the acceptor sees
// for both ends (Linux's view: a dual-stack listener's IPv4 peers are
// v4-mapped).
struct FamilyMode {
  const char* name;
  int lfam;
  const char* laddr;
  int v6only;  // -1: not set
  int cfam;
  const char* caddr;
  const char* aaddr;
};
const FamilyMode kFamilies[] = {
    {"inet", AF_INET, "127.0.0.1", -1, AF_INET, "127.0.0.1", "127.0.0.1"},
    {"inet6", AF_INET6, "::1", -1, AF_INET6, "::1", "::1"},
    {"dual", AF_INET6, "::", 0, AF_INET, "127.0.0.1", "::ffff:127.0.0.1"},
    {"mapped", AF_INET6, "::", 0, AF_INET6, "::ffff:127.0.0.1", "::ffff:127.0.0.1"},
    {"v6only", AF_INET6, "::", 1, AF_INET6, "::1", "::1"},
    {"v4mapped_to_inet", AF_INET, "127.0.0.1", -1, AF_INET6, "::ffff:127.0.0.1", "127.0.0.1"},
};
const FamilyMode* g_fam = &kFamilies[0];

// `addr`:`port` of `family` in *out; returns its length.
socklen_t MakeAddr(int family, const char* addr, uint16_t port, sockaddr_in6* out) {
  memset(out, 0, sizeof(*out));
  if (family == AF_INET6) {
    out->sin6_family = AF_INET6;
    out->sin6_port = htons(port);
    inet_pton(AF_INET6, addr, &out->sin6_addr);
    return sizeof(sockaddr_in6);
  }
  sockaddr_in* a = reinterpret_cast<sockaddr_in*>(out);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  inet_pton(AF_INET, addr, &a->sin_addr);
  return sizeof(sockaddr_in);
}

// The address of `a` as text ("" for another family).
std::string AddrText(const sockaddr_in6& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.sin6_family == AF_INET6) {
    inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof(buf));
  } else if (a.sin6_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, buf, sizeof(buf));
  }
  return buf;
}

uint16_t PortOf(int fd) {
  sockaddr_in6 a = {};  // sin_port and sin6_port are at the same offset
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin6_port);
}

int Listener(int type_flags = 0) {
  int fd = socket(g_fam->lfam, SOCK_STREAM | type_flags, 0);
  if (fd < 0) return -1;
  if (g_fam->v6only >= 0) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &g_fam->v6only, sizeof(int));
  }
  sockaddr_in6 a;
  const socklen_t len = MakeAddr(g_fam->lfam, g_fam->laddr, 0, &a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd, 16) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A connector's socket and the address it connects to for `port`.
int ConnectorSocket(int type_flags, uint16_t port, sockaddr_in6* to, socklen_t* to_len) {
  *to_len = MakeAddr(g_fam->cfam, g_fam->caddr, port, to);
  return socket(g_fam->cfam, SOCK_STREAM | type_flags, 0);
}

int Connect(uint16_t port, int type_flags = 0) {
  sockaddr_in6 a;
  socklen_t alen;
  int fd = ConnectorSocket(type_flags, port, &a, &alen);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), alen) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

// A connected pair: *c (client) and *s (accepted).
bool Pair(int* c, int* s) {
  int l = Listener();
  if (l < 0) return false;
  *c = Connect(PortOf(l));
  *s = accept(l, nullptr, nullptr);
  close(l);
  return *c >= 0 && *s >= 0;
}

// Checks the connection is (not) offloaded, per EXPECT_OFFLOAD.
bool PathAsExpected(int fd) {
  if (g_expect_offload < 0) return true;
  sockaddr_in6 a = {};
  socklen_t len = sizeof(a);
  const long rc = syscall(SYS_getpeername, fd, &a, &len);
  const bool offloaded = rc != 0 && errno == ENOTCONN;
  if (offloaded != (g_expect_offload == 1)) {
    fprintf(stderr, "[%s] fd %d is %s, expected %s\n", g_check, fd,
            offloaded ? "offloaded" : "a kernel connection",
            g_expect_offload ? "offloaded" : "kernel");
    return false;
  }
  return true;
}

bool WaitReadable(int fd, int ms) {
  pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

ssize_t RecvAll(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t k = recv(fd, buf + got, n - got, 0);
    if (k <= 0) return k;
    got += k;
  }
  return static_cast<ssize_t>(got);
}

// ------------------------------------------------------------------ checks

void CheckEchoAndNames() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  CHECK_TRUE(PathAsExpected(c));
  CHECK_TRUE(PathAsExpected(s));
  CHECK_TRUE(send(c, "ping", 4, 0) == 4);
  char buf[16] = {};
  CHECK_TRUE(RecvAll(s, buf, 4) == 4 && memcmp(buf, "ping", 4) == 0);
  CHECK_TRUE(write(s, "pong!", 5) == 5);
  CHECK_TRUE(RecvAll(c, buf, 5) == 5 && memcmp(buf, "pong!", 5) == 0);
  // Names in each socket's own family (issue 18: a dual-stack acceptor
  // sees an IPv4 connector as ::ffff:127.0.0.1).
  sockaddr_in6 cl = {}, cp = {}, sl = {}, sp = {};
  const socklen_t clen_want = g_fam->cfam == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  const socklen_t slen_want = g_fam->lfam == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  socklen_t len = sizeof(cl);
  CHECK_TRUE(getsockname(c, reinterpret_cast<sockaddr*>(&cl), &len) == 0 && len == clen_want);
  len = sizeof(cp);
  CHECK_TRUE(getpeername(c, reinterpret_cast<sockaddr*>(&cp), &len) == 0 && len == clen_want);
  len = sizeof(sl);
  CHECK_TRUE(getsockname(s, reinterpret_cast<sockaddr*>(&sl), &len) == 0 && len == slen_want);
  len = sizeof(sp);
  CHECK_TRUE(getpeername(s, reinterpret_cast<sockaddr*>(&sp), &len) == 0 && len == slen_want);
  CHECK_TRUE(cl.sin6_family == g_fam->cfam && cp.sin6_family == g_fam->cfam);
  CHECK_TRUE(sl.sin6_family == g_fam->lfam && sp.sin6_family == g_fam->lfam);
  CHECK_TRUE(cl.sin6_port == sp.sin6_port && cp.sin6_port == sl.sin6_port);
  CHECK_TRUE(AddrText(cl) == g_fam->caddr && AddrText(cp) == g_fam->caddr);
  CHECK_TRUE(AddrText(sl) == g_fam->aaddr && AddrText(sp) == g_fam->aaddr);
  // A short buffer gets a truncated name and the full length, as Linux.
  sockaddr_in6 shortbuf = {};
  len = sizeof(sa_family_t);
  CHECK_TRUE(getsockname(s, reinterpret_cast<sockaddr*>(&shortbuf), &len) == 0 &&
             len == slen_want && shortbuf.sin6_family == g_fam->lfam && shortbuf.sin6_port == 0);
  iovec iov[3] = {{const_cast<char*>("ab"), 2}, {const_cast<char*>("cde"), 3}, {const_cast<char*>("f"), 1}};
  CHECK_TRUE(writev(c, iov, 3) == 6);
  char x[3], y[3];
  iovec riov[2] = {{x, 3}, {y, 3}};
  CHECK_TRUE(WaitReadable(s, 2000));
  ssize_t got = 0;
  for (int i = 0; i < 100 && got < 6; ++i) {
    iovec part[2] = {riov[0], riov[1]};
    if (got >= 3) {
      part[0] = {y + (got - 3), size_t(3 - (got - 3))};
      const ssize_t k = readv(s, part, 1);
      if (k > 0) got += k;
    } else {
      part[0] = {x + got, size_t(3 - got)};
      const ssize_t k = readv(s, part, 2);
      if (k > 0) got += k;
    }
  }
  CHECK_TRUE(got == 6 && memcmp(x, "abc", 3) == 0 && memcmp(y, "def", 3) == 0);
  close(c);
  close(s);
}

void CheckEagain() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  char b;
  CHECK_TRUE(recv(s, &b, 1, MSG_DONTWAIT) == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
  int fl = fcntl(s, F_GETFL);
  CHECK_TRUE((fl & O_NONBLOCK) == 0);
  CHECK_TRUE(fcntl(s, F_SETFL, fl | O_NONBLOCK) == 0);
  CHECK_TRUE((fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
  CHECK_TRUE(read(s, &b, 1) == -1 && errno == EAGAIN);
  int on = 0;
  CHECK_TRUE(ioctl(s, FIONBIO, &on) == 0);
  CHECK_TRUE((fcntl(s, F_GETFL) & O_NONBLOCK) == 0);
  int l = Listener(SOCK_NONBLOCK);
  CHECK_TRUE(l >= 0);
  CHECK_TRUE(accept(l, nullptr, nullptr) == -1 && errno == EAGAIN);
  // Fill the send side of a non-blocking socket: EAGAIN, never a hang.
  CHECK_TRUE(fcntl(c, F_SETFL, O_NONBLOCK) == 0);
  static char big[65536];
  ssize_t total = 0;
  int rounds = 0;
  for (; rounds < 10000; ++rounds) {
    const ssize_t k = send(c, big, sizeof(big), 0);
    if (k < 0) break;
    total += k;
  }
  CHECK_TRUE(rounds < 10000 && errno == EAGAIN && total > 0);
  close(l);
  close(c);
  close(s);
}

void CheckRcvTimeo() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  timeval tv = {0, 150000};
  CHECK_TRUE(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
  char b;
  const int64_t t0 = NowMs();
  CHECK_TRUE(recv(s, &b, 1, 0) == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
  const int64_t dt = NowMs() - t0;
  CHECK_TRUE(dt >= 100 && dt < 3000);
  close(c);
  close(s);
}

void OnSignal(int) {}

void CheckEintr() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;  // no SA_RESTART: a blocked recv returns EINTR
  sigaction(SIGUSR1, &sa, nullptr);
  std::atomic<int> result{0}, err{0};
  std::atomic<bool> started{false};
  pthread_t self_thread;
  std::thread t([&] {
    self_thread = pthread_self();
    started = true;
    char b;
    result = static_cast<int>(recv(s, &b, 1, 0));
    err = errno;
  });
  while (!started) usleep(1000);
  usleep(100000);  // let it block (a late signal is also fine: the loop re-sends)
  for (int i = 0; i < 50 && result == 0; ++i) {
    pthread_kill(t.native_handle(), SIGUSR1);
    usleep(20000);
  }
  if (result == 0) send(c, "x", 1, 0);  // unblock before failing
  t.join();
  CHECK_TRUE(result == -1 && err == EINTR);
  close(c);
  close(s);
}

// Waits (bounded, 5 s) until thread `tid` of this process sleeps in a
// system call: the same call number read three times in a row, not
// sched_yield (a spinning waiter passes through it).
bool WaitAsleepInSyscall(pid_t tid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
  long last = -1;
  int same = 0;
  for (int i = 0; i < 2500; ++i) {
    char line[64] = {};
    FILE* f = fopen(path, "r");
    if (f != nullptr) {
      if (fgets(line, sizeof(line), f) == nullptr) line[0] = 0;
      fclose(f);
    }
    char* end = nullptr;
    const long nr = strtol(line, &end, 10);
    const bool asleep = end != line && nr >= 0 && nr != SYS_sched_yield;
    same = asleep && nr == last ? same + 1 : asleep ? 1 : 0;
    last = asleep ? nr : -1;
    if (same >= 3) return true;
    usleep(2000);  // poll interval
  }
  return false;
}

std::atomic<int> g_restart_signals{0};
void OnRestartSignal(int) { ++g_restart_signals; }

// Runs `blocked` (a blocking call that returns >= 0 once `release` ran) on
// a thread, interrupts it three times with SIGUSR1 while it sleeps, then
// runs `release`. True if the call went on to succeed.
template <typename Blocked, typename Release>
bool SurvivesSignals(Blocked blocked, Release release) {
  std::atomic<pid_t> tid{0};
  std::atomic<long> result{-2};
  std::atomic<int> err{0};
  std::thread t([&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    result = blocked();
    err = errno;
  });
  while (tid.load() == 0) usleep(1000);
  bool interrupted = true;
  for (int k = 0; k < 3 && result.load() == -2; ++k) {
    const int before = g_restart_signals.load();
    if (!WaitAsleepInSyscall(tid.load())) interrupted = false;
    pthread_kill(t.native_handle(), SIGUSR1);
    for (int i = 0; i < 5000 && g_restart_signals.load() == before; ++i) usleep(1000);
  }
  release();
  t.join();
  if (result < 0) fprintf(stderr, "blocked call returned %ld errno %d\n", result.load(), err.load());
  return interrupted && result >= 0;
}

// A handler installed with SA_RESTART: a blocked recv, recvfrom and accept
// (no SO_RCVTIMEO) go on after it, as Linux restarts them (signal(7)); the
// fork-per-connection server with a SIGCHLD handler from signal() relies
// on it. In a child whose only handler is that one.
void CheckSaRestart() {
  const pid_t pid = fork();
  if (pid == 0) {
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      struct sigaction d = {};
      d.sa_handler = SIG_DFL;
      sigaction(sig, &d, nullptr);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {};
    sa.sa_handler = OnRestartSignal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, nullptr);
    int ok = 1;
    int c, s;
    if (!Pair(&c, &s)) _exit(3);
    if (!SurvivesSignals(
            [&] {
              char b;
              return static_cast<long>(recv(s, &b, 1, 0));
            },
            [&] { send(c, "x", 1, 0); })) {
      fprintf(stderr, "recv did not survive SA_RESTART signals\n");
      ok = 0;
    }
    close(c);
    close(s);
    const int l = Listener();
    if (l < 0) _exit(3);
    int conn = -1;
    if (!SurvivesSignals([&] { return static_cast<long>(accept(l, nullptr, nullptr)); },
                         [&] { conn = Connect(PortOf(l)); })) {
      fprintf(stderr, "accept did not survive SA_RESTART signals\n");
      ok = 0;
    }
    close(conn);
    close(l);
    const int u = socket(g_fam->lfam, SOCK_DGRAM, 0);
    sockaddr_in6 ua;
    socklen_t ualen = MakeAddr(g_fam->lfam, g_fam->laddr, 0, &ua);
    if (u < 0 || bind(u, reinterpret_cast<sockaddr*>(&ua), ualen) != 0) _exit(3);
    sockaddr_in6 to;
    const socklen_t tolen = MakeAddr(g_fam->cfam, g_fam->caddr, PortOf(u), &to);
    const int us = socket(g_fam->cfam, SOCK_DGRAM, 0);
    if (!SurvivesSignals(
            [&] {
              char b[8];
              return static_cast<long>(recvfrom(u, b, sizeof(b), 0, nullptr, nullptr));
            },
            [&] { sendto(us, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), tolen); })) {
      fprintf(stderr, "recvfrom did not survive SA_RESTART signals\n");
      ok = 0;
    }
    close(us);
    close(u);
    fflush(stderr);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  CHECK_TRUE(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

void CheckPeekWaitall() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  CHECK_TRUE(send(c, "hello", 5, 0) == 5);
  char buf[16] = {};
  CHECK_TRUE(WaitReadable(s, 2000));
  CHECK_TRUE(recv(s, buf, 5, MSG_PEEK) >= 1 && buf[0] == 'h');
  std::thread t([&] {
    usleep(50000);
    send(c, " world", 6, 0);
  });
  memset(buf, 0, sizeof(buf));
  CHECK_TRUE(recv(s, buf, 11, MSG_WAITALL) == 11);
  t.join();
  CHECK_TRUE(memcmp(buf, "hello world", 11) == 0);
  close(c);
  close(s);
}

std::atomic<int> g_sigpipes{0};
void OnSigpipe(int) { ++g_sigpipes; }

void CheckEpipe() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  struct sigaction sa = {};
  sa.sa_handler = OnSigpipe;
  sigaction(SIGPIPE, &sa, nullptr);
  close(s);
  // Linux: the first write after the peer's close may still succeed (the
  // RST comes back), then EPIPE (CLOSE_WAIT + RST -> EPIPE).
  int err = 0;
  for (int i = 0; i < 100 && err == 0; ++i) {
    if (send(c, "x", 1, MSG_NOSIGNAL) < 0) err = errno;
    usleep(1000);
  }
  CHECK_TRUE(err == EPIPE || err == ECONNRESET);
  const int before = g_sigpipes;
  CHECK_TRUE(send(c, "x", 1, 0) == -1 && errno == EPIPE);
  CHECK_TRUE(g_sigpipes == before + 1);
  char b;
  CHECK_TRUE(recv(c, &b, 1, 0) == 0);  // the FIN was seen: EOF
  close(c);
}

void CheckHalfClose() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  CHECK_TRUE(send(c, "req", 3, 0) == 3);
  CHECK_TRUE(shutdown(c, SHUT_WR) == 0);
  char buf[8];
  CHECK_TRUE(RecvAll(s, buf, 3) == 3);
  CHECK_TRUE(recv(s, buf, 8, 0) == 0);  // EOF after the data
  CHECK_TRUE(send(s, "resp", 4, 0) == 4);  // the other direction still works
  CHECK_TRUE(RecvAll(c, buf, 4) == 4 && memcmp(buf, "resp", 4) == 0);
  CHECK_TRUE(send(c, "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE);
  close(s);
  CHECK_TRUE(recv(c, buf, 8, 0) == 0);
  close(c);
}

void CheckRefused() {
  int l = Listener();
  CHECK_TRUE(l >= 0);
  const uint16_t port = PortOf(l);
  close(l);
  sockaddr_in6 a;
  socklen_t alen;
  int fd = ConnectorSocket(0, port, &a, &alen);
  CHECK_TRUE(connect(fd, reinterpret_cast<sockaddr*>(&a), alen) == -1 &&
             errno == ECONNREFUSED);
  close(fd);
  // Non-blocking: EINPROGRESS (or immediate), then SO_ERROR says why.
  fd = ConnectorSocket(SOCK_NONBLOCK, port, &a, &alen);
  const int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), alen);
  int err = rc == 0 ? 0 : errno;
  if (err == EINPROGRESS) {
    pollfd p = {fd, POLLOUT, 0};
    CHECK_TRUE(poll(&p, 1, 2000) == 1);
    socklen_t len = sizeof(err);
    CHECK_TRUE(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
  }
  CHECK_TRUE(err == ECONNREFUSED);
  close(fd);
}

void CheckNonblockingConnect() {
  int l = Listener();
  CHECK_TRUE(l >= 0);
  sockaddr_in6 a;
  socklen_t alen;
  int fd = ConnectorSocket(SOCK_NONBLOCK, PortOf(l), &a, &alen);
  const int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), alen);
  CHECK_TRUE(rc == 0 || errno == EINPROGRESS);
  pollfd p = {fd, POLLOUT, 0};
  CHECK_TRUE(poll(&p, 1, 2000) == 1 && (p.revents & POLLOUT));
  int err = -1;
  socklen_t len = sizeof(err);
  CHECK_TRUE(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0);
  int s = accept(l, nullptr, nullptr);
  CHECK_TRUE(s >= 0);
  CHECK_TRUE(PathAsExpected(fd));
  CHECK_TRUE(send(fd, "z", 1, 0) == 1);
  char b;
  CHECK_TRUE(RecvAll(s, &b, 1) == 1 && b == 'z');
  close(fd);
  close(s);
  close(l);
}

void CheckFionread() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  char buf[123] = {};
  CHECK_TRUE(send(c, buf, sizeof(buf), 0) == 123);
  int n = 0;
  const int64_t deadline = NowMs() + 2000;
  while (NowMs() < deadline) {
    CHECK_TRUE(ioctl(s, FIONREAD, &n) == 0);
    if (n == 123) break;
    usleep(1000);
  }
  CHECK_TRUE(n == 123);
  close(c);
  close(s);
}

void CheckEpollModes() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  CHECK_TRUE(ep >= 0);
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = 7;
  CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
  CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == -1 && errno == EEXIST);
  epoll_event out[4];
  CHECK_TRUE(epoll_wait(ep, out, 4, 0) == 0);
  CHECK_TRUE(send(c, "ab", 2, 0) == 2);
  // Level-triggered: reported again while unread.
  CHECK_TRUE(epoll_wait(ep, out, 4, 2000) == 1 && out[0].data.u64 == 7 && (out[0].events & EPOLLIN));
  CHECK_TRUE(epoll_wait(ep, out, 4, 0) == 1);
  char b[2];
  CHECK_TRUE(RecvAll(s, b, 2) == 2);
  CHECK_TRUE(epoll_wait(ep, out, 4, 0) == 0);
  // Edge-triggered: once per arrival.
  ev.events = EPOLLIN | EPOLLET;
  CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) == 0);
  CHECK_TRUE(send(c, "a", 1, 0) == 1);
  CHECK_TRUE(epoll_wait(ep, out, 4, 2000) == 1);
  CHECK_TRUE(epoll_wait(ep, out, 4, 50) == 0);
  CHECK_TRUE(send(c, "b", 1, 0) == 1);
  CHECK_TRUE(epoll_wait(ep, out, 4, 2000) == 1);
  CHECK_TRUE(RecvAll(s, b, 2) == 2);
  // One-shot: once, then disabled until EPOLL_CTL_MOD.
  ev.events = EPOLLIN | EPOLLONESHOT;
  CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) == 0);
  CHECK_TRUE(send(c, "c", 1, 0) == 1);
  CHECK_TRUE(epoll_wait(ep, out, 4, 2000) == 1);
  CHECK_TRUE(epoll_wait(ep, out, 4, 50) == 0);
  CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) == 0);
  CHECK_TRUE(epoll_wait(ep, out, 4, 2000) == 1);
  CHECK_TRUE(RecvAll(s, b, 1) == 1);
  // RDHUP on the peer's half-close.
  ev.events = EPOLLIN | EPOLLRDHUP;
  CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) == 0);
  CHECK_TRUE(shutdown(c, SHUT_WR) == 0);
  CHECK_TRUE(epoll_wait(ep, out, 4, 2000) == 1 && (out[0].events & EPOLLRDHUP) &&
             (out[0].events & EPOLLIN));
  // EPOLLOUT on a writable socket; EPOLLHUP once both directions are shut.
  ev.events = EPOLLOUT;
  CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) == 0);
  CHECK_TRUE(epoll_wait(ep, out, 4, 2000) == 1 && (out[0].events & EPOLLOUT));
  CHECK_TRUE(shutdown(s, SHUT_WR) == 0);
  CHECK_TRUE(epoll_wait(ep, out, 4, 2000) == 1 && (out[0].events & EPOLLHUP));
  // Closing a watched fd removes it from the set.
  close(s);
  CHECK_TRUE(epoll_wait(ep, out, 4, 50) == 0);
  close(c);
  close(ep);
}

// Many watched connections, few active at a time: every arrival is
// reported (sleeping or spinning, level- and edge-triggered), nothing else
// is, and closed or removed fds stay silent. Under offload the set names
// the sockets its wakers woke (hint ring) instead of looking at all of
// them; a lost or misrouted hint shows up here as a missing or extra fd.
void CheckEpollManyEntries() {
  constexpr int kPairs = 300;
  int l = Listener();
  CHECK_TRUE(l >= 0);
  std::vector<int> c(kPairs, -1), s(kPairs, -1);
  for (int i = 0; i < kPairs; ++i) {
    c[i] = Connect(PortOf(l));
    s[i] = accept(l, nullptr, nullptr);
    CHECK_TRUE(c[i] >= 0 && s[i] >= 0);
    if (c[i] < 0 || s[i] < 0) return;
  }
  close(l);
  CHECK_TRUE(PathAsExpected(s[0]) && PathAsExpected(s[kPairs - 1]));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  CHECK_TRUE(ep >= 0);
  for (int i = 0; i < kPairs; ++i) {
    epoll_event ev = {};
    ev.events = EPOLLIN | (i % 2 ? uint32_t{EPOLLET} : 0u);
    ev.data.u64 = static_cast<uint64_t>(i);
    CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_ADD, s[i], &ev) == 0);
  }
  std::vector<bool> open_(kPairs, true);
  uint32_t rng = 12345;
  auto next = [&rng] {
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) % kPairs;
  };
  epoll_event out[64];
  for (int round = 0; round < 40; ++round) {
    // Rounds alternate between a writer thread (the waiter may be asleep)
    // and writes before the wait (found without sleeping).
    std::vector<int> chosen;
    for (int k = 0; k < 1 + round % 7; ++k) {
      const int i = static_cast<int>(next());
      if (open_[i] && std::find(chosen.begin(), chosen.end(), i) == chosen.end()) chosen.push_back(i);
    }
    std::thread writer;
    if (round % 2 == 0) {
      writer = std::thread([&] {
        for (int i : chosen) send(c[i], "x", 1, 0);
      });
    } else {
      for (int i : chosen) CHECK_TRUE(send(c[i], "x", 1, 0) == 1);
    }
    std::vector<int> seen;
    while (seen.size() < chosen.size()) {
      const int n = epoll_wait(ep, out, 64, 5000);
      CHECK_TRUE(n > 0);
      if (n <= 0) break;
      for (int k = 0; k < n; ++k) {
        const int i = static_cast<int>(out[k].data.u64);
        const bool wanted = std::find(chosen.begin(), chosen.end(), i) != chosen.end();
        if (!wanted) fprintf(stderr, "[%s] round %d: fd of pair %d reported, idle\n", g_check, round, i);
        CHECK_TRUE(wanted);
        if (wanted && std::find(seen.begin(), seen.end(), i) == seen.end()) seen.push_back(i);
      }
    }
    if (writer.joinable()) writer.join();
    for (int i : chosen) {
      char b;
      CHECK_TRUE(RecvAll(s[i], &b, 1) == 1);
    }
    CHECK_TRUE(epoll_wait(ep, out, 64, 0) == 0);
    // Every fifth round closes one watched fd and removes another: the
    // kernel forgets both, and their peers' sends wake nothing.
    if (round % 5 == 4) {
      const int a = static_cast<int>(next()), b = static_cast<int>(next());
      if (open_[a]) {
        close(s[a]);
        open_[a] = false;
        send(c[a], "y", 1, MSG_NOSIGNAL);
      }
      if (open_[b] && b != a) {
        CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_DEL, s[b], nullptr) == 0);
        send(c[b], "y", 1, MSG_NOSIGNAL);
        char d;
        CHECK_TRUE(RecvAll(s[b], &d, 1) == 1);
        close(s[b]);
        open_[b] = false;
      }
      CHECK_TRUE(epoll_wait(ep, out, 64, 50) == 0);
    }
  }
  for (int i = 0; i < kPairs; ++i) {
    close(c[i]);
    if (open_[i]) close(s[i]);
  }
  close(ep);
}

void CheckEpollWakeup() {
  // A thread blocked in epoll_wait with an infinite timeout wakes up for
  // data sent later (the sleep path, not the spin).
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  int ep = epoll_create1(0);
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = s;
  CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
  std::thread t([&] {
    usleep(300000);
    send(c, "w", 1, 0);
  });
  epoll_event out;
  const int n = epoll_wait(ep, &out, 1, 5000);
  t.join();
  CHECK_TRUE(n == 1 && out.data.fd == s);
  close(ep);
  close(c);
  close(s);
}

void CheckSelectPollMixed() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  int p[2];
  CHECK_TRUE(pipe(p) == 0);
  pollfd fds[2] = {{s, POLLIN, 0}, {p[0], POLLIN, 0}};
  CHECK_TRUE(poll(fds, 2, 0) == 0);
  CHECK_TRUE(write(p[1], "k", 1) == 1);
  CHECK_TRUE(poll(fds, 2, 2000) == 1 && fds[1].revents == POLLIN && fds[0].revents == 0);
  CHECK_TRUE(send(c, "o", 1, 0) == 1);
  const int64_t deadline = NowMs() + 2000;
  int n = 0;
  while (NowMs() < deadline && n != 2) n = poll(fds, 2, 100);
  CHECK_TRUE(n == 2 && (fds[0].revents & POLLIN));
  fd_set r;
  FD_ZERO(&r);
  FD_SET(s, &r);
  FD_SET(p[0], &r);
  timeval tv = {2, 0};
  CHECK_TRUE(select(std::max(s, p[0]) + 1, &r, nullptr, nullptr, &tv) == 2);
  CHECK_TRUE(FD_ISSET(s, &r) && FD_ISSET(p[0], &r));
  char b;
  CHECK_TRUE(read(p[0], &b, 1) == 1 && recv(s, &b, 1, 0) == 1);
  FD_ZERO(&r);
  FD_SET(s, &r);
  FD_SET(p[0], &r);
  fd_set w;
  FD_ZERO(&w);
  FD_SET(c, &w);
  tv = {0, 100000};
  CHECK_TRUE(select(std::max({s, p[0], c}) + 1, &r, &w, nullptr, &tv) == 1 && FD_ISSET(c, &w));
  // A blocked poll() on an offloaded fd wakes for data sent later.
  std::thread t([&] {
    usleep(200000);
    send(c, "q", 1, 0);
  });
  pollfd one = {s, POLLIN, 0};
  const int rc = poll(&one, 1, 5000);
  t.join();
  CHECK_TRUE(rc == 1 && (one.revents & POLLIN));
  close(p[0]);
  close(p[1]);
  close(c);
  close(s);
}

void CheckDup() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  int d = dup(s);
  CHECK_TRUE(d >= 0);
  close(s);  // the connection stays open through the dup
  CHECK_TRUE(send(c, "d", 1, 0) == 1);
  char b;
  CHECK_TRUE(RecvAll(d, &b, 1) == 1 && b == 'd');
  int e = 100;
  CHECK_TRUE(dup2(d, e) == e);
  CHECK_TRUE(send(e, "e", 1, 0) == 1);
  CHECK_TRUE(RecvAll(c, &b, 1) == 1 && b == 'e');
  close(d);
  close(e);
  CHECK_TRUE(recv(c, &b, 1, 0) == 0);  // last fd closed: FIN
  close(c);
}

void CheckResetOnCloseWithUnread() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  CHECK_TRUE(send(c, "unread", 6, 0) == 6);
  CHECK_TRUE(WaitReadable(s, 2000));
  close(s);  // unread data: RST (RFC 2525 2.17)
  char b;
  const int64_t deadline = NowMs() + 2000;
  ssize_t rc;
  do {
    rc = recv(c, &b, 1, MSG_DONTWAIT);
  } while (rc < 0 && errno == EAGAIN && NowMs() < deadline);
  CHECK_TRUE(rc == -1 && errno == ECONNRESET);
  close(c);
}

// UDP in the mode's families (issue 18): the receiver `b` is the mode's
// listener side, the sender `a` the connector side, bound to its family's
// wildcard; `b` sees `a` as the acceptor would.
void CheckUdp() {
  int a = socket(g_fam->cfam, SOCK_DGRAM, 0);
  int b = socket(g_fam->lfam, SOCK_DGRAM, 0);
  if (g_fam->v6only >= 0) {
    CHECK_TRUE(setsockopt(b, IPPROTO_IPV6, IPV6_V6ONLY, &g_fam->v6only, sizeof(int)) == 0);
  }
  sockaddr_in6 la, lb;
  socklen_t la_len = MakeAddr(g_fam->cfam, g_fam->cfam == AF_INET6 ? "::" : "0.0.0.0", 0, &la);
  socklen_t lb_len = MakeAddr(g_fam->lfam, g_fam->laddr, 0, &lb);
  CHECK_TRUE(bind(a, reinterpret_cast<sockaddr*>(&la), la_len) == 0);
  CHECK_TRUE(bind(b, reinterpret_cast<sockaddr*>(&lb), lb_len) == 0);
  const uint16_t pa = PortOf(a), pb = PortOf(b);
  sockaddr_in6 to_b;
  const socklen_t to_b_len = MakeAddr(g_fam->cfam, g_fam->caddr, pb, &to_b);
  for (int i = 0; i < 3; ++i) {
    char msg[32];
    const int n = snprintf(msg, sizeof(msg), "dgram %d", i);
    CHECK_TRUE(sendto(a, msg, n, 0, reinterpret_cast<sockaddr*>(&to_b), to_b_len) == n);
  }
  const socklen_t name_len = g_fam->lfam == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  for (int i = 0; i < 3; ++i) {
    char buf[64] = {};
    sockaddr_in6 from = {};
    socklen_t len = sizeof(from);
    CHECK_TRUE(WaitReadable(b, 2000));
    const ssize_t n = recvfrom(b, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
    char want[32];
    snprintf(want, sizeof(want), "dgram %d", i);
    CHECK_TRUE(n == static_cast<ssize_t>(strlen(want)) && strcmp(buf, want) == 0);
    CHECK_TRUE(len == name_len && from.sin6_family == g_fam->lfam);
    CHECK_TRUE(ntohs(from.sin6_port) == pa && AddrText(from) == g_fam->aaddr);
  }
  // Reply on a connected socket; truncation keeps datagram boundaries.
  sockaddr_in6 to_a;
  const socklen_t to_a_len = MakeAddr(g_fam->lfam, g_fam->aaddr, pa, &to_a);
  CHECK_TRUE(connect(b, reinterpret_cast<sockaddr*>(&to_a), to_a_len) == 0);
  CHECK_TRUE(send(b, "0123456789", 10, 0) == 10);
  CHECK_TRUE(send(b, "xy", 2, 0) == 2);
  char small[4];
  CHECK_TRUE(WaitReadable(a, 2000));
  sockaddr_in6 from = {};
  socklen_t len = sizeof(from);
  CHECK_TRUE(recvfrom(a, small, 4, 0, reinterpret_cast<sockaddr*>(&from), &len) == 4 &&
             memcmp(small, "0123", 4) == 0);
  CHECK_TRUE(from.sin6_family == g_fam->cfam && AddrText(from) == g_fam->caddr &&
             ntohs(from.sin6_port) == pb);
  CHECK_TRUE(WaitReadable(a, 2000));
  CHECK_TRUE(recv(a, small, 4, 0) == 2 && memcmp(small, "xy", 2) == 0);
  char b2;
  CHECK_TRUE(recv(a, &b2, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN);
  close(a);
  close(b);
  // An unbound sender is bound by its first send, in its own family.
  b = socket(g_fam->lfam, SOCK_DGRAM, 0);
  if (g_fam->v6only >= 0) {
    CHECK_TRUE(setsockopt(b, IPPROTO_IPV6, IPV6_V6ONLY, &g_fam->v6only, sizeof(int)) == 0);
  }
  lb_len = MakeAddr(g_fam->lfam, g_fam->laddr, 0, &lb);
  CHECK_TRUE(bind(b, reinterpret_cast<sockaddr*>(&lb), lb_len) == 0);
  MakeAddr(g_fam->cfam, g_fam->caddr, PortOf(b), &to_b);
  int c = socket(g_fam->cfam, SOCK_DGRAM, 0);
  CHECK_TRUE(sendto(c, "auto", 4, 0, reinterpret_cast<sockaddr*>(&to_b), to_b_len) == 4);
  char buf[8] = {};
  from = {};
  len = sizeof(from);
  CHECK_TRUE(WaitReadable(b, 2000));
  CHECK_TRUE(recvfrom(b, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len) == 4 &&
             memcmp(buf, "auto", 4) == 0);
  CHECK_TRUE(from.sin6_family == g_fam->lfam && AddrText(from) == g_fam->aaddr &&
             ntohs(from.sin6_port) == PortOf(c));
  close(c);
  close(b);
}

void CheckShutdownWakesBlockedRecv() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  std::atomic<ssize_t> got{-2};
  std::thread t([&] {
    char b;
    got = recv(s, &b, 1, 0);
  });
  usleep(100000);
  CHECK_TRUE(shutdown(s, SHUT_RDWR) == 0);
  for (int i = 0; i < 300 && got == -2; ++i) usleep(10000);
  if (got == -2) send(c, "x", 1, 0);  // unblock before failing
  t.join();
  CHECK_TRUE(got == 0);
  close(c);
  close(s);
  // UDP, with no port yet and bound (offloaded): shutdown() answers
  // ENOTCONN but still wakes the receiver, whose recv returns 0 (a way to
  // stop a receiver thread). Under offload the first waits where the
  // decision can wake it (client io.cc), the second on its rings.
  for (bool bound : {false, true}) {
    const int u = socket(g_fam->lfam, SOCK_DGRAM, 0);
    if (bound) {
      sockaddr_in6 a;
      const socklen_t alen = MakeAddr(g_fam->lfam, g_fam->laddr, 0, &a);
      CHECK_TRUE(bind(u, reinterpret_cast<sockaddr*>(&a), alen) == 0);
    }
    std::atomic<ssize_t> ugot{-2};
    std::atomic<pid_t> tid{0};
    std::thread ut([&] {
      tid = static_cast<pid_t>(syscall(SYS_gettid));
      char b;
      ugot = recv(u, &b, 1, 0);
    });
    while (tid.load() == 0) usleep(1000);
    CHECK_TRUE(WaitAsleepInSyscall(tid.load()));
    CHECK_TRUE(shutdown(u, SHUT_RDWR) == -1 && errno == ENOTCONN);
    for (int i = 0; i < 300 && ugot == -2; ++i) usleep(10000);
    if (ugot == -2) {
      // Nothing can unblock it now: fail without hanging.
      fprintf(stderr, "FAIL [%s] recv on a %s UDP socket not woken by shutdown\n", g_check,
              bound ? "bound" : "portless");
      fflush(stderr);
      _exit(1);
    }
    ut.join();
    CHECK_TRUE(ugot == 0);
    // Linux: a non-blocking receive still answers EAGAIN.
    char b;
    CHECK_TRUE(recv(u, &b, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    close(u);
  }
}

// UDP shutdown, as Linux's: SHUT_RD makes the socket readable with
// EPOLLRDHUP (datagrams still arrive and are read), SHUT_WR fails sends
// with EPIPE, both directions add EPOLLHUP.
void CheckUdpShutdown() {
  signal(SIGPIPE, SIG_IGN);
  sockaddr_in6 a;
  socklen_t alen = MakeAddr(g_fam->lfam, g_fam->laddr, 0, &a);
  const int r = socket(g_fam->lfam, SOCK_DGRAM, 0);
  const int s = socket(g_fam->cfam, SOCK_DGRAM, 0);  // bound by its first send
  CHECK_TRUE(bind(r, reinterpret_cast<sockaddr*>(&a), alen) == 0);
  sockaddr_in6 to;
  const socklen_t tolen = MakeAddr(g_fam->cfam, g_fam->caddr, PortOf(r), &to);
  CHECK_TRUE(sendto(s, "a", 1, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 1);
  char b[4];
  CHECK_TRUE(WaitReadable(r, 2000) && recv(r, b, sizeof(b), 0) == 1);
  const int ep = epoll_create1(0);
  epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLRDHUP;
  CHECK_TRUE(epoll_ctl(ep, EPOLL_CTL_ADD, r, &ev) == 0);
  CHECK_TRUE(epoll_wait(ep, &ev, 1, 0) == 0);
  CHECK_TRUE(shutdown(r, SHUT_RD) == -1 && errno == ENOTCONN);
  CHECK_TRUE(epoll_wait(ep, &ev, 1, 1000) == 1 && ev.events == (EPOLLIN | EPOLLRDHUP));
  CHECK_TRUE(sendto(s, "b", 1, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 1);
  for (int i = 0; i < 200; ++i) {
    if (recv(r, b, sizeof(b), MSG_DONTWAIT) == 1) {
      b[3] = 'y';
      break;
    }
    usleep(5000);
  }
  CHECK_TRUE(b[0] == 'b' && b[3] == 'y');
  CHECK_TRUE(shutdown(s, SHUT_WR) == -1 && errno == ENOTCONN);
  CHECK_TRUE(sendto(s, "c", 1, 0, reinterpret_cast<sockaddr*>(&to), tolen) == -1 &&
             errno == EPIPE);
  CHECK_TRUE(shutdown(r, SHUT_WR) == -1 && errno == ENOTCONN);
  CHECK_TRUE(epoll_wait(ep, &ev, 1, 1000) == 1 &&
             ev.events == (EPOLLIN | EPOLLRDHUP | EPOLLHUP));
  close(ep);
  close(s);
  close(r);
}

// Options that ask for receive control messages, set on a bound (under
// offload: already offloaded) UDP socket: the datagrams that follow carry
// them, as on Linux (the offload path cannot fill them, so the socket goes
// back to the kernel).
void CheckUdpControlMessages() {
  const bool v6 = g_fam->lfam == AF_INET6;
  struct Opt {
    int level, name, cmsg_level, cmsg_type;
  };
  const Opt opts[] = {
      {SOL_SOCKET, SO_TIMESTAMP, SOL_SOCKET, SO_TIMESTAMP},
      v6 ? Opt{IPPROTO_IPV6, IPV6_RECVPKTINFO, IPPROTO_IPV6, IPV6_PKTINFO}
         : Opt{IPPROTO_IP, IP_PKTINFO, IPPROTO_IP, IP_PKTINFO},
  };
  for (const Opt& o : opts) {
    sockaddr_in6 a;
    const socklen_t alen = MakeAddr(g_fam->lfam, g_fam->laddr, 0, &a);
    const int r = socket(g_fam->lfam, SOCK_DGRAM, 0);
    const int s = socket(g_fam->cfam, SOCK_DGRAM, 0);
    CHECK_TRUE(bind(r, reinterpret_cast<sockaddr*>(&a), alen) == 0);
    sockaddr_in6 to;
    const socklen_t tolen = MakeAddr(g_fam->cfam, g_fam->caddr, PortOf(r), &to);
    // A first datagram before the option (it may travel offloaded).
    CHECK_TRUE(sendto(s, "a", 1, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 1);
    char b[8];
    CHECK_TRUE(WaitReadable(r, 2000) && recv(r, b, sizeof(b), 0) == 1);
    const int one = 1;
    CHECK_TRUE(setsockopt(r, o.level, o.name, &one, sizeof(one)) == 0);
    CHECK_TRUE(sendto(s, "b", 1, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 1);
    CHECK_TRUE(WaitReadable(r, 2000));
    alignas(cmsghdr) char control[256];
    iovec iov = {b, sizeof(b)};
    msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
    CHECK_TRUE(recvmsg(r, &mh, 0) == 1 && b[0] == 'b');
    bool found = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      found |= c->cmsg_level == o.cmsg_level && c->cmsg_type == o.cmsg_type;
    }
    if (!found) fprintf(stderr, "no control message %d/%d\n", o.cmsg_level, o.cmsg_type);
    CHECK_TRUE(found);
    close(s);
    close(r);
  }
}

// Two UDP sockets on one port, as Linux delivers to them: with
// SO_REUSEADDR the one bound last gets a sender's datagrams; a SO_REUSEPORT
// group spreads its senders over its members (64 senders reach both).
void CheckUdpReuse() {
  for (int opt : {SO_REUSEADDR, SO_REUSEPORT}) {
    const int one = 1;
    int r[2];
    sockaddr_in6 a;
    socklen_t alen = MakeAddr(g_fam->lfam, g_fam->laddr, 0, &a);
    for (int i = 0; i < 2; ++i) {
      r[i] = socket(g_fam->lfam, SOCK_DGRAM, 0);
      CHECK_TRUE(setsockopt(r[i], SOL_SOCKET, opt, &one, sizeof(one)) == 0);
      if (g_fam->v6only >= 0) {
        CHECK_TRUE(setsockopt(r[i], IPPROTO_IPV6, IPV6_V6ONLY, &g_fam->v6only, sizeof(int)) == 0);
      }
      CHECK_TRUE(bind(r[i], reinterpret_cast<sockaddr*>(&a), alen) == 0);
      if (i == 0) alen = MakeAddr(g_fam->lfam, g_fam->laddr, PortOf(r[0]), &a);
    }
    sockaddr_in6 to;
    const socklen_t tolen = MakeAddr(g_fam->cfam, g_fam->caddr, PortOf(r[0]), &to);
    const int senders = opt == SO_REUSEADDR ? 1 : 64;
    for (int i = 0; i < senders; ++i) {
      const int s = socket(g_fam->cfam, SOCK_DGRAM, 0);
      CHECK_TRUE(sendto(s, "r", 1, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 1);
      close(s);
    }
    int got[2] = {0, 0};
    char b[4];
    for (int spins = 0; spins < 400 && got[0] + got[1] < senders; ++spins) {
      for (int i = 0; i < 2; ++i) {
        while (recv(r[i], b, sizeof(b), MSG_DONTWAIT) == 1) ++got[i];
      }
      if (got[0] + got[1] < senders) usleep(5000);
    }
    if (opt == SO_REUSEADDR) {
      CHECK_TRUE(got[0] == 0 && got[1] == 1);
    } else {
      CHECK_TRUE(got[0] + got[1] == senders && got[0] > 0 && got[1] > 0);
    }
    if (got[0] + got[1] != senders || (opt == SO_REUSEADDR && got[1] != 1)) {
      fprintf(stderr, "%s: first socket got %d, second %d of %d\n",
              opt == SO_REUSEADDR ? "SO_REUSEADDR" : "SO_REUSEPORT", got[0], got[1], senders);
    }
    close(r[0]);
    close(r[1]);
  }
}

// TCP_INFO's state follows the connection as Linux's does: established,
// then FIN_WAIT2 on the side that shut down writing and CLOSE_WAIT on its
// peer, then CLOSE on both once the peer shuts down too.
void CheckTcpInfoState() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  auto state = [](int fd) {
    tcp_info ti = {};
    socklen_t len = sizeof(ti);
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 ? int{ti.tcpi_state} : -1;
  };
  auto settled = [&](int fd, int want) {
    for (int i = 0; i < 200 && state(fd) != want; ++i) usleep(5000);
    return state(fd) == want;
  };
  CHECK_TRUE(state(c) == TCP_ESTABLISHED && state(s) == TCP_ESTABLISHED);
  CHECK_TRUE(shutdown(c, SHUT_WR) == 0);
  CHECK_TRUE(settled(c, TCP_FIN_WAIT2));
  CHECK_TRUE(settled(s, TCP_CLOSE_WAIT));
  CHECK_TRUE(shutdown(s, SHUT_WR) == 0);
  CHECK_TRUE(settled(c, TCP_CLOSE));
  CHECK_TRUE(settled(s, TCP_CLOSE));
  close(c);
  close(s);
}

// SO_RCVLOWAT on a stream, as Linux's: poll says readable from that many
// bytes on; a blocking recv waits until min(its length, the mark) bytes
// are there, a short buffer returns at once. (Linux, having copied part
// of the mark, then waits for a whole mark of new bytes; not checked.)
void CheckRcvlowat() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  const int one = 1, lowat = 4;
  CHECK_TRUE(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0);
  CHECK_TRUE(setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) == 0);
  CHECK_TRUE(send(c, "ab", 2, 0) == 2);
  pollfd p = {s, POLLIN, 0};
  CHECK_TRUE(poll(&p, 1, 100) == 0);
  char b[16];
  CHECK_TRUE(recv(s, b, 2, 0) == 2 && memcmp(b, "ab", 2) == 0);  // min(len, mark)
  std::atomic<ssize_t> got{-2};
  std::thread t([&] { got = recv(s, b, sizeof(b), 0); });
  usleep(50000);
  CHECK_TRUE(send(c, "cd", 2, 0) == 2);
  usleep(50000);
  const bool waited = got == -2;  // 2 of 4 bytes: still waiting
  CHECK_TRUE(send(c, "ef", 2, 0) == 2);
  t.join();
  CHECK_TRUE(waited);
  CHECK_TRUE(got == 4 && memcmp(b, "cdef", 4) == 0);
  CHECK_TRUE(send(c, "ghij", 4, 0) == 4);
  CHECK_TRUE(poll(&p, 1, 2000) == 1 && (p.revents & POLLIN));
  CHECK_TRUE(recv(s, b, sizeof(b), 0) == 4);
  close(c);
  close(s);
}

// A connected UDP socket receives from its peer only, as on Linux: what
// was queued before connect() stays readable, later datagrams from others
// are never seen (nor make it readable).
void CheckUdpConnectedFilter() {
  sockaddr_in6 a;
  const socklen_t alen = MakeAddr(g_fam->lfam, g_fam->laddr, 0, &a);
  const int r = socket(g_fam->lfam, SOCK_DGRAM, 0);
  CHECK_TRUE(bind(r, reinterpret_cast<sockaddr*>(&a), alen) == 0);
  sockaddr_in6 to;
  const socklen_t tolen = MakeAddr(g_fam->cfam, g_fam->caddr, PortOf(r), &to);
  const int peer = socket(g_fam->cfam, SOCK_DGRAM, 0);
  const int other = socket(g_fam->cfam, SOCK_DGRAM, 0);
  CHECK_TRUE(sendto(other, "early", 5, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 5);
  CHECK_TRUE(sendto(peer, "hello", 5, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 5);
  char b[16];
  sockaddr_in6 pa;
  socklen_t palen = sizeof(pa);
  // Both arrive; learn the peer's address (as r sees it) from the second.
  CHECK_TRUE(WaitReadable(r, 2000) && recv(r, b, sizeof(b), 0) == 5 && memcmp(b, "early", 5) == 0);
  CHECK_TRUE(WaitReadable(r, 2000) &&
             recvfrom(r, b, sizeof(b), 0, reinterpret_cast<sockaddr*>(&pa), &palen) == 5 &&
             memcmp(b, "hello", 5) == 0);
  // Queued before connect(): still delivered after it.
  CHECK_TRUE(sendto(other, "queued", 6, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 6);
  CHECK_TRUE(WaitReadable(r, 2000));
  CHECK_TRUE(connect(r, reinterpret_cast<sockaddr*>(&pa), palen) == 0);
  CHECK_TRUE(sendto(other, "other", 5, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 5);
  CHECK_TRUE(sendto(peer, "peer", 4, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 4);
  CHECK_TRUE(recv(r, b, sizeof(b), 0) == 6 && memcmp(b, "queued", 6) == 0);
  CHECK_TRUE(WaitReadable(r, 2000) && recv(r, b, sizeof(b), 0) == 4 && memcmp(b, "peer", 4) == 0);
  CHECK_TRUE(sendto(other, "other2", 6, 0, reinterpret_cast<sockaddr*>(&to), tolen) == 6);
  CHECK_TRUE(!WaitReadable(r, 100));
  CHECK_TRUE(recv(r, b, sizeof(b), MSG_DONTWAIT) == -1 && errno == EAGAIN);
  close(other);
  close(peer);
  close(r);
}

// Issue 18: what only the family decides. A v6-only listener takes no
// IPv4 connector; a v6-only socket cannot connect to a v4-mapped address;
// accept() fills the peer in the listener's family.
void CheckFamilyEdges() {
  int l = socket(AF_INET6, SOCK_STREAM, 0);
  const int one = 1;
  CHECK_TRUE(setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0);
  sockaddr_in6 a;
  socklen_t alen = MakeAddr(AF_INET6, "::", 0, &a);
  CHECK_TRUE(bind(l, reinterpret_cast<sockaddr*>(&a), alen) == 0 && listen(l, 4) == 0);
  const uint16_t port = PortOf(l);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  alen = MakeAddr(AF_INET, "127.0.0.1", port, &a);
  CHECK_TRUE(connect(c, reinterpret_cast<sockaddr*>(&a), alen) == -1 && errno == ECONNREFUSED);
  close(c);
  c = socket(AF_INET6, SOCK_STREAM, 0);
  CHECK_TRUE(setsockopt(c, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0);
  alen = MakeAddr(AF_INET6, "::ffff:127.0.0.1", port, &a);
  CHECK_TRUE(connect(c, reinterpret_cast<sockaddr*>(&a), alen) == -1 && errno == ENETUNREACH);
  close(c);
  close(l);
  // Ends of different families: bound to ::1, connecting to a v4-mapped
  // address (ENETUNREACH), and bound v4-mapped, connecting to ::1
  // (EAFNOSUPPORT); a dual-stack listener would take either.
  const int zero = 0;
  l = socket(AF_INET6, SOCK_STREAM, 0);
  CHECK_TRUE(setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) == 0);
  alen = MakeAddr(AF_INET6, "::", 0, &a);
  CHECK_TRUE(bind(l, reinterpret_cast<sockaddr*>(&a), alen) == 0 && listen(l, 4) == 0);
  const uint16_t dport = PortOf(l);
  c = socket(AF_INET6, SOCK_STREAM, 0);
  alen = MakeAddr(AF_INET6, "::1", 0, &a);
  CHECK_TRUE(bind(c, reinterpret_cast<sockaddr*>(&a), alen) == 0);
  alen = MakeAddr(AF_INET6, "::ffff:127.0.0.1", dport, &a);
  CHECK_TRUE(connect(c, reinterpret_cast<sockaddr*>(&a), alen) == -1 && errno == ENETUNREACH);
  close(c);
  c = socket(AF_INET6, SOCK_STREAM, 0);
  alen = MakeAddr(AF_INET6, "::ffff:127.0.0.1", 0, &a);
  CHECK_TRUE(bind(c, reinterpret_cast<sockaddr*>(&a), alen) == 0);
  alen = MakeAddr(AF_INET6, "::1", dport, &a);
  CHECK_TRUE(connect(c, reinterpret_cast<sockaddr*>(&a), alen) == -1 && errno == EAFNOSUPPORT);
  close(c);
  close(l);
  // The same for UDP senders.
  int r = socket(AF_INET6, SOCK_DGRAM, 0);
  CHECK_TRUE(setsockopt(r, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) == 0);
  alen = MakeAddr(AF_INET6, "::", 0, &a);
  CHECK_TRUE(bind(r, reinterpret_cast<sockaddr*>(&a), alen) == 0);
  const uint16_t rport = PortOf(r);
  c = socket(AF_INET6, SOCK_DGRAM, 0);
  alen = MakeAddr(AF_INET6, "::1", 0, &a);
  CHECK_TRUE(bind(c, reinterpret_cast<sockaddr*>(&a), alen) == 0);
  alen = MakeAddr(AF_INET6, "::ffff:127.0.0.1", rport, &a);
  CHECK_TRUE(sendto(c, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), alen) == -1 &&
             errno == ENETUNREACH);
  close(c);
  c = socket(AF_INET6, SOCK_DGRAM, 0);
  alen = MakeAddr(AF_INET6, "::ffff:127.0.0.1", 0, &a);
  CHECK_TRUE(bind(c, reinterpret_cast<sockaddr*>(&a), alen) == 0);
  alen = MakeAddr(AF_INET6, "::1", rport, &a);
  CHECK_TRUE(sendto(c, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), alen) == -1 &&
             errno == EAFNOSUPPORT);
  close(c);
  close(r);

  l = Listener();
  CHECK_TRUE(l >= 0);
  c = Connect(PortOf(l));
  CHECK_TRUE(c >= 0);
  sockaddr_in6 peer = {};
  socklen_t plen = sizeof(peer);
  int s = accept(l, reinterpret_cast<sockaddr*>(&peer), &plen);
  CHECK_TRUE(s >= 0);
  CHECK_TRUE(PathAsExpected(s));
  CHECK_TRUE(plen == (g_fam->lfam == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in)));
  CHECK_TRUE(peer.sin6_family == g_fam->lfam && AddrText(peer) == g_fam->aaddr);
  CHECK_TRUE(ntohs(peer.sin6_port) == PortOf(c));
  close(c);
  close(s);
  close(l);
}

struct Check {
  const char* name;
  void (*fn)();
};

const Check kChecks[] = {
    {"echo_and_names", CheckEchoAndNames},
    {"eagain", CheckEagain},
    {"rcvtimeo", CheckRcvTimeo},
    {"eintr", CheckEintr},
    {"sa_restart", CheckSaRestart},
    {"peek_waitall", CheckPeekWaitall},
    {"epipe_sigpipe", CheckEpipe},
    {"half_close", CheckHalfClose},
    {"econnrefused_and_so_error", CheckRefused},
    {"nonblocking_connect", CheckNonblockingConnect},
    {"fionread", CheckFionread},
    {"epoll_lt_et_oneshot_rdhup_hup", CheckEpollModes},
    {"epoll_sleep_wakeup", CheckEpollWakeup},
    {"epoll_many_entries", CheckEpollManyEntries},
    {"select_poll_mixed", CheckSelectPollMixed},
    {"dup", CheckDup},
    {"reset_on_close_with_unread", CheckResetOnCloseWithUnread},
    {"udp", CheckUdp},
    {"shutdown_wakes_blocked_recv", CheckShutdownWakesBlockedRecv},
    {"udp_shutdown", CheckUdpShutdown},
    {"udp_control_messages", CheckUdpControlMessages},
    {"udp_reuse", CheckUdpReuse},
    {"tcp_info_state", CheckTcpInfoState},
    {"rcvlowat", CheckRcvlowat},
    {"udp_connected_filter", CheckUdpConnectedFilter},
    {"family_edges", CheckFamilyEdges},
};

// SEMANTICS_FAMILY (kFamilies): false, with a message, for an unknown one.
bool SetFamilyFromEnv() {
  const char* f = getenv("SEMANTICS_FAMILY");
  if (f == nullptr || *f == '\0') return true;
  for (const FamilyMode& m : kFamilies) {
    if (strcmp(m.name, f) == 0) {
      g_fam = &m;
      return true;
    }
  }
  fprintf(stderr, "unknown SEMANTICS_FAMILY '%s'\n", f);
  return false;
}

int RunChecks(const char* only) {
  if (!SetFamilyFromEnv()) return 100;
  printf("family %s\n", g_fam->name);
  for (const Check& c : kChecks) {
    if (only != nullptr && strcmp(only, c.name) != 0) continue;
    g_check = c.name;
    const int before = g_failures;
    const int64_t t0 = NowMs();
    c.fn();
    printf("%s %s (%lld ms)\n", g_failures == before ? "PASS" : "FAIL", c.name,
           static_cast<long long>(NowMs() - t0));
    fflush(stdout);
  }
  return g_failures;
}

// ---------------------------------------------- offload-only features
// (run only under liboffload.so: they use its extra API)

struct ExtraApi {
  int (*thread_offload)(int, pthread_t);
  int (*add_conf_rule)(const char*);
  uint64_t cap_mask;
};

ExtraApi* GetApi() {
  auto get = reinterpret_cast<ExtraApi* (*)()>(dlsym(RTLD_DEFAULT, "offload_get_api"));
  return get != nullptr ? get() : nullptr;
}

bool IsOffloaded(int fd) {
  sockaddr_in a = {};
  socklen_t len = sizeof(a);
  return syscall(SYS_getpeername, fd, &a, &len) != 0 && errno == ENOTCONN;
}

void CheckThreadOffloadApi() {
  ExtraApi* api = GetApi();
  CHECK_TRUE(api != nullptr && api->thread_offload != nullptr);
  const bool default_on = getenv("OFFLOAD_OFFLOADED_SOCKETS") == nullptr ||
                          atoi(getenv("OFFLOAD_OFFLOADED_SOCKETS")) != 0;
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  CHECK_TRUE(IsOffloaded(c) == default_on);
  close(c);
  close(s);
  // Sockets this thread creates from now on stay on the kernel...
  CHECK_TRUE(api->thread_offload(0, pthread_self()) == 0);
  CHECK_TRUE(Pair(&c, &s));
  CHECK_TRUE(!IsOffloaded(c) && !IsOffloaded(s));
  CHECK_TRUE(send(c, "k", 1, 0) == 1);
  char b;
  CHECK_TRUE(RecvAll(s, &b, 1) == 1);
  close(c);
  close(s);
  // ...while another thread keeps the process default.
  bool other = false;
  std::thread t([&] {
    int c2, s2;
    if (Pair(&c2, &s2)) {
      other = IsOffloaded(c2);
      close(c2);
      close(s2);
    }
  });
  t.join();
  CHECK_TRUE(other == default_on);
  CHECK_TRUE(api->thread_offload(1, pthread_self()) == 0);
  CHECK_TRUE(Pair(&c, &s));
  CHECK_TRUE(IsOffloaded(c) && IsOffloaded(s));
  close(c);
  close(s);
}

void CheckAddConfRule() {
  ExtraApi* api = GetApi();
  CHECK_TRUE(api != nullptr && api->add_conf_rule != nullptr);
  CHECK_TRUE(api->add_conf_rule("use nonsense") != 0);
  // The listener's port comes from the kernel (bind to port 0); the rule
  // for it is added before listen(), where the library decides.
  int k = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = Loopback(0);
  CHECK_TRUE(bind(k, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  const uint16_t port = PortOf(k);
  char rule[64];
  snprintf(rule, sizeof(rule), "use os tcp_server *:%u", port);
  CHECK_TRUE(api->add_conf_rule(rule) == 0);
  // A listener on that port stays on the kernel; others are offloaded.
  CHECK_TRUE(listen(k, 4) == 0);
  int c = Connect(port);
  int s = accept(k, nullptr, nullptr);
  CHECK_TRUE(c >= 0 && s >= 0 && !IsOffloaded(c) && !IsOffloaded(s));
  close(c);
  close(s);
  // k stays open: the next listener must not be given the rule's port.
  CHECK_TRUE(Pair(&c, &s));
  CHECK_TRUE(IsOffloaded(c));
  close(c);
  close(s);
  close(k);
}

void CheckForkInheritedListener() {
  int l = Listener();
  CHECK_TRUE(l >= 0);
  const uint16_t port = PortOf(l);
  int ready[2];
  CHECK_TRUE(pipe(ready) == 0);
  const pid_t child = fork();
  if (child == 0) {
    // The child accepts on the inherited offloaded listener and echoes.
    if (write(ready[1], "r", 1) != 1) _exit(3);
    int s = accept(l, nullptr, nullptr);
    char buf[5];
    if (s < 0 || RecvAll(s, buf, 5) != 5 || send(s, buf, 5, 0) != 5) _exit(1);
    _exit(IsOffloaded(s) ? 0 : 2);
  }
  char r;
  CHECK_TRUE(read(ready[0], &r, 1) == 1);  // the child is running
  close(ready[0]);
  close(ready[1]);
  close(l);  // the parent's close must not tear down the child's listener
  int c = Connect(port);
  CHECK_TRUE(c >= 0);
  CHECK_TRUE(send(c, "forky", 5, 0) == 5);
  char buf[5];
  timeval tv = {5, 0};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  CHECK_TRUE(RecvAll(c, buf, 5) == 5 && memcmp(buf, "forky", 5) == 0);
  int st = 0;
  CHECK_TRUE(waitpid(child, &st, 0) == child);
  CHECK_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(c);
}

// Linux keeps a recv blocked when another thread closes its fd; the
// offloaded socket wakes it with EBADF instead of touching freed memory.
void CheckCloseWhileBlockedDoesNotCrash() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  std::atomic<int> done{0};
  std::thread t([&] {
    char b;
    recv(s, &b, 1, 0);
    done = 1;
  });
  usleep(100000);
  close(s);
  for (int i = 0; i < 300 && !done; ++i) usleep(10000);
  if (!done) send(c, "x", 1, 0);
  t.join();
  CHECK_TRUE(done == 1);
  close(c);
}

// Prefork-style: the parent accepts, forks a child to serve the connection
// and closes its own copy; the connection lives on in the child (the FIN
// follows the last close, as with the kernel's file reference count).
void CheckForkServeAndParentClose() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  CHECK_TRUE(IsOffloaded(s));
  const pid_t child = fork();
  if (child == 0) {
    char buf[4];
    if (RecvAll(s, buf, 4) != 4 || send(s, buf, 4, 0) != 4) _exit(1);
    close(s);
    _exit(0);
  }
  close(s);  // the parent's copy
  usleep(20000);
  CHECK_TRUE(send(c, "pref", 4, 0) == 4);
  char buf[4];
  timeval tv = {5, 0};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  CHECK_TRUE(RecvAll(c, buf, 4) == 4 && memcmp(buf, "pref", 4) == 0);
  CHECK_TRUE(recv(c, buf, 1, 0) == 0);  // EOF once the child closed too
  int st = 0;
  CHECK_TRUE(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(c);
}

const Check kFeatureChecks[] = {
    {"close_while_blocked", CheckCloseWhileBlockedDoesNotCrash},
    {"thread_offload_api", CheckThreadOffloadApi},
    {"add_conf_rule", CheckAddConfRule},
    {"fork_inherited_listener", CheckForkInheritedListener},
    // Last: under OFFLOAD_OFFLOADED_SOCKETS=0 it relies on the thread having
    // opted in (thread_offload_api ends with thread_offload(1)).
    {"fork_serve_parent_close", CheckForkServeAndParentClose},
};

int RunFeatureChecks() {
  for (const Check& c : kFeatureChecks) {
    g_check = c.name;
    const int before = g_failures;
    c.fn();
    printf("%s %s\n", g_failures == before ? "PASS" : "FAIL", c.name);
    fflush(stdout);
  }
  return g_failures;
}

// ------------------------------------------------ sharing (issue 14)
// One socket held by several processes or threads, as the kernel shares
// it: fork, exec, SCM_RIGHTS, threads, a listener re-created on its port.
// Run by //tests/integration/sharing (manual until the rewrite lands):
//   semantics_prog sharing [NAME]     (EXPECT_OFFLOAD as for `checks`)

// Sets a 5 s receive timeout so a lost byte fails instead of hanging.
void Timeout5s(int fd) {
  timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

// True when nothing (no data, no EOF) becomes readable on fd within ms.
bool StaysQuiet(int fd, int ms) {
  pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 0;
}

// Waits for child and returns its exit code (or 128 + signal, or -1).
int Reap(pid_t child) {
  int st = 0;
  for (int i = 0; i < 1000; ++i) {  // up to 10 s
    const pid_t r = waitpid(child, &st, WNOHANG);
    if (r == child) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    usleep(10000);  // poll interval
  }
  kill(child, SIGKILL);
  waitpid(child, &st, 0);
  return -1;
}

// A child writes on an inherited connection and exits, then the parent
// writes: the peer reads both, in that order.
void CheckForkChildThenParentWrite() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  Timeout5s(c);
  const pid_t child = fork();
  if (child == 0) _exit(send(s, "child:", 6, 0) == 6 ? 0 : 1);
  CHECK_TRUE(Reap(child) == 0);
  CHECK_TRUE(send(s, "parent", 6, 0) == 6);
  char buf[12];
  CHECK_TRUE(RecvAll(c, buf, 12) == 12 && memcmp(buf, "child:parent", 12) == 0);
  close(c);
  close(s);
}

// socketserver.ForkingTCPServer: the parent closes its copy right after
// fork, the child serves the connection; EOF follows the child's close.
void CheckForkParentClosesChildServes() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  Timeout5s(c);
  const pid_t child = fork();
  if (child == 0) {
    Timeout5s(s);
    char buf[4];
    if (RecvAll(s, buf, 4) != 4 || send(s, buf, 4, 0) != 4) _exit(1);
    close(s);
    _exit(0);
  }
  close(s);  // the parent's copy, at once
  CHECK_TRUE(send(c, "fork", 4, 0) == 4);
  char buf[4];
  CHECK_TRUE(RecvAll(c, buf, 4) == 4 && memcmp(buf, "fork", 4) == 0);
  CHECK_TRUE(recv(c, buf, 1, 0) == 0);  // EOF: the child closed the last copy
  CHECK_TRUE(Reap(child) == 0);
  close(c);
}

// The child closes its copy and exits: the connection stays up in the
// parent (no EOF at the peer), and ends with the parent's close.
void CheckForkChildCloseKeepsParent() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  Timeout5s(c);
  const pid_t child = fork();
  if (child == 0) {
    close(s);
    _exit(0);
  }
  CHECK_TRUE(Reap(child) == 0);
  CHECK_TRUE(StaysQuiet(c, 300));  // no EOF, no reset
  CHECK_TRUE(send(s, "still", 5, 0) == 5);
  char buf[5];
  CHECK_TRUE(RecvAll(c, buf, 5) == 5 && memcmp(buf, "still", 5) == 0);
  CHECK_TRUE(send(c, "back", 4, 0) == 4);
  Timeout5s(s);
  CHECK_TRUE(RecvAll(s, buf, 4) == 4 && memcmp(buf, "back", 4) == 0);
  close(s);
  CHECK_TRUE(recv(c, buf, 1, 0) == 0);
  close(c);
}

// The parent closes first while the child still holds the socket: no EOF
// until the child, the last holder, closes; the child's bytes arrive.
void CheckForkParentCloseFirstChildLast() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  Timeout5s(c);
  int go[2];
  CHECK_TRUE(pipe(go) == 0);
  const pid_t child = fork();
  if (child == 0) {
    close(go[1]);
    char b;
    if (read(go[0], &b, 1) != 1) _exit(3);
    if (send(s, "kid", 3, 0) != 3) _exit(1);
    Timeout5s(s);
    char buf[3];
    if (RecvAll(s, buf, 3) != 3 || memcmp(buf, "ack", 3) != 0) _exit(2);
    close(s);
    _exit(0);
  }
  close(go[0]);
  close(s);
  CHECK_TRUE(StaysQuiet(c, 300));  // the child still holds it
  CHECK_TRUE(write(go[1], "g", 1) == 1);
  close(go[1]);
  char buf[3];
  CHECK_TRUE(RecvAll(c, buf, 3) == 3 && memcmp(buf, "kid", 3) == 0);
  CHECK_TRUE(send(c, "ack", 3, 0) == 3);
  CHECK_TRUE(recv(c, buf, 1, 0) == 0);
  CHECK_TRUE(Reap(child) == 0);
  close(c);
}

// Runs this program again as `exec-MODE FD` with fd inherited (no
// CLOEXEC), the way inetd, subprocess(pass_fds) and socat EXEC do.
pid_t ExecSelf(const char* mode, int fd) {
  const pid_t child = fork();
  if (child == 0) {
    fcntl(fd, F_SETFD, 0);
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) _exit(126);
    self[n] = 0;
    char arg[16];
    snprintf(arg, sizeof(arg), "%d", fd);
    execl(self, self, mode, arg, static_cast<char*>(nullptr));
    _exit(127);
  }
  return child;
}

// exec-echo FD: echo one 5-byte message on the inherited connection, close.
int ExecEcho(int fd) {
  g_check = "exec-echo";
  Timeout5s(fd);
  char buf[5];
  if (!PathAsExpected(fd)) return 4;
  if (RecvAll(fd, buf, 5) != 5) return 1;
  if (write(fd, buf, 5) != 5) return 2;
  return close(fd) == 0 ? 0 : 3;
}

// exec-accept FD: accept one connection on the inherited listener, echo
// 5 bytes on it.
int ExecAccept(int fd) {
  pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) return 5;
  const int s = accept(fd, nullptr, nullptr);
  if (s < 0) return 6;
  return ExecEcho(s);
}

void CheckExecInheritedConnection() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  Timeout5s(c);
  const pid_t child = ExecSelf("exec-echo", s);
  CHECK_TRUE(child > 0);
  close(s);
  CHECK_TRUE(send(c, "inetd", 5, 0) == 5);
  char buf[5];
  CHECK_TRUE(RecvAll(c, buf, 5) == 5 && memcmp(buf, "inetd", 5) == 0);
  CHECK_TRUE(recv(c, buf, 1, 0) == 0);
  CHECK_TRUE(Reap(child) == 0);
  close(c);
}

void CheckExecInheritedListener() {
  int l = Listener();
  CHECK_TRUE(l >= 0);
  const pid_t child = ExecSelf("exec-accept", l);
  CHECK_TRUE(child > 0);
  const uint16_t port = PortOf(l);
  close(l);  // socket activation: only the new program holds it now
  int c = Connect(port);
  CHECK_TRUE(c >= 0);
  Timeout5s(c);
  CHECK_TRUE(PathAsExpected(c));
  CHECK_TRUE(send(c, "activ", 5, 0) == 5);
  char buf[5];
  CHECK_TRUE(RecvAll(c, buf, 5) == 5 && memcmp(buf, "activ", 5) == 0);
  CHECK_TRUE(recv(c, buf, 1, 0) == 0);
  CHECK_TRUE(Reap(child) == 0);
  close(c);
}

bool SendFd(int unix_fd, int fd) {
  char byte = 'F';
  iovec iov = {&byte, 1};
  char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr m = {};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctrl;
  m.msg_controllen = sizeof(ctrl);
  cmsghdr* cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  return sendmsg(unix_fd, &m, 0) == 1;
}

int RecvFd(int unix_fd) {
  char byte;
  iovec iov = {&byte, 1};
  char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr m = {};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctrl;
  m.msg_controllen = sizeof(ctrl);
  if (recvmsg(unix_fd, &m, 0) != 1) return -1;
  cmsghdr* cm = CMSG_FIRSTHDR(&m);
  if (cm == nullptr || cm->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(cm), sizeof(int));
  return fd;
}

// A connected socket passed with SCM_RIGHTS to a process that did not
// inherit it; the sender closes its copy. The receiver waits in epoll,
// reads, answers, closes; the peer sees the answer, then EOF.
void CheckScmRightsConnection() {
  int sp[2];
  CHECK_TRUE(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
  const pid_t child = fork();  // forked before the connection exists
  if (child == 0) {
    close(sp[0]);
    const int fd = RecvFd(sp[1]);
    if (fd < 0) _exit(1);
    if (!PathAsExpected(fd)) _exit(4);
    const int ep = epoll_create1(0);
    epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_event out;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0 || epoll_wait(ep, &out, 1, 5000) != 1) _exit(2);
    char buf[4];
    Timeout5s(fd);
    if (RecvAll(fd, buf, 4) != 4 || memcmp(buf, "ping", 4) != 0) _exit(3);
    if (send(fd, "pong", 4, 0) != 4) _exit(5);
    close(fd);
    _exit(0);
  }
  close(sp[1]);
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  Timeout5s(c);
  CHECK_TRUE(SendFd(sp[0], s));
  close(s);
  CHECK_TRUE(send(c, "ping", 4, 0) == 4);
  char buf[4];
  CHECK_TRUE(RecvAll(c, buf, 4) == 4 && memcmp(buf, "pong", 4) == 0);
  CHECK_TRUE(recv(c, buf, 1, 0) == 0);
  CHECK_TRUE(Reap(child) == 0);
  close(sp[0]);
  close(c);
}

// A listener passed with SCM_RIGHTS (nginx binary upgrade, haproxy
// reload): the receiver accepts and serves; the sender closed its copy.
void CheckScmRightsListener() {
  int sp[2];
  CHECK_TRUE(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
  const pid_t child = fork();
  if (child == 0) {
    close(sp[0]);
    const int fd = RecvFd(sp[1]);
    if (fd < 0) _exit(1);
    if (write(sp[1], "r", 1) != 1) _exit(2);
    _exit(ExecAccept(fd));
  }
  close(sp[1]);
  int l = Listener();
  CHECK_TRUE(l >= 0);
  const uint16_t port = PortOf(l);
  CHECK_TRUE(SendFd(sp[0], l));
  char r;
  CHECK_TRUE(read(sp[0], &r, 1) == 1);
  close(l);
  int c = Connect(port);
  CHECK_TRUE(c >= 0);
  Timeout5s(c);
  CHECK_TRUE(send(c, "moved", 5, 0) == 5);
  char buf[5];
  CHECK_TRUE(RecvAll(c, buf, 5) == 5 && memcmp(buf, "moved", 5) == 0);
  CHECK_TRUE(recv(c, buf, 1, 0) == 0);
  CHECK_TRUE(Reap(child) == 0);
  close(sp[0]);
  close(c);
}

// Pre-fork: the parent listens, two children accept on the inherited
// listener while the parent never does; every connection is answered.
void CheckPreforkChildrenAccept() {
  int l = Listener();
  CHECK_TRUE(l >= 0);
  const uint16_t port = PortOf(l);
  pid_t kids[2];
  for (pid_t& k : kids) {
    k = fork();
    if (k == 0) {
      for (;;) {
        const int s = accept(l, nullptr, nullptr);
        if (s < 0) _exit(1);
        char b;
        Timeout5s(s);
        if (RecvAll(s, &b, 1) == 1) send(s, &b, 1, 0);
        close(s);
      }
    }
  }
  int answered = 0;
  for (int i = 0; i < 20; ++i) {
    int c = Connect(port);
    if (c < 0) continue;
    timeval tv = {1, 0};  // 20 x 1 s stays inside the check's 30 s
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char b = char('a' + i);
    if (send(c, &b, 1, 0) == 1 && RecvAll(c, &b, 1) == 1 && b == char('a' + i)) ++answered;
    close(c);
  }
  for (pid_t k : kids) {
    kill(k, SIGKILL);
    waitpid(k, nullptr, 0);
  }
  close(l);
  if (answered != 20) fprintf(stderr, "[%s] %d of 20 answered\n", g_check, answered);
  CHECK_TRUE(answered == 20);
}

// Four threads accept on one listener at once: every connection is
// accepted exactly once. Every wait is short (1 s) and the whole check has
// a 15 s deadline, so a lost connection is reported, not a hang.
void CheckThreadsAcceptOneListener() {
  int l = Listener(SOCK_NONBLOCK);  // poll wakes every thread; the losers get EAGAIN
  CHECK_TRUE(l >= 0);
  const uint16_t port = PortOf(l);
  std::atomic<int> accepted{0}, served{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&] {
      while (!stop) {
        pollfd p = {l, POLLIN, 0};
        if (poll(&p, 1, 50) != 1) continue;
        const int s = accept(l, nullptr, nullptr);
        if (s < 0) continue;  // another thread took it (EAGAIN)
        ++accepted;
        char b;
        fcntl(s, F_SETFL, 0);
        timeval tv = {1, 0};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (RecvAll(s, &b, 1) == 1 && send(s, &b, 1, 0) == 1) ++served;
        close(s);
      }
    });
  }
  int answered = 0, tried = 0;
  const int64_t deadline = NowMs() + 15000;
  for (int i = 0; i < 40 && NowMs() < deadline; ++i, ++tried) {
    int c = Connect(port);
    if (c < 0) continue;
    timeval tv = {1, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char b = 'k';
    if (send(c, &b, 1, 0) == 1 && RecvAll(c, &b, 1) == 1) ++answered;
    close(c);
  }
  stop = true;
  for (auto& t : ts) t.join();
  close(l);
  if (answered != 40 || accepted != 40) {
    fprintf(stderr, "[%s] tried %d, answered %d, accepted %d, served %d\n", g_check, tried,
            answered, accepted.load(), served.load());
  }
  CHECK_TRUE(answered == 40 && accepted == 40);
}

// Two threads send 200 4-KiB records each on one TCP socket at once; the
// peer sees every record whole. Linux does not interleave a send that does
// not have to wait for room, so the senders keep at most 8 records (32 KiB)
// ahead of the reader: no send ever waits, on any stack.
void CheckThreadsSendOneTcpSocket() {
  int c, s;
  CHECK_TRUE(Pair(&c, &s));
  Timeout5s(s);
  std::atomic<int> bad_sends{0}, issued{0}, consumed{0};
  const int64_t deadline = NowMs() + 20000;
  auto sender = [&](char tag) {
    char rec[4096];
    memset(rec, tag, sizeof(rec));
    for (int i = 0; i < 200; ++i) {
      const int mine = issued.fetch_add(1);
      while (mine - consumed.load() >= 8 && NowMs() < deadline) std::this_thread::yield();
      if (send(c, rec, sizeof(rec), MSG_NOSIGNAL) != ssize_t(sizeof(rec))) ++bad_sends;
    }
  };
  std::thread a(sender, 'A'), b(sender, 'B');
  int whole = 0, torn = 0;
  char rec[4096];
  for (int i = 0; i < 400; ++i) {
    if (RecvAll(s, rec, sizeof(rec)) != ssize_t(sizeof(rec))) break;
    bool same = true;
    for (char ch : rec) same = same && ch == rec[0];
    (same ? whole : torn)++;
    ++consumed;
  }
  a.join();
  b.join();
  if (torn != 0) fprintf(stderr, "[%s] %d torn of %d records\n", g_check, torn, whole + torn);
  CHECK_TRUE(bad_sends == 0 && whole == 400 && torn == 0);
  close(c);
  close(s);
}

// A listener closed and re-created on the same port in the same process
// (iperf3 -s after every test) is still on the expected path.
void CheckListenerRecreatedSamePort() {
  // In the SEMANTICS_FAMILY mode's listener family (iperf3 -s listens on
  // a dual-stack ::).
  uint16_t port = 0;
  int l = -1;
  const int on = 1;
  for (int round = 0; round < 3; ++round) {
    l = socket(g_fam->lfam, SOCK_STREAM, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (g_fam->v6only >= 0) {
      setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &g_fam->v6only, sizeof(int));
    }
    sockaddr_in6 a;
    const socklen_t alen = MakeAddr(g_fam->lfam, g_fam->laddr, port, &a);
    CHECK_TRUE(bind(l, reinterpret_cast<sockaddr*>(&a), alen) == 0 && listen(l, 4) == 0);
    port = PortOf(l);
    int c = Connect(port);
    CHECK_TRUE(c >= 0);
    int s = accept(l, nullptr, nullptr);
    CHECK_TRUE(s >= 0);
    CHECK_TRUE(PathAsExpected(c) && PathAsExpected(s));
    Timeout5s(s);
    char b;
    CHECK_TRUE(send(c, "r", 1, 0) == 1 && RecvAll(s, &b, 1) == 1);
    close(s);  // server side first, as iperf3 does
    close(c);
    close(l);
  }
}

// One UDP socket read by parent and child after fork: datagrams queued
// before the fork and sent after it are each received exactly once, intact,
// by one of the two; both can still send on it.
constexpr int kForkUdpDatagrams = 100;
constexpr int kForkUdpBefore = 40;  // queued before the fork, unread

void FillDatagram(uint8_t* d, size_t len, uint32_t id) {
  memcpy(d, &id, sizeof(id));
  for (size_t i = sizeof(id); i < len; ++i) d[i] = static_cast<uint8_t>(id * 7 + i);
}

// Reads datagrams of `r` until the first END; appends their ids to `ids`.
// False on a corrupt datagram or a 5 s silence.
bool ReadUntilEnd(int r, std::vector<uint32_t>* ids) {
  for (;;) {
    uint8_t d[256];
    const ssize_t n = recv(r, d, sizeof(d), 0);
    if (n == 3 && memcmp(d, "END", 3) == 0) return true;
    if (n != 64) return false;
    uint32_t id;
    memcpy(&id, d, sizeof(id));
    uint8_t want[64];
    FillDatagram(want, sizeof(want), id);
    if (memcmp(d, want, sizeof(want)) != 0) return false;
    ids->push_back(id);
  }
}

void CheckForkUdpParentAndChild() {
  int r = socket(AF_INET, SOCK_DGRAM, 0);
  int snd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in lr = Loopback(0), ls = Loopback(0);
  CHECK_TRUE(bind(r, reinterpret_cast<sockaddr*>(&lr), sizeof(lr)) == 0);
  CHECK_TRUE(bind(snd, reinterpret_cast<sockaddr*>(&ls), sizeof(ls)) == 0);
  Timeout5s(r);
  Timeout5s(snd);
  const sockaddr_in to_r = Loopback(PortOf(r)), to_snd = Loopback(PortOf(snd));
  const auto* to_r_sa = reinterpret_cast<const sockaddr*>(&to_r);
  const auto* to_snd_sa = reinterpret_cast<const sockaddr*>(&to_snd);
  char b[8];
  CHECK_TRUE(sendto(snd, "warm", 4, 0, to_r_sa, sizeof(to_r)) == 4);
  CHECK_TRUE(recv(r, b, sizeof(b), 0) == 4);
  uint8_t d[64];
  for (int i = 0; i < kForkUdpBefore; ++i) {
    FillDatagram(d, sizeof(d), i);
    CHECK_TRUE(sendto(snd, d, sizeof(d), 0, to_r_sa, sizeof(to_r)) == 64);
  }
  int ids_pipe[2];
  CHECK_TRUE(pipe(ids_pipe) == 0);
  const pid_t child = fork();
  if (child == 0) {
    close(ids_pipe[0]);
    std::vector<uint32_t> ids;
    const bool ok = ReadUntilEnd(r, &ids) &&
                    sendto(r, "child", 5, 0, to_snd_sa, sizeof(to_snd)) == 5;
    for (uint32_t id : ids) {
      if (write(ids_pipe[1], &id, sizeof(id)) != sizeof(id)) _exit(2);
    }
    _exit(ok ? 0 : 1);
  }
  close(ids_pipe[1]);
  for (int i = kForkUdpBefore; i < kForkUdpDatagrams; ++i) {
    FillDatagram(d, sizeof(d), i);
    CHECK_TRUE(sendto(snd, d, sizeof(d), 0, to_r_sa, sizeof(to_r)) == 64);
  }
  for (int i = 0; i < 2; ++i) CHECK_TRUE(sendto(snd, "END", 3, 0, to_r_sa, sizeof(to_r)) == 3);
  std::vector<uint32_t> ids;
  CHECK_TRUE(ReadUntilEnd(r, &ids));
  CHECK_TRUE(sendto(r, "parent", 6, 0, to_snd_sa, sizeof(to_snd)) == 6);
  CHECK_TRUE(Reap(child) == 0);
  uint32_t id;
  while (read(ids_pipe[0], &id, sizeof(id)) == sizeof(id)) ids.push_back(id);
  close(ids_pipe[0]);
  std::sort(ids.begin(), ids.end());
  CHECK_TRUE(ids.size() == kForkUdpDatagrams);
  for (int i = 0; i < kForkUdpDatagrams; ++i) CHECK_TRUE(ids[i] == static_cast<uint32_t>(i));
  bool from_child = false, from_parent = false;
  for (int i = 0; i < 2; ++i) {
    char m[16] = {};
    const ssize_t n = recv(snd, m, sizeof(m) - 1, 0);
    CHECK_TRUE(n > 0);
    from_child |= strcmp(m, "child") == 0;
    from_parent |= strcmp(m, "parent") == 0;
  }
  CHECK_TRUE(from_child && from_parent);
  // Still one socket: nothing left for either.
  CHECK_TRUE(recv(r, b, sizeof(b), MSG_DONTWAIT) == -1 && errno == EAGAIN);
  close(r);
  close(snd);
}

const Check kSharingChecks[] = {
    {"fork_child_then_parent_write", CheckForkChildThenParentWrite},
    {"fork_parent_closes_child_serves", CheckForkParentClosesChildServes},
    {"fork_child_close_keeps_parent", CheckForkChildCloseKeepsParent},
    {"fork_parent_close_first_child_last", CheckForkParentCloseFirstChildLast},
    {"exec_inherited_connection", CheckExecInheritedConnection},
    {"exec_inherited_listener", CheckExecInheritedListener},
    {"scm_rights_connection_epoll", CheckScmRightsConnection},
    {"scm_rights_listener", CheckScmRightsListener},
    {"prefork_children_accept", CheckPreforkChildrenAccept},
    {"threads_accept_one_listener", CheckThreadsAcceptOneListener},
    {"threads_send_one_tcp_socket", CheckThreadsSendOneTcpSocket},
    {"listener_recreated_same_port", CheckListenerRecreatedSamePort},
    {"fork_udp_parent_and_child_receive", CheckForkUdpParentAndChild},
};

// sharing-one NAME: runs one check in this process; exit status 0 = pass.
int RunOneSharingCheck(const char* name) {
  for (const Check& c : kSharingChecks) {
    if (strcmp(name, c.name) != 0) continue;
    g_check = c.name;
    c.fn();
    return g_failures == 0 ? 0 : 1;
  }
  fprintf(stderr, "no sharing check '%s'\n", name);
  return 2;
}

// Each check in its own process (exec'd anew), so that one that hangs or
// crashes (the offloaded path before the rewrite) is reported and does not
// take the others with it: FAIL NAME (timeout 30 s | signal N).
int RunSharingChecks(const char* only) {
  int failed = 0;
  for (const Check& c : kSharingChecks) {
    if (only != nullptr && strcmp(only, c.name) != 0) continue;
    const int64_t t0 = NowMs();
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {  // a fresh process (exec) for each check, in its own group
      setpgid(0, 0);
      char self[4096];
      const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
      if (n <= 0) _exit(126);
      self[n] = 0;
      execl(self, self, "sharing-one", c.name, static_cast<char*>(nullptr));
      _exit(127);
    }
    setpgid(pid, pid);  // either side may win the race; both set the same
    int st = 0;
    pid_t r = 0;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && NowMs() - t0 < 30000) usleep(10000);
    kill(-pid, SIGKILL);  // whatever the check left behind (its group only)
    const char* why = "";
    char sig[32] = "";
    if (r == 0) {
      waitpid(pid, &st, 0);
      why = " (timeout 30 s)";
    } else if (WIFSIGNALED(st)) {
      snprintf(sig, sizeof(sig), " (signal %d)", WTERMSIG(st));
      why = sig;
    }
    const bool ok = r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    failed += ok ? 0 : 1;
    printf("%s %s%s (%lld ms)\n", ok ? "PASS" : "FAIL", c.name, why,
           static_cast<long long>(NowMs() - t0));
    fflush(stdout);
  }
  return failed;
}

// Every `ms` creates a connected pair and prints its path; keeps the last
// pair open (for offloadctl stats).
int Paths(int count, int ms) {
  int keep_c = -1, keep_s = -1;
  for (int i = 0; i < count; ++i) {
    int c, s;
    if (!Pair(&c, &s)) return 3;
    printf("%s\n", IsOffloaded(c) ? "offloaded" : "kernel");
    fflush(stdout);
    if (keep_c >= 0) {
      close(keep_c);
      close(keep_s);
    }
    send(c, "stats", 5, 0);
    keep_c = c;
    keep_s = s;
    usleep(ms * 1000);
  }
  return 0;
}

// Issue 18's stats: a dual-stack listener with an IPv4 and an IPv6
// connection, two IPv6 UDP sockets with a ring between them, and a v6-only
// TCP socket kept on the kernel, held open until
// `seconds` pass or the process is killed; prints "families ready".
int FamiliesHold(int seconds) {
  g_fam = &kFamilies[2];  // dual
  int l = Listener();
  if (l < 0) return 3;
  const uint16_t port = PortOf(l);
  int c4 = Connect(port);
  int s4 = accept(l, nullptr, nullptr);
  sockaddr_in6 a;
  const socklen_t alen = MakeAddr(AF_INET6, "::1", port, &a);
  int c6 = socket(AF_INET6, SOCK_STREAM, 0);
  if (c4 < 0 || s4 < 0 || connect(c6, reinterpret_cast<sockaddr*>(&a), alen) != 0) return 4;
  int s6 = accept(l, nullptr, nullptr);
  int u6 = socket(AF_INET6, SOCK_DGRAM, 0);
  sockaddr_in6 ua;
  const socklen_t ualen = MakeAddr(AF_INET6, "::1", 0, &ua);
  if (s6 < 0 || u6 < 0 || bind(u6, reinterpret_cast<sockaddr*>(&ua), ualen) != 0) return 5;
  // An IPv6 sender to it (a same-host datagram ring), and a v6-only socket
  // whose connect to a v4-mapped address stays with the kernel (which
  // refuses it): listed with its reason.
  int u6s = socket(AF_INET6, SOCK_DGRAM, 0);
  ua.sin6_port = htons(PortOf(u6));
  char d;
  if (u6s < 0 || sendto(u6s, "u", 1, 0, reinterpret_cast<sockaddr*>(&ua), ualen) != 1 ||
      recv(u6, &d, 1, 0) != 1) {
    return 6;
  }
  int k6 = socket(AF_INET6, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(k6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  const socklen_t mlen = MakeAddr(AF_INET6, "::ffff:127.0.0.1", port, &a);
  if (connect(k6, reinterpret_cast<sockaddr*>(&a), mlen) == 0) return 7;
  printf("families ready\n");
  fflush(stdout);
  sleep(static_cast<unsigned>(seconds));
  return 0;
}

// Opens `n` connected pairs at once (all kept open), checks every one
// carries data, and prints how many were offloaded.
int Many(int n) {
  int l = Listener();
  if (l < 0) return 3;
  std::vector<int> fds;
  int offloaded = 0, kernel = 0;
  for (int i = 0; i < n; ++i) {
    int c = Connect(PortOf(l));
    int s = c >= 0 ? accept(l, nullptr, nullptr) : -1;
    char b = 0;
    if (c < 0 || s < 0 || send(c, "m", 1, 0) != 1 || RecvAll(s, &b, 1) != 1 || b != 'm') {
      fprintf(stderr, "pair %d failed: %s\n", i, strerror(errno));
      return 4;
    }
    (IsOffloaded(c) ? offloaded : kernel)++;
    fds.push_back(c);
    fds.push_back(s);
  }
  printf("offloaded=%d kernel=%d\n", offloaded, kernel);
  for (int fd : fds) close(fd);
  close(l);
  return 0;
}

// A thread blocked in recvfrom() on an unbound UDP socket, then another
// thread's first sendto() from it to an echo server: the echo must reach
// the blocked thread, as on Linux (under offload the send offloads the
// socket and the decision wakes the waiting thread onto the rings). Prints
// "blocked-receiver got=G offloaded=O".
int BlockedReceiver() {
  const int srv = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof(a);
  if (srv < 0 || bind(srv, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(srv, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
    perror("blocked-receiver: server");
    return 1;
  }
  std::thread echo([srv] {
    char buf[64];
    sockaddr_in from = {};
    socklen_t flen = sizeof(from);
    const ssize_t n = recvfrom(srv, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n > 0) sendto(srv, buf, n, 0, reinterpret_cast<sockaddr*>(&from), flen);
  });
  const int c = socket(AF_INET, SOCK_DGRAM, 0);
  timeval tv = {10, 0};  // a receiver left waiting fails the check instead of hanging
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::atomic<pid_t> tid{0};
  std::atomic<int> got{0};
  std::thread rx([&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    char buf[64];
    got = recvfrom(c, buf, sizeof(buf), 0, nullptr, nullptr) == 4 && memcmp(buf, "ping", 4) == 0;
  });
  // Wait (bounded) until the receiver sleeps in the kernel's recvfrom or
  // recvmsg: /proc/self/task/TID/syscall starts with the syscall number.
  for (int i = 0; i < 5000; ++i) {
    const pid_t t = tid.load();
    if (t != 0) {
      char path[64], line[64] = {};
      snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", t);
      FILE* f = fopen(path, "r");
      if (f != nullptr) {
        if (fgets(line, sizeof(line), f) == nullptr) line[0] = 0;
        fclose(f);
      }
      const long nr = strtol(line, nullptr, 10);
      // Under offload the receiver of a socket without a port waits in
      // poll() (client io.cc KernelRecvmsg), where the decision wakes it.
      if (nr == SYS_recvfrom || nr == SYS_recvmsg || nr == SYS_poll || nr == SYS_ppoll) break;
    }
    usleep(1000);  // poll interval
  }
  sendto(c, "ping", 4, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  rx.join();
  if (!got) shutdown(srv, SHUT_RDWR);
  echo.join();
  printf("blocked-receiver got=%d offloaded=%d\n", got.load(), IsOffloaded(c) ? 1 : 0);
  close(c);
  close(srv);
  return 0;
}

// Opens connected pairs (each carrying a byte) until the fd limit stops
// it; prints how many pairs and how many offloaded. Run it under a soft
// RLIMIT_NOFILE set before the program starts (prlimit): the library
// places its own descriptors by the limit it finds at start-up.
// Many connections to two listeners: past a thousand offloaded connects
// their shadows share local ports between destinations (client
// shadow_ports.h). Every connection still works, its 4-tuple is unique
// (what each listener's accept reports), and SO_REUSEADDR reads as the
// application left it. Prints "shared-ports conns=N ports=P offloaded=O".
int SharedPorts(int n) {
  rlimit rl = {};
  getrlimit(RLIMIT_NOFILE, &rl);
  const rlim_t want = static_cast<rlim_t>(2 * n + 64);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = std::min(want, rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < want) {
    printf("shared-ports skipped: RLIMIT_NOFILE %llu\n", static_cast<unsigned long long>(rl.rlim_max));
    return 0;
  }
  int l[2] = {Listener(), Listener()};
  if (l[0] < 0 || l[1] < 0) return 3;
  std::vector<int> fds;
  std::vector<std::pair<int, uint16_t>> peers;  // (listener, peer port) as accept() reports them
  std::vector<uint16_t> client_ports;
  int offloaded = 0;
  for (int i = 0; i < n; ++i) {
    const int which = i % 2;
    const int c = Connect(PortOf(l[which]));
    sockaddr_in peer = {};
    socklen_t plen = sizeof(peer);
    const int s = c >= 0 ? accept(l[which], reinterpret_cast<sockaddr*>(&peer), &plen) : -1;
    char b = 0;
    if (c < 0 || s < 0 || send(c, "p", 1, 0) != 1 || RecvAll(s, &b, 1) != 1 || b != 'p') {
      fprintf(stderr, "pair %d failed: %s\n", i, strerror(errno));
      return 4;
    }
    int reuse = -1;
    socklen_t rlen = sizeof(reuse);
    if (getsockopt(c, SOL_SOCKET, SO_REUSEADDR, &reuse, &rlen) != 0 || reuse != 0) {
      fprintf(stderr, "pair %d: SO_REUSEADDR reads %d, the application never set it\n", i, reuse);
      return 5;
    }
    sockaddr_in me = {};
    socklen_t mlen = sizeof(me);
    getsockname(c, reinterpret_cast<sockaddr*>(&me), &mlen);
    if (me.sin_port != peer.sin_port) {
      fprintf(stderr, "pair %d: getsockname port %u, the listener saw %u\n", i, ntohs(me.sin_port),
              ntohs(peer.sin_port));
      return 6;
    }
    offloaded += IsOffloaded(c);
    peers.push_back({which, peer.sin_port});
    client_ports.push_back(peer.sin_port);
    fds.push_back(c);
    fds.push_back(s);
  }
  std::sort(peers.begin(), peers.end());
  if (std::adjacent_find(peers.begin(), peers.end()) != peers.end()) {
    fprintf(stderr, "two connections to one listener from one port\n");
    return 7;
  }
  std::sort(client_ports.begin(), client_ports.end());
  const size_t ports =
      std::unique(client_ports.begin(), client_ports.end()) - client_ports.begin();
  // Every connection still carries data after all are open.
  for (size_t i = 0; i + 1 < fds.size(); i += 2) {
    char b = 0;
    if (send(fds[i + 1], "q", 1, 0) != 1 || RecvAll(fds[i], &b, 1) != 1 || b != 'q') {
      fprintf(stderr, "pair %zu lost its data\n", i / 2);
      return 8;
    }
  }
  printf("shared-ports conns=%d ports=%zu offloaded=%d\n", n, ports, offloaded);
  for (int fd : fds) close(fd);
  close(l[0]);
  close(l[1]);
  return 0;
}

int FdBudget() {
  int l = Listener();
  if (l < 0) return 3;
  int pairs = 0, offloaded = 0;
  for (int i = 0; i < 1 << 20; ++i) {
    int c = Connect(PortOf(l));
    if (c < 0) break;
    int s = accept(l, nullptr, nullptr);
    if (s < 0) {
      close(c);
      break;
    }
    char b = 0;
    if (send(c, "f", 1, 0) != 1 || RecvAll(s, &b, 1) != 1 || b != 'f') {
      fprintf(stderr, "pair %d carries no data: %s\n", i, strerror(errno));
      return 4;
    }
    ++pairs;
    offloaded += IsOffloaded(c) ? 1 : 0;
  }
  printf("fd-budget pairs=%d offloaded=%d errno=%s\n", pairs, offloaded, strerror(errno));
  return 0;
}

// A blocked server with an idle client: both must sleep (no CPU).
int Idle(int seconds) {
  int c, s;
  if (!Pair(&c, &s)) return 3;
  printf("idle %s\n", IsOffloaded(c) ? "offloaded" : "kernel");
  fflush(stdout);
  int ep = epoll_create1(0);
  epoll_event ev = {};
  ev.events = EPOLLIN;
  epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  std::thread t([&] {
    char b;
    recv(c, &b, 1, 0);  // the idle client, blocked in recv
  });
  epoll_event out;
  epoll_wait(ep, &out, 1, seconds * 1000);  // the blocked server
  shutdown(s, SHUT_WR);
  t.join();
  return 0;
}

// Many sleeping acceptors on one listener: `threads` threads blocked in
// accept() and `procs` pre-forked children in epoll_wait on it (more than
// a ring's own waiter set holds). While nothing happens they must all
// sleep: the voluntary context switches of every one of them over 2 s are
// printed (a sleeper that polls with a timeout makes hundreds); then one
// connection per acceptor must each be served.
// The /proc directories of every thread of `pid` but `skip_tid`.
std::vector<std::string> TaskDirs(pid_t pid, pid_t skip_tid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.' && std::to_string(skip_tid) != e->d_name) {
        out.push_back(dir + "/" + e->d_name);
      }
    }
    closedir(d);
  }
  return out;
}

// Voluntary context switches of every thread of `pid` but `skip_tid`.
long ContextSwitches(pid_t pid, pid_t skip_tid = 0) {
  long total = 0;
  for (const std::string& t : TaskDirs(pid, skip_tid)) {
    FILE* f = fopen((t + "/status").c_str(), "r");
    if (f == nullptr) continue;
    char l[256];
    while (fgets(l, sizeof(l), f) != nullptr) {
      long v;
      if (sscanf(l, "voluntary_ctxt_switches: %ld", &v) == 1) total += v;
    }
    fclose(f);
  }
  return total;
}

// True when no thread of `pid` but `skip_tid` is running or runnable.
bool AllAsleep(pid_t pid, pid_t skip_tid) {
  bool asleep = true;  // also when the process is gone
  for (const std::string& t : TaskDirs(pid, skip_tid)) {
    FILE* f = fopen((t + "/stat").c_str(), "r");
    if (f == nullptr) continue;
    char l[512] = {};
    if (fgets(l, sizeof(l), f) != nullptr) {
      const char* close_paren = strrchr(l, ')');
      if (close_paren != nullptr && close_paren[1] == ' ' && close_paren[2] == 'R') asleep = false;
    }
    fclose(f);
  }
  return asleep;
}

int IdleAcceptors(int threads, int procs) {
  int l = Listener();
  if (l < 0) return 2;
  const uint16_t port = PortOf(l);
  auto serve = [](int fd) {
    char b = 0;
    if (RecvAll(fd, &b, 1) != 1 || send(fd, &b, 1, 0) != 1) return false;
    close(fd);
    return true;
  };
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      // A pre-fork worker: epoll on the shared listener (exclusively, as
      // nginx does), serve one, exit.
      int ep = epoll_create1(0);
      epoll_event ev = {};
      ev.events = EPOLLIN | EPOLLEXCLUSIVE;
      epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
      for (;;) {
        epoll_event out;
        if (epoll_wait(ep, &out, 1, 60000) <= 0) _exit(3);
        const int c = accept4(l, nullptr, nullptr, SOCK_NONBLOCK);
        if (c < 0) continue;  // another worker took it
        fcntl(c, F_SETFL, 0);
        _exit(serve(c) ? 0 : 4);
      }
    }
    kids.push_back(pid);
  }
  std::atomic<int> served{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&] {
      const int c = accept(l, nullptr, nullptr);
      if (c >= 0 && serve(c)) served.fetch_add(1);
    });
  }
  printf("idle-acceptors %s\n", IsOffloaded(l) ? "offloaded" : "kernel");
  fflush(stdout);
  usleep(500000);  // past every spin budget: all of them sleep now
  auto switches = [&] {
    long n = ContextSwitches(getpid());
    for (pid_t k : kids) n += ContextSwitches(k);
    return n;
  };
  const long before = switches();
  sleep(2);
  const long idle = switches() - before;
  printf("idle-acceptors switches=%ld\n", idle);
  fflush(stdout);
  // The first connection wakes one acceptor (blocked accept() and
  // EPOLLEXCLUSIVE are exclusive on Linux), not all of them: the others'
  // context switches, counted once every acceptor sleeps again.
  const pid_t me = static_cast<pid_t>(syscall(SYS_gettid));
  auto acceptor_switches = [&] {
    long n = ContextSwitches(getpid(), me);
    for (pid_t k : kids) n += ContextSwitches(k);
    return n;
  };
  auto all_asleep = [&] {
    if (!AllAsleep(getpid(), me)) return false;
    for (pid_t k : kids) {
      if (!AllAsleep(k, 0)) return false;
    }
    return true;
  };
  const long herd_before = acceptor_switches();
  int ok = 0;
  for (int i = 0; i < threads + procs; ++i) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = Loopback(port);
    char b = 'a';
    if (connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && send(c, &b, 1, 0) == 1 &&
        RecvAll(c, &b, 1) == 1 && b == 'a') {
      ++ok;
    } else {
      fprintf(stderr, "connection %d: %s\n", i, strerror(errno));
    }
    close(c);
    if (i == 0) {
      // The woken acceptor serves and exits; the rest sleep again (bounded wait).
      const int64_t until = NowMs() + 10000;
      while (!all_asleep() && NowMs() < until) usleep(1000);  // poll interval
      printf("idle-acceptors herd=%ld\n", acceptor_switches() - herd_before);
      fflush(stdout);
    }
  }
  for (auto& t : ts) t.join();
  int kids_ok = 0;
  for (pid_t k : kids) {
    int st = 0;
    if (waitpid(k, &st, 0) == k && WIFEXITED(st) && WEXITSTATUS(st) == 0) ++kids_ok;
  }
  printf("idle-acceptors served=%d threads=%d procs=%d\n", ok, served.load(), kids_ok);
  close(l);
  return ok == threads + procs && served.load() == threads && kids_ok == procs ? 0 : 5;
}

// ------------------------------------------------------- helper processes

int EchoServer(const char* port_file) {
  int l = Listener();
  if (l < 0) return 2;
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in ua = Loopback(PortOf(l));
  if (bind(u, reinterpret_cast<sockaddr*>(&ua), sizeof(ua)) != 0) return 2;
  FILE* f = fopen(std::string(std::string(port_file) + ".tmp").c_str(), "w");
  fprintf(f, "%u\n", PortOf(l));
  fclose(f);
  rename((std::string(port_file) + ".tmp").c_str(), port_file);
  int ep = epoll_create1(0);
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = l;
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  ev.data.fd = u;
  epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev);
  for (;;) {
    epoll_event out[16];
    const int n = epoll_wait(ep, out, 16, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = out[i].data.fd;
      char buf[65536];
      if (fd == l) {
        const int c = accept(l, nullptr, nullptr);
        if (c < 0) continue;
        printf("accepted %s\n", PathAsExpected(c) ? "as-expected" : "UNEXPECTED-PATH");
        fflush(stdout);
        ev.data.fd = c;
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
      } else if (fd == u) {
        sockaddr_in from = {};
        socklen_t len = sizeof(from);
        const ssize_t k = recvfrom(u, buf, sizeof(buf), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &len);
        if (k >= 0) sendto(u, buf, k, 0, reinterpret_cast<sockaddr*>(&from), len);
      } else {
        const ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (k > 0) {
          if (send(fd, buf, k, MSG_NOSIGNAL) != k) {
            printf("short echo\n");
          }
        } else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
          printf("peer gone: %s\n", k == 0 ? "EOF" : strerror(errno));
          fflush(stdout);
          epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          close(fd);
        }
      }
    }
  }
}

int EchoClient(uint16_t port, int n) {
  int c = Connect(port);
  if (c < 0 || !PathAsExpected(c)) return 3;
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to = Loopback(port);
  timeval tv = {5, 0};
  setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  for (int i = 0; i < n; ++i) {
    char msg[64], buf[64];
    const int len = snprintf(msg, sizeof(msg), "message %d", i);
    if (send(c, msg, len, 0) != len || RecvAll(c, buf, len) != len || memcmp(msg, buf, len) != 0) {
      fprintf(stderr, "tcp echo %d failed: %s\n", i, strerror(errno));
      return 4;
    }
    if (sendto(u, msg, len, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != len ||
        recv(u, buf, sizeof(buf), 0) != len || memcmp(msg, buf, len) != 0) {
      fprintf(stderr, "udp echo %d failed: %s\n", i, strerror(errno));
      return 5;
    }
  }
  printf("echo ok\n");
  close(c);
  return 0;
}

int Blast(uint16_t port) {
  int c = Connect(port);
  if (c < 0) return 3;
  static char buf[16384];
  printf("blasting\n");
  fflush(stdout);
  for (;;) {
    if (send(c, buf, sizeof(buf), MSG_NOSIGNAL) < 0) return 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* e = getenv("EXPECT_OFFLOAD")) g_expect_offload = atoi(e);
  signal(SIGPIPE, SIG_IGN);
  // Every mode's TCP listeners and connectors (children exec'd for the
  // sharing checks inherit the variable).
  if (!SetFamilyFromEnv()) return 100;
  if (argc >= 2 && strcmp(argv[1], "checks") == 0) {
    signal(SIGPIPE, SIG_DFL);
    return RunChecks(argc >= 3 ? argv[2] : nullptr);
  }
  if (argc >= 2 && strcmp(argv[1], "features") == 0) return RunFeatureChecks();
  if (argc >= 2 && strcmp(argv[1], "sharing") == 0) {
    return RunSharingChecks(argc >= 3 ? argv[2] : nullptr);
  }
  if (argc >= 3 && strcmp(argv[1], "sharing-one") == 0) return RunOneSharingCheck(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "exec-echo") == 0) return ExecEcho(atoi(argv[2]));
  if (argc >= 3 && strcmp(argv[1], "exec-accept") == 0) return ExecAccept(atoi(argv[2]));
  if (argc >= 4 && strcmp(argv[1], "paths") == 0) return Paths(atoi(argv[2]), atoi(argv[3]));
  if (argc >= 3 && strcmp(argv[1], "idle") == 0) return Idle(atoi(argv[2]));
  if (argc >= 4 && strcmp(argv[1], "idle-acceptors") == 0) {
    return IdleAcceptors(atoi(argv[2]), atoi(argv[3]));
  }
  if (argc >= 3 && strcmp(argv[1], "many") == 0) return Many(atoi(argv[2]));
  if (argc >= 3 && strcmp(argv[1], "families-hold") == 0) return FamiliesHold(atoi(argv[2]));
  if (argc >= 2 && strcmp(argv[1], "fd-budget") == 0) return FdBudget();
  if (argc >= 3 && strcmp(argv[1], "shared-ports") == 0) return SharedPorts(atoi(argv[2]));
  if (argc >= 2 && strcmp(argv[1], "blocked-receiver") == 0) return BlockedReceiver();
  if (argc >= 3 && strcmp(argv[1], "echo-server") == 0) return EchoServer(argv[2]);
  if (argc >= 4 && strcmp(argv[1], "echo-client") == 0) {
    return EchoClient(static_cast<uint16_t>(atoi(argv[2])), atoi(argv[3]));
  }
  if (argc >= 3 && strcmp(argv[1], "blast") == 0) return Blast(static_cast<uint16_t>(atoi(argv[2])));
  fprintf(stderr, "usage: %s checks [NAME] | echo-server PORTFILE | echo-client PORT N | blast PORT\n",
          argv[0]);
  return 2;
}
