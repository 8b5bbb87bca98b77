// ARP neighbour cache; see arp.h.
#include "daemon/net/arp.h"

#include <algorithm>

namespace offload::net {

ArpCache::ArpCache(const ArpConfig& config)
    : config_(config),
      entries_(config.max_entries),
      map_(config.max_entries) {
  config_.max_pending = std::min(config_.max_pending, kMaxPendingLimit);
  free_.reserve(config.max_entries);
  for (uint32_t i = config.max_entries; i > 0; --i) free_.push_back(i - 1);
}

ArpCache::Entry* ArpCache::Get(uint32_t ip) {
  uint32_t idx = map_.Find(Ipv4Key{ip});
  return idx == IndexMap<Ipv4Key>::kNone ? nullptr : &entries_[idx];
}

ArpCache::Entry* ArpCache::Create(uint32_t ip, uint64_t now_ns) {
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
  map_.Insert(Ipv4Key{ip}, idx);
  return &e;
}

void ArpCache::Free(Entry* e) {
  map_.Erase(Ipv4Key{e->ip});
  e->state = State::kFree;
  free_.push_back(static_cast<uint32_t>(e - entries_.data()));
}

ArpCache::Result ArpCache::Lookup(uint32_t ip, uint64_t now_ns, MacAddr* mac,
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

bool ArpCache::SeedNeighbor(uint32_t ip, const MacAddr& mac, uint64_t now_ns,
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

bool ArpCache::Update(uint32_t ip, const MacAddr& mac, uint64_t now_ns,
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

void ArpCache::Remove(uint32_t ip) {
  Entry* e = Get(ip);
  if (e != nullptr) Free(e);
}

bool ArpCache::EnqueuePending(uint32_t ip, uint32_t frame_index) {
  Entry* e = Get(ip);
  if (e == nullptr || e->state != State::kIncomplete ||
      e->num_pending >= config_.max_pending) {
    counters_.pending_dropped++;
    return false;
  }
  e->pending[e->num_pending++] = frame_index;
  return true;
}

size_t ArpCache::TakePending(uint32_t ip, uint32_t* out, size_t max) {
  Entry* e = Get(ip);
  if (e == nullptr) return 0;
  size_t n = std::min<size_t>(max, e->num_pending);
  std::copy(e->pending, e->pending + n, out);
  std::copy(e->pending + n, e->pending + e->num_pending, e->pending);
  e->num_pending = static_cast<uint8_t>(e->num_pending - n);
  return n;
}

}  // namespace offload::net
