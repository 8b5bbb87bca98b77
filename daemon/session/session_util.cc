// Small helpers shared by the SessionManager's .cc files.

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"

#include "daemon/session/protocol.h"
#include "daemon/session/session_internal.h"

namespace offload {
namespace session {

bool SetPortWord(std::atomic<uint64_t>* words, uint16_t port_host, bool on) {
  const uint64_t bit = uint64_t{1} << (port_host & 63);
  // Release: pairs with the client's acquire load in shm::PortBit().
  if (on) return words[port_host >> 6].fetch_or(bit, std::memory_order_release) & bit;
  return words[port_host >> 6].fetch_and(~bit, std::memory_order_release) & bit;
}

void ReplyStatus(Session* s, const shm::Msg& req, int status) {
  shm::Msg r = {};
  r.type = shm::MsgType::kStatus;
  r.seq = req.seq;
  r.status = status;
  SendMsg(s->fd.get(), r, nullptr, 0);
}

std::string IpText(uint32_t net_order) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a;
  a.s_addr = net_order;
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

uint64_t NetnsOf(uint32_t pid) {
  struct stat st;
  const std::string path =
      pid == 0 ? std::string("/proc/self/ns/net") : absl::StrCat("/proc/", pid, "/ns/net");
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

std::string CommOf(uint32_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/comm"));
  std::string s;
  std::getline(in, s);
  return s;
}

uint64_t NowUnixMs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool IsLocalAddress(uint32_t addr) {
  if ((ntohl(addr) >> 24) == 127) return true;
  struct ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return false;
  bool local = false;
  for (struct ifaddrs* i = ifa; i != nullptr && !local; i = i->ifa_next) {
    if (i->ifa_addr != nullptr && i->ifa_addr->sa_family == AF_INET) {
      local = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == addr;
    }
  }
  freeifaddrs(ifa);
  return local;
}

}  // namespace session
}  // namespace offload
