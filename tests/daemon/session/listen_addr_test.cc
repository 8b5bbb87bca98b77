// Which listener takes a same-host connection, by family, wildcard and
// IPV6_V6ONLY (issue 18), and the canonical endpoints of shm/sockaddr.h.

#include "daemon/session/listen_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "gtest/gtest.h"
#include "shm/sockaddr.h"

namespace offload {
namespace session {
namespace {

// 16-byte form of a textual address (IPv4 v4-mapped).
struct A16 {
  uint8_t b[16] = {};
  explicit A16(const char* text) {
    in_addr v4;
    if (inet_pton(AF_INET, text, &v4) == 1) {
      b[10] = b[11] = 0xff;
      std::memcpy(b + 12, &v4, 4);
    } else {
      EXPECT_EQ(inet_pton(AF_INET6, text, b), 1) << text;
    }
  }
};

ListenAddr Make(int family, const char* addr, bool v6only = false) {
  ListenAddr l;
  l.family = family;
  std::memcpy(l.addr, A16(addr).b, 16);
  l.v6only = v6only;
  return l;
}

bool Takes(const ListenAddr& l, const char* dst, bool local = true) {
  return ListenerTakes(l, A16(dst).b, [local] { return local; });
}

TEST(ListenerTakes, Ipv4ListenerTakesIpv4DestinationsOnly) {
  EXPECT_TRUE(Takes(Make(AF_INET, "127.0.0.1"), "127.0.0.1"));
  EXPECT_FALSE(Takes(Make(AF_INET, "127.0.0.1"), "127.0.0.2"));
  EXPECT_TRUE(Takes(Make(AF_INET, "0.0.0.0"), "10.1.2.3"));
  EXPECT_FALSE(Takes(Make(AF_INET, "0.0.0.0"), "10.1.2.3", /*local=*/false));
  EXPECT_FALSE(Takes(Make(AF_INET, "0.0.0.0"), "::1"));
}

TEST(ListenerTakes, DualStackWildcardTakesBothFamilies) {
  const ListenAddr dual = Make(AF_INET6, "::");
  EXPECT_TRUE(Takes(dual, "::1"));
  EXPECT_TRUE(Takes(dual, "127.0.0.1"));
  EXPECT_FALSE(Takes(dual, "2001:db8::1", /*local=*/false));
}

TEST(ListenerTakes, V6OnlyListenerRefusesIpv4) {
  const ListenAddr v6 = Make(AF_INET6, "::", /*v6only=*/true);
  EXPECT_TRUE(Takes(v6, "::1"));
  EXPECT_FALSE(Takes(v6, "127.0.0.1"));
}

TEST(ListenerTakes, SpecificIpv6AddressTakesOnlyItself) {
  EXPECT_TRUE(Takes(Make(AF_INET6, "::1"), "::1"));
  EXPECT_FALSE(Takes(Make(AF_INET6, "::1"), "127.0.0.1"));
  EXPECT_FALSE(Takes(Make(AF_INET6, "::1"), "2001:db8::1"));
  // Bound to a v4-mapped address: that IPv4 destination.
  EXPECT_TRUE(Takes(Make(AF_INET6, "127.0.0.1"), "127.0.0.1"));
}

TEST(ListenerTakes, LocalityIsAskedOnlyForWildcards) {
  int calls = 0;
  ListenerTakes(Make(AF_INET6, "::1"), A16("::1").b, [&] { return ++calls, true; });
  ListenerTakes(Make(AF_INET, "127.0.0.1"), A16("127.0.0.2").b, [&] { return ++calls, true; });
  EXPECT_EQ(calls, 0);
}

TEST(ListenAddrOf, ReadsFamilyAddressAndV6OnlyFromTheKernel) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  const int one = 1;
  ASSERT_EQ(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)), 0);
  sockaddr_in6 a = {};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ListenAddr l;
  uint16_t port = 0;
  ASSERT_TRUE(ListenAddrOf(fd, &l, &port));
  EXPECT_EQ(l.family, AF_INET6);
  EXPECT_TRUE(l.v6only);
  EXPECT_EQ(std::memcmp(l.addr, A16("::1").b, 16), 0);
  EXPECT_NE(port, 0);
  close(fd);
}

TEST(IsLocalAddress6, LoopbackIsLocalDocumentationPrefixIsNot) {
  EXPECT_TRUE(IsLocalAddress6(A16("::1").b));
  EXPECT_FALSE(IsLocalAddress6(A16("2001:db8::dead").b));
}

TEST(SockAddr, V4MappedIsCanonicalIpv4AndShownInEachFamily) {
  sockaddr_in6 in = {};
  in.sin6_family = AF_INET6;
  in.sin6_port = htons(80);
  std::memcpy(in.sin6_addr.s6_addr, A16("127.0.0.1").b, 16);
  shm::SockAddr s;
  ASSERT_TRUE(shm::FromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof(in), &s));
  EXPECT_EQ(s.family, AF_INET);
  EXPECT_EQ(shm::V4Of(s), htonl(INADDR_LOOPBACK));
  sockaddr_in6 out;
  EXPECT_EQ(shm::ToSockaddr(s, AF_INET6, &out), sizeof(sockaddr_in6));
  EXPECT_EQ(std::memcmp(&out.sin6_addr, A16("127.0.0.1").b, 16), 0);
  EXPECT_EQ(out.sin6_port, htons(80));
  EXPECT_EQ(shm::ToSockaddr(s, AF_INET, &out), sizeof(sockaddr_in));
  EXPECT_EQ(reinterpret_cast<sockaddr_in*>(&out)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  // Short or foreign input is refused.
  EXPECT_FALSE(shm::FromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof(sockaddr_in), &s));
}

}  // namespace
}  // namespace session
}  // namespace offload
