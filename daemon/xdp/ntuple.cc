// ethtool n-tuple rules (see header).

#include "daemon/xdp/ntuple.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace offload::xdp {
namespace {

int EthtoolIoctl(int sock, const std::string& ifname, void* data) {
  ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = static_cast<char*>(data);
  return ioctl(sock, SIOCETHTOOL, &ifr);
}

}  // namespace

absl::StatusOr<uint32_t> NTupleInsert(int sock, const std::string& ifname,
                                      const nic::FlowKey& flow,
                                      uint32_t queue) {
  ethtool_rxnfc nfc;
  memset(&nfc, 0, sizeof(nfc));
  nfc.cmd = ETHTOOL_SRXCLSRLINS;
  ethtool_rx_flow_spec& fs = nfc.fs;
  fs.flow_type = flow.proto == nic::IpProto::kTcp ? TCP_V4_FLOW : UDP_V4_FLOW;
  // Received packets: destination = our side. Mask bits set = compared.
  ethtool_tcpip4_spec& v = fs.h_u.tcp_ip4_spec;
  ethtool_tcpip4_spec& m = fs.m_u.tcp_ip4_spec;
  if (flow.local_ip != 0) {
    v.ip4dst = htonl(flow.local_ip);
    m.ip4dst = 0xffffffff;
  }
  v.pdst = htons(flow.local_port);
  m.pdst = 0xffff;
  if (!flow.is_listener()) {
    v.ip4src = htonl(flow.remote_ip);
    m.ip4src = 0xffffffff;
    v.psrc = htons(flow.remote_port);
    m.psrc = 0xffff;
  }
  fs.ring_cookie = queue;
  fs.location = RX_CLS_LOC_ANY;  // the driver picks a free slot
  if (EthtoolIoctl(sock, ifname, &nfc) != 0) {
    int err = errno;
    if (err == EOPNOTSUPP || err == EINVAL) {
      return absl::UnimplementedError(absl::StrCat(
          ifname, " has no n-tuple flow steering (", strerror(err), ")"));
    }
    return absl::InternalError(absl::StrCat("ETHTOOL_SRXCLSRLINS for ",
                                            flow.ToString(), " on ", ifname,
                                            ": ", strerror(err)));
  }
  return nfc.fs.location;
}

absl::Status NTupleDelete(int sock, const std::string& ifname,
                          uint32_t location) {
  ethtool_rxnfc nfc;
  memset(&nfc, 0, sizeof(nfc));
  nfc.cmd = ETHTOOL_SRXCLSRLDEL;
  nfc.fs.location = location;
  if (EthtoolIoctl(sock, ifname, &nfc) != 0) {
    return absl::InternalError(absl::StrCat("ETHTOOL_SRXCLSRLDEL ", location,
                                            " on ", ifname, ": ",
                                            strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace offload::xdp
