// Tests of Acceptor, Connector and Stream over TCP on 127.0.0.1: the
// factories, short writes and reads (small socket buffers, a reader
// thread), timeouts, end of stream, EINTR, scatter/gather and recv_view.
// Every port is picked by the kernel (bind port 0); nothing waits on a
// fixed sleep, and no test asserts how long anything took.

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "api/sock.h"
#include "gtest/gtest.h"

namespace offload::sock {
namespace {

using std::chrono::milliseconds;

std::vector<char> Pattern(size_t n, unsigned seed = 7) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = static_cast<char>((i * 131 + seed) % 251);
  }
  return v;
}

// A connected pair over loopback: `client` from a Connector, `server` from
// an Acceptor, with SO_SNDBUF/SO_RCVBUF of `buffer` bytes if positive.
struct TcpPair {
  Stream client;
  Stream server;
};

TcpPair Connected(int buffer = 0) {
  AcceptorOptions ao;
  ao.send_buffer = ao.recv_buffer = buffer;
  Result<Acceptor> acceptor = Acceptor::Open(InetAddr::Loopback4(0), ao);
  EXPECT_TRUE(acceptor.ok()) << acceptor.status().ToString();
  Result<InetAddr> where = acceptor->local_addr();
  EXPECT_TRUE(where.ok());
  ConnectOptions co;
  co.send_buffer = co.recv_buffer = buffer;
  co.timeout = std::chrono::seconds(10);
  Result<Stream> client = Connector().connect(*where, co);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  InetAddr peer;
  Result<Stream> server = acceptor->accept(&peer);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_EQ(peer, *client->local_addr());
  return {std::move(*client), std::move(*server)};
}

TEST(AcceptorTest, ListensOnAKernelPickedLoopbackPort) {
  Result<Acceptor> a = Acceptor::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  Result<InetAddr> where = a->local_addr();
  ASSERT_TRUE(where.ok());
  EXPECT_TRUE(where->is_loopback());
  EXPECT_NE(where->port(), 0);
  EXPECT_TRUE(Acceptor::CheckHandle(a->native_handle()).ok());
}

TEST(AcceptorTest, PortInUseIsReported) {
  Result<Acceptor> a = Acceptor::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok());
  Result<Acceptor> b = Acceptor::Open(*a->local_addr());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), EADDRINUSE);
  EXPECT_EQ(b.status().ToString(), "bind: Address already in use");
}

TEST(AcceptorTest, AcceptTimesOutWithoutAClient) {
  Result<Acceptor> a = Acceptor::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok());
  Result<Stream> s = a->accept(milliseconds(20));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ETIMEDOUT);
  EXPECT_STREQ(s.status().op(), "accept");
  // A zero timeout is one attempt.
  EXPECT_EQ(a->accept(milliseconds(0)).status().code(), ETIMEDOUT);
}

TEST(AcceptorTest, IPv6LoopbackWhenAvailable) {
  Result<Acceptor> a = Acceptor::Open(InetAddr::Loopback6(0));
  if (!a.ok()) GTEST_SKIP() << "no IPv6 loopback: " << a.status().ToString();
  Result<Stream> c = Connector().connect(*a->local_addr());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Result<Stream> s = a->accept();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->peer_addr()->is_v6());
  ASSERT_EQ(c->send_n("v6", 2).bytes(), 2u);
  char buf[2];
  EXPECT_EQ(s->recv_n(buf, 2).bytes(), 2u);
}

TEST(ConnectorTest, NonBlockingConnectWithTimeoutToAListener) {
  Result<Acceptor> a = Acceptor::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok());
  ConnectOptions o;
  o.timeout = std::chrono::seconds(10);
  Result<Stream> c = Connector().connect(*a->local_addr(), o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c->peer_addr(), *a->local_addr());
  // The stream is blocking again after the non-blocking handshake.
  EXPECT_EQ(::fcntl(c->native_handle(), F_GETFL) & O_NONBLOCK, 0);
  char byte = 'x';
  ASSERT_TRUE(c->send_n(&byte, 1).ok());
  Result<Stream> s = a->accept();
  ASSERT_TRUE(s.ok());
  byte = 0;
  EXPECT_EQ(s->recv_n(&byte, 1).bytes(), 1u);
  EXPECT_EQ(byte, 'x');
}

TEST(ConnectorTest, NonBlockingConnectToANonListeningPortIsRefused) {
  // A TCP socket bound to a kernel-picked port but not listening: nobody
  // else can take the port while it is held, and SYNs to it are refused.
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(holder, 0);
  Handle hold(holder);
  const InetAddr any_port = InetAddr::Loopback4(0);
  ASSERT_EQ(::bind(holder, any_port.sockaddr(), any_port.size()), 0);
  InetAddr port;
  socklen_t len = InetAddr::Capacity();
  ASSERT_EQ(::getsockname(holder, port.mutable_sockaddr(), &len), 0);
  ASSERT_TRUE(port.Adopt(len).ok());
  for (Timeout t : {Timeout(std::chrono::seconds(10)), Timeout::Infinite()}) {
    ConnectOptions o;
    o.timeout = t;
    Result<Stream> c = Connector().connect(port, o);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), ECONNREFUSED) << c.status().ToString();
    EXPECT_STREQ(c.status().op(), "connect");
  }
}

TEST(ConnectorTest, TimesOutWhenTheListenersQueueIsFull) {
  // With backlog 0 the kernel queues one connection and then drops SYNs,
  // so the handshake cannot complete while nobody accepts: the timeout is
  // what ends the connect, whatever the machine's speed.
  AcceptorOptions ao;
  ao.backlog = 0;
  Result<Acceptor> a = Acceptor::Open(InetAddr::Loopback4(0), ao);
  ASSERT_TRUE(a.ok());
  ConnectOptions o;
  o.timeout = milliseconds(100);
  std::vector<Stream> queued;
  int err = 0;
  for (int i = 0; i < 16 && err == 0; ++i) {
    Result<Stream> c = Connector().connect(*a->local_addr(), o);
    if (c.ok()) {
      queued.push_back(std::move(*c));
    } else {
      err = c.status().code();
    }
  }
  EXPECT_EQ(err, ETIMEDOUT);
  EXPECT_FALSE(queued.empty());
}

TEST(ConnectorTest, BindsTheGivenLocalAddress) {
  Result<Acceptor> a = Acceptor::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok());
  Result<Stream> c =
      Connector().connect(*a->local_addr(), *InetAddr::Parse("127.0.0.2:0"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->local_addr()->HostString(), "127.0.0.2");
  InetAddr peer;
  ASSERT_TRUE(a->accept(&peer).ok());
  EXPECT_EQ(peer, *c->local_addr());
}

TEST(StreamTest, SendNAndRecvNSurviveShortWritesAndReads) {
  // 4 KiB socket buffers and a reader taking odd-sized bites: the 4 MiB
  // send_n needs hundreds of short writes, recv_n many short reads.
  TcpPair p = Connected(4096);
  const std::vector<char> out = Pattern(4 << 20);
  std::vector<char> in(out.size());
  IoResult got;
  std::thread reader([&] {
    size_t off = 0;
    size_t bite = 1;
    while (off < in.size()) {
      const size_t n = std::min(bite, in.size() - off);
      IoResult r = p.server.recv_n(in.data() + off, n);
      if (!r.ok() || r.bytes() != n) {
        got = IoResult(off + r.bytes(), r.ok() ? EPIPE : r.error());
        return;
      }
      off += n;
      bite = bite * 3 % 70001 + 1;
    }
    got = IoResult::Ok(off);
  });
  IoResult sent = p.client.send_n(out.data(), out.size());
  reader.join();
  ASSERT_TRUE(sent.ok()) << sent.error();
  EXPECT_EQ(sent.bytes(), out.size());
  ASSERT_TRUE(got.ok()) << got.error() << " after " << got.bytes();
  EXPECT_EQ(got.bytes(), in.size());
  EXPECT_TRUE(in == out);
}

TEST(StreamTest, RecvNStopsShortAtEndOfStream) {
  TcpPair p = Connected();
  ASSERT_TRUE(p.client.send_n("abc", 3).ok());
  ASSERT_TRUE(p.client.close_writer().ok());
  char buf[10];
  IoResult r = p.server.recv_n(buf, sizeof(buf));
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.bytes(), 3u);
  EXPECT_EQ(std::string(buf, 3), "abc");
  r = p.server.recv(buf, sizeof(buf));
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.bytes(), 0u);
  // The other direction still works after close_writer.
  ASSERT_TRUE(p.server.send_n("ok", 2).ok());
  EXPECT_EQ(p.client.recv_n(buf, 2).bytes(), 2u);
}

TEST(StreamTest, RecvTimesOutWithoutData) {
  TcpPair p = Connected();
  char buf[4];
  IoResult r = p.server.recv(buf, sizeof(buf), milliseconds(20));
  EXPECT_EQ(r.error(), ETIMEDOUT);
  EXPECT_EQ(p.server.recv(buf, sizeof(buf), milliseconds(0)).error(),
            ETIMEDOUT);
  r = p.server.recv_n(buf, sizeof(buf), milliseconds(20));
  EXPECT_EQ(r.error(), ETIMEDOUT);
  EXPECT_EQ(r.bytes(), 0u);
  // Part of the data, then silence: recv_n reports what it got.
  ASSERT_TRUE(p.client.send_n("ab", 2).ok());
  r = p.server.recv_n(buf, sizeof(buf), milliseconds(20));
  EXPECT_EQ(r.error(), ETIMEDOUT);
  EXPECT_EQ(r.bytes(), 2u);
  EXPECT_EQ(std::string(buf, 2), "ab");
  EXPECT_EQ(r.status("recv_n").ToString(), "recv_n: Connection timed out");
}

TEST(StreamTest, SendNTimesOutWhenThePeerDoesNotRead) {
  TcpPair p = Connected(4096);
  const std::vector<char> out = Pattern(16 << 20);
  IoResult r = p.client.send_n(out.data(), out.size(), milliseconds(50));
  EXPECT_EQ(r.error(), ETIMEDOUT);
  EXPECT_GT(r.bytes(), 0u);
  EXPECT_LT(r.bytes(), out.size());
  // What went out arrives intact.
  std::vector<char> in(r.bytes());
  ASSERT_EQ(p.server.recv_n(in.data(), in.size()).bytes(), in.size());
  EXPECT_TRUE(std::equal(in.begin(), in.end(), out.begin()));
}

TEST(StreamTest, PlainCallsOnANonBlockingStreamReturnEagain) {
  TcpPair p = Connected();
  ASSERT_TRUE(p.server.set_nonblocking(true).ok());
  char buf[1];
  EXPECT_EQ(p.server.recv(buf, 1).error(), EAGAIN);
  // The Timeout calls work on non-blocking streams too.
  ASSERT_TRUE(p.client.send_n("z", 1).ok());
  IoResult r = p.server.recv_n(buf, 1, std::chrono::seconds(10));
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(buf[0], 'z');
}

TEST(StreamTest, SendToAClosedPeerIsEpipeNotSigpipe) {
  TcpPair p = Connected();
  ASSERT_TRUE(p.server.close().ok());
  // The first send may be accepted before the RST arrives; a later one
  // fails. No SIGPIPE either way (the test would die).
  IoResult r;
  for (int i = 0; i < 100 && r.ok(); ++i) r = p.client.send("x", 1);
  EXPECT_TRUE(r.error() == EPIPE || r.error() == ECONNRESET) << r.error();
}

void NoOp(int) {}

TEST(StreamTest, RecvNRestartsAfterSignals) {
  // SIGUSR1 without SA_RESTART interrupts a blocked recv with EINTR; recv_n
  // must carry on. Whether a given signal lands inside the call is up to the
  // scheduler; the result must be complete either way.
  struct sigaction sa {};
  sa.sa_handler = NoOp;
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  TcpPair p = Connected();
  const std::vector<char> out = Pattern(64 << 10);
  std::vector<char> in(out.size());
  std::atomic<bool> done{false};
  IoResult r;
  std::thread reader([&] {
    r = p.server.recv_n(in.data(), in.size());
    done = true;
  });
  const pthread_t target = reader.native_handle();
  for (size_t off = 0; off < out.size(); off += 1024) {
    pthread_kill(target, SIGUSR1);
    if (!p.client.send_n(out.data() + off, 1024).ok()) {
      ADD_FAILURE() << "send_n failed at " << off;
      (void)p.client.close();  // ends the reader's recv_n
      break;
    }
  }
  reader.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_TRUE(done);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.bytes(), out.size());
  EXPECT_TRUE(in == out);
}

TEST(StreamTest, GatherAndScatterAllBytes) {
  TcpPair p = Connected(4096);
  const std::vector<char> big = Pattern(1 << 20, 3);
  std::string head = "head:";
  char empty = 0;
  iovec out[4] = {{head.data(), head.size()},
                  {&empty, 0},
                  {const_cast<char*>(big.data()), big.size()},
                  {const_cast<char*>(":tail"), 5}};
  const size_t total = head.size() + big.size() + 5;
  std::vector<char> a(7), b(total - 7 - 3), c(3);
  iovec in[3] = {
      {a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
  IoResult got;
  std::thread reader([&] { got = p.server.recvv_n(in, 3); });
  IoResult sent = p.client.sendv_n(out, 4);
  reader.join();
  ASSERT_TRUE(sent.ok()) << sent.error();
  EXPECT_EQ(sent.bytes(), total);
  ASSERT_TRUE(got.ok()) << got.error();
  EXPECT_EQ(got.bytes(), total);
  std::string joined(a.begin(), a.end());
  joined.append(b.begin(), b.end());
  joined.append(c.begin(), c.end());
  std::string expected = head + std::string(big.begin(), big.end()) + ":tail";
  EXPECT_TRUE(joined == expected);
  // One call each: sendv queues both buffers (they fit), recvv returns what
  // has arrived, at least one byte, in order.
  iovec one[2] = {{const_cast<char*>("ab"), 2}, {const_cast<char*>("cd"), 2}};
  ASSERT_EQ(p.client.sendv(one, 2).bytes(), 4u);
  char x[2] = {0, 0}, y[2] = {0, 0};
  iovec two[2] = {{x, 2}, {y, 2}};
  IoResult r = p.server.recvv(two, 2);
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_GE(r.bytes(), 1u);
  EXPECT_EQ((std::string(x, 2) + std::string(y, 2)).substr(0, r.bytes()),
            std::string("abcd").substr(0, r.bytes()));
}

TEST(StreamTest, RecvViewLendsTheReceivedBytes) {
  TcpPair p = Connected();
  ASSERT_TRUE(p.client.send_n("hello", 5).ok());
  ASSERT_TRUE(p.client.close_writer().ok());
  char scratch[64];
  std::string all;
  RecvView view;
  for (;;) {
    IoResult r = p.server.recv_view(&view, scratch, sizeof(scratch),
                                    std::chrono::seconds(10));
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(view.size(), r.bytes());
    if (r.bytes() == 0) break;
    all.append(view.data(), view.size());
    view.reset();
    EXPECT_TRUE(view.empty());
  }
  EXPECT_EQ(all, "hello");
}

TEST(StreamTest, OptionsAndAddresses) {
  TcpPair p = Connected(8192);
  EXPECT_TRUE(p.client.set_no_delay(true).ok());
  Result<int> nd = p.client.get_option<int>(IPPROTO_TCP, TCP_NODELAY);
  ASSERT_TRUE(nd.ok());
  EXPECT_NE(*nd, 0);
  // The kernel doubles the request (socket(7)).
  EXPECT_EQ(*p.client.send_buffer(), 16384);
  EXPECT_EQ(*p.server.recv_buffer(), 16384);
  EXPECT_EQ(*p.client.peer_addr(), *p.server.local_addr());
  EXPECT_TRUE(Stream::CheckHandle(p.client.native_handle()).ok());
  EXPECT_EQ(Acceptor::CheckHandle(p.client.native_handle()).code(), EPROTOTYPE);
}

TEST(StreamTest, MoveTransfersOwnershipAndCloseIsIdempotent) {
  TcpPair p = Connected();
  const int fd = p.client.native_handle();
  Stream moved = std::move(p.client);
  EXPECT_EQ(moved.native_handle(), fd);
  EXPECT_FALSE(p.client.is_open());  // NOLINT(bugprone-use-after-move)
  Handle raw = std::move(moved).release();
  EXPECT_EQ(raw.get(), fd);
  Result<Stream> back = AdoptHandle<Stream>(std::move(raw));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->close().ok());
  EXPECT_TRUE(back->close().ok());
  EXPECT_FALSE(back->is_open());
}

}  // namespace
}  // namespace offload::sock
