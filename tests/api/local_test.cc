// Tests of LocalStream: descriptor passing (SCM_RIGHTS) within a process
// and to a forked child, the kind checks on receipt, and LocalAcceptor /
// LocalConnector on an abstract address.

#include "api/local.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "api/acceptor.h"
#include "api/connector.h"
#include "api/dgram.h"
#include "gtest/gtest.h"

namespace offload::sock {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct TcpPair {
  Stream client;
  Stream server;
};

TcpPair Connected() {
  Result<Acceptor> a = Acceptor::Open(InetAddr::Loopback4(0));
  EXPECT_TRUE(a.ok());
  Result<Stream> c = Connector().connect(*a->local_addr());
  EXPECT_TRUE(c.ok());
  Result<Stream> s = a->accept();
  EXPECT_TRUE(s.ok());
  return {std::move(*c), std::move(*s)};
}

TEST(LocalStreamTest, PassesAStreamThatKeepsWorking) {
  Result<std::pair<LocalStream, LocalStream>> pair = LocalStream::Pair();
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  TcpPair tcp = Connected();
  ASSERT_TRUE(pair->first.send_handle(tcp.server).ok());
  // The sender gives its copy up; the receiver's is now the only one.
  ASSERT_TRUE(tcp.server.close().ok());
  Result<Stream> got = pair->second.recv_handle<Stream>(seconds(10));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got->peer_addr(), *tcp.client.local_addr());
  ASSERT_TRUE(tcp.client.send_n("through", 7).ok());
  char buf[7];
  ASSERT_EQ(got->recv_n(buf, 7).bytes(), 7u);
  EXPECT_EQ(std::string(buf, 7), "through");
  // Descriptors arrive close-on-exec.
  EXPECT_NE(::fcntl(got->native_handle(), F_GETFD) & FD_CLOEXEC, 0);
}

// A local stream pair plus an acceptor and a datagram socket to pass.
class HandlesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pair_.ok());
    ASSERT_TRUE(acceptor_.ok() && dgram_.ok());
  }
  LocalStream& sender() { return pair_->first; }
  LocalStream& receiver() { return pair_->second; }

  Result<std::pair<LocalStream, LocalStream>> pair_ = LocalStream::Pair();
  Result<Acceptor> acceptor_ = Acceptor::Open(InetAddr::Loopback4(0));
  Result<Dgram> dgram_ = Dgram::Open(InetAddr::Loopback4(0));
};

TEST_F(HandlesTest, PassesAnAcceptorAndADgram) {
  ASSERT_TRUE(sender().send_handle(*acceptor_).ok());
  ASSERT_TRUE(sender().send_handle(*dgram_).ok());
  Result<Acceptor> a2 = receiver().recv_handle<Acceptor>();
  ASSERT_TRUE(a2.ok()) << a2.status().ToString();
  EXPECT_EQ(*a2->local_addr(), *acceptor_->local_addr());
  Result<Dgram> d2 = receiver().recv_handle<Dgram>();
  ASSERT_TRUE(d2.ok()) << d2.status().ToString();
  EXPECT_EQ(*d2->local_addr(), *dgram_->local_addr());
  // The received acceptor accepts (with a timeout: it is non-blocking).
  Result<Stream> c = Connector().connect(*acceptor_->local_addr());
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(a2->accept(seconds(10)).ok());
}

TEST_F(HandlesTest, WrongKindIsRefusedAndClosed) {
  ASSERT_TRUE(sender().send_handle(*acceptor_).ok());
  Result<Stream> s = receiver().recv_handle<Stream>();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), EPROTOTYPE);  // listening, not connected
  ASSERT_TRUE(sender().send_handle(*dgram_).ok());
  EXPECT_EQ(receiver().recv_handle<Stream>().status().code(), EPROTOTYPE);
  ASSERT_TRUE(sender().send_handle(*dgram_).ok());
  EXPECT_EQ(receiver().recv_handle<ConnectedDgram>().status().code(), ENOTCONN);
  ASSERT_TRUE(sender().send_handle(sender()).ok());
  EXPECT_EQ(receiver().recv_handle<Stream>().status().code(), EAFNOSUPPORT);
  // Not a socket at all: only Handle takes it.
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  Handle r(p[0]), w(p[1]);
  ASSERT_TRUE(sender().send_handle(r).ok());
  EXPECT_EQ(receiver().recv_handle<Stream>().status().code(), ENOTSOCK);
  ASSERT_TRUE(sender().send_handle(r).ok());
  Result<Handle> h = receiver().recv_handle<Handle>();
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(::write(w.get(), "!", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(h->get(), &c, 1), 1);
  EXPECT_EQ(c, '!');
}

TEST(LocalStreamTest, DataInsteadOfAHandleAndEndOfStream) {
  Result<std::pair<LocalStream, LocalStream>> pair = LocalStream::Pair();
  ASSERT_TRUE(pair.ok());
  ASSERT_TRUE(pair->first.send_n("x", 1).ok());
  EXPECT_EQ(pair->second.recv_handle<Stream>().status().code(), EBADMSG);
  EXPECT_EQ(pair->second.recv_handle<Stream>(milliseconds(10)).status().code(),
            ETIMEDOUT);
  ASSERT_TRUE(pair->first.close().ok());
  EXPECT_EQ(pair->second.recv_handle<Stream>().status().code(), ENODATA);
  Handle none;
  EXPECT_EQ(pair->second.send_handle(none).code(), EBADF);
}

TEST(LocalStreamTest, PassesAStreamToAnotherProcess) {
  Result<std::pair<LocalStream, LocalStream>> pair = LocalStream::Pair();
  ASSERT_TRUE(pair.ok());
  TcpPair tcp = Connected();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child: receive the stream and echo one message on it. No gtest
    // assertions here; the exit status says how it went.
    (void)pair->first.close();
    Result<Stream> s = pair->second.recv_handle<Stream>(seconds(30));
    if (!s.ok()) ::_exit(2);
    char buf[5];
    if (s->recv_n(buf, 5, seconds(30)).bytes() != 5) ::_exit(3);
    if (!s->send_n(buf, 5).ok()) ::_exit(4);
    ::_exit(0);
  }
  (void)pair->second.close();
  ASSERT_TRUE(pair->first.send_handle(tcp.server).ok());
  ASSERT_TRUE(tcp.server.close().ok());
  ASSERT_TRUE(tcp.client.send_n("hello", 5).ok());
  char buf[5];
  IoResult r = tcp.client.recv_n(buf, 5, seconds(30));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_EQ(r.bytes(), 5u);
  EXPECT_EQ(std::string(buf, 5), "hello");
}

TEST(LocalAcceptorTest, AbstractAddressRoundTrip) {
  Result<UnixAddr> where =
      UnixAddr::Abstract("offload-api-test-" + std::to_string(::getpid()));
  ASSERT_TRUE(where.ok());
  Result<LocalAcceptor> a = LocalAcceptor::Open(*where);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a->local_addr(), *where);
  ConnectOptions o;
  o.timeout = seconds(10);
  Result<LocalStream> c = LocalConnector().connect(*where, o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Result<LocalStream> s = a->accept(seconds(10));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*c->peer_addr(), *where);
  // A handle over the accepted stream.
  Result<Dgram> d = Dgram::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(c->send_handle(*d).ok());
  Result<Dgram> d2 = s->recv_handle<Dgram>(seconds(10));
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(*d2->local_addr(), *d->local_addr());
  // Nobody on another name.
  Result<LocalStream> none =
      LocalConnector().connect(*UnixAddr::Abstract("offload-api-test-none"), o);
  EXPECT_EQ(none.status().code(), ECONNREFUSED);
}

TEST(LocalAcceptorTest, PathAddress) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string path = std::string(tmp ? tmp : "/tmp") + "/api-local.sock";
  if (path.size() >= 100)
    path = "/tmp/offload-api-local-" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  Result<UnixAddr> where = UnixAddr::Path(path);
  ASSERT_TRUE(where.ok());
  Result<LocalAcceptor> a = LocalAcceptor::Open(*where);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  // The path exists now: a second acceptor cannot take it.
  EXPECT_EQ(LocalAcceptor::Open(*where).status().code(), EADDRINUSE);
  Result<LocalStream> c = LocalConnector().connect(*where);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(a->accept(seconds(10)).ok());
  EXPECT_EQ(a->local_addr()->ToString(), path);
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace offload::sock
