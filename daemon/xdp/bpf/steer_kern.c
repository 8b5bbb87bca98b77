/* XDP steering program of offloadd's af_xdp driver.
 *
 * Redirects the IPv4 and IPv6 TCP/UDP packets of flows the daemon steered
 * (entries of `flows`) to the AF_XDP socket of the receive queue (`xsks`);
 * everything else -- ARP (requests and replies), ICMP, ICMPv6 (neighbour
 * discovery included), IPv6 packets with extension headers, fragments,
 * TCP/UDP of other flows -- gets XDP_PASS and reaches the kernel untouched.
 * User space reaches the program only through its maps (layouts in
 * steer_maps.h). */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "steer_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OFFLOAD_XDP_DEFAULT_MAX_FLOWS);
	__type(key, struct offload_flow_key);
	__type(value, struct offload_flow_value);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, OFFLOAD_XDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OFFLOAD_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline int count(__u32 stat, int action)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &stat);

	if (value)
		*value += 1; /* per-CPU slot: no atomic needed */
	return action;
}

/* Returns the flow entry for the packet, most specific key first. */
static __always_inline struct offload_flow_value *
lookup_flow(struct offload_flow_key *key)
{
	struct offload_flow_value *value;

	value = bpf_map_lookup_elem(&flows, key); /* connection */
	if (value)
		return value;
	__builtin_memset(key->remote_ip, 0, sizeof(key->remote_ip));
	key->remote_port = 0;
	value = bpf_map_lookup_elem(&flows, key); /* listener on an address */
	if (value)
		return value;
	__builtin_memset(key->local_ip, 0, sizeof(key->local_ip));
	return bpf_map_lookup_elem(&flows, key); /* listener on any address */
}

/* RFC 8200 4 and the IANA registry: Next Header values that are extension
 * headers. The program does not walk them: such packets go to the kernel. */
static __always_inline int is_ipv6_extension(__u8 next)
{
	return next == 0 || next == 43 || next == 44 || next == 50 ||
	       next == 51 || next == 59 || next == 60 || next == 135 ||
	       next == 139 || next == 140 || next == 253 || next == 254;
}

/* Fills `key` from an IPv6 packet at `ip6`, or returns the statistic of why
 * the packet goes to the kernel (-1: key filled). */
static __always_inline int ipv6_key(struct ipv6hdr *ip6, void *data_end,
				    struct offload_flow_key *key)
{
	__be16 *ports;

	if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
		return OFFLOAD_STAT_PASS_MALFORMED;
	/* ICMPv6 (ND, echo, packet too big) is the kernel's. */
	if (ip6->nexthdr == 44)
		return OFFLOAD_STAT_PASS_FRAGMENT;
	if (is_ipv6_extension(ip6->nexthdr))
		return OFFLOAD_STAT_PASS_IPV6_EXT;
	if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP)
		return OFFLOAD_STAT_PASS_NOT_L4;
	/* RFC 4291 2.5.6: fe80::/10. The engine serves the interface's global
	 * address only; a link-local peer of a wildcard listener is the
	 * kernel's (the listener's kernel socket accepts it). */
	if (ip6->daddr.s6_addr[0] == 0xfe && (ip6->daddr.s6_addr[1] & 0xc0) == 0x80)
		return OFFLOAD_STAT_PASS_LINK_LOCAL;
	ports = (__be16 *)(ip6 + 1);
	if ((void *)(ports + 2) > data_end)
		return OFFLOAD_STAT_PASS_MALFORMED;
	key->family = OFFLOAD_FAMILY_IPV6;
	key->proto = ip6->nexthdr;
	__builtin_memcpy(key->local_ip, &ip6->daddr, 16);
	__builtin_memcpy(key->remote_ip, &ip6->saddr, 16);
	key->remote_port = ports[0];
	key->local_port = ports[1];
	return -1;
}

SEC("xdp")
int offload_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct offload_flow_key key = {};
	struct offload_flow_value *flow;
	__u32 queue = ctx->rx_queue_index;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 ihl_bytes;
	__be16 *ports;
	int why;

	if ((void *)(eth + 1) > data_end)
		return count(OFFLOAD_STAT_PASS_MALFORMED, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		why = ipv6_key((struct ipv6hdr *)(eth + 1), data_end, &key);
		if (why >= 0)
			return count(why, XDP_PASS);
		goto lookup;
	}
	/* ARP stays with the kernel: the engine reads neighbours via netlink. */
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count(OFFLOAD_STAT_PASS_NOT_IP, XDP_PASS);

	ip = (struct iphdr *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return count(OFFLOAD_STAT_PASS_MALFORMED, XDP_PASS);
	/* RFC 791 3.1: IHL counts 32-bit words, at least 5. */
	ihl_bytes = ip->ihl * 4;
	if (ip->version != 4 || ihl_bytes < sizeof(*ip))
		return count(OFFLOAD_STAT_PASS_MALFORMED, XDP_PASS);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return count(OFFLOAD_STAT_PASS_NOT_L4, XDP_PASS);
	/* RFC 791 3.1: MF flag or a non-zero fragment offset. Non-first
	 * fragments carry no ports, so all fragments go to the kernel, which
	 * reassembles them; a flow is never split between the two stacks. */
	if (ip->frag_off & bpf_htons(0x3fff))
		return count(OFFLOAD_STAT_PASS_FRAGMENT, XDP_PASS);

	/* Both TCP and UDP start with source port, destination port. */
	ports = (__be16 *)((void *)ip + ihl_bytes);
	if ((void *)(ports + 2) > data_end)
		return count(OFFLOAD_STAT_PASS_MALFORMED, XDP_PASS);

	key.family = OFFLOAD_FAMILY_IPV4;
	key.proto = ip->protocol;
	__builtin_memcpy(key.local_ip, &ip->daddr, 4);
	__builtin_memcpy(key.remote_ip, &ip->saddr, 4);
	key.remote_port = ports[0];
	key.local_port = ports[1];
lookup:
	flow = lookup_flow(&key);
	if (!flow)
		return count(OFFLOAD_STAT_PASS_NO_FLOW, XDP_PASS);
	if (flow->queue_id != queue)
		count(OFFLOAD_STAT_QUEUE_MISMATCH, 0);

	/* No socket bound on this queue (daemon restarting): the kernel gets
	 * the packet. bpf_redirect_map()'s flags also make XDP_PASS the
	 * fallback should the socket go away between the two calls. */
	if (bpf_map_lookup_elem(&xsks, &queue) == NULL)
		return count(OFFLOAD_STAT_NO_SOCKET, XDP_PASS);
	count(OFFLOAD_STAT_REDIRECT, 0);
	return bpf_redirect_map(&xsks, queue, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
