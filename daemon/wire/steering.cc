// Flow steering to the engines' queues (see steering.h).

#include "daemon/wire/steering.h"

#include <algorithm>
#include <string>

#include "spdlog/spdlog.h"

namespace offload::wire {

Steering::Steering(nic::NicDriver* driver)
    : driver_(driver),
      steered_(new std::atomic<uint64_t>[driver->num_queues()]),
      num_queues_(driver->num_queues()) {
  for (size_t q = 0; q < num_queues_; ++q) steered_[q].store(0);
}

absl::Status Steering::Steer(uint32_t queue, const nic::FlowKey& key) {
  absl::Status s = driver_->Steer(key, queue);
  if (s.ok()) steered_[queue].fetch_add(1, std::memory_order_relaxed);
  return s;
}

bool Steering::TrySteer(uint32_t queue, const nic::FlowKey& key) {
  absl::Status s = Steer(queue, key);
  if (!s.ok()) {
    spdlog::warn("wire: cannot steer {}: {}", key.ToString(), std::string(s.message()));
    return false;
  }
  return true;
}

void Steering::Release(uint32_t queue, const nic::FlowKey& key) {
  absl::Status s = driver_->Unsteer(key);
  if (s.ok()) {
    steered_[queue].fetch_sub(1, std::memory_order_relaxed);
  } else if (!absl::IsNotFound(s)) {
    spdlog::warn("wire: cannot unsteer {}: {}", key.ToString(), std::string(s.message()));
  }
  released_.fetch_add(1, std::memory_order_relaxed);
}

uint64_t Steering::steered(uint32_t queue) const {
  return queue < num_queues_ ? steered_[queue].load(std::memory_order_relaxed) : 0;
}

bool Steering::AcquireUdpPort(uint32_t queue, uint32_t ip, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  int& refs = udp_refs_[{ip, port}];
  if (refs == 0 && !TrySteer(queue, nic::FlowKey::Listener(nic::IpProto::kUdp, ip, port))) {
    udp_refs_.erase({ip, port});
    return false;
  }
  ++refs;
  return true;
}

void Steering::ReleaseUdpPort(uint32_t queue, uint32_t ip, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = udp_refs_.find({ip, port});
  if (it == udp_refs_.end() || --it->second > 0) return;
  udp_refs_.erase(it);
  Release(queue, nic::FlowKey::Listener(nic::IpProto::kUdp, ip, port));
}

bool Steering::AcquireUdpPort6(uint32_t queue, const nic::Ip6Bytes& ip, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  int& refs = udp6_refs_[{ip, port}];
  if (refs == 0 && !TrySteer(queue, nic::FlowKey::Listener6(nic::IpProto::kUdp, ip, port))) {
    udp6_refs_.erase({ip, port});
    return false;
  }
  ++refs;
  return true;
}

void Steering::ReleaseUdpPort6(uint32_t queue, const nic::Ip6Bytes& ip, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = udp6_refs_.find({ip, port});
  if (it == udp6_refs_.end() || --it->second > 0) return;
  udp6_refs_.erase(it);
  Release(queue, nic::FlowKey::Listener6(nic::IpProto::kUdp, ip, port));
}

bool Steering::AcquireGroup(uint32_t queue, uint64_t endpoint, uint32_t group, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  int& refs = group_refs_[{group, port}];
  if (refs == 0 && !TrySteer(queue, nic::FlowKey::MulticastGroup(group, port))) {
    group_refs_.erase({group, port});
    return false;
  }
  ++refs;
  groups_[endpoint].push_back(group);
  return true;
}

bool Steering::ReleaseGroup(uint32_t queue, uint64_t endpoint, uint32_t group, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  auto g = groups_.find(endpoint);
  if (g == groups_.end()) return false;
  auto it = std::find(g->second.begin(), g->second.end(), group);
  if (it == g->second.end()) return false;
  g->second.erase(it);
  if (g->second.empty()) groups_.erase(g);
  DropGroupRef(queue, group, port);
  return true;
}

void Steering::ReleaseAllGroups(uint32_t queue, uint64_t endpoint, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  auto g = groups_.find(endpoint);
  if (g == groups_.end()) return;
  for (uint32_t group : g->second) DropGroupRef(queue, group, port);
  groups_.erase(g);
}

void Steering::DropGroupRef(uint32_t queue, uint32_t group, uint16_t port) {
  auto it = group_refs_.find({group, port});
  if (it == group_refs_.end() || --it->second > 0) return;
  group_refs_.erase(it);
  Release(queue, nic::FlowKey::MulticastGroup(group, port));
}

}  // namespace offload::wire
