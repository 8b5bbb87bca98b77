#include "cli/client.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/common/unique_fd.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace offload {
namespace cli {

absl::Status ProbeSocket(const std::string& path) {
  const std::string not_running = "offloadd is not running (no control socket at " + path +
                                  "); start it with: systemctl start offloadd";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::InternalError(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return absl::OkStatus();
  }
  const int err = errno;
  if (err == ENOENT || err == ENOTDIR) return absl::UnavailableError(not_running);
  if (err == ECONNREFUSED) {
    return absl::UnavailableError("offloadd is not running (stale control socket at " + path +
                                  "); start it with: systemctl start offloadd");
  }
  if (err == EACCES || err == EPERM) {
    return absl::PermissionDeniedError(
        "permission denied on " + path +
        ": talking to offloadd needs root or membership in the 'offload' group "
        "(an administrator can run: usermod -aG offload $USER, then log in again)");
  }
  return absl::UnavailableError("cannot connect to " + path + ": " + std::strerror(err));
}

std::unique_ptr<v1::Control::Stub> MakeStub(const std::string& socket_path) {
  grpc::ChannelArguments args;
  // One local daemon: fail fast instead of retrying with backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      "unix:" + socket_path, grpc::InsecureChannelCredentials(), args);
  return v1::Control::NewStub(channel);
}

}  // namespace cli
}  // namespace offload
