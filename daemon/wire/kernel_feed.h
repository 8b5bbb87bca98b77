// KernelFeed: the kernel's tables as the engines' stacks see them, and the
// routing queries answered from the same tables. Offload routing is the OS
// routing and the kernel does ARP: the stacks get
//   * the kernel's main-table routes out of the offloaded interface and its
//     default gateway, followed live (a route added with `ip route` applies
//     to the next connection);
//   * the interface's usable neighbours (added, changed, forgotten), pushed
//     on every netlink change; a stack that needs a next hop asks the kernel
//     to resolve it (requester(): RTM_NEWNEIGH with NTF_USE, without
//     blocking) and waits for the neighbour to arrive through this feed.
//     The stacks send no ARP request of their own, and ARP replies go to
//     the kernel (the XDP program passes ARP);
//   * the namespace's TCP sysctls (stack/sysctl.h), re-read at most every
//     100 ms before a new flow and posted when they changed.
// Before the engines start, updates are applied to the stacks directly;
// afterwards they are posted to each engine's command queue.
//
// Thread safety: Attach and MarkStarted from the controlling thread during
// start-up. Sync runs on the netlink event thread and the controlling
// thread, serialised by mu_. RouteTo, RouteMulticast, EnsureNeighbour,
// RefreshSysctls and the accessors are safe from any thread.

#ifndef OFFLOAD_DAEMON_WIRE_KERNEL_FEED_H_
#define OFFLOAD_DAEMON_WIRE_KERNEL_FEED_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/engine/engine_set.h"
#include "daemon/netlink/netlink_view.h"
#include "daemon/stack/sysctl.h"
#include "daemon/tcp/tcp_config.h"
#include "daemon/wire/interface.h"
#include "daemon/wire/route_source.h"

// Not stack.h: this header reaches the session manager, whose users include
// <netinet/tcp.h> (stack.h brings <linux/tcp.h>).
namespace offload::stack {
class Stack;
struct StackConfig;
struct StackRoute;
}  // namespace offload::stack

namespace offload::wire {

// Where a connection to a remote address leaves, per the kernel's routes.
struct WireRoute {
  std::string interface;  // offloaded interface name
  int ifindex = 0;
  uint32_t local_ip = 0;  // source address the stack uses (host order)
  uint32_t next_hop = 0;  // gateway, or the destination if on-link
  uint32_t engine = 0;    // engine that would serve the flow
  uint32_t queue = 0;     // NIC queue the flow is steered to
  // An IPv6 route (RouteTo6): the addresses are these (the two above 0).
  bool ipv6 = false;
  netlink::Ip6 local_ip6{};
  netlink::Ip6 next_hop6{};
};

class KernelFeed {
 public:
  // REQUIRES: `view` and `itf` outlive this object.
  KernelFeed(RouteSource* view, const OffloadedInterface* itf);
  ~KernelFeed();

  // Fills the stacks' TCP configuration from the namespace's sysctls and
  // the default gateway; `config->neighbours` becomes requester().
  void ConfigureStacks(stack::StackConfig* config);
  // The stacks to feed, one per engine of `engines` (index = engine).
  void Attach(engine::EngineSet* engines, std::vector<stack::Stack*> stacks);
  // From now on updates are posted to the engines.
  void MarkStarted();
  // Pushes changed routes and neighbours to every stack.
  void Sync();
  // Re-reads the sysctls (at most every 100 ms) and posts a changed TCP
  // configuration to every engine.
  void RefreshSysctls();

  // Whether a connection to `remote_ip` leaves through the offloaded
  // interface as the kernel would send it: the route (engine and queue
  // left 0), or NotFound with the reason (local, unroutable, another
  // interface, another preferred source, broadcast or multicast).
  absl::StatusOr<WireRoute> RouteTo(uint32_t remote_ip) const;
  // See WirePlane::RouteMulticast.
  absl::Status RouteMulticast(uint32_t group, uint32_t if_addr, int ifindex) const;
  // Asks the kernel to resolve route.next_hop unless it has a usable entry.
  void EnsureNeighbour(const WireRoute& route);

  // --- IPv6 (kernel_feed6.cc) ---
  // RouteTo for an IPv6 destination: NotFound unless it leaves through the
  // offloaded interface, which has a usable global IPv6 address.
  absl::StatusOr<WireRoute> RouteTo6(const netlink::Ip6& remote_ip) const;
  // The interface's IPv6 address the stacks serve (all zero: none),
  // followed live: Sync picks up an address added, removed or replaced
  // with `ip` (or one whose DAD finished after offloadd started).
  netlink::Ip6 local_ip6() const {
    std::lock_guard<std::mutex> lock(ip6_mu_);
    return local_ip6_;
  }

  uint32_t gateway() const { return gateway_.load(std::memory_order_relaxed); }

 private:
  class Requester;  // stack::NeighborRequester over netlink

  // Pushes the kernel's routes through the interface to every stack when
  // they changed. REQUIRES: mu_ held.
  void SyncRoutes();
  // Pushes changed IPv6 routes and neighbours. REQUIRES: mu_ held.
  void SyncIpv6();
  void EnsureNeighbour6(const WireRoute& route);
  // Runs `fn` on every stack: directly before MarkStarted, else posted.
  // REQUIRES: mu_ held, or the sysctl path (engines started).
  template <typename Fn>
  void ForEachStack(Fn fn);

  RouteSource* const view_;
  const OffloadedInterface* const itf_;
  std::unique_ptr<Requester> requester_;
  engine::EngineSet* engines_ = nullptr;
  std::vector<stack::Stack*> stacks_;
  // Default route via the interface, 0 if none; followed live.
  std::atomic<uint32_t> gateway_{0};

  std::mutex mu_;                // serialises Sync (netlink thread + start-up)
  bool started_ = false;         // guarded by mu_
  std::vector<stack::StackRoute> routes_;  // pushed to the stacks, mu_
  // Neighbours pushed to the stacks: ip -> (mac, state). mu_.
  std::map<uint32_t, std::pair<std::array<uint8_t, 6>, netlink::NeighbourState>> seeded_;
  // IPv6: the interface's address (written by Sync, read by RouteTo6 on
  // the session threads: ip6_mu_), and what was pushed (mu_).
  mutable std::mutex ip6_mu_;
  netlink::Ip6 local_ip6_{};
  uint8_t prefix_len6_ = 64;
  std::vector<netlink::Route6> routes6_;
  std::map<netlink::Ip6, std::pair<std::array<uint8_t, 6>, netlink::NeighbourState>> seeded6_;
  // Neighbours a stack asked for since the last Sync (engine threads add,
  // Sync takes): a stack that asks has no usable entry, whatever seeded_
  // says (it failed or was dropped), so the next Sync seeds them again
  // even when the kernel's entry did not change -- the kernel sends no
  // notification for a request it answers from a usable entry. At most
  // kMaxAsked wait (further ones are asked again by the stack's retry).
  static constexpr size_t kMaxAsked = 256;
  std::mutex asked_mu_;
  std::vector<uint32_t> asked_;  // guarded by asked_mu_; capacity kMaxAsked

  std::mutex sysctl_mu_;
  uint64_t sysctl_read_ns_ = 0;    // guarded by sysctl_mu_
  stack::TcpSysctls sysctl_last_;  // values last applied, sysctl_mu_
  tcp::TcpConfig tcp_config_;      // the engines' TCP config, sysctl_mu_
};

template <typename Fn>
void KernelFeed::ForEachStack(Fn fn) {
  for (size_t e = 0; e < stacks_.size(); ++e) {
    stack::Stack* st = stacks_[e];
    if (started_) {
      engines_->engine(e).Post([st, fn] { fn(st); });
    } else {
      fn(st);
    }
  }
}

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_KERNEL_FEED_H_
