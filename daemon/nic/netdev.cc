// Interface facts via SIOCGIF* ioctls and sysfs.

#include "daemon/nic/netdev.h"

#include <dirent.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace offload::nic {
namespace {

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status IoctlError(const char* what, const std::string& name, int err) {
  return absl::InternalError(
      absl::StrCat(what, " on interface ", name, ": ", strerror(err)));
}

}  // namespace

absl::StatusOr<InterfaceInfo> QueryInterface(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad interface name '", name, "'"));
  }
  InterfaceInfo info;
  info.name = name;
  info.ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  if (info.ifindex == 0) {
    return absl::NotFoundError(
        absl::StrCat("no interface '", name, "' in this network namespace (",
                     strerror(errno), "); check the name with `ip link`"));
  }
  ScopedFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return IoctlError("socket", name, errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, name.c_str(), name.size());
  if (ioctl(sock.get(), SIOCGIFHWADDR, &ifr) != 0) {
    return IoctlError("SIOCGIFHWADDR", name, errno);
  }
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    return absl::FailedPreconditionError(absl::StrCat(
        "interface ", name, " is not Ethernet (ARPHRD ",
        ifr.ifr_hwaddr.sa_family, "); only Ethernet interfaces are offloaded"));
  }
  memcpy(info.mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  if (ioctl(sock.get(), SIOCGIFMTU, &ifr) != 0) {
    return IoctlError("SIOCGIFMTU", name, errno);
  }
  info.mtu = static_cast<uint32_t>(ifr.ifr_mtu);
  // ETHTOOL_GCHANNELS answers for the caller's network namespace (sysfs
  // shows the namespace it was mounted in); sysfs only if the driver does
  // not implement it.
  ethtool_channels ch;
  memset(&ch, 0, sizeof(ch));
  ch.cmd = ETHTOOL_GCHANNELS;
  ifr.ifr_data = reinterpret_cast<char*>(&ch);
  if (ioctl(sock.get(), SIOCETHTOOL, &ifr) == 0 &&
      ch.rx_count + ch.combined_count > 0) {
    info.hw_rx_queues = ch.rx_count + ch.combined_count;
  } else {
    info.hw_rx_queues = CountRxQueues("/sys", name);
  }
  // A veth peer with TX checksum offload on (its default) hands over frames
  // whose checksum it left to an offload that never runs.
  ethtool_drvinfo drv;
  memset(&drv, 0, sizeof(drv));
  drv.cmd = ETHTOOL_GDRVINFO;
  ifr.ifr_data = reinterpret_cast<char*>(&drv);
  if (ioctl(sock.get(), SIOCETHTOOL, &ifr) == 0 &&
      strncmp(drv.driver, "veth", sizeof(drv.driver)) == 0) {
    info.checksum_offload = ChecksumOffload::kRxPartial;
  }
  return info;
}

uint32_t CountRxQueues(const std::string& sysfs_root, const std::string& name) {
  std::string dir = absl::StrCat(sysfs_root, "/class/net/", name, "/queues");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return 1;
  uint32_t n = 0;
  while (struct dirent* e = readdir(d)) {
    if (absl::StartsWith(e->d_name, "rx-")) ++n;
  }
  closedir(d);
  return n == 0 ? 1 : n;
}

}  // namespace offload::nic
