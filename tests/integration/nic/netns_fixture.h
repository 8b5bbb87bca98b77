// Two network namespaces joined by a veth pair, for the NIC integration
// tests. Addresses come from 198.18.0.0/15 and exist only inside the
// namespaces. Namespaces are named after the test process id, removed in the
// destructor (also after a failed assertion), and a stale set from a crashed
// run with the same pid is removed before creation.

#ifndef OFFLOAD_TESTS_INTEGRATION_NIC_NETNS_FIXTURE_H_
#define OFFLOAD_TESTS_INTEGRATION_NIC_NETNS_FIXTURE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace offload::testing {

// Runs a shell command; returns its exit status (-1 if it could not run).
int Sh(const std::string& cmd);
// Runs a shell command and returns its stdout.
std::string ShOutput(const std::string& cmd);

class VethPair {
 public:
  struct Options {
    int queues = 1;          // RX/TX queues of each end
    bool address_a = true;   // false: va has no address (a user-space stack
                             // that owns it through a packet socket answers
                             // for 198.18.<subnet>.1, not the kernel)
    bool ipv6 = true;        // false: IPv6 off in both namespaces
    bool plain_frames = false;  // true: no TX checksum, TSO, GSO or GRO
                                // offload: complete 1500-byte frames
  };
  // Creates namespaces <prefix><pid>a / <prefix><pid>b, veth "va" in a and
  // "vb" in b, addresses 198.18.<subnet>.1/24 (unless !address_a) and
  // .2/24, links up.
  static absl::Status Create(const std::string& prefix, int subnet, const Options& options,
                             VethPair* out);
  // The same with `queues` RX/TX queues each and the other options default.
  static absl::Status Create(const std::string& prefix, int subnet, int queues,
                             VethPair* out) {
    Options o;
    o.queues = queues;
    return Create(prefix, subnet, o, out);
  }
  VethPair() = default;
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;
  ~VethPair();

  const std::string& ns_a() const { return ns_a_; }
  const std::string& ns_b() const { return ns_b_; }
  std::string ip_a() const;  // "198.18.<subnet>.1"
  std::string ip_b() const;

  // Moves the calling thread into namespace a / b (setns).
  absl::Status EnterA() const { return Enter(ns_a_); }
  absl::Status EnterB() const { return Enter(ns_b_); }
  // Turns off TX checksum offload of `ifname` in namespace `ns`
  // (ETHTOOL_STXCSUM). A veth "offloads" checksums to no hardware: frames a
  // kernel socket sends carry only the pseudo-header sum (CHECKSUM_PARTIAL),
  // and an AF_XDP receiver on the peer sees them that way. A user-space
  // stack that verifies or echoes checksums needs the sender to compute
  // them, as every real NIC delivers them.
  static absl::Status DisableTxChecksumOffload(const std::string& ns,
                                               const std::string& ifname);
  // Runs `fn` on a fresh thread inside namespace `ns`, waits for it.
  static absl::Status RunIn(const std::string& ns,
                            const std::function<void()>& fn);

 private:
  static absl::Status Enter(const std::string& ns);
  void Destroy();

  std::string ns_a_, ns_b_;
  int subnet_ = 0;
};

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_INTEGRATION_NIC_NETNS_FIXTURE_H_
