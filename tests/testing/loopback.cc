#include "tests/testing/loopback.h"
#include "tests/testing/owned_ring.h"

#include <algorithm>

namespace offload::testing {

void LinkDirection::Send(const uint8_t* data, uint32_t len, uint64_t now) {
  stats_.sent++;
  if (u_(rng_) < cfg_.loss) {
    stats_.lost++;
    return;
  }
  uint64_t depart = now;
  if (cfg_.rate_bytes_per_sec != 0) {
    uint64_t start = std::max(now, busy_until_);
    uint64_t backlog_bytes = (start - now) * cfg_.rate_bytes_per_sec / 1'000'000'000ull;
    if (backlog_bytes + len > cfg_.queue_limit_bytes) {
      stats_.queue_drops++;
      return;
    }
    busy_until_ = start + uint64_t{len} * 1'000'000'000ull / cfg_.rate_bytes_per_sec;
    depart = busy_until_;
  }
  int copies = u_(rng_) < cfg_.duplicate ? 2 : 1;
  if (copies == 2) stats_.duplicated++;
  for (int c = 0; c < copies; ++c) {
    uint64_t at = depart + cfg_.delay_ns;
    if (u_(rng_) < cfg_.reorder) {
      at += static_cast<uint64_t>(u_(rng_) * cfg_.reorder_extra_ns) + 1;
      stats_.reordered++;
    }
    std::vector<uint8_t> f(data, data + len);
    if (u_(rng_) < cfg_.corrupt && len > 14) {
      size_t pos = 14 + static_cast<size_t>(u_(rng_) * (len - 14));
      f[std::min<size_t>(pos, len - 1)] ^= 0x10;
      stats_.corrupted++;
    }
    q_.emplace(at, std::move(f));
  }
}

void LinkDirection::TakeDue(uint64_t now, std::vector<std::vector<uint8_t>>* out) {
  while (!q_.empty() && q_.begin()->first <= now) {
    out->push_back(std::move(q_.begin()->second));
    q_.erase(q_.begin());
    stats_.delivered++;
  }
}

uint64_t LinkDirection::NextDue() const { return q_.empty() ? ~0ull : q_.begin()->first; }

stack::StackConfig LoopbackPair::ConfigFor(int which) {
  stack::StackConfig cfg = DefaultTestConfig();
  cfg.local_mac = which == 1 ? kUsMac : kPeerMac;
  cfg.local_ip = which == 1 ? Ip("198.18.0.1") : Ip("198.18.0.2");
  // 2001:db8::1 / 2001:db8::2 (RFC 3849 documentation prefix).
  cfg.local_ip6.b[0] = 0x20;
  cfg.local_ip6.b[1] = 0x01;
  cfg.local_ip6.b[2] = 0x0d;
  cfg.local_ip6.b[3] = 0xb8;
  cfg.local_ip6.b[15] = static_cast<uint8_t>(which);
  cfg.max_concurrency = 4096;
  cfg.max_num_buffers = 1024;
  cfg.isn_key = tcp::SecretKey{0x1111u * which, 0x2222u * which};
  return cfg;
}

LoopbackPair::LoopbackPair(const LinkConfig& link, stack::StackConfig a_cfg,
                           stack::StackConfig b_cfg, uint32_t ring_bytes)
    : prov_a_(ring_bytes),
      prov_b_(ring_bytes),
      ab_(link, link.seed * 2 + 1),
      ba_(link, link.seed * 2 + 2) {
  a_ = std::move(*stack::Stack::Create(a_cfg, &prov_a_, now_));
  b_ = std::move(*stack::Stack::Create(b_cfg, &prov_b_, now_));
  tx_bufs_.assign(64, std::vector<uint8_t>(2048));
}

void LoopbackPair::Exchange(stack::Stack& from, LinkDirection& dir) {
  stack::TxFrame tx[64];
  while (true) {
    for (int i = 0; i < 64; ++i) tx[i] = stack::TxFrame{tx_bufs_[i].data(), 2048, 0};
    size_t n = from.PollTx(tx, 64, now_);
    for (size_t i = 0; i < n; ++i) dir.Send(tx[i].data, tx[i].len, now_);
    if (n < 64) break;
  }
}

void LoopbackPair::Deliver(stack::Stack& to, LinkDirection& dir) {
  due_.clear();
  dir.TakeDue(now_, &due_);
  if (due_.empty()) return;
  std::vector<stack::RxFrame> rx;
  rx.reserve(due_.size());
  for (auto& f : due_) rx.push_back(stack::RxFrame{f.data(), static_cast<uint32_t>(f.size())});
  for (size_t i = 0; i < rx.size(); i += 32) {
    to.ProcessRx(rx.data() + i, std::min<size_t>(32, rx.size() - i), now_);
  }
}

void LoopbackPair::DrainEvents(stack::Stack& s) {
  stack::FlowEvent ev[64];
  size_t n;
  while ((n = s.PollEvents(ev, 64)) > 0) {
    if (on_event) {
      for (size_t i = 0; i < n; ++i) on_event(s, ev[i]);
    }
  }
}

bool LoopbackPair::RunUntil(const std::function<bool()>& done, uint64_t max_ns) {
  const uint64_t end = now_ + max_ns;
  while (!done()) {
    // Do all the work due at `now_` until quiescent.
    for (int rounds = 0; rounds < 1000; ++rounds) {
      a_->OnTimer(now_);
      b_->OnTimer(now_);
      Deliver(*a_, ba_);
      Deliver(*b_, ab_);
      DrainEvents(*a_);
      DrainEvents(*b_);
      if (on_step) on_step();
      DrainEvents(*a_);
      DrainEvents(*b_);
      Exchange(*a_, ab_);
      Exchange(*b_, ba_);
      if (ab_.NextDue() > now_ && ba_.NextDue() > now_ && !a_->HasPendingTx() &&
          !b_->HasPendingTx()) {
        break;
      }
    }
    if (done()) return true;
    uint64_t next = std::min({ab_.NextDue(), ba_.NextDue(), a_->NextTimerDeadline(),
                              b_->NextTimerDeadline()});
    if (next == kNever || next > end) {
      now_ = std::max(now_, std::min(next, end));
      return done();
    }
    now_ = std::max(next, now_ + 1);
  }
  return true;
}

bool StreamTransfer::Produce(testing::OwnedRing* tx) {
  bool any = false;
  while (sent_ < total_) {
    uint32_t room = tx->AppFree();
    if (room == 0) break;
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>({room, buf_.size(), total_ - sent_}));
    for (uint32_t i = 0; i < n; ++i) buf_[i] = PatternByte(id_, sent_ + i);
    uint32_t w = tx->AppWrite(buf_.data(), n);
    sent_ += w;
    any |= w > 0;
    if (w < n) break;
  }
  return any;
}

uint64_t StreamTransfer::Consume(testing::OwnedRing* rx) {
  uint64_t total = 0;
  while (true) {
    uint32_t n = rx->AppRead(buf_.data(), static_cast<uint32_t>(buf_.size()));
    if (n == 0) break;
    for (uint32_t i = 0; i < n; ++i) {
      if (buf_[i] != PatternByte(id_, received_ + i)) ++mismatches_;
    }
    received_ += n;
    total += n;
  }
  return total;
}

}  // namespace offload::testing
