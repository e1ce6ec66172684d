// SPDX-License-Identifier: GPL-2.0
/*
 * A C reference of the seed's two programs (the C prototype dnsredir replaces: what it did and
 * its faults are below), for bench/prog.rs only: the per-packet benchmark runs it next to
 * dnsredir's programs, on the same packets, in one run.
 * Never attached anywhere; not part of dnsredir.
 *
 *   clang -O2 -target bpf -c bench/seed/seed.c -o seed.o      (scripts/bench does this)
 *
 * As the seed: UDP only, IPv4 only, the lo-ingress query program rewrites
 * 127.0.0.11:<dockerd port> -> <upstream>:<port> with <container addr> as source and
 * bpf_redirect_neigh()s to eth0; the eth0-ingress reply program rewrites upstream:<port> back to
 * 127.0.0.11:<dockerd port> -> 127.0.0.1 and bpf_redirect_neigh()s to lo. Pass-through is
 * TC_ACT_OK, as the seed's; fragments are not looked at, as the seed did not.
 *
 * The seed's faults that are fixed here, so that the comparison is with correct C:
 *   - checksums: the address delta goes to the L4 checksum with BPF_F_PSEUDO_HDR, the port
 *     delta without it (the seed combined both in one pseudo-header delta); the deltas are
 *     computed inline (RFC 1624), one l3_csum_replace and two l4_csum_replace calls, as
 *     dnsredir does; UDP checksum 0 stays 0 (BPF_F_MARK_MANGLED_0);
 *   - IHL honoured; short or foreign packets passed (TC_ACT_OK), not dropped;
 *   - configuration in .rodata (`volatile const`), written by the loader, not #defines.
 *
 * Two variants, four programs, one object:
 *   seed/query, seed/reply          the seed as described: no flow table; the reply program
 *                                   rewrites every UDP packet from upstream:<port>
 *   seedflow/query, seedflow/reply  the seed plus a flow table like dnsredir's: an LRU hash of
 *                                   16384 entries keyed by (client port, DNS id, protocol), the
 *                                   value the client's and resolver's address and port (same
 *                                   24-byte layout); the reply looks the flow up, deletes it
 *                                   and restores from it
 *
 * The map is a legacy `maps` section entry (struct bpf_map_def), the only map form dnsredir's
 * loader reads; no BTF (built without -g). Self-contained: no kernel or libbpf headers.
 */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define INLINE static inline __attribute__((always_inline))

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define BPF_ANY 0
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_F_PSEUDO_HDR (1ULL << 4)
#define BPF_F_MARK_MANGLED_0 (1ULL << 5)

#define ETH_HLEN 14
#define ETH_P_IP_BE 0x0008 /* htons(0x0800) */
#define IPPROTO_UDP 17
#define IP_CSUM_OFF (ETH_HLEN + 10)

/* struct __sk_buff up to data_end (linux/bpf.h): data at 76, data_end at 80. */
struct __sk_buff {
	__u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto;
	__u32 priority, ingress_ifindex, ifindex, tc_index, cb[5], hash, tc_classid;
	__u32 data, data_end;
};

struct bpf_map_def {
	__u32 type, key_size, value_size, max_entries, map_flags;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static long (*bpf_l3_csum_replace)(struct __sk_buff *skb, __u32 off, __u64 from, __u64 to, __u64 flags) = (void *)10;
static long (*bpf_l4_csum_replace)(struct __sk_buff *skb, __u32 off, __u64 from, __u64 to, __u64 flags) = (void *)11;
static long (*bpf_redirect_neigh)(__u32 ifindex, void *params, int plen, __u64 flags) = (void *)152;

struct ethhdr {
	__u8 dst[6], src[6];
	__u16 proto;
};

struct iphdr {
	__u8 ver_ihl, tos;
	__u16 tot_len, id, frag_off;
	__u8 ttl, protocol;
	__u16 check;
	__u32 saddr, daddr;
};

struct udphdr {
	__u16 source, dest, len, check;
};

/* Written by bench/prog/seed.rs with ObjectFile::set_global; addresses and ports in network order. */
struct seed_config {
	__u32 resolver_addr;  /* 127.0.0.11 */
	__u32 container_addr; /* eth0's address: the query's new source */
	__u32 upstream_addr;
	__u32 client_addr;    /* 127.0.0.1: the reply's new destination (no-flow variant) */
	__u32 iface_ifindex;
	__u32 lo_ifindex;
	__u16 dockerd_port;
	__u16 upstream_port;
};

volatile const struct seed_config seed_config = {
	.resolver_addr = 0x0b00007f,
	.client_addr = 0x0100007f,
	.iface_ifindex = 2,
	.lo_ifindex = 1,
	.upstream_port = 0x3500,
};

struct flow_key {
	__u16 port;   /* the client's port */
	__u16 dns_id;
	__u8 proto;
	__u8 pad0;
	__u16 pad1;
};

struct flow_value {
	__u64 closing_since_ns; /* unused (UDP only); kept for dnsredir's layout */
	__u32 client_addr;
	__u32 resolver_addr;
	__u16 resolver_port;
	__u16 pad0;
	__u32 pad1;
};

struct bpf_map_def SEC("maps") seed_flows = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(struct flow_key),
	.value_size = sizeof(struct flow_value),
	.max_entries = 16384,
	.map_flags = 0,
};

char LICENSE[] SEC("license") = "GPL";

/* A 32-bit one's-complement sum of 64-bit partial sums (the form the helpers take with size 0). */
INLINE __u32 fold32(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	return (__u32)s;
}

/* A parsed IPv4/UDP packet: fields read before any helper call invalidates packet pointers. */
struct pkt {
	__u32 l4_off, saddr, daddr;
	__u16 sport, dport, dns_id;
};

/* 0 if the packet is IPv4 UDP with its whole UDP header (and, with want_id, a DNS id). */
INLINE int parse(struct __sk_buff *skb, struct pkt *p, int want_id)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end || eth->proto != ETH_P_IP_BE)
		return -1;
	__u32 ihl = (ip->ver_ihl & 0x0f) * 4;
	if ((ip->ver_ihl >> 4) != 4 || ihl < sizeof(struct iphdr) || ip->protocol != IPPROTO_UDP)
		return -1;
	struct udphdr *udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > end)
		return -1;
	p->dns_id = 0;
	if (want_id) {
		__u16 *id = (void *)(udp + 1);
		if ((void *)(id + 1) > end)
			return -1;
		p->dns_id = *id;
	}
	p->l4_off = ETH_HLEN + ihl;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->sport = udp->source;
	p->dport = udp->dest;
	return 0;
}

/* Writes the new addresses and ports, then fixes the IPv4 and UDP checksums: address delta
 * with BPF_F_PSEUDO_HDR, port delta without. 0 on success. */
INLINE int rewrite(struct __sk_buff *skb, const struct pkt *p, __u32 saddr, __u32 daddr,
		   __u16 sport, __u16 dport)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	struct udphdr *udp = data + (p->l4_off & 0x7f);
	if ((void *)(ip + 1) > end || (void *)(udp + 1) > end)
		return -1;
	ip->saddr = saddr;
	ip->daddr = daddr;
	udp->source = sport;
	udp->dest = dport;
	__u32 addrs = fold32((__u64)~p->saddr + saddr + (__u64)~p->daddr + daddr);
	__u32 ports = fold32((__u64)(__u16)~p->sport + sport + (__u64)(__u16)~p->dport + dport);
	__u32 csum_off = p->l4_off + 6;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, 0, addrs, 0))
		return -2;
	if (bpf_l4_csum_replace(skb, csum_off, 0, addrs, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0))
		return -2;
	if (bpf_l4_csum_replace(skb, csum_off, 0, ports, BPF_F_MARK_MANGLED_0))
		return -2;
	return 0;
}

/* parse(), then 0 only if the packet is one for this program: a query to
 * 127.0.0.11:<dockerd port> (is_query), or a reply from upstream:<port>. */
INLINE int parse_ours(struct __sk_buff *skb, struct pkt *p, int want_id, int is_query)
{
	if (parse(skb, p, want_id))
		return -1;
	if (is_query)
		return p->daddr == seed_config.resolver_addr && p->dport == seed_config.dockerd_port ? 0 : -1;
	return p->saddr == seed_config.upstream_addr && p->sport == seed_config.upstream_port ? 0 : -1;
}

INLINE int query(struct __sk_buff *skb, int flows)
{
	struct pkt p;
	if (parse_ours(skb, &p, flows, 1))
		return TC_ACT_OK;
	if (flows) {
		struct flow_key k = { .port = p.sport, .dns_id = p.dns_id, .proto = IPPROTO_UDP };
		struct flow_value v = {
			.client_addr = p.saddr,
			.resolver_addr = p.daddr,
			.resolver_port = p.dport,
		};
		if (bpf_map_update_elem(&seed_flows, &k, &v, BPF_ANY))
			return TC_ACT_OK;
	}
	int r = rewrite(skb, &p, seed_config.container_addr, seed_config.upstream_addr, p.sport,
			seed_config.upstream_port);
	if (r)
		return r == -1 ? TC_ACT_OK : TC_ACT_SHOT;
	return bpf_redirect_neigh(seed_config.iface_ifindex, 0, 0, 0);
}

INLINE int reply(struct __sk_buff *skb, int flows)
{
	struct pkt p;
	if (parse_ours(skb, &p, flows, 0))
		return TC_ACT_OK;
	__u32 saddr = seed_config.resolver_addr, daddr = seed_config.client_addr;
	__u16 sport = seed_config.dockerd_port;
	if (flows) {
		if (p.daddr != seed_config.container_addr)
			return TC_ACT_OK;
		struct flow_key k = { .port = p.dport, .dns_id = p.dns_id, .proto = IPPROTO_UDP };
		struct flow_value *f = bpf_map_lookup_elem(&seed_flows, &k);
		if (!f)
			return TC_ACT_OK;
		saddr = f->resolver_addr;
		daddr = f->client_addr;
		sport = f->resolver_port;
		bpf_map_delete_elem(&seed_flows, &k);
	}
	int r = rewrite(skb, &p, saddr, daddr, sport, p.dport);
	if (r)
		return r == -1 ? TC_ACT_OK : TC_ACT_SHOT;
	return bpf_redirect_neigh(seed_config.lo_ifindex, 0, 0, 0);
}

SEC("seed/query") int seed_query(struct __sk_buff *skb) { return query(skb, 0); }
SEC("seed/reply") int seed_reply(struct __sk_buff *skb) { return reply(skb, 0); }
SEC("seedflow/query") int seedflow_query(struct __sk_buff *skb) { return query(skb, 1); }
SEC("seedflow/reply") int seedflow_reply(struct __sk_buff *skb) { return reply(skb, 1); }
