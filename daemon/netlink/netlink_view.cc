// NetlinkView: the kernel address/route/neighbour caches over libnl-route-3
// kept in sync by the event thread, and neighbour resolution requests (see
// header). IPv4 lookups are netlink_lookup.cc; IPv6 netlink_view6.cc.

#include "daemon/netlink/netlink_view.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace offload::netlink {
namespace {

absl::Status NlError(const char* what, int err) {
  return absl::InternalError(
      absl::StrCat(what, ": ", nl_geterror(err < 0 ? -err : err)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<NetlinkView>> NetlinkView::Create() {
  std::unique_ptr<NetlinkView> v(new NetlinkView());
  v->request_sock_ = nl_socket_alloc();
  if (v->request_sock_ == nullptr) {
    return absl::ResourceExhaustedError("cannot allocate a netlink socket");
  }
  if (int err = nl_connect(v->request_sock_, NETLINK_ROUTE); err < 0) {
    return NlError("cannot open rtnetlink", err);
  }
  // NL_AUTO_PROVIDE: the caches are also offered to libnl's object lookup.
  // The manager allocates and owns its own event socket.
  if (int err = nl_cache_mngr_alloc(nullptr, NETLINK_ROUTE, NL_AUTO_PROVIDE,
                                    &v->mngr_);
      err < 0) {
    v->mngr_ = nullptr;
    return NlError("cannot create the netlink cache manager", err);
  }
  struct {
    const char* name;
    nl_cache** cache;
  } caches[] = {{"route/link", &v->links_},
                {"route/addr", &v->addrs_},
                {"route/route", &v->routes_},
                {"route/neigh", &v->neighs_}};
  for (const auto& c : caches) {
    // Link and address changes may flush routes without notifications.
    bool watch = c.cache == &v->links_ || c.cache == &v->addrs_;
    if (int err = nl_cache_mngr_add(
            v->mngr_, c.name,
            watch ? &NetlinkView::OnLinkOrAddrChange : nullptr, v.get(),
            c.cache);
        err < 0) {
      return NlError(absl::StrCat("cannot follow ", c.name).c_str(), err);
    }
  }
  v->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  v->async_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (v->stop_fd_ < 0 || v->async_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  v->async_q_.reserve(kMaxAsyncRequests);
  v->thread_ = std::thread([p = v.get()] { p->Run(); });
  return v;
}

NetlinkView::~NetlinkView() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (stop_fd_ >= 0) close(stop_fd_);
  if (async_fd_ >= 0) close(async_fd_);
  if (mngr_ != nullptr) nl_cache_mngr_free(mngr_);  // frees its caches
  if (request_sock_ != nullptr) nl_socket_free(request_sock_);
}

void NetlinkView::Run() {
  pollfd fds[3] = {{nl_cache_mngr_get_fd(mngr_), POLLIN, 0},
                   {stop_fd_, POLLIN, 0},
                   {async_fd_, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[2].revents != 0) {
      // The kernel may answer a request with no notification at all: an
      // entry already usable (STALE becomes DELAY silently, a PERMANENT
      // one stays). The callback runs after every batch so that the
      // requester reads the table as it is (KernelFeed re-seeds what was
      // asked for).
      DrainAsyncRequests();
      if (fds[0].revents == 0) {
        NotifyChange(generation_.load(std::memory_order_acquire));
        continue;
      }
    }
    if (fds[0].revents == 0) continue;
    std::unique_lock<std::mutex> lock(mu_);
    int n = nl_cache_mngr_data_ready(mngr_);
    if (n < 0) {
      // Lost notifications (socket overrun): resynchronise from a dump.
      std::lock_guard<std::mutex> req(request_mu_);
      for (nl_cache* c : {links_, addrs_, routes_, neighs_}) {
        nl_cache_refill(request_sock_, c);
      }
    } else if (routes_stale_) {
      // IPv4 removes the routes of a link going down (and of a deleted
      // address) without RTM_DELROUTE notifications: re-dump them.
      std::lock_guard<std::mutex> req(request_mu_);
      nl_cache_refill(request_sock_, routes_);
    }
    routes_stale_ = false;
    // Release: pairs with the acquire in generation(); readers that see the
    // new generation and then lock mu_ see the applied change.
    const uint64_t generation =
        generation_.fetch_add(1, std::memory_order_release) + 1;
    lock.unlock();  // the callback may look things up
    NotifyChange(generation);
  }
}

void NetlinkView::NotifyChange(uint64_t generation) {
  std::lock_guard<std::mutex> cb(callback_mu_);
  if (callback_) callback_(generation);
}

void NetlinkView::SetChangeCallback(ChangeCallback callback) {
  std::lock_guard<std::mutex> cb(callback_mu_);
  callback_ = std::move(callback);
}

void NetlinkView::OnLinkOrAddrChange(nl_cache*, nl_object*, int action,
                                     void* arg) {
  // Called from nl_cache_mngr_data_ready() on the event thread, mu_ held.
  // A link whose flags changed (e.g. went down) or an address that went
  // away can take routes with it silently.
  if (action == NL_ACT_CHANGE || action == NL_ACT_DEL) {
    static_cast<NetlinkView*>(arg)->routes_stale_ = true;
  }
}

bool NetlinkView::ResolveNeighbourAsync(int ifindex, uint32_t ip) {
  AsyncRequest r;
  r.ifindex = ifindex;
  r.ip = ip;
  return QueueAsync(r);
}

bool NetlinkView::QueueAsync(const AsyncRequest& r) {
  {
    std::lock_guard<std::mutex> lock(async_mu_);
    if (async_q_.size() >= kMaxAsyncRequests) return false;
    async_q_.push_back(r);
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(async_fd_, &one, sizeof(one));
  return true;
}

void NetlinkView::DrainAsyncRequests() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = read(async_fd_, &count, sizeof(count));
  std::vector<AsyncRequest> batch;
  {
    std::lock_guard<std::mutex> lock(async_mu_);
    batch.swap(async_q_);
    async_q_.reserve(kMaxAsyncRequests);
  }
  // A failure (e.g. the interface went away) needs no report here: the
  // engine's entry fails after its retries and it asks again later.
  for (const AsyncRequest& r : batch) {
    // Never NTF_USE an entry that needs no resolution: on this kernel
    // (6.x; neigh_add passes NEIGH_UPDATE_F_USE to __neigh_update, which
    // clears NUD_PERMANENT) the request demotes a PERMANENT entry and
    // starts ARP / neighbour discovery for it -- an administrator's static
    // entry to a host that does not answer then fails. The caller's change
    // callback reads the entry as it is (see ChangeCallback).
    std::optional<Neighbour> nb;
    if (r.v6) {
      for (const Neighbour& n : Neighbours6(r.ifindex)) {
        if (n.ip6 == r.ip6) nb = n;
      }
    } else {
      nb = LookupNeighbour(r.ifindex, r.ip);
    }
    if (nb.has_value() && nb->usable() &&
        (nb->state == NeighbourState::kPermanent || nb->state == NeighbourState::kNoArp)) {
      continue;
    }
    (void)(r.v6 ? ResolveNeighbour6(r.ifindex, r.ip6) : ResolveNeighbour(r.ifindex, r.ip));
  }
}

absl::Status NetlinkView::ResolveNeighbour(int ifindex, uint32_t ip) {
  uint32_t be = htonl(ip);
  return RequestNeighbour(ifindex, AF_INET, &be, 4);
}

absl::Status NetlinkView::RequestNeighbour(int ifindex, int family, const void* dst, int len) {
  nl_msg* msg = nlmsg_alloc_simple(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_ACK);
  if (msg == nullptr) return absl::ResourceExhaustedError("nlmsg_alloc");
  ndmsg ndm;
  memset(&ndm, 0, sizeof(ndm));
  ndm.ndm_family = static_cast<uint8_t>(family);
  ndm.ndm_ifindex = ifindex;
  ndm.ndm_state = NUD_NONE;
  ndm.ndm_flags = NTF_USE;  // "as if a packet were sent": run ARP / ND
  absl::Status status;
  if (nlmsg_append(msg, &ndm, sizeof(ndm), NLMSG_ALIGNTO) < 0 ||
      nla_put(msg, NDA_DST, len, dst) < 0) {
    status = absl::InternalError("cannot build RTM_NEWNEIGH");
  } else {
    std::lock_guard<std::mutex> lock(request_mu_);
    int err = nl_send_auto(request_sock_, msg);
    if (err >= 0) err = nl_wait_for_ack(request_sock_);
    if (err < 0) {
      status = NlError(
          absl::StrCat("kernel refused to resolve the neighbour on ifindex ",
                       ifindex)
              .c_str(),
          err);
    }
  }
  nlmsg_free(msg);
  return status;
}

}  // namespace offload::netlink
