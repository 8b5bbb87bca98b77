#include "daemon/session/slot_reader.h"

#include <algorithm>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace offload {
namespace session {

namespace {

// "a.b.c.d:port" for an AF_INET socket; "[v6]:port" for an AF_INET6 one,
// its IPv4 peers v4-mapped ("[::ffff:a.b.c.d]:port"), as ss(8) shows them.
std::string AddrPort(uint8_t family, uint32_t addr, const uint8_t addr6[16], uint16_t port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family != AF_INET6) {
    inet_ntop(AF_INET, &addr, buf, sizeof(buf));
    return absl::StrCat(buf, ":", ntohs(port));
  }
  uint8_t a[16] = {};
  static constexpr uint8_t kZero[16] = {};
  if (std::memcmp(addr6, kZero, 16) != 0) {
    std::memcpy(a, addr6, 16);
  } else if (addr != 0) {
    a[10] = a[11] = 0xff;
    std::memcpy(a + 12, &addr, 4);
  }
  inet_ntop(AF_INET6, a, buf, sizeof(buf));
  return absl::StrCat("[", buf, "]:", ntohs(port));
}

const char* StateName(shm::SocketState s) {
  switch (s) {
    case shm::SocketState::kCreated: return "created";
    case shm::SocketState::kBound: return "bound";
    case shm::SocketState::kListen: return "listen";
    case shm::SocketState::kConnecting: return "connecting";
    case shm::SocketState::kEstablished: return "established";
    case shm::SocketState::kClosed: return "closed";
    default: return "free";
  }
}

const char* PathName(shm::SocketPath p) {
  switch (p) {
    case shm::SocketPath::kPipe: return "pipe";
    case shm::SocketPath::kUdpRing: return "udp-ring";
    case shm::SocketPath::kEngine: return "engine";
    default: return "kernel";
  }
}

}  // namespace

bool CopySlot(const shm::SocketSlot& slot, SlotCopy* out) {
  // Pairs with the client's store-release of in_use after filling the slot.
  if (slot.in_use.load(std::memory_order_acquire) != 1) return false;
  SlotCopy c;
  c.fd = slot.fd;
  c.inode = slot.inode;
  c.protocol = slot.protocol;
  const uint8_t state = slot.state, path = slot.path, fallback = slot.fallback;
  if (c.fd < 0 || (c.protocol != IPPROTO_TCP && c.protocol != IPPROTO_UDP) ||
      state == 0 || state > shm::kMaxSocketState || path > shm::kMaxSocketPath ||
      fallback > shm::kMaxFallback) {
    return false;
  }
  c.state = static_cast<shm::SocketState>(state);
  c.path = static_cast<shm::SocketPath>(path);
  c.fallback = static_cast<shm::Fallback>(fallback);
  c.rule_id = slot.rule_id;
  c.local_addr = slot.local_addr;
  c.remote_addr = slot.remote_addr;
  c.local_port = slot.local_port;
  c.remote_port = slot.remote_port;
  std::memcpy(c.local_addr6, slot.local_addr6, sizeof(c.local_addr6));
  std::memcpy(c.remote_addr6, slot.remote_addr6, sizeof(c.remote_addr6));
  std::memcpy(c.fallback_detail, slot.fallback_detail, sizeof(c.fallback_detail));
  c.fallback_detail[sizeof(c.fallback_detail) - 1] = '\0';
  constexpr auto r = std::memory_order_relaxed;  // statistics
  c.rx_bytes = slot.rx_bytes.load(r);
  c.rx_msgs = slot.rx_msgs.load(r);
  c.tx_bytes = slot.tx_bytes.load(r);
  c.tx_msgs = slot.tx_msgs.load(r);
  c.rx_eagain = slot.rx_eagain.load(r);
  c.tx_eagain = slot.tx_eagain.load(r);
  c.errors = slot.errors.load(r);
  c.poll_hits = slot.poll_hits.load(r);
  c.poll_misses = slot.poll_misses.load(r);
  c.rx_queue_bytes = slot.rx_queue_bytes.load(r);
  c.rx_queue_max = slot.rx_queue_max.load(r);
  c.drops = slot.drops.load(r);
  c.mc_groups_engine = slot.mc_groups_engine.load(r);
  c.mc_groups_kernel = slot.mc_groups_kernel.load(r);
  c.mc_tx_engine = slot.mc_tx_engine.load(r);
  c.mc_tx_kernel = slot.mc_tx_kernel.load(r);
  c.mc_loop_copies = slot.mc_loop_copies.load(r);
  c.family = slot.family == AF_INET6 ? AF_INET6 : AF_INET;
  c.shared = slot.share.load(std::memory_order_acquire) == shm::kSlotShared;
  *out = c;
  return true;
}

void ForEachValidSlot(const void* arena, uint32_t max_sockets,
                      const std::function<void(const SlotCopy&)>& fn) {
  const auto* slots = reinterpret_cast<const shm::SocketSlot*>(
      static_cast<const uint8_t*>(arena) + sizeof(shm::ArenaHeader));
  // Only the slots the process ever used (its pages beyond are holes).
  const uint32_t hwm = static_cast<const shm::ArenaHeader*>(arena)->slots_hwm.load(
      std::memory_order_acquire);
  const uint32_t n = std::min(hwm, max_sockets);
  for (uint32_t i = 0; i < n; ++i) {
    SlotCopy c;
    if (CopySlot(slots[i], &c)) fn(c);
  }
}

void SlotToProto(const SlotCopy& c, offload::v1::SocketStats* out) {
  out->set_fd(c.fd);
  out->set_inode(c.inode);
  out->set_protocol(c.protocol == IPPROTO_TCP ? "tcp" : "udp");
  out->set_state(StateName(c.state));
  out->set_local(AddrPort(c.family, c.local_addr, c.local_addr6, c.local_port));
  out->set_remote(AddrPort(c.family, c.remote_addr, c.remote_addr6, c.remote_port));
  out->set_offloaded(c.path != shm::SocketPath::kKernel);
  out->set_path(PathName(c.path));
  out->set_fallback(static_cast<offload::v1::FallbackReason>(c.fallback));
  out->set_fallback_detail(c.fallback_detail);
  out->set_rule_id(c.rule_id);
  out->set_rx_bytes(c.rx_bytes);
  out->set_rx_msgs(c.rx_msgs);
  out->set_tx_bytes(c.tx_bytes);
  out->set_tx_msgs(c.tx_msgs);
  out->set_rx_eagain(c.rx_eagain);
  out->set_tx_eagain(c.tx_eagain);
  out->set_errors(c.errors);
  out->set_poll_hits(c.poll_hits);
  out->set_poll_misses(c.poll_misses);
  out->set_rx_queue_bytes(c.rx_queue_bytes);
  out->set_rx_queue_max(c.rx_queue_max);
  out->set_drops(c.drops);
  out->set_multicast_groups_engine(c.mc_groups_engine);
  out->set_multicast_groups_kernel(c.mc_groups_kernel);
  out->set_multicast_tx_engine(c.mc_tx_engine);
  out->set_multicast_tx_kernel(c.mc_tx_kernel);
  out->set_multicast_loop_copies(c.mc_loop_copies);
  out->set_family(c.family == AF_INET6 ? "ipv6" : "ipv4");
  out->set_shared(c.shared);
}

void AddCounters(const SlotCopy& b, SlotCopy* a) {
  a->rx_bytes += b.rx_bytes;
  a->rx_msgs += b.rx_msgs;
  a->tx_bytes += b.tx_bytes;
  a->tx_msgs += b.tx_msgs;
  a->rx_eagain += b.rx_eagain;
  a->tx_eagain += b.tx_eagain;
  a->errors += b.errors;
  a->poll_hits += b.poll_hits;
  a->poll_misses += b.poll_misses;
  a->drops += b.drops;
  a->rx_queue_max = std::max(a->rx_queue_max, b.rx_queue_max);
  a->mc_tx_engine += b.mc_tx_engine;
  a->mc_tx_kernel += b.mc_tx_kernel;
  a->mc_loop_copies += b.mc_loop_copies;
}

}  // namespace session
}  // namespace offload
