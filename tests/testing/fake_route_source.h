// FakeRouteSource: the kernel's addresses, links, routes and neighbours as
// a test sets them, for WirePlane::Create (wire::WireSeams) without root.
// One interface to start with (its link, one IPv4 address and the
// connected route of its subnet); the test adds routes and neighbours,
// records the resolutions the plane asks for, and plays the netlink event
// thread with Changed() (runs the change callback, as a kernel change
// would). No IPv6: the plane then serves IPv4 only.
//
// Thread safety: every method from any thread (one mutex); the change
// callback runs on the thread that calls Changed(), never concurrently
// with SetChangeCallback.

#ifndef OFFLOAD_TESTS_TESTING_FAKE_ROUTE_SOURCE_H_
#define OFFLOAD_TESTS_TESTING_FAKE_ROUTE_SOURCE_H_

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "daemon/netlink/netlink_view.h"
#include "daemon/wire/route_source.h"

namespace offload::testing {

class FakeRouteSource : public wire::RouteSource {
 public:
  // Interface `name` (index `ifindex`, up, running, MTU 1500) with address
  // `ip`/`prefix_len` (host order) and the route of its subnet.
  FakeRouteSource(std::string name, int ifindex, uint32_t ip, uint8_t prefix_len) {
    link_.ifindex = ifindex;
    link_.name = std::move(name);
    link_.up = link_.running = true;
    link_.mtu = 1500;
    addr_ = netlink::InterfaceAddress{ifindex, ip, prefix_len};
    const uint32_t mask = prefix_len == 0 ? 0 : ~0u << (32 - prefix_len);
    netlink::Route connected;
    connected.dst = ip & mask;
    connected.prefix_len = prefix_len;
    connected.oif = ifindex;
    routes_.push_back(connected);
  }

  void AddRoute(const netlink::Route& r) {
    std::lock_guard<std::mutex> lock(mu_);
    routes_.push_back(r);
  }
  // The kernel's entry for `ip` on the interface (kReachable: usable).
  void SetNeighbour(uint32_t ip, const std::array<uint8_t, 6>& mac,
                    netlink::NeighbourState state = netlink::NeighbourState::kReachable) {
    std::lock_guard<std::mutex> lock(mu_);
    for (netlink::Neighbour& n : neighbours_) {
      if (n.ip == ip) {
        n.mac = mac;
        n.state = state;
        return;
      }
    }
    netlink::Neighbour n;
    n.ifindex = link_.ifindex;
    n.ip = ip;
    n.mac = mac;
    n.state = state;
    neighbours_.push_back(n);
  }
  // Next hops the plane asked the kernel to resolve (any of the calls).
  std::vector<uint32_t> resolve_requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return resolves_;
  }
  // A kernel change: runs the change callback, if any, on this thread.
  void Changed() {
    std::lock_guard<std::mutex> lock(callback_mu_);
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lock2(mu_);
      gen = ++generation_;
    }
    if (callback_) callback_(gen);
  }

  // --- wire::RouteSource ---
  int IfIndex(const std::string& name) const override {
    return name == link_.name ? link_.ifindex : 0;
  }
  std::vector<netlink::InterfaceAddress> Addresses(int ifindex) const override {
    if (ifindex != 0 && ifindex != link_.ifindex) return {};
    return {addr_};
  }
  std::optional<netlink::Route> LookupRoute(uint32_t dst) const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<netlink::Route> best;
    for (const netlink::Route& r : routes_) {
      const uint32_t mask = r.prefix_len == 0 ? 0 : ~0u << (32 - r.prefix_len);
      if ((dst & mask) != r.dst) continue;
      if (!best.has_value() || r.prefix_len > best->prefix_len ||
          (r.prefix_len == best->prefix_len && r.priority < best->priority)) {
        best = r;
      }
    }
    return best;
  }
  std::vector<netlink::Route> Routes(int ifindex) const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<netlink::Route> out;
    for (const netlink::Route& r : routes_) {
      if (r.oif == ifindex) out.push_back(r);
    }
    return out;
  }
  std::optional<netlink::Neighbour> LookupNeighbour(int ifindex, uint32_t ip) const override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const netlink::Neighbour& n : neighbours_) {
      if (n.ifindex == ifindex && n.ip == ip) return n;
    }
    return std::nullopt;
  }
  std::optional<netlink::Link> GetLink(int ifindex) const override {
    if (ifindex != link_.ifindex) return std::nullopt;
    return link_;
  }
  std::vector<netlink::Neighbour> Neighbours(int ifindex) const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<netlink::Neighbour> out;
    for (const netlink::Neighbour& n : neighbours_) {
      if (ifindex == 0 || n.ifindex == ifindex) out.push_back(n);
    }
    return out;
  }
  std::vector<netlink::InterfaceAddress6> Addresses6(int) const override { return {}; }
  std::vector<netlink::Route6> Routes6(int) const override { return {}; }
  std::optional<netlink::Route6> LookupRoute6(const netlink::Ip6&) const override {
    return std::nullopt;
  }
  std::vector<netlink::Neighbour> Neighbours6(int) const override { return {}; }
  absl::Status ResolveNeighbour(int, uint32_t ip) override {
    std::lock_guard<std::mutex> lock(mu_);
    resolves_.push_back(ip);
    return absl::OkStatus();
  }
  bool ResolveNeighbourAsync(int ifindex, uint32_t ip) override {
    return ResolveNeighbour(ifindex, ip).ok();
  }
  absl::Status ResolveNeighbour6(int, const netlink::Ip6&) override {
    return absl::OkStatus();
  }
  bool ResolveNeighbourAsync6(int, const netlink::Ip6&) override { return true; }
  void SetChangeCallback(ChangeCallback callback) override {
    std::lock_guard<std::mutex> lock(callback_mu_);
    callback_ = std::move(callback);
  }

 private:
  netlink::Link link_;             // const after construction
  netlink::InterfaceAddress addr_; // const after construction
  mutable std::mutex mu_;
  std::vector<netlink::Route> routes_;         // mu_
  std::vector<netlink::Neighbour> neighbours_; // mu_
  std::vector<uint32_t> resolves_;             // mu_
  uint64_t generation_ = 0;                    // mu_
  std::mutex callback_mu_;  // held while the callback runs
  ChangeCallback callback_;  // callback_mu_
};

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_TESTING_FAKE_ROUTE_SOURCE_H_
