// Tests of Dgram and ConnectedDgram on 127.0.0.1 (and ::1 when the machine
// has it): round trips with addresses, connected sockets, scatter/gather,
// timeouts, truncation.

#include "api/dgram.h"

#include <errno.h>
#include <sys/uio.h>

#include <chrono>
#include <string>

#include "gtest/gtest.h"

namespace offload::sock {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(DgramTest, RoundTripWithAddresses) {
  Result<Dgram> a = Dgram::Open(InetAddr::Loopback4(0));
  Result<Dgram> b = Dgram::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok() && b.ok());
  const InetAddr a_addr = *a->local_addr();
  const InetAddr b_addr = *b->local_addr();
  EXPECT_NE(a_addr.port(), 0);
  ASSERT_EQ(a->send_to("ping", 4, b_addr).bytes(), 4u);
  char buf[16];
  InetAddr from;
  IoResult r = b->recv_from(buf, sizeof(buf), &from, seconds(10));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(std::string(buf, r.bytes()), "ping");
  EXPECT_EQ(from, a_addr);
  // Reply to whoever sent it.
  ASSERT_EQ(b->send_to("pong", 4, from).bytes(), 4u);
  r = a->recv_from(buf, sizeof(buf), &from);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(buf, r.bytes()), "pong");
  EXPECT_EQ(from, b_addr);
}

TEST(DgramTest, EachDatagramIsWholeAndSeparate) {
  Result<Dgram> a = Dgram::Open(InetAddr::Loopback4(0));
  Result<Dgram> b = Dgram::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok() && b.ok());
  const InetAddr to = *b->local_addr();
  for (int i = 1; i <= 5; ++i) {
    const std::string msg(static_cast<size_t>(i * 100),
                          static_cast<char>('a' + i));
    ASSERT_EQ(a->send_to(msg.data(), msg.size(), to).bytes(), msg.size());
  }
  for (int i = 1; i <= 5; ++i) {
    char buf[1000];
    IoResult r = b->recv_from(buf, sizeof(buf), nullptr, seconds(10));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.bytes(), static_cast<size_t>(i * 100));
    EXPECT_EQ(buf[0], static_cast<char>('a' + i));
  }
}

TEST(DgramTest, ShortBufferTruncatesAndMsgTruncTellsTheRealSize) {
  Result<Dgram> a = Dgram::Open(InetAddr::Loopback4(0));
  Result<Dgram> b = Dgram::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a->send_to("0123456789", 10, *b->local_addr()).ok());
  ASSERT_TRUE(a->send_to("abcdefghij", 10, *b->local_addr()).ok());
  char buf[4];
  IoResult r = b->recv_from(buf, sizeof(buf), nullptr, seconds(10));
  EXPECT_EQ(r.bytes(), 4u);
  EXPECT_EQ(std::string(buf, 4), "0123");
  r = b->recv_from(buf, sizeof(buf), nullptr, MSG_TRUNC);
  EXPECT_EQ(r.bytes(), 10u);
  EXPECT_EQ(std::string(buf, 4), "abcd");
}

TEST(DgramTest, RecvTimesOut) {
  Result<Dgram> a = Dgram::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok());
  char buf[4];
  EXPECT_EQ(a->recv_from(buf, sizeof(buf), nullptr, milliseconds(20)).error(),
            ETIMEDOUT);
  EXPECT_EQ(a->recv_from(buf, sizeof(buf), nullptr, milliseconds(0)).error(),
            ETIMEDOUT);
}

TEST(DgramTest, GatherAndScatter) {
  Result<Dgram> a = Dgram::Open(InetAddr::Loopback4(0));
  Result<Dgram> b = Dgram::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(a.ok() && b.ok());
  iovec out[3] = {{const_cast<char*>("head-"), 5},
                  {const_cast<char*>("body-"), 5},
                  {const_cast<char*>("tail"), 4}};
  ASSERT_EQ(a->send_to(out, 3, *b->local_addr()).bytes(), 14u);
  char x[6], y[20];
  iovec in[2] = {{x, sizeof(x)}, {y, sizeof(y)}};
  InetAddr from;
  IoResult r = b->recv_from(in, 2, &from, seconds(10));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.bytes(), 14u);
  EXPECT_EQ(std::string(x, 6) + std::string(y, 8), "head-body-tail");
  EXPECT_EQ(from, *a->local_addr());
}

TEST(ConnectedDgramTest, RoundTripAndPeer) {
  Result<Dgram> server = Dgram::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(server.ok());
  Result<ConnectedDgram> c = ConnectedDgram::Open(*server->local_addr());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c->peer_addr(), *server->local_addr());
  ASSERT_EQ(c->send("hi", 2).bytes(), 2u);
  char buf[8];
  InetAddr from;
  IoResult r = server->recv_from(buf, sizeof(buf), &from, seconds(10));
  ASSERT_EQ(r.bytes(), 2u);
  EXPECT_EQ(from, *c->local_addr());
  ASSERT_EQ(server->send_to("yo", 2, from).bytes(), 2u);
  r = c->recv(buf, sizeof(buf), seconds(10));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(buf, r.bytes()), "yo");
  iovec out[2] = {{const_cast<char*>("a"), 1}, {const_cast<char*>("b"), 1}};
  ASSERT_EQ(c->sendv(out, 2).bytes(), 2u);
  r = server->recv_from(buf, sizeof(buf), nullptr, seconds(10));
  EXPECT_EQ(std::string(buf, r.bytes()), "ab");
  ASSERT_TRUE(server->send_to("cd", 2, from).ok());
  char p[1], q[1];
  iovec in[2] = {{p, 1}, {q, 1}};
  r = c->recvv(in, 2, seconds(10));
  EXPECT_EQ(r.bytes(), 2u);
  EXPECT_EQ(std::string(p, 1) + std::string(q, 1), "cd");
  EXPECT_EQ(c->recv(buf, sizeof(buf), milliseconds(10)).error(), ETIMEDOUT);
}

TEST(ConnectedDgramTest, DatagramsFromOthersAreNotDelivered) {
  Result<Dgram> server = Dgram::Open(InetAddr::Loopback4(0));
  Result<Dgram> stranger = Dgram::Open(InetAddr::Loopback4(0));
  ASSERT_TRUE(server.ok() && stranger.ok());
  Result<ConnectedDgram> c = ConnectedDgram::Open(
      *server->local_addr(), InetAddr::Loopback4(0), DgramOptions{});
  ASSERT_TRUE(c.ok());
  // The stranger's datagram is sent first; the kernel drops it because the
  // socket is connected to `server`; the server's arrives.
  ASSERT_TRUE(stranger->send_to("no", 2, *c->local_addr()).ok());
  ASSERT_TRUE(server->send_to("ok", 2, *c->local_addr()).ok());
  char buf[4];
  IoResult r = c->recv(buf, sizeof(buf), seconds(10));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(buf, r.bytes()), "ok");
}

TEST(DgramTest, Ipv6LoopbackWhenAvailable) {
  Result<Dgram> a = Dgram::Open(InetAddr::Loopback6(0));
  if (!a.ok()) GTEST_SKIP() << "no IPv6 loopback: " << a.status().ToString();
  Result<Dgram> b = Dgram::Open(InetAddr::Loopback6(0));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(a->send_to("six", 3, *b->local_addr()).ok());
  char buf[4];
  InetAddr from;
  IoResult r = b->recv_from(buf, sizeof(buf), &from, seconds(10));
  ASSERT_EQ(r.bytes(), 3u);
  EXPECT_TRUE(from.is_v6());
  EXPECT_EQ(from, *a->local_addr());
}

}  // namespace
}  // namespace offload::sock
