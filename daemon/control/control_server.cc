#include "daemon/control/control_server.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/common/errors.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_posix.h"
#include "spdlog/spdlog.h"

namespace offload {
namespace control {

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& socket_path,
                                                                    unsigned mode,
                                                                    grpc::Service* service,
                                                                    PeerRegistry* registry) {
  std::unique_ptr<ControlServer> s(new ControlServer());
  s->path_ = socket_path;
  s->registry_ = registry;

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("control socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);

  s->listen_fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s->listen_fd_.valid()) return ErrnoStatus(errno, "socket(AF_UNIX)");
  // The caller holds the run-dir lock, so anything at this path is stale.
  if (::unlink(socket_path.c_str()) == 0) {
    spdlog::info("removed stale control socket {}", socket_path);
  }
  // Bind with a restrictive umask so the socket is never briefly world-open.
  const mode_t old_umask = ::umask(0177);
  const int rc = ::bind(s->listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int bind_errno = errno;
  ::umask(old_umask);
  if (rc != 0) return ErrnoStatus(bind_errno, "bind " + socket_path);

  if (const struct group* gr = ::getgrnam(kControlGroup); gr != nullptr) {
    if (::chown(socket_path.c_str(), static_cast<uid_t>(-1), gr->gr_gid) != 0) {
      spdlog::warn("cannot give {} to group '{}': {}; only {} can use it", socket_path,
                   kControlGroup, std::strerror(errno), ::geteuid() == 0 ? "root" : "this user");
    }
  } else if ((mode & 0007) == 0) {
    spdlog::info("group '{}' does not exist: {} is usable by root and uid {} only "
                 "(groupadd {} to delegate)", kControlGroup, socket_path, ::geteuid(),
                 kControlGroup);
  }
  if (::chmod(socket_path.c_str(), mode) != 0) {
    return ErrnoStatus(errno, "chmod " + socket_path);
  }
  if (::listen(s->listen_fd_.get(), 64) != 0) return ErrnoStatus(errno, "listen " + socket_path);

  s->stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s->stop_fd_.valid()) return ErrnoStatus(errno, "eventfd");

  grpc::ServerBuilder builder;
  builder.RegisterService(service);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr) {
    return absl::InternalError("gRPC server failed to start");
  }
  s->acceptor_ = std::thread([raw = s.get()] { raw->AcceptLoop(); });
  spdlog::info("control service listening on {} (mode {:o})", socket_path, mode);
  return s;
}

void ControlServer::AcceptLoop() {
  pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
  while (true) {
    const int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("control accept loop: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    const int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        spdlog::warn("control accept: {}", std::strerror(errno));
      }
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      spdlog::warn("control: SO_PEERCRED failed: {}; dropping connection", std::strerror(errno));
      ::close(fd);
      continue;
    }
    registry_->Put(fd, cred);
    spdlog::debug("control connection fd {} from pid {} uid {}", fd, cred.pid, cred.uid);
    grpc::AddInsecureChannelFromFd(server_.get(), fd);  // gRPC owns fd now
  }
}

void ControlServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  const uint64_t one = 1;
  if (::write(stop_fd_.get(), &one, sizeof(one)) < 0) {
    spdlog::warn("control: cannot signal the accept loop: {}", std::strerror(errno));
  }
  if (acceptor_.joinable()) acceptor_.join();
  listen_fd_.reset();
  ::unlink(path_.c_str());
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
  }
}

ControlServer::~ControlServer() { Stop(); }

}  // namespace control
}  // namespace offload
