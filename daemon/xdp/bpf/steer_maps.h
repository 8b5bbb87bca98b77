/* Map layouts shared by the XDP steering program (steer_kern.c, compiled
 * with clang -target bpf) and the daemon (C++). Plain C, fixed-width types,
 * explicit padding; both sides static_assert the sizes.
 *
 * Invariants: every multi-byte address/port field is in network byte order,
 * exactly as it appears in the packet, so the program never swaps bytes.
 * Padding bytes are zero (the key is hashed as raw bytes). */

#ifndef OFFLOAD_DAEMON_XDP_BPF_STEER_MAPS_H_
#define OFFLOAD_DAEMON_XDP_BPF_STEER_MAPS_H_

#include <linux/types.h>
#ifdef __cplusplus
#include <cstddef>
#endif

/* Name of the XDP program (the function in steer_kern.c). The daemon
 * recognises a stale program of its own on an interface by this name. */
#define OFFLOAD_XDP_PROG_NAME "offload_steer"

/* Upper bound on queues per interface (size of the XSKMAP). */
#define OFFLOAD_XDP_MAX_QUEUES 64

/* Default size of the flow map; the daemon may resize it before load. */
#define OFFLOAD_XDP_DEFAULT_MAX_FLOWS 65536

/* Address families of a key (the IP version numbers). */
#define OFFLOAD_FAMILY_IPV4 4
#define OFFLOAD_FAMILY_IPV6 6

/* Key of the flow map, for either family. A received packet is looked up
 * three times, most specific first:
 *   1. {family, proto, dst ip, dst port, src ip, src port}   connection
 *   2. {family, proto, dst ip, dst port, 0, 0}               listener on an
 *                                            address (or a multicast group)
 *   3. {family, proto, 0,      dst port, 0, 0}               listener on any
 *                                            address of the family
 * An IPv4 address fills the first 4 bytes of its field (the rest is zero);
 * an IPv6 one all 16. A dual-stack listener is two keys, one per family. */
struct offload_flow_key {
  __u8 local_ip[16];
  __u8 remote_ip[16];
  __be16 local_port;
  __be16 remote_port;
  __u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 family; /* OFFLOAD_FAMILY_IPV4 or OFFLOAD_FAMILY_IPV6 */
  __u8 pad[2];
};

/* Value of the flow map. */
struct offload_flow_value {
  /* Queue the daemon steered the flow to. A packet is always redirected
   * to the AF_XDP socket of the queue it arrived on (AF_XDP requires
   * that); hardware flow rules keep the two equal. A mismatch is counted
   * (OFFLOAD_STAT_QUEUE_MISMATCH) so a misconfiguration is visible. */
  __u32 queue_id;
  __u32 flags; /* reserved, 0 */
};

/* Indexes of the per-CPU statistics array. */
enum offload_xdp_stat {
  OFFLOAD_STAT_PASS_NOT_IP = 0,   /* ARP, VLAN, ...: kernel */
  OFFLOAD_STAT_PASS_NOT_L4,       /* ICMP, ICMPv6 (ND), other protocols */
  OFFLOAD_STAT_PASS_FRAGMENT,     /* IPv4 fragments, IPv6 fragment header */
  OFFLOAD_STAT_PASS_MALFORMED,    /* truncated headers: kernel */
  OFFLOAD_STAT_PASS_NO_FLOW,      /* TCP/UDP not steered: kernel */
  OFFLOAD_STAT_REDIRECT,          /* steered, redirected to a socket */
  OFFLOAD_STAT_NO_SOCKET,         /* steered, no socket on this queue */
  OFFLOAD_STAT_QUEUE_MISMATCH,    /* steered to another queue */
  OFFLOAD_STAT_PASS_IPV6_EXT,     /* IPv6 extension header: kernel */
  OFFLOAD_STAT_PASS_LINK_LOCAL,   /* IPv6 to a link-local address: kernel */
  OFFLOAD_STAT_COUNT,
};

#ifdef __cplusplus
static_assert(sizeof(struct offload_flow_key) == 40, "flow key layout");
static_assert(offsetof(struct offload_flow_key, local_port) == 32, "flow key layout");
static_assert(offsetof(struct offload_flow_key, proto) == 36, "flow key layout");
static_assert(sizeof(struct offload_flow_value) == 8, "flow value layout");
#else
_Static_assert(sizeof(struct offload_flow_key) == 40, "flow key layout");
_Static_assert(__builtin_offsetof(struct offload_flow_key, local_port) == 32,
               "flow key layout");
_Static_assert(__builtin_offsetof(struct offload_flow_key, proto) == 36,
               "flow key layout");
_Static_assert(sizeof(struct offload_flow_value) == 8, "flow value layout");
#endif

#endif /* OFFLOAD_DAEMON_XDP_BPF_STEER_MAPS_H_ */
