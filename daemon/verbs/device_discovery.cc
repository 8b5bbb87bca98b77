// netdev -> RDMA device discovery (see header).

#include "daemon/verbs/device_discovery.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace offload::verbs {

absl::StatusOr<RdmaDevice> FindRdmaDevice(const std::string& sysfs_root,
                                          const std::string& ifname) {
  if (ifname.empty() || ifname.find('/') != std::string::npos ||
      ifname == "." || ifname == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("bad interface name '", ifname, "'"));
  }
  const std::string base = absl::StrCat(sysfs_root, "/class/net/", ifname);
  const std::string ib_dir = base + "/device/infiniband";
  DIR* d = opendir(ib_dir.c_str());
  if (d == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "interface ", ifname, " is not backed by an RDMA device (no ", ib_dir,
        "); the verbs driver needs a NIC with an rdma-core provider (e.g. "
        "ConnectX with mlx5); use driver af_xdp for this interface"));
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  if (names.empty()) {
    return absl::NotFoundError(
        absl::StrCat("interface ", ifname, ": ", ib_dir, " is empty"));
  }
  std::sort(names.begin(), names.end());  // deterministic if several
  RdmaDevice dev;
  dev.name = names.front();
  std::ifstream port_file(base + "/dev_port");
  std::string line;
  uint32_t dev_port = 0;
  if (std::getline(port_file, line) &&
      absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &dev_port) &&
      dev_port < 255) {
    dev.port = static_cast<uint8_t>(dev_port + 1);
  }
  return dev;
}

}  // namespace offload::verbs
