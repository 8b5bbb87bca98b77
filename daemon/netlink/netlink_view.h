// offloadd's view of the kernel's IPv4 and IPv6 addresses, routes and
// neighbours (IPv6: netlink_view6.cc),
// read from rtnetlink with libnl-route-3 and kept in sync while running:
// offload routing *is* the OS routing, and the kernel does ARP.
//
// A libnl cache manager (route/link, route/addr, route/route, route/neigh)
// subscribes to the rtnetlink multicast groups; a private thread waits on
// its socket (and a stop eventfd) and applies every change. Lookups copy
// results out under a mutex: they are control-path calls (connection setup,
// a neighbour turning stale), never per packet.
//
// Neighbour resolution: ResolveNeighbour() sends RTM_NEWNEIGH with NTF_USE
// for the address. The kernel then behaves exactly as if it had a packet to
// send there: it creates the entry if needed and runs its own ARP state
// machine (retransmissions, NUD_FAILED), without any packet of ours on the
// wire. The result arrives as a neighbour update through the cache. (The
// alternative, sending a UDP datagram to the discard port through a kernel
// socket, puts a real datagram on the wire; rejected.)
//
// Thread safety: all public methods may be called from any thread.
// Namespace: everything refers to the network namespace of the thread that
// called Create().

#ifndef OFFLOAD_DAEMON_NETLINK_NETLINK_VIEW_H_
#define OFFLOAD_DAEMON_NETLINK_NETLINK_VIEW_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

struct nl_cache;
struct nl_cache_mngr;
struct nl_object;
struct nl_sock;

namespace offload::netlink {

// All IPv4 addresses in host byte order; IPv6 ones as bytes (network order).
using Ip6 = std::array<uint8_t, 16>;

struct InterfaceAddress {
  int ifindex = 0;
  uint32_t address = 0;
  uint8_t prefix_len = 0;
};

// An IPv6 address usable as a source: global scope, DAD finished and
// passed (not IFA_F_TENTATIVE / IFA_F_DADFAILED), not deprecated.
struct InterfaceAddress6 {
  int ifindex = 0;
  Ip6 address{};
  uint8_t prefix_len = 0;
};

struct Route6 {
  Ip6 dst{};               // network
  uint8_t prefix_len = 0;  // 0: default route
  Ip6 gateway{};           // all zero: directly connected
  int oif = 0;
  uint32_t priority = 0;   // metric
};

struct Route {
  uint32_t dst = 0;        // network
  uint8_t prefix_len = 0;  // 0: default route
  uint32_t gateway = 0;    // 0: directly connected (next hop = destination)
  int oif = 0;             // output interface
  uint32_t pref_src = 0;   // preferred source address, 0 if unset
  uint32_t priority = 0;   // metric
};

enum class NeighbourState {
  kIncomplete,  // resolution in progress
  kReachable,
  kStale,  // usable, kernel will re-confirm
  kDelay,
  kProbe,
  kFailed,     // resolution failed
  kPermanent,  // static entry
  kNoArp,
  kNone,
};

struct Neighbour {
  int ifindex = 0;
  uint32_t ip = 0;  // IPv4 entries
  Ip6 ip6{};        // IPv6 entries (Neighbours6)
  std::optional<std::array<uint8_t, 6>> mac;  // absent while unresolved
  NeighbourState state = NeighbourState::kNone;

  // True if frames may be sent to `mac` now.
  bool usable() const {
    return mac.has_value() && (state == NeighbourState::kReachable ||
                               state == NeighbourState::kStale ||
                               state == NeighbourState::kDelay ||
                               state == NeighbourState::kProbe ||
                               state == NeighbourState::kPermanent);
  }
};

// A network interface as the kernel reports it.
struct Link {
  int ifindex = 0;
  std::string name;
  bool up = false;       // IFF_UP: administratively up
  bool running = false;  // IFF_RUNNING: carrier (operationally up)
  uint32_t mtu = 0;
  std::optional<std::array<uint8_t, 6>> mac;  // absent if not Ethernet-like
};

class NetlinkView {
 public:
  // Called on the view's event thread after every change applied to the
  // caches (with the new generation), and after every batch of
  // ResolveNeighbourAsync requests handed to the kernel (generation
  // unchanged: the kernel may resolve without a notification). It may call
  // the lookup methods; it must not destroy the view or call
  // SetChangeCallback.
  using ChangeCallback = std::function<void(uint64_t generation)>;

  // Fills the caches and starts following changes. Errors: Internal (with
  // libnl's message) if netlink is unavailable.
  static absl::StatusOr<std::unique_ptr<NetlinkView>> Create();

  NetlinkView(const NetlinkView&) = delete;
  NetlinkView& operator=(const NetlinkView&) = delete;
  ~NetlinkView();

  // Interface index for `name`, 0 if unknown.
  int IfIndex(const std::string& name) const;

  // IPv4 addresses of `ifindex` (all interfaces if 0).
  std::vector<InterfaceAddress> Addresses(int ifindex) const;

  // Longest-prefix match for `dst` in the main table (unicast routes; on a
  // tie the lowest metric wins). nullopt if unroutable.
  std::optional<Route> LookupRoute(uint32_t dst) const;

  // The main table's IPv4 unicast routes whose (first) next hop leaves
  // through `ifindex`.
  std::vector<Route> Routes(int ifindex) const;

  // The neighbour entry for `ip` on `ifindex`, if the kernel has one.
  std::optional<Neighbour> LookupNeighbour(int ifindex, uint32_t ip) const;

  // The interface `ifindex`, nullopt if unknown.
  std::optional<Link> GetLink(int ifindex) const;

  // Every IPv4 neighbour entry of `ifindex` (all interfaces if 0).
  std::vector<Neighbour> Neighbours(int ifindex) const;

  // --- IPv6 (netlink_view6.cc) ---
  // Source-usable IPv6 addresses of `ifindex` (see InterfaceAddress6).
  std::vector<InterfaceAddress6> Addresses6(int ifindex) const;
  // The main table's IPv6 unicast routes leaving through `ifindex`
  // (link-local fe80::/64 and multicast routes excluded).
  std::vector<Route6> Routes6(int ifindex) const;
  // Longest-prefix match for `dst` among the main table's IPv6 unicast
  // routes (lowest metric on a tie); nullopt if unroutable.
  std::optional<Route6> LookupRoute6(const Ip6& dst) const;
  // Every IPv6 neighbour entry of `ifindex` (all interfaces if 0).
  std::vector<Neighbour> Neighbours6(int ifindex) const;
  // As ResolveNeighbour, for IPv6: the kernel runs neighbour discovery
  // (RFC 4861 7.2) as if it had a packet to send.
  absl::Status ResolveNeighbour6(int ifindex, const Ip6& ip);
  bool ResolveNeighbourAsync6(int ifindex, const Ip6& ip);

  // Installs (or with nullptr removes) the change callback. After it
  // returns, a removed/replaced callback is not running and will not run.
  void SetChangeCallback(ChangeCallback callback);

  // Asks the kernel to resolve `ip` on `ifindex` (see the file comment).
  // Returns once the request is accepted; watch LookupNeighbour() (or
  // generation()) for the answer. Errors: Internal with the kernel's error.
  absl::Status ResolveNeighbour(int ifindex, uint32_t ip);

  // ResolveNeighbour without waiting: queues the request for the view's
  // event thread and returns at once (safe on a busy-polling engine thread;
  // no allocation once the queue has grown). At most kMaxAsyncRequests wait;
  // further requests are dropped (the caller retries) and false returned.
  // The event thread skips an entry that is PERMANENT or NOARP (NTF_USE
  // would demote a permanent one) and runs the change callback after each
  // batch either way.
  bool ResolveNeighbourAsync(int ifindex, uint32_t ip);
  static constexpr size_t kMaxAsyncRequests = 256;

  // Incremented after every change applied to the caches.
  uint64_t generation() const {
    return generation_.load(std::memory_order_acquire);
  }

 private:
  NetlinkView() = default;
  // The event thread: applies rtnetlink notifications to the caches.
  void Run();
  // libnl change callback (change_func_t) of the link and address caches.
  static void OnLinkOrAddrChange(::nl_cache* cache, ::nl_object* obj,
                                 int action, void* arg);

  mutable std::mutex mu_;  // guards the manager and the caches below
  nl_cache_mngr* mngr_ = nullptr;
  nl_cache* links_ = nullptr;  // owned by mngr_
  nl_cache* addrs_ = nullptr;
  nl_cache* routes_ = nullptr;
  nl_cache* neighs_ = nullptr;
  bool routes_stale_ = false;  // set by OnLinkOrAddrChange, event thread

  std::mutex request_mu_;            // guards request_sock_
  nl_sock* request_sock_ = nullptr;  // for RTM_NEWNEIGH requests

  std::mutex callback_mu_;    // held while the callback runs
  ChangeCallback callback_;  // guarded by callback_mu_

  std::atomic<uint64_t> generation_{0};
  int stop_fd_ = -1;
  // ResolveNeighbourAsync requests, guarded by async_mu_; async_fd_
  // (eventfd) wakes the event thread.
  struct AsyncRequest {
    int ifindex = 0;
    bool v6 = false;
    uint32_t ip = 0;
    Ip6 ip6{};
  };
  bool QueueAsync(const AsyncRequest& r);
  // The neighbour entries of `family` (AF_INET or AF_INET6).
  std::vector<Neighbour> ListNeighbours(int ifindex, int family) const;
  // RTM_NEWNEIGH with NTF_USE for `dst` (`len` bytes, network order).
  absl::Status RequestNeighbour(int ifindex, int family, const void* dst, int len);
  std::mutex async_mu_;
  std::vector<AsyncRequest> async_q_;
  int async_fd_ = -1;
  void DrainAsyncRequests();
  // Runs the change callback (event thread).
  void NotifyChange(uint64_t generation);
  std::thread thread_;
};

const char* NeighbourStateName(NeighbourState state);

}  // namespace offload::netlink

#endif  // OFFLOAD_DAEMON_NETLINK_NETLINK_VIEW_H_
