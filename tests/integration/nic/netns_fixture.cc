// Namespace/veth fixture (see header).

#include "tests/integration/nic/netns_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace offload::testing {

int Sh(const std::string& cmd) {
  int rc = system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc)) return -1;
  return WEXITSTATUS(rc);
}

std::string ShOutput(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

namespace {

// Removes namespaces <prefix><pid>{a,b} left by test processes that died
// (crash, SIGKILL) before their cleanup ran.
void RemoveOrphans(const std::string& prefix) {
  DIR* d = opendir("/run/netns");
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind(prefix, 0) != 0 || name.size() < prefix.size() + 2) continue;
    std::string digits =
        name.substr(prefix.size(), name.size() - prefix.size() - 1);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (kill(pid, 0) != 0 && errno == ESRCH) {
      Sh("ip netns del " + name + " 2>/dev/null");
    }
  }
  closedir(d);
}

}  // namespace

absl::Status VethPair::Create(const std::string& prefix, int subnet, const Options& options,
                              VethPair* out) {
  const int queues = options.queues;
  RemoveOrphans(prefix);
  int pid = getpid();
  out->ns_a_ = absl::StrCat(prefix, pid, "a");
  out->ns_b_ = absl::StrCat(prefix, pid, "b");
  out->subnet_ = subnet;
  out->Destroy();  // leftovers of a crashed run with the same pid
  std::string a = out->ns_a_, b = out->ns_b_;
  std::vector<std::string> cmds = {
      absl::StrCat("ip netns add ", a),
      absl::StrCat("ip netns add ", b),
      absl::StrCat("ip -n ", a, " link add va numtxqueues ", queues,
                   " numrxqueues ", queues, " type veth peer name vb",
                   " netns ", b, " numtxqueues ", queues, " numrxqueues ",
                   queues),
  };
  for (const auto& [ns, dev] : {std::pair{a, std::string("va")}, std::pair{b, std::string("vb")}}) {
    if (!options.ipv6) {
      cmds.push_back(absl::StrCat("ip netns exec ", ns,
                                  " sysctl -qw net.ipv6.conf.all.disable_ipv6=1"));
    }
    if (options.plain_frames) {
      cmds.push_back(absl::StrCat("ip netns exec ", ns, " ethtool -K ", dev,
                                  " tx off tso off gso off gro off >/dev/null"));
    }
  }
  if (options.address_a) {
    cmds.push_back(absl::StrCat("ip -n ", a, " addr add ", out->ip_a(), "/24 dev va"));
  }
  cmds.push_back(absl::StrCat("ip -n ", b, " addr add ", out->ip_b(), "/24 dev vb"));
  for (const std::string& ns : {a, b}) cmds.push_back(absl::StrCat("ip -n ", ns, " link set lo up"));
  cmds.push_back(absl::StrCat("ip -n ", a, " link set va up"));
  cmds.push_back(absl::StrCat("ip -n ", b, " link set vb up"));
  for (const std::string& c : cmds) {
    if (Sh(c + " 2>&1") != 0) {
      return absl::InternalError(absl::StrCat("setup failed: ", c));
    }
  }
  return absl::OkStatus();
}

std::string VethPair::ip_a() const {
  return absl::StrCat("198.18.", subnet_, ".1");
}
std::string VethPair::ip_b() const {
  return absl::StrCat("198.18.", subnet_, ".2");
}

void VethPair::Destroy() {
  // Deleting a namespace destroys its veth end, which takes the peer along.
  if (!ns_a_.empty()) Sh("ip netns del " + ns_a_ + " 2>/dev/null");
  if (!ns_b_.empty()) Sh("ip netns del " + ns_b_ + " 2>/dev/null");
}

VethPair::~VethPair() { Destroy(); }

absl::Status VethPair::Enter(const std::string& ns) {
  std::string path = "/run/netns/" + ns;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("open ", path, ": ", strerror(errno)));
  }
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("setns ", ns, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status VethPair::DisableTxChecksumOffload(const std::string& ns,
                                                const std::string& ifname) {
  int rc = -1, err = 0;
  absl::Status entered = RunIn(ns, [&] {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ethtool_value v = {ETHTOOL_STXCSUM, 0};
    ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    ifr.ifr_data = reinterpret_cast<char*>(&v);
    rc = ioctl(fd, SIOCETHTOOL, &ifr);
    err = errno;
    close(fd);
  });
  if (!entered.ok()) return entered;
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("ETHTOOL_STXCSUM on ", ifname, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status VethPair::RunIn(const std::string& ns,
                             const std::function<void()>& fn) {
  absl::Status status;
  std::thread t([&] {
    status = Enter(ns);
    if (status.ok()) fn();
  });
  t.join();
  return status;
}

}  // namespace offload::testing
