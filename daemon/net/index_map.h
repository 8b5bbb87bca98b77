// IndexMap: a fixed-capacity open-addressing hash map from a small key to a
// uint32_t index (into a pre-allocated object pool).
//
// All memory is allocated by the constructor; Insert/Find/Erase never
// allocate, so the map can be used on the per-packet path. Linear probing with
// backward-shift deletion (no tombstones), load factor <= 1/2.
//
// Thread safety: none; owned by one engine thread.
#ifndef OFFLOAD_DAEMON_NET_INDEX_MAP_H_
#define OFFLOAD_DAEMON_NET_INDEX_MAP_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "daemon/net/headers.h"

namespace offload::net {

// Mixes a 64-bit value (splitmix64 finalizer).
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// Key must be trivially copyable, equality-comparable, and provide
// `uint64_t Hash() const`.
template <typename Key>
class IndexMap {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;

  // Holds up to `max_entries` keys.
  explicit IndexMap(size_t max_entries) {
    size_t cap = 16;
    while (cap < max_entries * 2) cap <<= 1;
    slots_.resize(cap);
    mask_ = cap - 1;
    max_entries_ = max_entries;
  }

  size_t size() const { return size_; }
  size_t max_entries() const { return max_entries_; }

  // Returns the index stored for `key`, or kNone.
  uint32_t Find(const Key& key) const {
    size_t i = key.Hash() & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.value == kNone) return kNone;
      if (s.key == key) return s.value;
      i = (i + 1) & mask_;
    }
  }

  // Inserts or overwrites. Returns false if the map is full (and the key is
  // not already present). REQUIRES: value != kNone.
  bool Insert(const Key& key, uint32_t value) {
    size_t i = key.Hash() & mask_;
    while (true) {
      Slot& s = slots_[i];
      if (s.value == kNone) break;
      if (s.key == key) {
        s.value = value;
        return true;
      }
      i = (i + 1) & mask_;
    }
    if (size_ >= max_entries_) return false;
    slots_[i].key = key;
    slots_[i].value = value;
    ++size_;
    return true;
  }

  // Removes `key`. Returns whether it was present.
  bool Erase(const Key& key) {
    size_t i = key.Hash() & mask_;
    while (true) {
      if (slots_[i].value == kNone) return false;
      if (slots_[i].key == key) break;
      i = (i + 1) & mask_;
    }
    // Backward-shift deletion: move later members of the probe chain into the
    // hole when their home slot is not between the hole and them.
    size_t hole = i;
    size_t j = i;
    while (true) {
      j = (j + 1) & mask_;
      if (slots_[j].value == kNone) break;
      size_t home = slots_[j].key.Hash() & mask_;
      bool in_range = hole <= j ? (hole < home && home <= j)
                                : (hole < home || home <= j);
      if (!in_range) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].value = kNone;
    --size_;
    return true;
  }

  // Calls fn(key, value) for every entry. fn must not modify the map.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const Slot& s : slots_) {
      if (s.value != kNone) fn(s.key, s.value);
    }
  }

 private:
  struct Slot {
    Key key{};
    uint32_t value = kNone;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
  size_t max_entries_ = 0;
};

// A key for one IPv4 address.
struct Ipv4Key {
  uint32_t ip = 0;
  uint64_t Hash() const { return Mix64(ip); }
  friend bool operator==(const Ipv4Key& a, const Ipv4Key& b) { return a.ip == b.ip; }
};

// A key for one IPv6 address.
struct Ip6Key {
  Ip6Addr ip;
  uint64_t Hash() const {
    uint64_t hi, lo;
    std::memcpy(&hi, ip.b, 8);
    std::memcpy(&lo, ip.b + 8, 8);
    return Mix64(hi ^ Mix64(lo));
  }
  friend bool operator==(const Ip6Key& a, const Ip6Key& b) { return a.ip == b.ip; }
};

}  // namespace offload::net

#endif  // OFFLOAD_DAEMON_NET_INDEX_MAP_H_
