// SPDX-License-Identifier: MIT
/*
 * The egress policy (net_policy.h): rule parsing, frame classification
 * (the only code that reads a guest frame's headers, from a copy the
 * guest can no longer change), the verdict, and the deny log.
 */
#include "devices/net/net_policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmm/base/log.h"

#define ETH_HLEN      14
#define ETHERTYPE_IP  0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_IP6 0x86dd

struct range {
	uint8_t family, prefix;
	uint8_t addr[16];
};

#define V4(a, b, c, d, len)                                                    \
	{                                                                      \
		4, len,                                                        \
		{                                                              \
			a, b, c, d                                             \
		}                                                              \
	}
/* Reached only through a rule inside them (net_policy.h). */
static const struct range sensitive[] = {
    V4(0, 0, 0, 0, 8),
    V4(10, 0, 0, 0, 8),
    V4(100, 64, 0, 0, 10),
    V4(127, 0, 0, 0, 8),
    V4(169, 254, 0, 0, 16),
    V4(172, 16, 0, 0, 12),
    V4(192, 168, 0, 0, 16),
    V4(224, 0, 0, 0, 4),
    V4(240, 0, 0, 0, 4),
    {6, 128, {0}},			 /* :: */
    {6, 128, {[15] = 1}},		 /* ::1 */
    {6, 96, {[10] = 0xff, [11] = 0xff}}, /* IPv4-mapped */
    {6, 7, {0xfc}},			 /* ULA, fd00:ec2::254 */
    {6, 10, {0xfe, 0x80}},		 /* link-local */
    {6, 10, {0xfe, 0xc0}},		 /* site-local (slirp's prefix) */
    {6, 8, {0xff}},			 /* multicast */
};

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, net, whole))
		return false;
	if (!rest)
		return true;
	return ((a[whole] ^ net[whole]) & (0xff00u >> rest)) == 0;
}

static unsigned addr_len(uint8_t family)
{
	return family == 4 ? 4 : 16;
}

int net_policy_init(struct net_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->log_fd = -1;
	p->vm_name = "";
	p->conns = calloc(NET_CONN_SLOTS, sizeof(*p->conns));
	if (!p->conns || net_names_init(&p->names)) {
		net_policy_free(p);
		return -ENOMEM;
	}
	return 0;
}

void net_policy_free(struct net_policy *p)
{
	net_names_free(&p->names);
	free(p->conns);
	p->conns = NULL;
}

/* "N" or "N-M" into lo..hi.  0 or -EINVAL. */
static int parse_ports(const char *s, uint16_t *lo, uint16_t *hi)
{
	char *end;
	unsigned long a, b;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	a = strtoul(s, &end, 10);
	b = a;
	if (*end == '-') {
		if (end[1] < '0' || end[1] > '9')
			return -EINVAL;
		b = strtoul(end + 1, &end, 10);
	}
	if (*end || a > 65535 || b > 65535 || a > b)
		return -EINVAL;
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
	return 0;
}

int net_rule_parse(const char *text, bool allow, struct net_rule *r)
{
	char buf[NET_RULE_TEXT_MAX], *s = buf, *addr, *slash, *port = NULL;
	unsigned long prefix;
	char *end;

	memset(r, 0, sizeof(*r));
	r->allow = allow;
	r->port_hi = 65535;
	if (strlen(text) >= sizeof(buf))
		goto bad;
	strcpy(buf, text);
	strcpy(r->text, text);
	if (!strncmp(s, "tcp:", 4))
		r->proto = NET_PROTO_TCP, s += 4;
	else if (!strncmp(s, "udp:", 4))
		r->proto = NET_PROTO_UDP, s += 4;
	else if (!strncmp(s, "icmp:", 5))
		r->proto = NET_PROTO_ICMP, s += 5;
	if (*s == '[') {
		char *close = strchr(s, ']');

		if (!close || (close[1] && close[1] != ':'))
			goto bad;
		*close = 0;
		addr = s + 1;
		if (close[1] == ':')
			port = close + 2;
	} else {
		addr = s;
		/* One colon: IPv4 with a port; more: a bare IPv6 address. */
		char *colon = strchr(s, ':');

		if (colon && !strchr(colon + 1, ':')) {
			*colon = 0;
			port = colon + 1;
		}
	}
	slash = strchr(addr, '/');
	if (slash)
		*slash++ = 0;
	if (inet_pton(AF_INET, addr, r->addr) == 1)
		r->family = 4;
	else if (inet_pton(AF_INET6, addr, r->addr) == 1)
		r->family = 6;
	else
		goto bad;
	r->prefix = (uint8_t)(addr_len(r->family) * 8);
	if (slash) {
		if (*slash < '0' || *slash > '9')
			goto bad;
		prefix = strtoul(slash, &end, 10);
		if (*end || prefix > r->prefix)
			goto bad;
		r->prefix = (uint8_t)prefix;
	}
	if (port) {
		/* Without a protocol, a port matches TCP and UDP. */
		if (r->proto == NET_PROTO_ICMP ||
		    parse_ports(port, &r->port_lo, &r->port_hi))
			goto bad;
	}
	/* Host bits beyond the prefix are ignored: clear them so that two
	 * spellings of one network compare equal. */
	for (unsigned i = 0; i < 16; i++) {
		unsigned bit = i * 8;

		if (bit >= r->prefix)
			r->addr[i] = 0;
		else if (r->prefix - bit < 8)
			r->addr[i] &= (uint8_t)(0xff00u >> (r->prefix - bit));
	}
	return 0;
bad:
	log_errx("network rule '%s': expected [tcp:|udp:|icmp:]ADDRESS[/LEN]"
		 "[:PORT[-PORT]] (IPv6 in brackets before a port)",
		 text);
	return -EINVAL;
}

static bool same_rule(const struct net_rule *a, const struct net_rule *b)
{
	return a->allow == b->allow && a->family == b->family &&
	       a->proto == b->proto && a->prefix == b->prefix &&
	       !memcmp(a->addr, b->addr, 16) && a->port_lo == b->port_lo &&
	       a->port_hi == b->port_hi;
}

int net_policy_add(struct net_policy *p, const struct net_rule *r)
{
	for (unsigned i = 0; i < p->nrules; i++)
		if (same_rule(&p->rules[i], r))
			return 0;
	if (p->nrules == NET_POLICY_MAX_RULES)
		return -ENOSPC;
	p->rules[p->nrules++] = *r;
	return 0;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The L4 header at off: ports (or ICMP type/code) and SYN.  False if it
 * is cut short. */
static bool parse_l4(const uint8_t *frame, size_t len, size_t off,
		     struct net_flow *f)
{
	size_t doff;

	f->l4_off = off;
	f->end = len;
	f->payload_off = len;
	if (f->fragment)
		return true;
	switch (f->proto) {
	case NET_PROTO_TCP:
		if (len < off + 20)
			return false;
		doff = (size_t)(frame[off + 12] >> 4) * 4;
		if (doff < 20 || off + doff > len)
			return false;
		f->sport = be16(frame + off);
		f->dport = be16(frame + off + 2);
		f->tcp_flags = frame[off + 13];
		f->tcp_syn = (frame[off + 13] & 0x12) == 0x02;
		f->payload_off = off + doff;
		return true;
	case NET_PROTO_UDP:
		if (len < off + 8)
			return false;
		f->sport = be16(frame + off);
		f->dport = be16(frame + off + 2);
		f->payload_off = off + 8;
		return true;
	case NET_PROTO_ICMP:
	case NET_PROTO_ICMP6:
		if (len < off + 4)
			return false;
		f->sport = frame[off];
		f->dport = frame[off + 1];
		return true;
	default:
		return true;
	}
}

static enum net_frame_kind parse_ip4(const uint8_t *frame, size_t len,
				     struct net_flow *f)
{
	const uint8_t *ip = frame + ETH_HLEN;
	size_t ihl, total;

	if (len < ETH_HLEN + 20 || (ip[0] >> 4) != 4)
		return NET_FRAME_BAD;
	ihl = (size_t)(ip[0] & 15) * 4;
	total = be16(ip + 2);
	if (ihl < 20 || total < ihl || ETH_HLEN + total > len)
		return NET_FRAME_BAD;
	f->family = 4;
	f->proto = ip[9];
	memcpy(f->src, ip + 12, 4);
	memcpy(f->dst, ip + 16, 4);
	f->fragment = (be16(ip + 6) & 0x3fff) != 0; /* MF or an offset */
	return parse_l4(frame, ETH_HLEN + total, ETH_HLEN + ihl, f)
		   ? NET_FRAME_IP
		   : NET_FRAME_BAD;
}

static enum net_frame_kind parse_ip6(const uint8_t *frame, size_t len,
				     struct net_flow *f)
{
	const uint8_t *ip = frame + ETH_HLEN;
	size_t off = ETH_HLEN + 40, end;
	uint8_t next;

	if (len < off || (ip[0] >> 4) != 6)
		return NET_FRAME_BAD;
	end = off + be16(ip + 4);
	if (end > len)
		return NET_FRAME_BAD;
	f->family = 6;
	memcpy(f->src, ip + 8, 16);
	memcpy(f->dst, ip + 24, 16);
	next = ip[6];
	/* Extension headers, a bounded number of them. */
	for (int i = 0; i < 8; i++) {
		size_t hlen;

		if (next != 0 && next != 43 && next != 60 && next != 44 &&
		    next != 51)
			break;
		if (end < off + 8)
			return NET_FRAME_BAD;
		if (next == 44) {
			f->fragment = true;
			hlen = 8;
		} else if (next == 51) {
			hlen = ((size_t)frame[off + 1] + 2) * 4;
		} else {
			hlen = ((size_t)frame[off + 1] + 1) * 8;
		}
		next = frame[off];
		off += hlen;
		if (off > end)
			return NET_FRAME_BAD;
	}
	if (next == 0 || next == 43 || next == 60 || next == 44 || next == 51)
		return NET_FRAME_BAD; /* more than we walk */
	f->proto = next;
	return parse_l4(frame, end, off, f) ? NET_FRAME_IP : NET_FRAME_BAD;
}

enum net_frame_kind net_frame_parse(const uint8_t *frame, size_t len,
				    struct net_flow *f)
{
	memset(f, 0, sizeof(*f));
	if (len < ETH_HLEN)
		return NET_FRAME_BAD;
	switch (be16(frame + 12)) {
	case ETHERTYPE_ARP:
		return NET_FRAME_ARP;
	case ETHERTYPE_IP:
		return parse_ip4(frame, len, f);
	case ETHERTYPE_IP6:
		return parse_ip6(frame, len, f);
	default:
		return NET_FRAME_OTHER;
	}
}

static bool is_zero(const uint8_t *a, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i])
			return false;
	return true;
}

/* Traffic the virtual network needs: DHCP, DNS to our resolver, IPv6
 * neighbour/router discovery. */
static bool is_infrastructure(const struct net_policy *p,
			      const struct net_flow *f)
{
	const struct net_infra *in = &p->infra;
	unsigned n = addr_len(f->family);
	const uint8_t *dns = f->family == 4 ? in->dns4 : in->dns6;

	if (f->fragment)
		return false;
	if (f->proto == NET_PROTO_UDP && f->family == 4 && f->dport == 67)
		return true;
	if (f->proto == NET_PROTO_UDP && f->family == 6 && f->dport == 547 &&
	    f->dst[0] == 0xff)
		return true;
	if ((f->proto == NET_PROTO_UDP || f->proto == NET_PROTO_TCP) &&
	    f->dport == 53 && !is_zero(dns, n) && !memcmp(f->dst, dns, n))
		return true;
	/* Router solicitation, neighbour solicitation and advertisement;
	 * multicast listener reports (to multicast groups: they stay on
	 * the virtual link). */
	if (f->proto == NET_PROTO_ICMP6 &&
	    (f->sport == 133 || f->sport == 135 || f->sport == 136))
		return true;
	if (f->proto == NET_PROTO_ICMP6 && f->dst[0] == 0xff &&
	    (f->sport == 130 || f->sport == 131 || f->sport == 132 ||
	     f->sport == 143))
		return true;
	return false;
}

static bool rule_matches(const struct net_rule *r, const struct net_flow *f)
{
	if (r->family != f->family || !prefix_match(f->dst, r->addr, r->prefix))
		return false;
	if (r->proto == NET_PROTO_ICMP)
		return f->proto == NET_PROTO_ICMP ||
		       f->proto == NET_PROTO_ICMP6;
	if (r->proto && r->proto != f->proto)
		return false;
	if (r->port_lo == 0 && r->port_hi == 65535)
		return true;
	if (f->proto != NET_PROTO_TCP && f->proto != NET_PROTO_UDP)
		return false;
	return f->dport >= r->port_lo && f->dport <= r->port_hi;
}

/* The sensitive range holding addr, or NULL. */
static const struct range *sensitive_range(uint8_t family, const uint8_t *a)
{
	for (size_t i = 0; i < sizeof(sensitive) / sizeof(sensitive[0]); i++)
		if (sensitive[i].family == family &&
		    prefix_match(a, sensitive[i].addr, sensitive[i].prefix))
			return &sensitive[i];
	return NULL;
}

bool net_addr_sensitive(uint8_t family, const uint8_t *addr)
{
	return sensitive_range(family, addr) != NULL;
}

bool net_policy_is_resolver(const struct net_policy *p,
			    const struct net_flow *f)
{
	unsigned n = addr_len(f->family);
	const uint8_t *dns = f->family == 4 ? p->infra.dns4 : p->infra.dns6;

	return !is_zero(dns, n) && !memcmp(f->dst, dns, n);
}

/* Does the allow rule r name the sensitive range s's addresses
 * explicitly (lie inside it)? */
static bool rule_inside(const struct net_rule *r, const struct range *s)
{
	return r->prefix >= s->prefix &&
	       prefix_match(r->addr, s->addr, s->prefix);
}

static bool inbound_reply(const struct net_policy *p, const struct net_flow *f,
			  uint64_t now_ns)
{
	bool forwarded = false;

	if (f->proto != NET_PROTO_TCP || f->fragment)
		return false;
	/* Every packet comes here: look at the table only for packets
	 * from a forwarded port. */
	for (unsigned i = 0; i < p->nfwd; i++)
		forwarded |= p->fwd_ports[i] == f->sport;
	if (!forwarded)
		return false;
	for (unsigned i = 0; i < NET_POLICY_MAX_INBOUND; i++) {
		const struct net_inbound *in = &p->inbound[i];

		if (in->family == f->family && in->guest_port == f->sport &&
		    in->peer_port == f->dport &&
		    !memcmp(in->peer, f->dst, addr_len(f->family)) &&
		    now_ns - in->last_ns < 3600ull * 1000000000ull)
			return true;
	}
	return false;
}

bool net_policy_allows(struct net_policy *p, const struct net_flow *f,
		       uint64_t now_ns, const char **why)
{
	const struct range *s;
	const struct net_rule *allow = NULL;

	if (is_infrastructure(p, f) || inbound_reply(p, f, now_ns))
		goto pass;
	if (f->fragment) {
		*why = "fragment";
		goto drop;
	}
	for (unsigned i = 0; i < p->nrules; i++) {
		const struct net_rule *r = &p->rules[i];

		if (!rule_matches(r, f))
			continue;
		if (!r->allow) {
			*why = r->text;
			goto drop;
		}
		if (!allow)
			allow = r;
	}
	if (!allow) {
		*why = "default";
		goto drop;
	}
	s = sensitive_range(f->family, f->dst);
	if (s) {
		/* Only a rule inside the range opens it. */
		allow = NULL;
		for (unsigned i = 0; i < p->nrules && !allow; i++)
			if (p->rules[i].allow &&
			    rule_matches(&p->rules[i], f) &&
			    rule_inside(&p->rules[i], s))
				allow = &p->rules[i];
		if (!allow) {
			*why = "sensitive";
			goto drop;
		}
	}
pass:
	p->passed++;
	return true;
drop:
	p->dropped++;
	return false;
}

void net_policy_note_inbound(struct net_policy *p, const struct net_flow *f,
			     uint64_t now_ns)
{
	struct net_inbound *in;
	bool forwarded = false;

	if (f->proto != NET_PROTO_TCP || !f->tcp_syn || f->fragment)
		return;
	for (unsigned i = 0; i < p->nfwd; i++)
		forwarded |= p->fwd_ports[i] == f->dport;
	if (!forwarded)
		return;
	in = &p->inbound[p->inbound_next++ % NET_POLICY_MAX_INBOUND];
	in->family = f->family;
	in->proto = f->proto;
	memcpy(in->peer, f->src, 16);
	in->peer_port = f->sport;
	in->guest_port = f->dport;
	in->last_ns = now_ns;
}

static const char *proto_name(uint8_t proto)
{
	switch (proto) {
	case NET_PROTO_TCP:
		return "tcp";
	case NET_PROTO_UDP:
		return "udp";
	case NET_PROTO_ICMP:
		return "icmp";
	case NET_PROTO_ICMP6:
		return "icmpv6";
	default:
		return "ip";
	}
}

/* s as the inside of a JSON string, into out (cut to fit). */
static void json_escape(char *out, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s && o + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, len - o, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = 0;
}

/* Seen within the window?  Remember it otherwise. */
static bool recently_logged(struct net_policy *p, const struct net_flow *f,
			    uint64_t now_ns)
{
	uint8_t key[40] = {0};

	key[0] = f->family;
	key[1] = f->proto;
	memcpy(key + 2, f->dst, 16);
	memcpy(key + 18, f->src, 16);
	key[34] = (uint8_t)(f->dport >> 8);
	key[35] = (uint8_t)f->dport;
	key[36] = (uint8_t)(f->sport >> 8);
	key[37] = (uint8_t)f->sport;
	for (unsigned i = 0; i < NET_POLICY_LOG_SLOTS; i++) {
		struct net_denied *d = &p->denied[i];

		if (d->at_ns && !memcmp(d->key, key, sizeof(key)) &&
		    now_ns - d->at_ns < NET_POLICY_LOG_WINDOW_NS)
			return true;
	}
	memcpy(p->denied[p->denied_next].key, key, sizeof(key));
	p->denied[p->denied_next].at_ns = now_ns ? now_ns : 1;
	p->denied_next = (p->denied_next + 1) % NET_POLICY_LOG_SLOTS;
	return false;
}

void net_policy_log_denied(struct net_policy *p, const struct net_flow *f,
			   const char *why, const char *asked, uint64_t now_ns)
{
	char line[1024], name[128], reason[128], dst[INET6_ADDRSTRLEN];
	char qname[NET_NAME_MAX * 2];
	struct timespec ts;
	struct tm tm;
	int n;

	if (p->log_fd < 0 || p->log_full || recently_logged(p, f, now_ns))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	inet_ntop(f->family == 4 ? AF_INET : AF_INET6, f->dst, dst,
		  sizeof(dst));
	json_escape(name, sizeof(name), p->vm_name);
	json_escape(reason, sizeof(reason), why);
	n = snprintf(line, sizeof(line),
		     "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
		     "\"vm\":\"%s\",\"proto\":\"%s\",\"dst\":\"%s\",",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, name,
		     proto_name(f->proto), dst);
	if (f->proto == NET_PROTO_TCP || f->proto == NET_PROTO_UDP)
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      "\"port\":%u,", f->dport);
	if (asked) {
		json_escape(qname, sizeof(qname), asked);
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      "\"name\":\"%s\",", qname);
	}
	n += snprintf(line + n, sizeof(line) - (size_t)n,
		      "\"denied_by\":\"%s\"}\n", reason);
	if (p->log_bytes + (uint64_t)n > NET_POLICY_LOG_MAX) {
		static const char full[] =
		    "{\"note\":\"deny log full; later denials only "
		    "counted\"}\n";

		p->log_full = true;
		if (write(p->log_fd, full, sizeof(full) - 1) < 0)
			log_debug("deny log: write failed");
		return;
	}
	if (write(p->log_fd, line, (size_t)n) == n) {
		p->log_bytes += (uint64_t)n;
		p->logged++;
	}
}

void net_policy_print(const struct net_policy *p, FILE *out)
{
	for (unsigned i = 0; i < p->nrules; i++)
		fprintf(out, "%s %s\n", p->rules[i].allow ? "allow" : "deny",
			p->rules[i].text);
}
