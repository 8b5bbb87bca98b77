// Datagram FIFO; see datagram_queue.h.
#include "daemon/udp/datagram_queue.h"

#include <algorithm>
#include <cstring>

namespace offload::udp {
namespace {

struct Header {
  uint32_t length;
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t ipv6;  // 1: the source's 16-byte address follows the header
};
static_assert(sizeof(Header) == DatagramQueue::kHeaderBytes);

uint32_t Padded(uint32_t len) { return (len + 3) & ~3u; }

}  // namespace

DatagramQueue::DatagramQueue(uint32_t capacity_bytes)
    : capacity_(Padded(std::max<uint32_t>(capacity_bytes, kHeaderBytes))),
      buf_(new uint8_t[capacity_]) {}

void DatagramQueue::Write(uint32_t pos, const void* src, uint32_t len) {
  uint32_t off = pos % capacity_;
  uint32_t first = std::min(len, capacity_ - off);
  std::memcpy(buf_.get() + off, src, first);
  if (first < len) std::memcpy(buf_.get(), static_cast<const uint8_t*>(src) + first, len - first);
}

void DatagramQueue::Read(uint32_t pos, void* dst, uint32_t len) const {
  uint32_t off = pos % capacity_;
  uint32_t first = std::min(len, capacity_ - off);
  std::memcpy(dst, buf_.get() + off, first);
  if (first < len) std::memcpy(static_cast<uint8_t*>(dst) + first, buf_.get(), len - first);
}

bool DatagramQueue::Push(uint32_t src_ip, uint16_t src_port, uint32_t dst_ip,
                         const uint8_t* data, uint32_t len) {
  return PushAny(src_ip, src_port, dst_ip, nullptr, data, len);
}

bool DatagramQueue::Push6(const net::Ip6Addr& src_ip6, uint16_t src_port, const uint8_t* data,
                          uint32_t len) {
  return PushAny(0, src_port, 0, &src_ip6, data, len);
}

bool DatagramQueue::FrontIsIpv6() const {
  if (count_ == 0) return false;
  Header h;
  Read(head_, &h, sizeof(h));
  return h.ipv6 != 0;
}

bool DatagramQueue::PushAny(uint32_t src_ip, uint16_t src_port, uint32_t dst_ip,
                            const net::Ip6Addr* src6, const uint8_t* data, uint32_t len) {
  const uint32_t hdr = kHeaderBytes + (src6 != nullptr ? kAddr6Bytes : 0);
  uint64_t need = uint64_t{hdr} + Padded(len);
  if (need > capacity_ - (tail_ - head_)) return false;
  Header h{len, src_ip, dst_ip, src_port, static_cast<uint16_t>(src6 != nullptr ? 1 : 0)};
  Write(tail_, &h, sizeof(h));
  if (src6 != nullptr) Write(tail_ + kHeaderBytes, src6->b, kAddr6Bytes);
  if (len > 0) Write(tail_ + hdr, data, len);
  tail_ += static_cast<uint32_t>(need);
  ++count_;
  return true;
}

bool DatagramQueue::Pop(uint8_t* dst, uint32_t cap, DatagramInfo* info) {
  if (count_ == 0) return false;
  Header h;
  Read(head_, &h, sizeof(h));
  const uint32_t hdr = kHeaderBytes + (h.ipv6 != 0 ? kAddr6Bytes : 0);
  info->ipv6 = h.ipv6 != 0;
  if (info->ipv6) Read(head_ + kHeaderBytes, info->src_ip6.b, kAddr6Bytes);
  uint32_t n = std::min(cap, h.length);
  if (n > 0) Read(head_ + hdr, dst, n);
  info->src_ip = h.src_ip;
  info->src_port = h.src_port;
  info->dst_ip = h.dst_ip;
  info->length = h.length;
  head_ += hdr + Padded(h.length);
  --count_;
  return true;
}

}  // namespace offload::udp
