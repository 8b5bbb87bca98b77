// Tests of InetAddr and UnixAddr: parsing, formatting, errors, and the
// round trip through the kernel's sockaddr.

#include "api/addr.h"

#include <arpa/inet.h>
#include <errno.h>

#include <string>

#include "gtest/gtest.h"

namespace offload::sock {
namespace {

TEST(InetAddrTest, ParsesIpv4WithPort) {
  Result<InetAddr> a = InetAddr::Parse("127.0.0.1:5001");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(a->is_v4());
  EXPECT_EQ(a->port(), 5001);
  EXPECT_TRUE(a->is_loopback());
  EXPECT_EQ(a->HostString(), "127.0.0.1");
  EXPECT_EQ(a->ToString(), "127.0.0.1:5001");
  EXPECT_EQ(a->size(), sizeof(sockaddr_in));
  const auto* sin = reinterpret_cast<const sockaddr_in*>(a->sockaddr());
  EXPECT_EQ(sin->sin_port, htons(5001));
  EXPECT_EQ(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
}

TEST(InetAddrTest, ParsesBracketedIpv6AndFormatsItBack) {
  Result<InetAddr> a = InetAddr::Parse("[::1]:80");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->is_v6());
  EXPECT_TRUE(a->is_loopback());
  EXPECT_EQ(a->port(), 80);
  EXPECT_EQ(a->ToString(), "[::1]:80");
  EXPECT_EQ(a->size(), sizeof(sockaddr_in6));
  // inet_ntop's canonical form: zeros compressed, lower case.
  Result<InetAddr> b = InetAddr::Parse("[2001:DB8:0:0:0:0:0:1]:65535");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ToString(), "[2001:db8::1]:65535");
  EXPECT_FALSE(b->is_loopback());
}

TEST(InetAddrTest, HostAndPortForm) {
  EXPECT_EQ(InetAddr::Parse("10.1.2.3", 7)->ToString(), "10.1.2.3:7");
  EXPECT_EQ(InetAddr::Parse("::1", 7)->ToString(), "[::1]:7");
  EXPECT_EQ(InetAddr::Parse("[::1]", 7)->ToString(), "[::1]:7");
  EXPECT_EQ(InetAddr::Parse("localhost", 9)->ToString(), "127.0.0.1:9");
  EXPECT_EQ(InetAddr::Parse("localhost:9")->ToString(), "127.0.0.1:9");
}

TEST(InetAddrTest, RejectsMalformedText) {
  for (const char* bad : {"",
                          "127.0.0.1",
                          "127.0.0.1:",
                          ":80",
                          "127.0.0.1:65536",
                          "127.0.0.1:-1",
                          "127.0.0.1:+80",
                          "127.0.0.1:0x50",
                          "127.0.0.1:80 ",
                          " 127.0.0.1:80",
                          "256.0.0.1:80",
                          "1.2.3:80",
                          "::1:80",
                          "[::1:80",
                          "::1]:80",
                          "[127.0.0.1]:80",
                          "[]:80",
                          "host.example:80",
                          "127.0.0.1:123456",
                          "[::1]:"}) {
    Result<InetAddr> a = InetAddr::Parse(bad);
    EXPECT_FALSE(a.ok()) << "'" << bad << "' parsed as " << a->ToString();
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), EINVAL) << bad;
      EXPECT_STREQ(a.status().op(), "InetAddr::Parse");
    }
  }
  EXPECT_EQ(InetAddr::Parse("nope", 1).status().code(), EINVAL);
  EXPECT_EQ(InetAddr::Parse(std::string(100, '1'), 1).status().code(), EINVAL);
  EXPECT_EQ(InetAddr::Parse("1.2.3.4", 1).status().ToString(), "ok");
  EXPECT_EQ(InetAddr::Parse("x:1").status().ToString(),
            "InetAddr::Parse: Invalid argument");
}

TEST(InetAddrTest, PortBoundaries) {
  EXPECT_EQ(InetAddr::Parse("0.0.0.0:0")->port(), 0);
  EXPECT_TRUE(InetAddr::Parse("0.0.0.0:0")->is_any());
  EXPECT_EQ(InetAddr::Parse("1.1.1.1:65535")->port(), 65535);
  EXPECT_EQ(InetAddr::Parse("1.1.1.1:00080")->port(), 80);
}

TEST(InetAddrTest, FactoriesAndSetPort) {
  InetAddr a = InetAddr::Loopback6(1);
  a.set_port(2);
  EXPECT_EQ(a.ToString(), "[::1]:2");
  EXPECT_EQ(InetAddr::Any6(3).ToString(), "[::]:3");
  EXPECT_TRUE(InetAddr::Any6(3).is_any());
  EXPECT_EQ(InetAddr::Any4(4).ToString(), "0.0.0.0:4");
  EXPECT_EQ(InetAddr().ToString(), "0.0.0.0:0");
  EXPECT_EQ(InetAddr::Loopback4(5), *InetAddr::Parse("127.0.0.1:5"));
  EXPECT_NE(InetAddr::Loopback4(5), InetAddr::Loopback4(6));
  EXPECT_NE(InetAddr::Loopback4(5), InetAddr::Loopback6(5));
}

TEST(InetAddrTest, FromSockaddrChecksFamilyAndLength) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(99);
  sin.sin_addr.s_addr = htonl(0x7f000002);
  Result<InetAddr> a = InetAddr::FromSockaddr(
      reinterpret_cast<const sockaddr*>(&sin), sizeof(sin));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ToString(), "127.0.0.2:99");
  EXPECT_EQ(InetAddr::FromSockaddr(reinterpret_cast<const sockaddr*>(&sin), 4)
                .status()
                .code(),
            EINVAL);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  EXPECT_EQ(InetAddr::FromSockaddr(reinterpret_cast<const sockaddr*>(&sun),
                                   sizeof(sun))
                .status()
                .code(),
            EAFNOSUPPORT);
  EXPECT_EQ(InetAddr::FromSockaddr(nullptr, 0).status().code(), EINVAL);
}

TEST(UnixAddrTest, PathAbstractAndUnnamed) {
  Result<UnixAddr> p = UnixAddr::Path("/tmp/x.sock");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->is_abstract());
  EXPECT_EQ(p->name(), "/tmp/x.sock");
  EXPECT_EQ(p->ToString(), "/tmp/x.sock");
  Result<UnixAddr> a = UnixAddr::Parse("@offload-test");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->is_abstract());
  EXPECT_EQ(a->name(), "offload-test");
  EXPECT_EQ(a->ToString(), "@offload-test");
  EXPECT_NE(*a, *UnixAddr::Path("offload-test"));
  EXPECT_EQ(*a, *UnixAddr::Abstract("offload-test"));
  EXPECT_TRUE(UnixAddr().is_unnamed());
  EXPECT_EQ(UnixAddr().ToString(), "(unnamed)");
}

TEST(UnixAddrTest, RejectsEmptyEmbeddedNulAndTooLong) {
  EXPECT_EQ(UnixAddr::Path("").status().code(), EINVAL);
  EXPECT_EQ(UnixAddr::Parse("@").status().code(), EINVAL);
  EXPECT_EQ(UnixAddr::Path(std::string("a\0b", 3)).status().code(), EINVAL);
  const size_t max = sizeof(sockaddr_un{}.sun_path) - 1;
  EXPECT_TRUE(UnixAddr::Path(std::string(max, 'p')).ok());
  EXPECT_EQ(UnixAddr::Path(std::string(max + 1, 'p')).status().code(),
            ENAMETOOLONG);
  EXPECT_TRUE(UnixAddr::Abstract(std::string(max, 'a')).ok());
  EXPECT_EQ(UnixAddr::Abstract(std::string(max + 1, 'a')).status().code(),
            ENAMETOOLONG);
}

}  // namespace
}  // namespace offload::sock
