// Multicast on offloaded UDP sockets (udp.cc "Multicast"): memberships
// reported to offloadd so that an engine endpoint receives the group
// (kUdpJoin / kUdpLeave), IP_MULTICAST_TTL / _LOOP / _IF kept for sends,
// and the host-local copy of a datagram the engine sent to a group.
//
// Thread safety: the socket's multicast state is changed by setsockopt
// and read by senders, as the kernel's is (no lock of its own).

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "client/attach.h"
#include "client/fd_table.h"
#include "client/libc.h"
#include "client/log.h"
#include "client/ops.h"
#include "client/udp_internal.h"
#include "shm/unique_fd.h"
#include "shm/wakeup.h"

namespace offload {
namespace client {

bool IsGroup(uint32_t addr_net) { return (ntohl(addr_net) >> 28) == 0xe; }

void SyncGroupCounts(Socket* s) {
  uint32_t engine = 0;
  for (uint32_t i = 0; i < s->udp->num_mc_groups; ++i) engine += s->udp->mc_groups[i].engine ? 1 : 0;
  s->slot->mc_groups_engine.store(engine, std::memory_order_relaxed);
  s->slot->mc_groups_kernel.store(s->udp->num_mc_groups - engine, std::memory_order_relaxed);
}

// The kUdpJoin / kUdpLeave message for membership `g` of socket `s`.
shm::Msg MembershipMsg(shm::MsgType type, const Socket* s, const UdpState::McMembership& g) {
  shm::Msg m = {};
  m.type = type;
  m.id = s->reg_id;
  m.remote.addr = g.group;
  m.remote.port = s->local.v4.sin_port;
  m.local.addr = g.if_addr;
  m.value = static_cast<uint32_t>(g.ifindex);
  return m;
}

// Reports one membership to the daemon; true if the engine now receives
// the group for this socket.
bool ReportJoin(Socket* s, const UdpState::McMembership& g) {
  if (s->path.load() != Path::kUdp || !s->udp->wire_tx.valid()) return false;
  shm::Msg m = MembershipMsg(shm::MsgType::kUdpJoin, s, g);
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  if (!Call(&m, nullptr, 0, &r, rfds, &nr)) return false;
  for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
  return r.type == shm::MsgType::kStatus && r.status == 0;
}

// Offers every membership the engine does not serve yet (a new engine
// endpoint).
void ReportJoins(Socket* s) {
  for (uint32_t i = 0; i < s->udp->num_mc_groups; ++i) {
    if (!s->udp->mc_groups[i].engine) s->udp->mc_groups[i].engine = ReportJoin(s, s->udp->mc_groups[i]);
  }
  SyncGroupCounts(s);
}

// The host-local copy of a datagram the engine sent to a group
// (IP_MULTICAST_LOOP): through the shadow with TTL 0, then the
// application's TTL again.
void LoopCopy(Socket* s, const iovec* iov, int iovcnt, const sockaddr_in* dst) {
  const int zero = 0;
  if (Real().setsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_TTL, &zero, sizeof(zero)) != 0) return;
  msghdr mh = {};
  mh.msg_iov = const_cast<iovec*>(iov);
  mh.msg_iovlen = static_cast<size_t>(iovcnt);
  mh.msg_name = const_cast<sockaddr_in*>(dst);
  mh.msg_namelen = sizeof(*dst);
  const int saved = errno;
  if (Real().sendmsg(s->fd, &mh, MSG_DONTWAIT) >= 0) Add(s->slot->mc_loop_copies, 1);
  Real().setsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_TTL, &s->udp->mc_ttl, sizeof(s->udp->mc_ttl));
  errno = saved;
}

void UdpMulticastOption(Socket* s, int name, const void* val, socklen_t len) {
  if (s->type != SOCK_DGRAM || val == nullptr) return;
  // int or unsigned char, as Linux accepts for both.
  auto small_int = [&](int* out) {
    if (len >= sizeof(int)) {
      memcpy(out, val, sizeof(int));
    } else if (len >= 1) {
      *out = *static_cast<const unsigned char*>(val);
    }
  };
  switch (name) {
    case IP_MULTICAST_TTL: {
      int ttl = s->udp->mc_ttl;
      small_int(&ttl);
      s->udp->mc_ttl = ttl == -1 ? 1 : ttl;  // -1: the default
      return;
    }
    case IP_MULTICAST_LOOP: {
      int loop = s->udp->mc_loop ? 1 : 0;
      small_int(&loop);
      s->udp->mc_loop = loop != 0;
      return;
    }
    case IP_MULTICAST_IF: {
      // in_addr, ip_mreq (its interface) or ip_mreqn (Linux ip_mreq_source
      // is not accepted here).
      uint32_t addr = 0;
      int ifindex = 0;
      if (len >= sizeof(ip_mreqn)) {
        const auto* r = static_cast<const ip_mreqn*>(val);
        addr = r->imr_address.s_addr;
        ifindex = r->imr_ifindex;
      } else if (len >= sizeof(ip_mreq)) {
        addr = static_cast<const ip_mreq*>(val)->imr_interface.s_addr;
      } else if (len >= sizeof(in_addr)) {
        addr = static_cast<const in_addr*>(val)->s_addr;
      }
      s->udp->mc_if_addr = addr;
      s->udp->mc_ifindex = ifindex;
      s->udp->wire_routes.reset();  // groups may route differently now
      return;
    }
    default:
      break;
  }
  UdpState::McMembership g;
  bool join;
  if (name == IP_ADD_MEMBERSHIP || name == IP_DROP_MEMBERSHIP) {
    join = name == IP_ADD_MEMBERSHIP;
    if (len >= sizeof(ip_mreqn)) {
      const auto* r = static_cast<const ip_mreqn*>(val);
      g.group = r->imr_multiaddr.s_addr;
      g.if_addr = r->imr_address.s_addr;
      g.ifindex = r->imr_ifindex;
    } else if (len >= sizeof(ip_mreq)) {
      const auto* r = static_cast<const ip_mreq*>(val);
      g.group = r->imr_multiaddr.s_addr;
      g.if_addr = r->imr_interface.s_addr;
    } else {
      return;
    }
  } else if (name == MCAST_JOIN_GROUP || name == MCAST_LEAVE_GROUP) {
    join = name == MCAST_JOIN_GROUP;
    if (len < sizeof(group_req)) return;
    const auto* r = static_cast<const group_req*>(val);
    if (r->gr_group.ss_family != AF_INET) return;
    g.group = reinterpret_cast<const sockaddr_in*>(&r->gr_group)->sin_addr.s_addr;
    g.ifindex = static_cast<int>(r->gr_interface);
  } else {
    return;
  }
  if (join) {
    if (s->udp->num_mc_groups >= UdpState::kMaxMcGroups) return;
    g.engine = ReportJoin(s, g);
    s->udp->mc_groups[s->udp->num_mc_groups++] = g;
  } else {
    // Linux matches a drop by group and interface (0 matches any).
    for (uint32_t i = 0; i < s->udp->num_mc_groups; ++i) {
      const UdpState::McMembership& m = s->udp->mc_groups[i];
      if (m.group != g.group || (g.ifindex != 0 && m.ifindex != 0 && g.ifindex != m.ifindex) ||
          (g.if_addr != 0 && m.if_addr != 0 && g.if_addr != m.if_addr)) {
        continue;
      }
      if (m.engine && s->udp->wire_tx.valid()) SendAsync(MembershipMsg(shm::MsgType::kUdpLeave, s, m));
      s->udp->mc_groups[i] = s->udp->mc_groups[--s->udp->num_mc_groups];
      break;
    }
  }
  SyncGroupCounts(s);
}
}  // namespace client
}  // namespace offload
