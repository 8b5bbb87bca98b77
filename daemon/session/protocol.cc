#include "daemon/session/protocol.h"

#include <errno.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/common/errors.h"

namespace offload {
namespace session {

using shm::Msg;
using shm::MsgType;

int ExpectedFds(MsgType type) {
  switch (type) {
    case MsgType::kUdpBind:
    case MsgType::kRegisterHintedDoorbell:
      return 2;
    case MsgType::kRegisterDoorbell:
    case MsgType::kTcpListen:
    case MsgType::kTcpConnect:
    case MsgType::kMapChannel:
    case MsgType::kShare:
    case MsgType::kAdopt:
      return 1;
    default:
      return 0;
  }
}

absl::StatusOr<Msg> ValidateRequest(const void* data, size_t len, int num_fds) {
  if (len != sizeof(Msg)) {
    return absl::InvalidArgumentError(
        absl::StrCat("attach message of ", len, " bytes, expected ", sizeof(Msg)));
  }
  Msg m;
  std::memcpy(&m, data, sizeof(m));  // copy first, then validate the copy
  switch (m.type) {
    case MsgType::kHello:
    case MsgType::kTcpListen:
    case MsgType::kTcpConnect:
    case MsgType::kUdpBind:
    case MsgType::kUdpUnbind:
    case MsgType::kUdpOpen:
    case MsgType::kDgramClose:
    case MsgType::kUdpWire:
    case MsgType::kUdpJoin:
    case MsgType::kUdpLeave:
    case MsgType::kMapChannel:
    case MsgType::kDoorbell:
    case MsgType::kShare:
    case MsgType::kAdopt:
    case MsgType::kFreeSlot:
    case MsgType::kRegisterDoorbell:
    case MsgType::kUnregisterDoorbell:
    case MsgType::kRegisterHintedDoorbell:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown attach message type ", static_cast<uint32_t>(m.type)));
  }
  // A hello of another ABI may carry fds: it is refused with
  // EPROTONOSUPPORT, not dropped.
  const bool foreign_hello = m.type == MsgType::kHello && m.value != shm::kAbiVersion;
  if (num_fds != ExpectedFds(m.type) && !foreign_hello) {
    return absl::InvalidArgumentError(absl::StrCat("attach message type ",
                                                   static_cast<uint32_t>(m.type), " carries ",
                                                   num_fds, " fds, expected ",
                                                   ExpectedFds(m.type)));
  }
  if (m.type == MsgType::kHello) {
    m.program[sizeof(m.program) - 1] = '\0';
    m.app_id[sizeof(m.app_id) - 1] = '\0';
  }
  if (m.type == MsgType::kTcpListen && m.value > 65535) m.value = 65535;  // backlog clamp
  if ((m.type == MsgType::kTcpConnect || m.type == MsgType::kUdpOpen) && m.remote.port == 0) {
    return absl::InvalidArgumentError("connect/open to port 0");
  }
  if ((m.type == MsgType::kTcpListen || m.type == MsgType::kUdpBind) && m.local.port == 0) {
    return absl::InvalidArgumentError("listen/bind registration without a port");
  }
  return m;
}

absl::StatusOr<Request> ReceiveRequest(int fd) {
  alignas(Msg) unsigned char buf[sizeof(Msg) + 64];
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * (shm::kMaxMsgFds + 1))];
  struct iovec iov = {buf, sizeof(buf)};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof(cbuf);
  const ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::ResourceExhaustedError("no message pending");
    }
    return ErrnoStatus(errno, "recvmsg on attach socket");
  }
  if (n == 0) return absl::UnavailableError("process detached");
  Request req;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      req.fds.emplace_back(f);  // owned now: closed on any error below
    }
  }
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    return absl::InvalidArgumentError("truncated attach message");
  }
  auto msg = ValidateRequest(buf, static_cast<size_t>(n), static_cast<int>(req.fds.size()));
  if (!msg.ok()) return msg.status();
  req.msg = *msg;
  return req;
}

bool SendMsg(int fd, const Msg& msg, const int* fds, int num_fds) {
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * shm::kMaxMsgFds)] = {};
  struct iovec iov = {const_cast<Msg*>(&msg), sizeof(msg)};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (num_fds > 0) {
    mh.msg_control = cbuf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * num_fds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * num_fds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * num_fds);
  }
  return sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof(msg));
}

}  // namespace session
}  // namespace offload
