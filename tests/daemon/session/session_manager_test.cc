// SessionManager against raw attach-protocol clients: arenas, brokering,
// detach clean-up, validation of hostile input, stats, thread toggles and
// rule publication.

#include "daemon/session/session_manager.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

#include "daemon/rules/rule_store.h"
#include "shm/abi.h"
#include "shm/byte_ring.h"
#include "shm/unique_fd.h"
#include "gtest/gtest.h"

namespace offload {
namespace session {
namespace {

using shm::Msg;
using shm::MsgType;
using shm::UniqueFd;

// A process-side attach connection speaking the protocol by hand.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    fd_.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un sun = {};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, path.c_str(), sizeof(sun.sun_path) - 1);
    ok_ = connect(fd_.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0;
  }
  bool ok() const { return ok_; }
  int fd() const { return fd_.get(); }
  void Close() { fd_.reset(); }

  bool Send(const Msg& m, const int* fds = nullptr, int n = 0) {
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)] = {};
    iovec iov = {const_cast<Msg*>(&m), sizeof(m)};
    msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (n > 0) {
      mh.msg_control = cbuf;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
      cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * n);
      std::memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    return sendmsg(fd_.get(), &mh, MSG_NOSIGNAL) == sizeof(m);
  }
  // Receives one message within 5 s. Returns false on EOF/timeout.
  bool Recv(Msg* m, std::vector<UniqueFd>* fds) {
    pollfd p = {fd_.get(), POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return false;
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    iovec iov = {m, sizeof(*m)};
    msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    const ssize_t n = recvmsg(fd_.get(), &mh, MSG_CMSG_CLOEXEC);
    if (n != sizeof(*m)) return false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int f;
        std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds->emplace_back(f);
      }
    }
    return true;
  }
  // Hello; maps the arena.
  bool Attach() {
    Msg m = {};
    m.type = MsgType::kHello;
    m.seq = 1;
    m.value = shm::kAbiVersion;
    std::vector<UniqueFd> fds;
    Msg r;
    if (!Send(m) || !Recv(&r, &fds) || r.type != MsgType::kHelloOk || fds.size() != 1) {
      return false;
    }
    arena_fd_ = std::move(fds[0]);
    arena_ = shm::Mapping::MapShared(arena_fd_.get(), r.value64);
    return arena_.valid();
  }
  shm::ArenaHeader* arena() const { return arena_.as<shm::ArenaHeader>(); }
  int arena_fd() const { return arena_fd_.get(); }

 private:
  UniqueFd fd_;
  bool ok_ = false;
  UniqueFd arena_fd_;
  shm::Mapping arena_;
};

// A connector's shadow: a TCP socket bound to an ephemeral loopback port.
UniqueFd BoundShadow(uint16_t* port) {
  UniqueFd s(socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
  if (port != nullptr) *port = a.sin_port;
  return s;
}

class SessionManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/session_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    v1::DaemonConfig config;
    config.set_run_dir(dir_);
    config.set_max_sockets_per_process(64);
    auto store = rules::RuleStore::Create("");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto m = SessionManager::Create(config, store_.get());
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
    ASSERT_TRUE(manager_->Start().ok());
  }
  void TearDown() override {
    manager_->Stop();
    rmdir(dir_.c_str());
  }

  // A listening kernel socket on 127.0.0.1:0 registered as listener `id`.
  struct Listening {
    UniqueFd sock, efd;
    uint16_t port = 0;  // network order
  };
  Listening Listen(RawClient* c, uint32_t id) {
    Listening l;
    l.sock.reset(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(l.sock.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(l.sock.get(), 8);
    socklen_t len = sizeof(a);
    getsockname(l.sock.get(), reinterpret_cast<sockaddr*>(&a), &len);
    l.port = a.sin_port;
    l.efd.reset(eventfd(0, EFD_NONBLOCK));
    Msg m = {};
    m.type = MsgType::kTcpListen;
    m.seq = 2;
    m.id = id;
    m.value = 8;
    m.local.addr = a.sin_addr.s_addr;
    m.local.port = a.sin_port;
    const int fds[2] = {l.sock.get(), l.efd.get()};
    Msg r;
    std::vector<UniqueFd> got;
    EXPECT_TRUE(c->Send(m, fds, 2));
    EXPECT_TRUE(c->Recv(&r, &got));
    EXPECT_EQ(r.type, MsgType::kStatus);
    EXPECT_EQ(r.status, 0);
    return l;
  }

  std::string dir_;
  std::unique_ptr<rules::RuleStore> store_;
  std::unique_ptr<SessionManager> manager_;
};

TEST_F(SessionManagerTest, HelloGivesASealedArenaWithAValidHeader) {
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.Attach());
  const int seals = fcntl(c.arena_fd(), F_GET_SEALS);
  EXPECT_TRUE(seals & F_SEAL_SHRINK);
  EXPECT_TRUE(seals & F_SEAL_GROW);
  EXPECT_NE(ftruncate(c.arena_fd(), 4096), 0) << "the process must not shrink its arena";
  EXPECT_EQ(c.arena()->magic, shm::kArenaMagic);
  EXPECT_EQ(c.arena()->abi_version, shm::kAbiVersion);
  EXPECT_EQ(c.arena()->pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(c.arena()->max_sockets, 64u);
  const auto sessions = manager_->ListSessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].pid(), static_cast<uint32_t>(getpid()));
}

TEST_F(SessionManagerTest, AbiMismatchIsRefusedWithoutAnArena) {
  RawClient c(manager_->engine_socket_path());
  Msg m = {};
  m.type = MsgType::kHello;
  m.value = shm::kAbiVersion + 100;
  ASSERT_TRUE(c.Send(m));
  Msg r;
  std::vector<UniqueFd> fds;
  ASSERT_TRUE(c.Recv(&r, &fds));
  EXPECT_EQ(r.type, MsgType::kStatus);
  EXPECT_EQ(r.status, EPROTONOSUPPORT);
  EXPECT_TRUE(fds.empty());
}

TEST_F(SessionManagerTest, MalformedInputDropsOnlyThatSession) {
  RawClient good(manager_->engine_socket_path());
  ASSERT_TRUE(good.Attach());
  RawClient bad(manager_->engine_socket_path());
  ASSERT_TRUE(bad.Attach());
  const char junk[10] = "garbage!!";
  ASSERT_EQ(send(bad.fd(), junk, sizeof(junk), 0), 10);
  char b;
  pollfd p = {bad.fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  EXPECT_EQ(recv(bad.fd(), &b, 1, 0), 0) << "the daemon hangs up on a protocol violation";
  // A request for someone else's pipe is a violation too.
  RawClient nosy(manager_->engine_socket_path());
  ASSERT_TRUE(nosy.Attach());
  Msg m = {};
  m.type = MsgType::kPipeClose;
  m.id = 12345;
  ASSERT_TRUE(nosy.Send(m));
  p = {nosy.fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  EXPECT_EQ(recv(nosy.fd(), &b, 1, 0), 0);
  // The well-behaved process is still served.
  Listening l = Listen(&good, 1);
  EXPECT_NE(l.port, 0);
}

TEST_F(SessionManagerTest, ListenRequiresAListeningSocketAsProof) {
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.Attach());
  UniqueFd s(socket(AF_INET, SOCK_STREAM, 0));  // not listening
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
  UniqueFd efd(eventfd(0, 0));
  Msg m = {};
  m.type = MsgType::kTcpListen;
  m.id = 1;
  m.local.port = a.sin_port;
  const int fds[2] = {s.get(), efd.get()};
  ASSERT_TRUE(c.Send(m, fds, 2));
  Msg r;
  std::vector<UniqueFd> got;
  ASSERT_TRUE(c.Recv(&r, &got));
  EXPECT_EQ(r.status, EINVAL);
  EXPECT_FALSE(shm::PortBit(c.arena()->tcp_ports, ntohs(a.sin_port)));
}

TEST_F(SessionManagerTest, ConnectBrokersAPipeAndDetachGivesThePeerEof) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server, 42);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  EXPECT_TRUE(shm::PortBit(client.arena()->tcp_ports, ntohs(l.port)))
      << "a listener's port is published to every process";

  uint16_t shadow_port = 0;
  UniqueFd shadow = BoundShadow(&shadow_port);
  Msg m = {};
  m.type = MsgType::kTcpConnect;
  m.seq = 9;
  m.local.addr = htonl(INADDR_LOOPBACK);
  m.local.port = htons(40000);  // a lie: the daemon takes the shadow's port
  m.remote.addr = htonl(INADDR_LOOPBACK);
  m.remote.port = l.port;
  const int fds[1] = {shadow.get()};
  ASSERT_TRUE(client.Send(m, fds, 1));
  Msg r;
  std::vector<UniqueFd> cfds;
  ASSERT_TRUE(client.Recv(&r, &cfds));
  ASSERT_EQ(r.type, MsgType::kPipe);
  EXPECT_EQ(r.seq, 9u);
  ASSERT_EQ(cfds.size(), 4u) << "memfd, own eventfd, peer eventfd, liveness pipe";
  Msg offer;
  std::vector<UniqueFd> sfds;
  ASSERT_TRUE(server.Recv(&offer, &sfds));
  ASSERT_EQ(offer.type, MsgType::kOffer);
  EXPECT_EQ(offer.id, 42u);
  EXPECT_EQ(offer.id2, r.id);
  EXPECT_EQ(offer.remote.port, shadow_port) << "the peer address comes from the kernel";
  ASSERT_EQ(sfds.size(), 4u);
  uint64_t kicks = 0;
  EXPECT_EQ(read(l.efd.get(), &kicks, sizeof(kicks)), 8) << "the listener's eventfd is kicked";
  EXPECT_EQ(server.arena()->events_posted.load(), 1u);

  // Both processes map the same segment: bytes flow connector -> acceptor.
  const size_t bytes = shm::PipeSegmentBytes(r.value);
  shm::Mapping cm = shm::Mapping::MapShared(cfds[0].get(), bytes);
  shm::Mapping sm = shm::Mapping::MapShared(sfds[0].get(), bytes);
  ASSERT_TRUE(cm.valid() && sm.valid());
  auto* ch = cm.as<shm::PipeHeader>();
  auto* sh = sm.as<shm::PipeHeader>();
  EXPECT_EQ(ch->magic, shm::kPipeMagic);
  shm::ByteRingProducer p;
  p.Init(&ch->dir[0], cm.as<uint8_t>() + shm::PipeDataOffset(0, r.value), r.value);
  shm::ByteRingConsumer c;
  c.Init(&sh->dir[0], sm.as<uint8_t>() + shm::PipeDataOffset(0, r.value), r.value);
  p.CopyIn(0, "hi", 2);
  p.Commit(2);
  ASSERT_EQ(c.Readable(), 2u);
  char buf[2];
  c.CopyOut(0, buf, 2);
  EXPECT_EQ(std::memcmp(buf, "hi", 2), 0);

  // The connector's process dies (the kernel closes its fds, the liveness
  // pipe among them): the acceptor sees FIN after the data.
  const shm::PipeHeader* keep = ch;
  (void)keep;
  client.Close();
  EXPECT_EQ(sh->dir[0].shut.load(), 0u) << "its fd copy is still open: not ended yet";
  cfds.clear();
  for (int i = 0; i < 500 && sh->dir[0].shut.load() == 0; ++i) usleep(2000);
  EXPECT_EQ(sh->dir[0].shut.load(), shm::kShutFin);
  EXPECT_EQ(sh->dir[1].reader_closed.load(), 1u);
  EXPECT_EQ(read(sfds[1].get(), &kicks, sizeof(kicks)), 8) << "the survivor is woken";
}

TEST_F(SessionManagerTest, DeathWithUnreadDataResetsThePeer) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server, 1);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  UniqueFd shadow = BoundShadow(nullptr);
  Msg m = {};
  m.type = MsgType::kTcpConnect;
  m.remote.addr = htonl(INADDR_LOOPBACK);
  m.remote.port = l.port;
  const int fds[1] = {shadow.get()};
  ASSERT_TRUE(client.Send(m, fds, 1));
  Msg r;
  std::vector<UniqueFd> cfds, sfds;
  ASSERT_TRUE(client.Recv(&r, &cfds));
  ASSERT_TRUE(server.Recv(&r, &sfds));
  shm::Mapping sm = shm::Mapping::MapShared(sfds[0].get(), shm::PipeSegmentBytes(r.value));
  auto* sh = sm.as<shm::PipeHeader>();
  // The acceptor wrote data the connector never read; then the connector dies.
  shm::ByteRingProducer p;
  p.Init(&sh->dir[1], sm.as<uint8_t>() + shm::PipeDataOffset(1, r.value), r.value);
  p.CopyIn(0, "unread", 6);
  p.Commit(6);
  client.Close();
  cfds.clear();  // the process's fds are gone
  for (int i = 0; i < 500 && sh->dir[0].shut.load() == 0; ++i) usleep(2000);
  EXPECT_EQ(sh->dir[0].shut.load(), shm::kShutRst);
  EXPECT_EQ(sh->dir[1].reader_closed.load(), 2u);
}

TEST_F(SessionManagerTest, ASideEndsOnlyWhenEveryCopyOfItsFdIsClosed) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server, 1);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  UniqueFd shadow = BoundShadow(nullptr);
  Msg m = {};
  m.type = MsgType::kTcpConnect;
  m.remote.addr = htonl(INADDR_LOOPBACK);
  m.remote.port = l.port;
  const int fds[1] = {shadow.get()};
  ASSERT_TRUE(client.Send(m, fds, 1));
  Msg r;
  std::vector<UniqueFd> cfds, sfds;
  ASSERT_TRUE(client.Recv(&r, &cfds));
  ASSERT_TRUE(server.Recv(&r, &sfds));
  ASSERT_EQ(cfds.size(), 4u);
  shm::Mapping sm = shm::Mapping::MapShared(sfds[0].get(), shm::PipeSegmentBytes(r.value));
  auto* sh = sm.as<shm::PipeHeader>();
  // A second copy (fork, dup, fd passing) keeps the side open.
  UniqueFd copy(dup(cfds[3].get()));
  cfds[3].reset();
  usleep(50000);
  EXPECT_EQ(sh->dir[0].shut.load(), 0u);
  copy.reset();
  for (int i = 0; i < 500 && sh->dir[0].shut.load() == 0; ++i) usleep(2000);
  EXPECT_EQ(sh->dir[0].shut.load(), shm::kShutFin);
}

TEST_F(SessionManagerTest, ConnectWithAnUnboundShadowIsNotBrokered) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server, 3);
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.Attach());
  UniqueFd unbound(socket(AF_INET, SOCK_STREAM, 0));
  Msg m = {};
  m.type = MsgType::kTcpConnect;
  m.remote.addr = htonl(INADDR_LOOPBACK);
  m.remote.port = l.port;
  const int fds[1] = {unbound.get()};
  ASSERT_TRUE(c.Send(m, fds, 1));
  Msg r;
  std::vector<UniqueFd> got;
  ASSERT_TRUE(c.Recv(&r, &got));
  EXPECT_EQ(r.type, MsgType::kStatus);
  EXPECT_LT(r.status, 0);
}

TEST_F(SessionManagerTest, ConnectToAPortNobodyOffloadsUsesTheKernel) {
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.Attach());
  UniqueFd shadow(socket(AF_INET, SOCK_STREAM, 0));
  Msg m = {};
  m.type = MsgType::kTcpConnect;
  m.remote.addr = htonl(INADDR_LOOPBACK);
  m.remote.port = htons(9);
  const int fds[1] = {shadow.get()};
  ASSERT_TRUE(c.Send(m, fds, 1));
  Msg r;
  std::vector<UniqueFd> got;
  ASSERT_TRUE(c.Recv(&r, &got));
  EXPECT_EQ(r.type, MsgType::kStatus);
  EXPECT_LT(r.status, 0);
  EXPECT_TRUE(got.empty());
}

TEST_F(SessionManagerTest, UdpOpenBrokersADatagramRingToTheReceiver) {
  RawClient rx(manager_->engine_socket_path());
  ASSERT_TRUE(rx.Attach());
  UniqueFd us(socket(AF_INET, SOCK_DGRAM, 0));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(us.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(us.get(), reinterpret_cast<sockaddr*>(&a), &len);
  UniqueFd efd(eventfd(0, EFD_NONBLOCK));
  Msg m = {};
  m.type = MsgType::kUdpBind;
  m.id = 5;
  m.local.addr = a.sin_addr.s_addr;
  m.local.port = a.sin_port;
  const int fds[2] = {us.get(), efd.get()};
  ASSERT_TRUE(rx.Send(m, fds, 2));
  Msg r;
  std::vector<UniqueFd> got;
  ASSERT_TRUE(rx.Recv(&r, &got));
  ASSERT_EQ(r.status, 0);

  RawClient tx(manager_->engine_socket_path());
  ASSERT_TRUE(tx.Attach());
  EXPECT_TRUE(shm::PortBit(tx.arena()->udp_ports, ntohs(a.sin_port)));
  UniqueFd ts(socket(AF_INET, SOCK_DGRAM, 0));
  sockaddr_in b = a;
  b.sin_port = 0;
  bind(ts.get(), reinterpret_cast<sockaddr*>(&b), sizeof(b));
  len = sizeof(b);
  getsockname(ts.get(), reinterpret_cast<sockaddr*>(&b), &len);
  UniqueFd tefd(eventfd(0, EFD_NONBLOCK));
  m = {};
  m.type = MsgType::kUdpBind;
  m.id = 6;
  m.local.addr = b.sin_addr.s_addr;
  m.local.port = b.sin_port;
  const int tfds[2] = {ts.get(), tefd.get()};
  ASSERT_TRUE(tx.Send(m, tfds, 2));
  got.clear();
  ASSERT_TRUE(tx.Recv(&r, &got));
  ASSERT_EQ(r.status, 0);
  m = {};
  m.type = MsgType::kUdpOpen;
  m.seq = 3;
  m.id = 6;
  m.local.addr = b.sin_addr.s_addr;
  m.local.port = b.sin_port;
  m.remote.addr = a.sin_addr.s_addr;
  m.remote.port = a.sin_port;
  ASSERT_TRUE(tx.Send(m));
  got.clear();
  ASSERT_TRUE(tx.Recv(&r, &got));
  ASSERT_EQ(r.type, MsgType::kDgram);
  ASSERT_EQ(got.size(), 2u);
  Msg offer;
  std::vector<UniqueFd> ofds;
  ASSERT_TRUE(rx.Recv(&offer, &ofds));
  EXPECT_EQ(offer.type, MsgType::kDgramOffer);
  EXPECT_EQ(offer.id, 5u);
  EXPECT_EQ(offer.remote.port, b.sin_port) << "the receiver learns the sender's address";
  ASSERT_EQ(ofds.size(), 1u);
}

TEST_F(SessionManagerTest, StatsCopyValidSlotsAndSkipCorruptOnes) {
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.Attach());
  auto* slots = reinterpret_cast<shm::SocketSlot*>(reinterpret_cast<uint8_t*>(c.arena()) +
                                                   c.arena()->slots_offset);
  slots[0].fd = 7;
  slots[0].protocol = IPPROTO_TCP;
  slots[0].state = static_cast<uint8_t>(shm::SocketState::kEstablished);
  slots[0].path = static_cast<uint8_t>(shm::SocketPath::kPipe);
  slots[0].rx_bytes.store(1234);
  slots[0].in_use.store(1);
  slots[1].fd = 8;
  slots[1].protocol = IPPROTO_UDP;
  slots[1].state = 200;  // corrupt
  slots[1].in_use.store(1);
  slots[2].fd = 9;
  slots[2].protocol = IPPROTO_UDP;
  slots[2].state = static_cast<uint8_t>(shm::SocketState::kBound);
  slots[2].fallback = static_cast<uint8_t>(shm::Fallback::kRule);
  slots[2].rule_id = 3;
  std::memset(slots[2].fallback_detail, 'A', sizeof(slots[2].fallback_detail));  // no NUL
  slots[2].in_use.store(1);
  auto stats = manager_->GetStats(getpid(), true);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 1u);
  const auto& ps = (*stats)[0];
  ASSERT_EQ(ps.sockets_size(), 2);
  EXPECT_EQ(ps.sockets(0).fd(), 7);
  EXPECT_EQ(ps.sockets(0).path(), "pipe");
  EXPECT_TRUE(ps.sockets(0).offloaded());
  EXPECT_EQ(ps.sockets(0).rx_bytes(), 1234u);
  EXPECT_EQ(ps.sockets(1).fallback(), v1::FALLBACK_RULE);
  EXPECT_EQ(ps.sockets(1).rule_id(), 3u);
  EXPECT_LT(ps.sockets(1).fallback_detail().size(), 24u);
  EXPECT_EQ(ps.session().num_sockets(), 2u);
  EXPECT_EQ(ps.session().num_offloaded(), 1u);
  EXPECT_TRUE(absl::IsNotFound(manager_->GetStats(999999999, false).status()));
}

TEST_F(SessionManagerTest, ThreadOffloadAndLogLevelArePublishedInTheArena) {
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.Attach());
  const uint32_t tid = static_cast<uint32_t>(syscall(SYS_gettid));
  ASSERT_TRUE(manager_->SetThreadOffload(getpid(), tid, false).ok());
  const shm::ThreadTable& t = c.arena()->threads;
  EXPECT_EQ(t.lock.seq.load() % 2, 0u);
  ASSERT_EQ(t.count, 1u);
  EXPECT_EQ(t.entries[0].tid, tid);
  EXPECT_EQ(t.entries[0].offload, 0u);
  auto got = manager_->GetThreadOffload(getpid(), tid);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->offload());
  EXPECT_TRUE(got->explicitly_set());
  EXPECT_TRUE(absl::IsNotFound(manager_->SetThreadOffload(getpid(), 1u << 30, true)));
  EXPECT_TRUE(absl::IsNotFound(manager_->SetThreadOffload(999999999, tid, true)));
  ASSERT_TRUE(manager_->SetProcessLogLevel(getpid(), "debug").ok());
  EXPECT_EQ(c.arena()->log_level.load(), static_cast<uint32_t>(shm::LogLevel::kDebug));
  EXPECT_TRUE(absl::IsInvalidArgument(manager_->SetProcessLogLevel(getpid(), "loud")));
}

TEST_F(SessionManagerTest, RuleChangesArePublishedToAttachedProcesses) {
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.Attach());
  EXPECT_EQ(c.arena()->rules.count, 0u);
  auto added = store_->Add("use os tcp_server *:5001", 0, false, "", "");
  ASSERT_TRUE(added.ok()) << added.status();
  const shm::PublishedRules& p = c.arena()->rules;
  EXPECT_EQ(p.lock.seq.load() % 2, 0u);
  ASSERT_EQ(p.count, 1u);
  EXPECT_EQ(p.version, store_->Snapshot()->version);
  EXPECT_EQ(p.rules[0].transport, rules::Transport::kOs);
  EXPECT_EQ(p.rules[0].local.port_lo, 5001);
  // A process attaching later gets the current table.
  RawClient late(manager_->engine_socket_path());
  ASSERT_TRUE(late.Attach());
  EXPECT_EQ(late.arena()->rules.count, 1u);
}

TEST_F(SessionManagerTest, StopRemovesTheSocketAndStartRefusesALiveDaemon) {
  auto second = SessionManager::Create([&] {
    v1::DaemonConfig c;
    c.set_run_dir(dir_);
    return c;
  }(), nullptr);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition((*second)->Start()));
  const std::string path = manager_->engine_socket_path();
  manager_->Stop();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace session
}  // namespace offload
