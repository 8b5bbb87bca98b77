// DatagramQueue: a bounded FIFO of received UDP datagrams with their source
// addresses, stored back to back in one pre-allocated byte ring.
//
// The byte limit counts payload plus a 16-byte per-datagram header (32 for
// an IPv6 source, whose address follows the header; like SO_RCVBUF counting
// skb overhead); a datagram that does not fit is dropped by the caller and
// counted (Linux UDP_MIB_RCVBUFERRORS).
//
// Thread safety: none; owned by one engine thread.
#ifndef OFFLOAD_DAEMON_UDP_DATAGRAM_QUEUE_H_
#define OFFLOAD_DAEMON_UDP_DATAGRAM_QUEUE_H_

#include <cstdint>
#include <memory>

#include "daemon/net/headers.h"

namespace offload::udp {

struct DatagramInfo {
  bool ipv6 = false;       // an IPv6 source: src_ip6 (src_ip, dst_ip 0)
  net::Ip6Addr src_ip6;
  uint32_t src_ip = 0;     // host order
  uint16_t src_port = 0;
  uint32_t dst_ip = 0;     // destination address (for IP_PKTINFO)
  uint32_t length = 0;     // full datagram length
};

class DatagramQueue {
 public:
  static constexpr uint32_t kHeaderBytes = 16;
  static constexpr uint32_t kAddr6Bytes = 16;  // after the header, IPv6 sources only

  // Allocates `capacity_bytes` (rounded up to a multiple of 4).
  explicit DatagramQueue(uint32_t capacity_bytes);

  // Appends a datagram. Returns false (queue unchanged) if it does not fit.
  bool Push(uint32_t src_ip, uint16_t src_port, uint32_t dst_ip,
            const uint8_t* data, uint32_t len);
  // The same from an IPv6 source.
  bool Push6(const net::Ip6Addr& src_ip6, uint16_t src_port, const uint8_t* data, uint32_t len);
  // Whether the oldest datagram has an IPv6 source (false when empty).
  bool FrontIsIpv6() const;

  // Removes the oldest datagram, copying at most `cap` bytes of it to `dst`
  // (the rest is discarded, as recvfrom() without MSG_PEEK truncates).
  // Returns false if the queue is empty.
  bool Pop(uint8_t* dst, uint32_t cap, DatagramInfo* info);

  uint32_t count() const { return count_; }
  uint32_t bytes_used() const { return tail_ - head_; }
  uint32_t capacity() const { return capacity_; }

 private:
  void Write(uint32_t pos, const void* src, uint32_t len);
  void Read(uint32_t pos, void* dst, uint32_t len) const;
  bool PushAny(uint32_t src_ip, uint16_t src_port, uint32_t dst_ip, const net::Ip6Addr* src6,
               const uint8_t* data, uint32_t len);

  uint32_t capacity_;
  std::unique_ptr<uint8_t[]> buf_;
  uint32_t head_ = 0;  // free-running byte offsets
  uint32_t tail_ = 0;
  uint32_t count_ = 0;
};

}  // namespace offload::udp

#endif  // OFFLOAD_DAEMON_UDP_DATAGRAM_QUEUE_H_
