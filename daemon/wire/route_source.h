// RouteSource: what the wire plane reads of the kernel's addresses, links,
// routes and neighbours, and how it asks the kernel to resolve a next hop.
// In production it is the netlink view (NetlinkRouteSource over
// netlink::NetlinkView, the only implementation offloadd uses); tests give
// WirePlane a fake one (tests/testing/fake_route_source.h) so the plane runs
// without root and without a real interface (WirePlane::Create with
// WireSeams).
//
// Every call here is a control-path call (start-up, connection set-up, a
// neighbour change, a stack asking for a next hop), never per packet: the
// virtual dispatch costs nothing that matters. The methods and their
// contracts are netlink::NetlinkView's (see netlink_view.h), including
// thread safety: all may be called from any thread.

#ifndef OFFLOAD_DAEMON_WIRE_ROUTE_SOURCE_H_
#define OFFLOAD_DAEMON_WIRE_ROUTE_SOURCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/netlink/netlink_view.h"

namespace offload::wire {

class RouteSource {
 public:
  using ChangeCallback = netlink::NetlinkView::ChangeCallback;

  virtual ~RouteSource() = default;

  virtual int IfIndex(const std::string& name) const = 0;
  virtual std::vector<netlink::InterfaceAddress> Addresses(int ifindex) const = 0;
  virtual std::optional<netlink::Route> LookupRoute(uint32_t dst) const = 0;
  virtual std::vector<netlink::Route> Routes(int ifindex) const = 0;
  virtual std::optional<netlink::Neighbour> LookupNeighbour(int ifindex, uint32_t ip) const = 0;
  virtual std::optional<netlink::Link> GetLink(int ifindex) const = 0;
  virtual std::vector<netlink::Neighbour> Neighbours(int ifindex) const = 0;

  virtual std::vector<netlink::InterfaceAddress6> Addresses6(int ifindex) const = 0;
  virtual std::vector<netlink::Route6> Routes6(int ifindex) const = 0;
  virtual std::optional<netlink::Route6> LookupRoute6(const netlink::Ip6& dst) const = 0;
  virtual std::vector<netlink::Neighbour> Neighbours6(int ifindex) const = 0;

  // Asks the kernel to resolve a next hop (blocking for the request only /
  // queued for another thread: NetlinkView::ResolveNeighbour[Async][6]).
  virtual absl::Status ResolveNeighbour(int ifindex, uint32_t ip) = 0;
  virtual bool ResolveNeighbourAsync(int ifindex, uint32_t ip) = 0;
  virtual absl::Status ResolveNeighbour6(int ifindex, const netlink::Ip6& ip) = 0;
  virtual bool ResolveNeighbourAsync6(int ifindex, const netlink::Ip6& ip) = 0;

  // Installs (nullptr: removes) the change callback; after it returns a
  // removed callback is not running and will not run.
  virtual void SetChangeCallback(ChangeCallback callback) = 0;
};

// The kernel's tables through rtnetlink: forwards every call to the view it
// owns.
class NetlinkRouteSource final : public RouteSource {
 public:
  // NetlinkView::Create(): the caller thread's network namespace.
  static absl::StatusOr<std::unique_ptr<NetlinkRouteSource>> Create();
  explicit NetlinkRouteSource(std::unique_ptr<netlink::NetlinkView> view)
      : view_(std::move(view)) {}

  int IfIndex(const std::string& name) const override { return view_->IfIndex(name); }
  std::vector<netlink::InterfaceAddress> Addresses(int ifindex) const override {
    return view_->Addresses(ifindex);
  }
  std::optional<netlink::Route> LookupRoute(uint32_t dst) const override {
    return view_->LookupRoute(dst);
  }
  std::vector<netlink::Route> Routes(int ifindex) const override {
    return view_->Routes(ifindex);
  }
  std::optional<netlink::Neighbour> LookupNeighbour(int ifindex, uint32_t ip) const override {
    return view_->LookupNeighbour(ifindex, ip);
  }
  std::optional<netlink::Link> GetLink(int ifindex) const override {
    return view_->GetLink(ifindex);
  }
  std::vector<netlink::Neighbour> Neighbours(int ifindex) const override {
    return view_->Neighbours(ifindex);
  }
  std::vector<netlink::InterfaceAddress6> Addresses6(int ifindex) const override {
    return view_->Addresses6(ifindex);
  }
  std::vector<netlink::Route6> Routes6(int ifindex) const override {
    return view_->Routes6(ifindex);
  }
  std::optional<netlink::Route6> LookupRoute6(const netlink::Ip6& dst) const override {
    return view_->LookupRoute6(dst);
  }
  std::vector<netlink::Neighbour> Neighbours6(int ifindex) const override {
    return view_->Neighbours6(ifindex);
  }
  absl::Status ResolveNeighbour(int ifindex, uint32_t ip) override {
    return view_->ResolveNeighbour(ifindex, ip);
  }
  bool ResolveNeighbourAsync(int ifindex, uint32_t ip) override {
    return view_->ResolveNeighbourAsync(ifindex, ip);
  }
  absl::Status ResolveNeighbour6(int ifindex, const netlink::Ip6& ip) override {
    return view_->ResolveNeighbour6(ifindex, ip);
  }
  bool ResolveNeighbourAsync6(int ifindex, const netlink::Ip6& ip) override {
    return view_->ResolveNeighbourAsync6(ifindex, ip);
  }
  void SetChangeCallback(ChangeCallback callback) override {
    view_->SetChangeCallback(std::move(callback));
  }

 private:
  std::unique_ptr<netlink::NetlinkView> view_;
};

inline absl::StatusOr<std::unique_ptr<NetlinkRouteSource>> NetlinkRouteSource::Create() {
  absl::StatusOr<std::unique_ptr<netlink::NetlinkView>> view = netlink::NetlinkView::Create();
  if (!view.ok()) return view.status();
  return std::make_unique<NetlinkRouteSource>(std::move(*view));
}

}  // namespace offload::wire

#endif  // OFFLOAD_DAEMON_WIRE_ROUTE_SOURCE_H_
