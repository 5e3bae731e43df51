/* SPDX-License-Identifier: MIT */
/*
 * The egress policy of a VM's NICs, enforced on every frame the guest
 * sends, before any backend sees it: root in the guest cannot lift it,
 * whatever it does to routes, resolvers or its MAC.
 *
 * Rules name destinations: "[PROTO:]ADDR[/LEN][:PORT[-PORT]]", PROTO
 * tcp, udp or icmp (none: any), ADDR an IPv4 or IPv6 address (IPv6 in
 * brackets when a port follows).  A packet leaves if an allow rule
 * matches it and no deny rule does; otherwise it is dropped.  So with no
 * rules nothing leaves.
 *
 * Sensitive ranges (loopback, RFC 1918 and ULA private, link-local,
 * CGNAT, multicast, the cloud metadata addresses 169.254.169.254 and
 * fd00:ec2::254, and under `user` networking the gateway that stands for
 * the host) are reached only through an allow rule that lies inside that
 * range: "0.0.0.0/0" opens the internet but not 10.0.2.2, which
 * "10.0.2.2:8000" opens.
 *
 * What the virtual network itself needs always passes: ARP, DHCP, IPv6
 * neighbour and router discovery, and DNS to the resolver hutch offers.
 * Replies on connections the host opened through a port forward pass
 * too (net_policy_note_inbound records them).  Fragments are dropped:
 * their ports cannot be checked.
 *
 * Threads: one policy per NIC, used under that NIC's device lock (the
 * net thread's frame path, the control channel's changes).
 */
#ifndef HUTCH_NET_POLICY_H
#define HUTCH_NET_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/net/net_names.h"

#define NET_POLICY_MAX_RULES 256
#define NET_RULE_TEXT_MAX    64
/* Inbound flows (port forwards) remembered for their replies. */
#define NET_POLICY_MAX_INBOUND 256
/* Denied flows remembered so each is logged once per window. */
#define NET_POLICY_LOG_SLOTS	 64
#define NET_POLICY_LOG_WINDOW_NS (10ull * 1000000000ull)
/* The deny log stops growing here (one line says so). */
#define NET_POLICY_LOG_MAX (16ull << 20)

#define NET_PROTO_ANY	0
#define NET_PROTO_ICMP	1
#define NET_PROTO_TCP	6
#define NET_PROTO_UDP	17
#define NET_PROTO_ICMP6 58

struct net_rule {
	bool allow;
	uint8_t family; /* 4 or 6 */
	uint8_t proto;	/* NET_PROTO_* (ICMP covers ICMPv6) */
	uint8_t prefix; /* bits */
	uint8_t addr[16];
	uint16_t port_lo, port_hi; /* 0-65535: any */
	char text[NET_RULE_TEXT_MAX];
};

/* What a frame is, as far as the policy cares. */
enum net_frame_kind {
	NET_FRAME_BAD,	 /* too short or malformed */
	NET_FRAME_ARP,	 /* always passes */
	NET_FRAME_IP,	 /* an IPv4 or IPv6 packet: checked */
	NET_FRAME_OTHER, /* another ethertype: dropped */
};

struct net_flow {
	uint8_t family; /* 4 or 6 */
	uint8_t proto;	/* IP protocol (after IPv6 extension headers) */
	uint8_t src[16], dst[16];
	uint16_t sport, dport; /* TCP/UDP; ICMP: type, code */
	bool fragment;
	bool tcp_syn; /* SYN without ACK: a new connection */
	uint8_t tcp_flags;
	size_t l4_off;	    /* offset of the TCP/UDP/ICMP header in the frame */
	size_t payload_off; /* of the TCP/UDP payload */
	size_t end;	    /* of the IP packet */
};

/* The virtual network's own addresses (user networking: gateway = the
 * host, resolver); unused families are all zero. */
struct net_infra {
	uint8_t gw4[4], dns4[4];
	uint8_t gw6[16], dns6[16];
};

struct net_inbound {
	uint8_t family;
	uint8_t proto;
	uint8_t peer[16];
	uint16_t peer_port, guest_port;
	uint64_t last_ns;
};

struct net_denied {
	uint8_t key[40];
	uint64_t at_ns;
};

/* Connections to names (web ports) whose first bytes must name an
 * allowed name (net_filter.c). */
#define NET_CONN_SLOTS 4096
#define NET_CONN_PROBE 16

struct net_conn {
	uint8_t state; /* 0: free */
	uint8_t family;
	uint16_t sport, dport;
	uint8_t src[16], dst[16];
	uint64_t last_ns;
};

struct net_policy {
	struct net_rule rules[NET_POLICY_MAX_RULES];
	unsigned nrules;
	struct net_names names; /* domain rules, pinned addresses */
	struct net_conn *conns; /* NET_CONN_SLOTS, malloc'd */
	struct net_infra infra;
	/* Guest ports the host forwards connections to (TCP). */
	uint16_t fwd_ports[16];
	unsigned nfwd;
	struct net_inbound inbound[NET_POLICY_MAX_INBOUND];
	unsigned inbound_next;
	/* The deny log: one JSON line per denied flow per window. */
	int log_fd; /* -1: none */
	uint64_t log_bytes;
	bool log_full;
	const char *vm_name;
	struct net_denied denied[NET_POLICY_LOG_SLOTS];
	unsigned denied_next;
	/* Counters (--stats). */
	uint64_t passed, dropped, logged;
};

/* An empty policy (denies everything but the infrastructure).  0 or
 * -ENOMEM; net_policy_free frees what it holds (not p). */
int net_policy_init(struct net_policy *p);
void net_policy_free(struct net_policy *p);

/* Parse one rule.  0, or -EINVAL after one line saying why. */
int net_rule_parse(const char *text, bool allow, struct net_rule *r);

/* Add a rule (an identical one is not added twice).  0, -ENOSPC. */
int net_policy_add(struct net_policy *p, const struct net_rule *r);

/* Classify a frame (Ethernet, no virtio header).  For NET_FRAME_IP, *f
 * describes it. */
enum net_frame_kind net_frame_parse(const uint8_t *frame, size_t len,
				    struct net_flow *f);

/*
 * May the guest send this packet?  Returns true, or false with *why set
 * to what denied it (a rule's text, "default", "fragment",
 * "sensitive"...).  now_ns: CLOCK_MONOTONIC, for the inbound table.
 */
bool net_policy_allows(struct net_policy *p, const struct net_flow *f,
		       uint64_t now_ns, const char **why);

/* A frame going to the guest: if it opens a connection to a forwarded
 * port, its replies may leave. */
void net_policy_note_inbound(struct net_policy *p, const struct net_flow *f,
			     uint64_t now_ns);

/* A denied packet: count it and, once per flow per window, write its
 * JSON line to the log (name: the name it asked for, or NULL). */
void net_policy_log_denied(struct net_policy *p, const struct net_flow *f,
			   const char *why, const char *name, uint64_t now_ns);

/* The sensitive range (net_policy.h) holding addr? */
bool net_addr_sensitive(uint8_t family, const uint8_t *addr);

/* Is dst our resolver? */
bool net_policy_is_resolver(const struct net_policy *p,
			    const struct net_flow *f);

/* Where frames hutch makes itself go (net_filter.c). */
struct net_filter_io {
	void (*to_guest)(void *opaque, const uint8_t *frame, size_t len);
	void (*to_peer)(void *opaque, const uint8_t *frame, size_t len);
	void *opaque;
};

/*
 * The whole egress check of one guest frame (net_filter.c): the rules,
 * the names (DNS queries answered REFUSED for names no rule allows,
 * connections to pinned addresses checked by their first bytes and reset
 * if they name another name), the log.  NET_FRAME_BAD for a malformed
 * frame; otherwise true if it may go to the backend.
 */
enum net_filter_verdict { NET_PASS, NET_DROP, NET_MALFORMED };
enum net_filter_verdict net_filter_tx(struct net_policy *p,
				      const uint8_t *frame, size_t len,
				      uint64_t now_ns,
				      const struct net_filter_io *io);

/* A frame for the guest (before it gets it): DNS answers pin their
 * addresses, connections to forwarded ports are remembered. */
void net_filter_rx(struct net_policy *p, const uint8_t *frame, size_t len,
		   uint64_t now_ns);

/* The rules, one per line ("allow RULE" / "deny RULE"). */
void net_policy_print(const struct net_policy *p, FILE *out);

#endif
