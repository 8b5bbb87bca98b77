// Bringing the offloaded interface up (see interface.h).

#include "daemon/wire/interface.h"

#include <arpa/inet.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/common/errors.h"
#include "daemon/nic/driver_factory.h"
#include "spdlog/spdlog.h"

namespace offload::wire {
namespace {

// True if the calling thread has `cap` in its effective set.
bool HasCapability(int cap) {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

constexpr char kPrivilegeHint[] =
    "offloadd needs root, or CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and "
    "CAP_IPC_LOCK, to own NIC queues (run it as root or through "
    "offloadd.service; without `interfaces` in the config it serves "
    "same-host offload unprivileged)";

}  // namespace

std::string IpText(uint32_t host_order) {
  in_addr a;
  a.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<std::unique_ptr<OffloadedInterface>> BringUpInterface(
    const nic::InterfaceConfig& config, const RouteSource& view,
    std::unique_ptr<nic::NicDriver> injected) {
  const std::string& name = config.name;
  if (injected == nullptr && !HasCapability(CAP_NET_ADMIN)) {
    return absl::PermissionDeniedError(absl::StrCat("interface ", name, ": ", kPrivilegeHint));
  }
  auto itf = std::make_unique<OffloadedInterface>();
  itf->config = config;
  itf->ifindex = view.IfIndex(name);
  if (itf->ifindex <= 0) {
    return absl::NotFoundError(absl::StrCat(
        "interface ", name, " does not exist in offloadd's network namespace "
        "(`ip link` lists the interfaces); fix interfaces[0].name"));
  }
  std::vector<netlink::InterfaceAddress> addrs = view.Addresses(itf->ifindex);
  if (addrs.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "interface ", name, " has no IPv4 address; assign one (e.g. `ip addr add "
        "ADDR/PREFIX dev ", name, "`) before starting offloadd"));
  }
  itf->local_ip = addrs[0].address;
  itf->prefix_len = addrs[0].prefix_len;
  if (addrs.size() > 1) {
    spdlog::warn("interface {} has {} IPv4 addresses; offloading {} only", name, addrs.size(),
                 IpText(itf->local_ip));
  }
  if (injected != nullptr) {
    itf->driver = std::move(injected);
    return itf;
  }
  absl::StatusOr<std::unique_ptr<nic::NicDriver>> driver = nic::OpenDriver(itf->config);
  if (!driver.ok()) {
    absl::Status s = driver.status();
    if (s.code() == absl::StatusCode::kPermissionDenied) {
      return absl::PermissionDeniedError(
          absl::StrCat("interface ", name, ": ", s.message(), "; ", kPrivilegeHint));
    }
    return Annotate(s, absl::StrCat("interface ", name));
  }
  itf->driver = std::move(*driver);
  return itf;
}

}  // namespace offload::wire
