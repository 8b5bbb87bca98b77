// SessionManager against raw attach-protocol clients: arenas, listeners and
// channels, sockets shared between processes, detach clean-up, validation
// of hostile input, stats, thread toggles and rule publication.

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
#include "shm/channel_map.h"
#include "shm/listener.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include <sys/stat.h>
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
  // Hello, maps the arena, registers a (thread's) doorbell.
  bool Attach() {
    static uint64_t next_id = 1000;
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
    doorbell_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    // Ids keep their low bits for epoll sets' tokens (shm/hint_ring.h).
    doorbell_id_ = (next_id++) << shm::kHintTokenBits;
    Msg d = {};
    d.type = MsgType::kRegisterDoorbell;
    d.seq = 2;
    d.value64 = doorbell_id_;
    const int dfd = doorbell_.get();
    std::vector<UniqueFd> none;
    if (!Send(d, &dfd, 1) || !Recv(&r, &none) || r.type != MsgType::kStatus || r.status != 0) {
      return false;
    }
    return arena_.valid();
  }
  shm::ArenaHeader* arena() const { return arena_.as<shm::ArenaHeader>(); }
  int arena_fd() const { return arena_fd_.get(); }
  int doorbell() const { return doorbell_.get(); }
  uint64_t doorbell_id() const { return doorbell_id_; }
  // A request and its reply (fds appended to `fds`).
  bool Call(const Msg& m, const int* send_fds, int n, Msg* r, std::vector<UniqueFd>* fds) {
    return Send(m, send_fds, n) && Recv(r, fds);
  }

 private:
  UniqueFd fd_;
  UniqueFd doorbell_;
  uint64_t doorbell_id_ = 0;
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

  // A listening kernel socket on 127.0.0.1:0 registered with offloadd,
  // and its accept queue.
  struct Listening {
    UniqueFd sock;
    uint16_t port = 0;  // network order
    uint32_t id = 0;
    shm::Mapping seg;
    shm::ListenerHeader* hdr() const { return seg.as<shm::ListenerHeader>(); }
  };
  Listening Listen(RawClient* c) {
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
    Msg m = {};
    m.type = MsgType::kTcpListen;
    m.seq = 2;
    m.value = 8;
    m.local.addr = a.sin_addr.s_addr;
    m.local.port = a.sin_port;
    const int fds[1] = {l.sock.get()};
    Msg r;
    std::vector<UniqueFd> got;
    EXPECT_TRUE(c->Call(m, fds, 1, &r, &got));
    EXPECT_EQ(r.type, MsgType::kListener);
    if (r.type == MsgType::kListener && got.size() == 1) {
      l.id = r.id;
      l.seg = shm::Mapping::MapShared(got[0].get(), shm::ListenerSegmentBytes());
    }
    return l;
  }

  // A connection from `client` to `l`, set up as the library does: the
  // channel from offloadd, a slot, an entry in the accept queue.
  struct Conn {
    UniqueFd shadow;
    uint16_t port = 0;  // the connector's port (network order)
    std::unique_ptr<shm::ChannelMap> chan;
    uint32_t slot = 0, gen = 0;
    shm::PipeRecord* rec() const { return chan->Record(slot); }
  };
  Conn Connect(RawClient* client, const Listening& l) {
    Conn c;
    c.shadow = BoundShadow(&c.port);
    Msg m = {};
    m.type = MsgType::kTcpConnect;
    m.seq = 9;
    m.remote.addr = htonl(INADDR_LOOPBACK);
    m.remote.port = l.port;
    const int fds[1] = {c.shadow.get()};
    Msg r;
    std::vector<UniqueFd> got;
    EXPECT_TRUE(client->Call(m, fds, 1, &r, &got));
    EXPECT_EQ(r.type, MsgType::kChannel);
    EXPECT_EQ(r.kind, shm::kChannelSameHost);
    EXPECT_EQ(r.id2, l.id);
    if (r.type != MsgType::kChannel || got.size() != 2) return c;
    c.chan = shm::ChannelMap::Open(std::move(got[0]), false);
    EXPECT_NE(c.chan, nullptr);
    if (c.chan == nullptr) return c;
    EXPECT_TRUE(c.chan->Allocate(l.id, 2, false, &c.slot, &c.gen));
    struct stat st;
    fstat(c.shadow.get(), &st);
    c.rec()->end[0].inode = st.st_ino;
    EXPECT_EQ(shm::PostConnection(l.hdr(), {c.chan->id(), c.slot, c.gen, 0}),
              shm::PostResult::kPosted);
    return c;
  }

  // The acceptor's side: takes the entry and maps the channel with the
  // listener as proof.
  std::unique_ptr<shm::ChannelMap> Accept(RawClient* server, const Listening& l,
                                          shm::AcceptEntry* e) {
    int engine = 0;
    EXPECT_TRUE(shm::TakeConnection(l.hdr(), e, &engine));
    Msg m = {};
    m.type = MsgType::kMapChannel;
    m.seq = 11;
    m.id = e->channel_id;
    const int fds[1] = {l.sock.get()};
    Msg r;
    std::vector<UniqueFd> got;
    EXPECT_TRUE(server->Call(m, fds, 1, &r, &got));
    EXPECT_EQ(r.type, MsgType::kChannel);
    if (got.size() != 1) return nullptr;
    return shm::ChannelMap::Open(std::move(got[0]), false);
  }

  // Lists the connector's end in its arena as the library does.
  static void ListExclusive(RawClient* client, const Conn& c) {
    shm::SocketSlot* slot = reinterpret_cast<shm::SocketSlot*>(
        reinterpret_cast<uint8_t*>(client->arena()) + client->arena()->slots_offset);
    slot->inode = c.rec()->end[0].inode;
    slot->channel_id = c.chan->id();
    slot->pipe_slot = c.slot;
    slot->pipe_gen = c.gen;
    slot->pipe_end = 0;
    slot->share.store(shm::kSlotExclusive);
    client->arena()->slots_hwm.store(1, std::memory_order_release);  // before in_use, as the library
    slot->in_use.store(1, std::memory_order_release);
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
  // An unknown request, or one with the wrong number of fds, too.
  RawClient nosy(manager_->engine_socket_path());
  ASSERT_TRUE(nosy.Attach());
  Msg m = {};
  m.type = static_cast<MsgType>(99);
  ASSERT_TRUE(nosy.Send(m));
  p = {nosy.fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  EXPECT_EQ(recv(nosy.fd(), &b, 1, 0), 0);
  RawClient fdless(manager_->engine_socket_path());
  ASSERT_TRUE(fdless.Attach());
  m.type = MsgType::kShare;
  ASSERT_TRUE(fdless.Send(m));
  p = {fdless.fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  EXPECT_EQ(recv(fdless.fd(), &b, 1, 0), 0);
  // The well-behaved process is still served.
  Listening l = Listen(&good);
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
  Msg m = {};
  m.type = MsgType::kTcpListen;
  m.local.port = a.sin_port;
  const int fds[1] = {s.get()};
  ASSERT_TRUE(c.Send(m, fds, 1));
  Msg r;
  std::vector<UniqueFd> got;
  ASSERT_TRUE(c.Recv(&r, &got));
  EXPECT_EQ(r.status, EINVAL);
  EXPECT_FALSE(shm::PortBit(c.arena()->tcp_ports, ntohs(a.sin_port)));
}

TEST_F(SessionManagerTest, ConnectGivesAChannelThatBothProcessesMap) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server);
  ASSERT_NE(l.hdr(), nullptr);
  EXPECT_EQ(l.hdr()->state.load(), shm::kListening);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  EXPECT_TRUE(shm::PortBit(client.arena()->tcp_ports, ntohs(l.port)))
      << "a listener's port is published to every process";
  Conn c = Connect(&client, l);
  ASSERT_NE(c.chan, nullptr);
  shm::AcceptEntry e;
  std::unique_ptr<shm::ChannelMap> sc = Accept(&server, l, &e);
  ASSERT_NE(sc, nullptr);
  EXPECT_EQ(sc->id(), c.chan->id());
  EXPECT_EQ(e.slot, c.slot);
  // Both map the same slot: bytes flow connector -> acceptor.
  shm::ByteRingProducer p;
  p.Init(&c.rec()->dir[0], c.chan->RingData(c.slot, 0), c.chan->capacity());
  shm::ByteRingConsumer r;
  r.Init(&sc->Record(e.slot)->dir[0], sc->RingData(e.slot, 0), sc->capacity());
  p.CopyIn(0, "hi", 2);
  p.Commit(2);
  ASSERT_EQ(r.Readable(), 2u);
  char buf[2];
  r.CopyOut(0, buf, 2);
  EXPECT_EQ(std::memcmp(buf, "hi", 2), 0);
  // A second connect of the same process needs no new channel.
  Conn c2 = Connect(&client, l);
  ASSERT_NE(c2.chan, nullptr);
  EXPECT_EQ(c2.chan->id(), c.chan->id());
}

TEST_F(SessionManagerTest, MapChannelNeedsASocketOfThatChannelAsProof) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  Conn c = Connect(&client, l);
  ASSERT_NE(c.chan, nullptr);
  RawClient nosy(manager_->engine_socket_path());
  ASSERT_TRUE(nosy.Attach());
  UniqueFd other(socket(AF_INET, SOCK_STREAM, 0));
  Msg m = {};
  m.type = MsgType::kMapChannel;
  m.id = c.chan->id();
  const int fds[1] = {other.get()};
  Msg r;
  std::vector<UniqueFd> got;
  ASSERT_TRUE(nosy.Call(m, fds, 1, &r, &got));
  EXPECT_EQ(r.type, MsgType::kStatus);
  EXPECT_EQ(r.status, EPERM);
  EXPECT_TRUE(got.empty());
}

TEST_F(SessionManagerTest, DeathOfTheSoleHolderEndsItsPipeEnd) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  Conn c = Connect(&client, l);
  ASSERT_NE(c.chan, nullptr);
  ListExclusive(&client, c);
  shm::PipeRecord* rec = c.rec();
  EXPECT_EQ(rec->dir[0].shut.load(), 0u);
  client.Close();  // the process is gone
  for (int i = 0; i < 500 && rec->dir[0].shut.load() == 0; ++i) usleep(2000);
  EXPECT_EQ(rec->dir[0].shut.load(), shm::kShutFin);
  EXPECT_EQ(rec->dir[1].reader_closed.load(), shm::kReaderClosed);
  EXPECT_EQ(rec->ctl.closed.load(), 1u);
}

TEST_F(SessionManagerTest, DeathWithUnreadDataResetsThePeer) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  Conn c = Connect(&client, l);
  ASSERT_NE(c.chan, nullptr);
  ListExclusive(&client, c);
  // The acceptor wrote data the connector never read; then the connector dies.
  shm::ByteRingProducer p;
  p.Init(&c.rec()->dir[1], c.chan->RingData(c.slot, 1), c.chan->capacity());
  p.CopyIn(0, "unread", 6);
  p.Commit(6);
  client.Close();
  shm::PipeRecord* rec = c.rec();
  for (int i = 0; i < 500 && rec->dir[0].shut.load() == 0; ++i) usleep(2000);
  EXPECT_EQ(rec->dir[0].shut.load(), shm::kShutRst);
  EXPECT_EQ(rec->dir[1].reader_closed.load(), shm::kReaderClosedUnread);
}

TEST_F(SessionManagerTest, AnArenaSlotCannotEndSomeoneElsesConnection) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  Conn c = Connect(&client, l);
  ASSERT_NE(c.chan, nullptr);
  // A hostile process lists that pipe end as its own, with a wrong inode.
  RawClient hostile(manager_->engine_socket_path());
  ASSERT_TRUE(hostile.Attach());
  Conn fake;
  fake.chan = shm::ChannelMap::Open(UniqueFd(fcntl(c.chan->memfd(), F_DUPFD_CLOEXEC, 0)), false);
  fake.slot = c.slot;
  fake.gen = c.gen;
  const uint64_t real_inode = c.rec()->end[0].inode;
  c.rec()->end[0].inode = real_inode + 1;
  ListExclusive(&hostile, fake);
  c.rec()->end[0].inode = real_inode;
  hostile.Close();
  usleep(100000);  // give a wrong close time to happen (it must not)
  EXPECT_EQ(c.rec()->dir[0].shut.load(), 0u);
  EXPECT_EQ(c.rec()->ctl.closed.load(), 0u);
}

TEST_F(SessionManagerTest, ASharedEndEndsOnlyWhenEveryCopyOfTheSocketIsClosed) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  Conn c = Connect(&client, l);
  ASSERT_NE(c.chan, nullptr);
  Msg m = {};
  m.type = MsgType::kShare;
  m.kind = shm::kSharePipe;
  m.id = c.chan->id();
  m.slot = c.slot;
  m.gen = c.gen;
  m.end = 0;
  const int fds[1] = {c.shadow.get()};
  ASSERT_TRUE(client.Send(m, fds, 1));
  // Another process adopts it (it got the socket through SCM_RIGHTS).
  RawClient other(manager_->engine_socket_path());
  ASSERT_TRUE(other.Attach());
  UniqueFd copy(dup(c.shadow.get()));
  Msg a = {};
  a.type = MsgType::kAdopt;
  a.seq = 5;
  const int afds[1] = {copy.get()};
  Msg r;
  std::vector<UniqueFd> got;
  ASSERT_TRUE(other.Call(a, afds, 1, &r, &got));
  ASSERT_EQ(r.type, MsgType::kAdopted);
  EXPECT_EQ(r.kind, shm::kSharePipe);
  EXPECT_EQ(r.id, c.chan->id());
  EXPECT_EQ(r.slot, c.slot);
  EXPECT_EQ(r.end, 0u);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_TRUE(c.rec()->end[0].flags.load() & shm::kEndShared);
  // Both sessions end; one copy of the socket is still open somewhere.
  client.Close();
  other.Close();
  c.shadow.reset();
  usleep(100000);
  EXPECT_EQ(c.rec()->dir[0].shut.load(), 0u) << "a copy is still open: not ended yet";
  copy.reset();
  for (int i = 0; i < 500 && c.rec()->dir[0].shut.load() == 0; ++i) usleep(2000);
  EXPECT_EQ(c.rec()->dir[0].shut.load(), shm::kShutFin);
}

TEST_F(SessionManagerTest, AdoptingAKernelSocketSaysItIsNotOffloaded) {
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.Attach());
  UniqueFd k(socket(AF_INET, SOCK_STREAM, 0));
  Msg a = {};
  a.type = MsgType::kAdopt;
  const int fds[1] = {k.get()};
  Msg r;
  std::vector<UniqueFd> got;
  ASSERT_TRUE(c.Call(a, fds, 1, &r, &got));
  EXPECT_EQ(r.type, MsgType::kStatus);
  EXPECT_EQ(r.status, ENOENT);
}

TEST_F(SessionManagerTest, AReleasedListenerResetsItsQueuedConnections) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server);
  RawClient client(manager_->engine_socket_path());
  ASSERT_TRUE(client.Attach());
  Conn c = Connect(&client, l);
  ASSERT_NE(c.chan, nullptr);
  l.sock.reset();  // the last copy of the listening socket
  for (int i = 0; i < 500 && c.rec()->dir[1].shut.load() == 0; ++i) usleep(2000);
  EXPECT_EQ(l.hdr()->state.load(), shm::kListenerClosed);
  EXPECT_EQ(c.rec()->dir[1].shut.load(), shm::kShutRst) << "Linux resets unaccepted connections";
  EXPECT_FALSE(shm::PortBit(client.arena()->tcp_ports, ntohs(l.port)));
  EXPECT_EQ(shm::PostConnection(l.hdr(), {c.chan->id(), 0, 0, 0}), shm::PostResult::kClosed);
}

TEST_F(SessionManagerTest, DoorbellsAreGivenToPeersAndForgottenWithTheirProcess) {
  RawClient a(manager_->engine_socket_path());
  ASSERT_TRUE(a.Attach());
  RawClient b(manager_->engine_socket_path());
  ASSERT_TRUE(b.Attach());
  Msg m = {};
  m.type = MsgType::kDoorbell;
  m.seq = 3;
  m.value64 = a.doorbell_id();
  Msg r;
  std::vector<UniqueFd> got;
  ASSERT_TRUE(b.Call(m, nullptr, 0, &r, &got));
  ASSERT_EQ(r.type, MsgType::kDoorbellFd);
  ASSERT_EQ(got.size(), 1u);
  const uint64_t one = 1;
  ASSERT_EQ(write(got[0].get(), &one, 8), 8);
  uint64_t v = 0;
  EXPECT_EQ(read(a.doorbell(), &v, 8), 8) << "the eventfd is a's own";
  a.Close();
  got.clear();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(b.Call(m, nullptr, 0, &r, &got));
    if (r.type == MsgType::kStatus) break;
    got.clear();
    usleep(2000);
  }
  EXPECT_EQ(r.type, MsgType::kStatus);
  EXPECT_EQ(r.status, ENOENT);
}

TEST_F(SessionManagerTest, ConnectWithAnUnboundShadowIsNotBrokered) {
  RawClient server(manager_->engine_socket_path());
  ASSERT_TRUE(server.Attach());
  Listening l = Listen(&server);
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

// Stats read only the slots a process has used (slots_hwm): the rest of
// the arena stays holes, never faulted in, and a hostile mark is clamped.
TEST_F(SessionManagerTest, StatsReadOnlyTheSlotsUpToTheHighWaterMark) {
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.Attach());
  auto* slots = reinterpret_cast<shm::SocketSlot*>(reinterpret_cast<uint8_t*>(c.arena()) +
                                                   c.arena()->slots_offset);
  for (int i : {0, 5}) {
    slots[i].fd = 10 + i;
    slots[i].protocol = IPPROTO_TCP;
    slots[i].state = static_cast<uint8_t>(shm::SocketState::kEstablished);
    slots[i].path = static_cast<uint8_t>(shm::SocketPath::kPipe);
    slots[i].in_use.store(1);
  }
  c.arena()->slots_hwm.store(1);
  auto stats = manager_->GetStats(getpid(), true);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].sockets_size(), 1);
  c.arena()->slots_hwm.store(~0u);
  stats = manager_->GetStats(getpid(), true);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ((*stats)[0].sockets_size(), 2);
}

// A process's end reads only the slots it used: scanning every slot of a
// 131072-slot arena faulted in megabytes of shared memory at each detach
// (and held up the session thread, delaying other processes' connects).
TEST_F(SessionManagerTest, DetachReadsOnlyTheSlotsUpToTheHighWaterMark) {
  // The default arena size, not the fixture's 64 slots.
  manager_->Stop();
  v1::DaemonConfig config;
  config.set_run_dir(dir_);
  config.set_max_sockets_per_process(131072);
  auto m = SessionManager::Create(config, store_.get());
  ASSERT_TRUE(m.ok()) << m.status();
  manager_ = std::move(*m);
  ASSERT_TRUE(manager_->Start().ok());
  RawClient c(manager_->engine_socket_path());
  ASSERT_TRUE(c.Attach());
  c.arena()->slots_hwm.store(1);
  struct stat before;
  ASSERT_EQ(fstat(c.arena_fd(), &before), 0);
  UniqueFd arena(dup(c.arena_fd()));
  c.Close();  // the process is gone
  bool detached = false;
  for (int i = 0; i < 500 && !detached; ++i) {  // bounded: 5 s
    detached = absl::IsNotFound(manager_->GetStats(getpid(), false).status());
    if (!detached) usleep(10000);  // poll interval
  }
  ASSERT_TRUE(detached);
  struct stat after;
  ASSERT_EQ(fstat(arena.get(), &after), 0);
  const int64_t grown_kib = (int64_t{after.st_blocks} - before.st_blocks) * 512 / 1024;
  EXPECT_LT(grown_kib, 256) << "the detach read " << grown_kib << " KiB of untouched slots";
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
  c.arena()->slots_hwm.store(3);  // the slots the process has used
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
