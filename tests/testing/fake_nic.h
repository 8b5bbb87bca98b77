// The one in-memory NIC of the tests: FakeQueue (a nic::NicQueue whose
// frames are injected by the test and whose transmitted frames are
// recorded) and FakeDriver (a nic::NicDriver of FakeQueues that records the
// steering it is asked for). Engine tests drive it directly; WirePlane
// tests hand a FakeDriver to WirePlane::Create (wire::WireSeams).
//
// Its WaitFd is an eventfd written on injection, like a NIC's RX interrupt.
// It also checks the driver contract it is given: a frame released twice
// (RX or TX buffer) sets double_release().
//
// Thread safety: Inject()/Sent()/counts and the driver's steering records
// from any thread (the test's); the NicQueue methods from the engine thread;
// a mutex covers what they share (a fake may lock; the engine code under
// test does not depend on it).

#ifndef OFFLOAD_TESTS_TESTING_FAKE_NIC_H_
#define OFFLOAD_TESTS_TESTING_FAKE_NIC_H_

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "daemon/nic/flow.h"
#include "daemon/nic/nic.h"

namespace offload::testing {

class FakeQueue : public nic::NicQueue {
 public:
  static constexpr size_t kBuffers = 256;
  static constexpr uint32_t kBufSize = 2048;

  explicit FakeQueue(uint32_t id = 0)
      : id_(id), fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    for (size_t i = 0; i < kBuffers; ++i) free_tx_.push_back(i);
  }
  ~FakeQueue() override { close(fd_); }

  // A frame arrives from the wire (RX).
  void Inject(const std::string& frame) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      rx_.push_back(frame);
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof(one));
  }
  void Inject(const std::vector<uint8_t>& frame) {
    Inject(std::string(frame.begin(), frame.end()));
  }
  // Every frame transmitted so far, in order.
  std::vector<std::string> Sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  size_t sent_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_.size();
  }
  size_t rx_outstanding() {
    std::lock_guard<std::mutex> lock(mu_);
    return rx_out_;
  }
  // The last ArmWakeup() armed the queue (it found no frame waiting).
  bool armed() {
    std::lock_guard<std::mutex> lock(mu_);
    return armed_;
  }
  // A buffer was given back twice (RX release or TX free/submit).
  bool double_release() {
    std::lock_guard<std::mutex> lock(mu_);
    return double_release_;
  }

  uint32_t id() const override { return id_; }
  size_t RxBurst(nic::RxFrame* frames, size_t max) override {
    counters_.polls.Increment();
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    while (n < max && !rx_.empty() && rx_out_ < kBuffers) {
      size_t slot = rx_next_++ % kBuffers;
      rx_bufs_[slot] = rx_.front();
      rx_.pop_front();
      frames[n].data = reinterpret_cast<const uint8_t*>(rx_bufs_[slot].data());
      frames[n].len = static_cast<uint32_t>(rx_bufs_[slot].size());
      frames[n].handle = slot;
      rx_held_[slot] = true;
      ++rx_out_;
      ++n;
    }
    if (n == 0) counters_.empty_polls.Increment();
    counters_.rx_packets.Add(n);
    return n;
  }
  void ReleaseRx(const nic::RxFrame* frames, size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < n; ++i) {
      const uint64_t h = frames[i].handle;
      if (h >= kBuffers || !rx_held_[h]) {
        double_release_ = true;
        continue;
      }
      rx_held_[h] = false;
      --rx_out_;
    }
  }
  size_t AllocTx(nic::TxFrame* frames, size_t n) override {
    size_t got = 0;
    while (got < n && !free_tx_.empty()) {
      size_t b = free_tx_.back();
      free_tx_.pop_back();
      frames[got++] = {tx_bufs_[b], kBufSize, 0, b};
    }
    return got;
  }
  void FreeTx(const nic::TxFrame* frames, size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < n; ++i) ReturnTx(frames[i].handle);
  }
  // At most `room` more frames are accepted by SubmitTx (a full TX ring).
  void set_tx_room(size_t room) {
    std::lock_guard<std::mutex> lock(mu_);
    tx_room_ = room;
  }
  // Engine thread (or the test's, engine stopped).
  size_t free_tx_buffers() const { return free_tx_.size(); }

  size_t SubmitTx(const nic::TxFrame* frames, size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    n = std::min(n, tx_room_);
    tx_room_ -= n;
    for (size_t i = 0; i < n; ++i) {
      sent_.emplace_back(reinterpret_cast<const char*>(frames[i].data),
                         frames[i].len);
      ReturnTx(frames[i].handle);  // "completes" at once
    }
    submits_++;
    counters_.tx_packets.Add(n);
    return n;
  }
  size_t ReclaimTx() override { return 0; }
  size_t TxInFlight() const override { return 0; }
  bool RxPending() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return !rx_.empty();
  }
  bool ArmWakeup() override {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = rx_.empty();
    return armed_;
  }
  void AckWakeup() override {
    uint64_t v;
    [[maybe_unused]] ssize_t n = read(fd_, &v, sizeof(v));
  }
  int WaitFd() const override { return fd_; }
  size_t submits() {
    std::lock_guard<std::mutex> lock(mu_);
    return submits_;
  }

 private:
  // REQUIRES: mu_ held (free_tx_ itself is the engine thread's).
  void ReturnTx(uint64_t h) {
    if (h >= kBuffers ||
        std::find(free_tx_.begin(), free_tx_.end(), h) != free_tx_.end()) {
      double_release_ = true;
      return;
    }
    free_tx_.push_back(h);
  }

  const uint32_t id_;
  const int fd_;
  mutable std::mutex mu_;
  std::deque<std::string> rx_;
  std::string rx_bufs_[kBuffers];
  bool rx_held_[kBuffers] = {};
  size_t rx_next_ = 0;
  size_t rx_out_ = 0;
  std::vector<std::string> sent_;
  size_t submits_ = 0;
  size_t tx_room_ = SIZE_MAX;
  bool armed_ = false;
  bool double_release_ = false;
  std::vector<size_t> free_tx_;
  uint8_t tx_bufs_[kBuffers][kBufSize];
};

// A driver made of FakeQueues 0..n-1; steering is recorded, not enforced.
class FakeDriver : public nic::NicDriver {
 public:
  explicit FakeDriver(uint32_t queues) {
    for (uint32_t q = 0; q < queues; ++q) {
      queues_.push_back(std::make_unique<FakeQueue>(q));
    }
    info_.num_queues = queues;
    info_.hw_rx_queues = queues;
    info_.mtu = 1500;
  }
  // What the driver reports (name, MAC, MTU, kind): set before use.
  nic::InterfaceInfo& mutable_info() { return info_; }
  const nic::InterfaceInfo& info() const override { return info_; }
  size_t num_queues() const override { return queues_.size(); }
  FakeQueue* queue(size_t i) override { return queues_[i].get(); }
  absl::Status Steer(const nic::FlowKey& key, uint32_t queue) override {
    std::lock_guard<std::mutex> lock(mu_);
    steered_[key.ToString()] = queue;
    ++steers_;
    return absl::OkStatus();
  }
  absl::Status Unsteer(const nic::FlowKey& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    steered_.erase(key.ToString());
    return absl::OkStatus();
  }
  // Keys steered now (FlowKey::ToString) and the queue of each.
  std::map<std::string, uint32_t> steered() {
    std::lock_guard<std::mutex> lock(mu_);
    return steered_;
  }
  size_t steers() {
    std::lock_guard<std::mutex> lock(mu_);
    return steers_;
  }

 private:
  nic::InterfaceInfo info_;
  std::vector<std::unique_ptr<FakeQueue>> queues_;
  std::mutex mu_;
  std::map<std::string, uint32_t> steered_;
  size_t steers_ = 0;
};

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_TESTING_FAKE_NIC_H_
