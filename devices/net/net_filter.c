// SPDX-License-Identifier: MIT
/*
 * The egress check of whole frames (net_policy.h, net_filter_tx): the
 * address rules of net_policy.c, then the names.
 *
 *   DNS     A query to our resolver for a name no domain rule allows is
 *           answered REFUSED here and goes no further; DNS to any other
 *           resolver, and DNS over TCP (whose stream we do not follow),
 *           is dropped.  Answers pin their addresses (net_filter_rx).
 *   names   A destination no address rule allows may still be reached
 *           if a live pin for it names an allowed name whose rule
 *           allows the port, and it is not in a sensitive range (a name
 *           resolving to 169.254.169.254 opens nothing).
 *   pinning TCP to such an address on port 443 or 80 is followed in the
 *           connection table: its first data must be a ClientHello
 *           whose server name, or an HTTP request whose Host, is a name
 *           pinned to that address; otherwise both ends are reset.  So
 *           an allowed CDN address serving other names serves only the
 *           allowed ones.
 */
#include <string.h>

#include "devices/net/net_craft.h"
#include "devices/net/net_dns.h"
#include "devices/net/net_policy.h"
#include "devices/net/net_sni.h"

enum { CONN_FREE, CONN_WAIT_NAME, CONN_OK, CONN_REFUSED };

/* Idle connections give their slot up after this. */
#define CONN_IDLE_NS (3600ull * 1000000000ull)

static unsigned conn_hash(const struct net_flow *f)
{
	uint32_t h = 2166136261u;
	unsigned n = f->family == 4 ? 4 : 16;

	for (unsigned i = 0; i < n; i++)
		h = (h ^ f->src[i]) * 16777619u;
	for (unsigned i = 0; i < n; i++)
		h = (h ^ f->dst[i]) * 16777619u;
	h = (h ^ f->sport) * 16777619u;
	h = (h ^ f->dport) * 16777619u;
	return h & (NET_CONN_SLOTS - 1);
}

static bool conn_is(const struct net_conn *c, const struct net_flow *f)
{
	unsigned n = f->family == 4 ? 4 : 16;

	return c->state != CONN_FREE && c->family == f->family &&
	       c->sport == f->sport && c->dport == f->dport &&
	       !memcmp(c->src, f->src, n) && !memcmp(c->dst, f->dst, n);
}

static struct net_conn *conn_find(struct net_policy *p,
				  const struct net_flow *f)
{
	unsigned h = conn_hash(f);

	for (unsigned i = 0; i < NET_CONN_PROBE; i++) {
		struct net_conn *c = &p->conns[(h + i) & (NET_CONN_SLOTS - 1)];

		if (conn_is(c, f))
			return c;
	}
	return NULL;
}

/* A slot for a new connection: a free or idle one, else the one idle
 * longest among those probed. */
static struct net_conn *conn_new(struct net_policy *p, const struct net_flow *f,
				 uint64_t now_ns)
{
	unsigned h = conn_hash(f);
	struct net_conn *pick = NULL;

	for (unsigned i = 0; i < NET_CONN_PROBE; i++) {
		struct net_conn *c = &p->conns[(h + i) & (NET_CONN_SLOTS - 1)];

		if (conn_is(c, f) || c->state == CONN_FREE ||
		    now_ns - c->last_ns > CONN_IDLE_NS) {
			pick = c;
			break;
		}
		if (!pick || c->last_ns < pick->last_ns)
			pick = c;
	}
	memset(pick, 0, sizeof(*pick));
	pick->state = CONN_WAIT_NAME;
	pick->family = f->family;
	pick->sport = f->sport;
	pick->dport = f->dport;
	memcpy(pick->src, f->src, 16);
	memcpy(pick->dst, f->dst, 16);
	pick->last_ns = now_ns;
	return pick;
}

static enum net_filter_verdict deny(struct net_policy *p,
				    const struct net_flow *f, const char *why,
				    const char *name, uint64_t now_ns)
{
	p->dropped++;
	net_policy_log_denied(p, f, why, name, now_ns);
	return NET_DROP;
}

/* A query to our resolver: REFUSED for names no rule allows. */
static enum net_filter_verdict
dns_query(struct net_policy *p, const uint8_t *frame, const struct net_flow *f,
	  uint64_t now_ns, const struct net_filter_io *io)
{
	uint8_t answer[512], reply[14 + 40 + 8 + sizeof(answer)];
	char name[NET_NAME_MAX];
	const uint8_t *msg = frame + f->payload_off;
	size_t len = f->end - f->payload_off;
	int n;

	if (f->fragment || net_dns_query_name(msg, len, name, sizeof(name)))
		return deny(p, f, "dns-malformed", NULL, now_ns);
	if (net_names_allowed(&p->names, name)) {
		p->passed++;
		return NET_PASS;
	}
	n = net_dns_refused(msg, len, answer, sizeof(answer));
	if (n > 0) {
		n = net_craft_udp_reply(frame, f, answer, (size_t)n, reply,
					sizeof(reply));
		if (n > 0)
			io->to_guest(io->opaque, reply, (size_t)n);
	}
	return deny(p, f, "name", name, now_ns);
}

/* The first data of a connection to a pinned address. */
static enum net_filter_verdict
first_data(struct net_policy *p, const uint8_t *frame, const struct net_flow *f,
	   struct net_conn *c, uint64_t now_ns, const struct net_filter_io *io)
{
	const uint8_t *data = frame + f->payload_off;
	size_t len = f->end - f->payload_off;
	uint8_t rst[14 + 40 + 20];
	char name[NET_NAME_MAX];
	bool found;
	int n;

	found = (f->dport == 443
		     ? net_tls_sni(data, len, name, sizeof(name))
		     : net_http_host(data, len, name, sizeof(name))) == 0;
	if (found && net_names_permit(&p->names, f->family, f->dst, f->dport,
				      name, now_ns)) {
		c->state = CONN_OK;
		p->passed++;
		return NET_PASS;
	}
	/* Reset both ends: the guest's socket, and slirp's (or the peer's)
	 * connection to the server, which has seen nothing but a
	 * handshake. */
	c->state = CONN_REFUSED;
	n = net_craft_tcp_rst(frame, f, true, rst, sizeof(rst));
	if (n > 0)
		io->to_guest(io->opaque, rst, (size_t)n);
	n = net_craft_tcp_rst(frame, f, false, rst, sizeof(rst));
	if (n > 0)
		io->to_peer(io->opaque, rst, (size_t)n);
	return deny(p, f, found ? "name" : "no-name", found ? name : NULL,
		    now_ns);
}

/* What the names say about a packet no address rule let out. */
static enum net_filter_verdict
by_name(struct net_policy *p, const uint8_t *frame, const struct net_flow *f,
	uint64_t now_ns, const char *why, const struct net_filter_io *io)
{
	bool web = f->proto == NET_PROTO_TCP && !f->fragment &&
		   (f->dport == 443 || f->dport == 80);
	struct net_conn *c;

	/* An earlier allow rule's verdict stands for sensitive ranges and
	 * deny rules; fragments are never followed. */
	if (strcmp(why, "default") || net_addr_sensitive(f->family, f->dst))
		return deny(p, f, why, NULL, now_ns);
	if (web && !f->tcp_syn) {
		c = conn_find(p, f);
		if (!c)
			return deny(p, f, "default", NULL, now_ns);
		c->last_ns = now_ns;
		if (f->tcp_flags & 0x04) /* RST: the slot is free again */
			c->state = CONN_FREE;
		else if (c->state == CONN_REFUSED)
			return deny(p, f, "name", NULL, now_ns);
		else if (c->state == CONN_WAIT_NAME && f->end > f->payload_off)
			return first_data(p, frame, f, c, now_ns, io);
		p->passed++;
		return NET_PASS;
	}
	/* New connections only while a pin lasts. */
	if (!net_names_permit(&p->names, f->family, f->dst, f->dport, NULL,
			      now_ns))
		return deny(p, f, "default", NULL, now_ns);
	if (web)
		conn_new(p, f, now_ns);
	p->passed++;
	return NET_PASS;
}

enum net_filter_verdict net_filter_tx(struct net_policy *p,
				      const uint8_t *frame, size_t len,
				      uint64_t now_ns,
				      const struct net_filter_io *io)
{
	struct net_flow f;
	const char *why = NULL;

	switch (net_frame_parse(frame, len, &f)) {
	case NET_FRAME_BAD:
		return NET_MALFORMED;
	case NET_FRAME_OTHER:
		p->dropped++;
		return NET_DROP;
	case NET_FRAME_ARP:
		return NET_PASS;
	case NET_FRAME_IP:
		break;
	}
	if ((f.proto == NET_PROTO_UDP || f.proto == NET_PROTO_TCP) &&
	    f.dport == 53) {
		if (!net_policy_is_resolver(p, &f))
			return deny(p, &f, "dns-elsewhere", NULL, now_ns);
		if (f.proto == NET_PROTO_TCP)
			return deny(p, &f, "dns-over-tcp", NULL, now_ns);
		return dns_query(p, frame, &f, now_ns, io);
	}
	if (net_policy_allows(p, &f, now_ns, &why))
		return NET_PASS;
	p->dropped--; /* counted once, below or by the caller's log */
	return by_name(p, frame, &f, now_ns, why, io);
}

void net_filter_rx(struct net_policy *p, const uint8_t *frame, size_t len,
		   uint64_t now_ns)
{
	struct net_flow f;

	if (net_frame_parse(frame, len, &f) != NET_FRAME_IP)
		return;
	net_policy_note_inbound(p, &f, now_ns);
	/* An answer from our resolver: the flow's source is the resolver. */
	if (f.proto == NET_PROTO_UDP && f.sport == 53 && !f.fragment) {
		struct net_flow back = f;

		memcpy(back.dst, f.src, 16);
		if (net_policy_is_resolver(p, &back))
			net_dns_pin_answer(&p->names, frame + f.payload_off,
					   f.end - f.payload_off, now_ns);
	}
}
