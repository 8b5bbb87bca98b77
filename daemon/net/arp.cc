// Neighbour caches (ARP, IPv6); see arp.h.
#include "daemon/net/arp.h"

#include <algorithm>

namespace offload::net {

template <typename Addr>
NeighborCache<Addr>::NeighborCache(const ArpConfig& config)
    : config_(config),
      entries_(config.max_entries),
      map_(config.max_entries) {
  config_.max_pending = std::min(config_.max_pending, kMaxPendingLimit);
  free_.reserve(config.max_entries);
  for (uint32_t i = config.max_entries; i > 0; --i) free_.push_back(i - 1);
}

template <typename Addr>
typename NeighborCache<Addr>::Entry* NeighborCache<Addr>::Get(Addr ip) {
  uint32_t idx = map_.Find(Key{ip});
  return idx == IndexMap<Key>::kNone ? nullptr : &entries_[idx];
}

template <typename Addr>
typename NeighborCache<Addr>::Entry* NeighborCache<Addr>::Create(Addr ip, uint64_t now_ns) {
  if (free_.empty()) {
    counters_.table_full++;
    return nullptr;
  }
  uint32_t idx = free_.back();
  free_.pop_back();
  Entry& e = entries_[idx];
  e = Entry{};
  e.ip = ip;
  e.updated_ns = now_ns;
  map_.Insert(Key{ip}, idx);
  return &e;
}

template <typename Addr>
void NeighborCache<Addr>::Free(Entry* e) {
  map_.Erase(Key{e->ip});
  e->state = State::kFree;
  free_.push_back(static_cast<uint32_t>(e - entries_.data()));
}

template <typename Addr>
NeighborResult NeighborCache<Addr>::Lookup(Addr ip, uint64_t now_ns, MacAddr* mac,
                                  bool* send_request) {
  *send_request = false;
  Entry* e = Get(ip);
  if (e == nullptr) {
    e = Create(ip, now_ns);
    if (e == nullptr) return Result::kFailed;
    e->state = State::kIncomplete;
    e->requests = 1;
    e->last_request_ns = now_ns;
    counters_.requests_sent++;
    *send_request = true;
    return Result::kIncomplete;
  }
  switch (e->state) {
    case State::kPermanent:
      *mac = e->mac;
      return Result::kResolved;
    case State::kReachable:
      *mac = e->mac;
      // Aged: keep using the address but refresh it (at most one request per
      // retransmission interval), like Linux's STALE -> PROBE.
      if (now_ns - e->updated_ns >= config_.reachable_ns &&
          now_ns - e->last_request_ns >= config_.retrans_ns) {
        e->last_request_ns = now_ns;
        counters_.requests_sent++;
        *send_request = true;
      }
      return Result::kResolved;
    case State::kIncomplete:
      return Result::kIncomplete;
    case State::kFailed:
    case State::kFree:
      break;
  }
  return Result::kFailed;
}

template <typename Addr>
bool NeighborCache<Addr>::SeedNeighbor(Addr ip, const MacAddr& mac, uint64_t now_ns,
                            bool permanent) {
  Entry* e = Get(ip);
  if (e == nullptr) e = Create(ip, now_ns);
  if (e == nullptr) return false;
  bool was_incomplete = e->state == State::kIncomplete;
  e->mac = mac;
  e->updated_ns = now_ns;
  e->state = permanent ? State::kPermanent : State::kReachable;
  return was_incomplete;
}

template <typename Addr>
bool NeighborCache<Addr>::Update(Addr ip, const MacAddr& mac, uint64_t now_ns,
                      bool create) {
  Entry* e = Get(ip);
  if (e == nullptr) {
    if (!create) return false;
    e = Create(ip, now_ns);
    if (e == nullptr) return false;
  }
  if (e->state == State::kPermanent) return false;
  bool was_incomplete = e->state == State::kIncomplete;
  e->mac = mac;
  e->updated_ns = now_ns;
  e->requests = 0;
  e->state = State::kReachable;
  return was_incomplete;
}

template <typename Addr>
void NeighborCache<Addr>::Remove(Addr ip) {
  Entry* e = Get(ip);
  if (e != nullptr) Free(e);
}

template <typename Addr>
bool NeighborCache<Addr>::EnqueuePending(Addr ip, uint32_t frame_index) {
  Entry* e = Get(ip);
  if (e == nullptr || e->state != State::kIncomplete ||
      e->num_pending >= config_.max_pending) {
    counters_.pending_dropped++;
    return false;
  }
  e->pending[e->num_pending++] = frame_index;
  return true;
}

template <typename Addr>
size_t NeighborCache<Addr>::TakePending(Addr ip, uint32_t* out, size_t max) {
  Entry* e = Get(ip);
  if (e == nullptr) return 0;
  size_t n = std::min<size_t>(max, e->num_pending);
  std::copy(e->pending, e->pending + n, out);
  std::copy(e->pending + n, e->pending + e->num_pending, e->pending);
  e->num_pending = static_cast<uint8_t>(e->num_pending - n);
  return n;
}

template class NeighborCache<uint32_t>;
template class NeighborCache<Ip6Addr>;

}  // namespace offload::net
