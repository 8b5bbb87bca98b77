// NeighborCache: a neighbour table of one engine, for IPv4 (ArpCache,
// RFC 826, with the request retransmission and aging of RFC 1122 2.3.2.1)
// or IPv6 (NdCache, RFC 4861 7.3 states reduced to the same ones: the
// kernel does the actual neighbour discovery, see stack.h).
//
// Entries are resolved either by ARP traffic or seeded from outside with
// SeedNeighbor() (the kernel's neighbour table, fed from netlink). While an
// entry is incomplete, up to `max_pending` frames wait on it; they are handed
// back by TakePending() when the reply arrives, or dropped (counted) when the
// entry fails. Frames are identified by opaque uint32_t indices (frame pool
// slots owned by the caller).
//
// Thread safety: none; owned by one engine thread. No allocation after
// construction.
#ifndef OFFLOAD_DAEMON_NET_ARP_H_
#define OFFLOAD_DAEMON_NET_ARP_H_

#include <cstdint>
#include <vector>

#include "daemon/common/counter.h"
#include "daemon/net/headers.h"
#include "daemon/net/index_map.h"

namespace offload::net {

struct ArpConfig {
  uint32_t max_entries = 1024;
  // Frames queued per unresolved neighbour (at most kMaxPendingLimit).
  uint32_t max_pending = 3;
  // A resolved entry is trusted this long, then refreshed on use.
  uint64_t reachable_ns = 30'000'000'000ull;
  // Interval between requests for an incomplete entry, and how many.
  uint64_t retrans_ns = 1'000'000'000ull;
  uint32_t max_requests = 3;
  // How long a failed entry stays failed before a new resolution may start.
  uint64_t failed_hold_ns = 1'000'000'000ull;
};

struct ArpCounters {
  common::SingleWriterCounter requests_sent;
  common::SingleWriterCounter replies_sent;
  common::SingleWriterCounter pending_dropped;  // queue full or resolution failed
  common::SingleWriterCounter resolution_failed;
  common::SingleWriterCounter table_full;
};

enum class NeighborResult : uint8_t {
  kResolved,      // *mac is valid
  kIncomplete,    // resolution under way; queue or wait
  kFailed,        // recently failed; drop (EHOSTUNREACH)
};

// The IndexMap key of an address type.
template <typename Addr>
struct NeighborKeyOf;
template <>
struct NeighborKeyOf<uint32_t> {
  using Type = Ipv4Key;
};
template <>
struct NeighborKeyOf<Ip6Addr> {
  using Type = Ip6Key;
};

// `Addr`: uint32_t (IPv4, host order) or Ip6Addr. Instantiated in arp.cc.
template <typename Addr>
class NeighborCache {
 public:
  static constexpr uint32_t kMaxPendingLimit = 8;
  using Result = NeighborResult;
  using Key = typename NeighborKeyOf<Addr>::Type;

  explicit NeighborCache(const ArpConfig& config);

  // Looks up `ip`. If unknown, creates an incomplete entry. Sets
  // *send_request when the caller must transmit an ARP request for `ip` now
  // (first lookup, or a resolved entry that aged out: it stays usable while
  // being refreshed). Returns kFailed also when the table is full.
  Result Lookup(Addr ip, uint64_t now_ns, MacAddr* mac, bool* send_request);

  // Installs a resolved entry from outside (e.g. the kernel's neighbour
  // table). Permanent entries never age. Returns whether the entry was
  // incomplete before (the caller should then flush its pending frames).
  bool SeedNeighbor(Addr ip, const MacAddr& mac, uint64_t now_ns,
                    bool permanent = false);

  // RFC 826 "merge": records ip->mac from a received ARP packet. Creates the
  // entry only if `create` (we were the target). Returns whether an incomplete
  // entry became resolved.
  bool Update(Addr ip, const MacAddr& mac, uint64_t now_ns, bool create);

  // Removes the entry (dropping nothing: pending frames are returned through
  // TakePending first by the caller if wanted).
  void Remove(Addr ip);

  // Queues frame `frame_index` on the incomplete entry for `ip`. Returns false
  // (and counts) if the entry is not incomplete or its queue is full; the
  // caller then still owns the frame.
  bool EnqueuePending(Addr ip, uint32_t frame_index);

  // Moves up to `max` pending frame indices of `ip` to `out`; returns count.
  size_t TakePending(Addr ip, uint32_t* out, size_t max);

  // Runs request retransmission and failure. Calls send_request(ip) for each
  // request due and drop_frame(frame_index) for each pending frame of an entry
  // that failed. Cost is O(max_entries); call it every ~100 ms.
  template <typename SendFn, typename DropFn>
  void Tick(uint64_t now_ns, SendFn send_request, DropFn drop_frame);

  const ArpCounters& counters() const { return counters_; }
  ArpCounters& mutable_counters() { return counters_; }
  size_t size() const { return map_.size(); }

 private:
  enum class State : uint8_t { kFree, kIncomplete, kReachable, kFailed, kPermanent };
  struct Entry {
    Addr ip{};
    State state = State::kFree;
    uint8_t requests = 0;
    uint8_t num_pending = 0;
    MacAddr mac;
    uint64_t updated_ns = 0;       // resolution or failure time
    uint64_t last_request_ns = 0;
    uint32_t pending[kMaxPendingLimit];
  };

  Entry* Get(Addr ip);
  Entry* Create(Addr ip, uint64_t now_ns);
  void Free(Entry* e);

  ArpConfig config_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_;
  IndexMap<Key> map_;
  ArpCounters counters_;
};

template <typename Addr>
template <typename SendFn, typename DropFn>
void NeighborCache<Addr>::Tick(uint64_t now_ns, SendFn send_request, DropFn drop_frame) {
  for (Entry& e : entries_) {
    if (e.state == State::kIncomplete) {
      if (now_ns - e.last_request_ns < config_.retrans_ns) continue;
      if (e.requests >= config_.max_requests) {
        // RFC 1122 2.3.2.1: give up; queued datagrams are discarded.
        for (uint8_t i = 0; i < e.num_pending; ++i) drop_frame(e.pending[i]);
        counters_.pending_dropped += e.num_pending;
        counters_.resolution_failed++;
        e.num_pending = 0;
        e.state = State::kFailed;
        e.updated_ns = now_ns;
        continue;
      }
      e.requests++;
      e.last_request_ns = now_ns;
      counters_.requests_sent++;
      send_request(e.ip);
    } else if (e.state == State::kFailed) {
      if (now_ns - e.updated_ns >= config_.failed_hold_ns) Free(&e);
    }
  }
}

using ArpCache = NeighborCache<uint32_t>;
using NdCache = NeighborCache<Ip6Addr>;
extern template class NeighborCache<uint32_t>;
extern template class NeighborCache<Ip6Addr>;

}  // namespace offload::net

#endif  // OFFLOAD_DAEMON_NET_ARP_H_
