/* XDP steering program of offloadd's af_xdp driver.
 *
 * Redirects the IPv4 TCP/UDP packets of flows the daemon steered (entries of
 * `flows`) to the AF_XDP socket of the receive queue (`xsks`); everything
 * else -- ARP (requests and replies), ICMP, IPv6, fragments, TCP/UDP of other
 * flows -- gets XDP_PASS and reaches the kernel untouched. User space reaches
 * the program only through its maps (layouts in steer_maps.h). */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
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
	key->remote_ip = 0;
	key->remote_port = 0;
	value = bpf_map_lookup_elem(&flows, key); /* listener on an address */
	if (value)
		return value;
	key->local_ip = 0;
	return bpf_map_lookup_elem(&flows, key); /* listener on any address */
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

	if ((void *)(eth + 1) > data_end)
		return count(OFFLOAD_STAT_PASS_MALFORMED, XDP_PASS);
	/* ARP stays with the kernel: the engine reads neighbours via netlink. */
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count(OFFLOAD_STAT_PASS_NOT_IPV4, XDP_PASS);

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

	key.proto = ip->protocol;
	key.local_ip = ip->daddr;
	key.remote_ip = ip->saddr;
	key.remote_port = ports[0];
	key.local_port = ports[1];
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
