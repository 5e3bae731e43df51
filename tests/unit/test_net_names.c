// SPDX-License-Identifier: MIT
/*
 * The policy's names: domain rules, DNS pinning through ldns, the name a
 * connection's first bytes ask for, and the whole-frame filter around
 * them (REFUSED answers, resets).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

#include "devices/net/net_dns.h"
#include "devices/net/net_names.h"
#include "devices/net/net_policy.h"
#include "devices/net/net_slirp.h"
#include "devices/net/net_sni.h"

#define SEC 1000000000ull

static struct net_policy pol;

static void setup(void)
{
	cr_assert_eq(net_policy_init(&pol), 0);
	net_slirp_infra(&pol.infra);
}

static void teardown(void)
{
	net_policy_free(&pol);
}

TestSuite(net_names, .init = setup, .fini = teardown);

static void allow_domain(const char *text)
{
	struct net_domain d;

	cr_assert_eq(net_domain_parse(text, &d), 0, "%s", text);
	cr_assert_eq(net_names_add(&pol.names, &d), 0);
}

static const uint8_t *v4(const char *s)
{
	static uint8_t a[16];

	memset(a, 0, sizeof(a));
	inet_pton(AF_INET, s, a);
	return a;
}

Test(net_names, domain_rules_parse_and_match)
{
	static const char *const bad[] = {
	    "",	       "*.", "a..b",   ".a",	  "a b",  "x:0",
	    "x:70000", "x:", "*x.com", "a.*.com", "x:5-4"};
	struct net_domain d;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_neq(net_domain_parse(bad[i], &d), 0, "%s", bad[i]);
	allow_domain("PyPI.org.");
	allow_domain("*.pythonhosted.org");
	cr_expect(net_names_allowed(&pol.names, "pypi.org"));
	cr_expect_not(net_names_allowed(&pol.names, "www.pypi.org"));
	cr_expect(net_names_allowed(&pol.names, "files.pythonhosted.org"));
	cr_expect_not(net_names_allowed(&pol.names, "pythonhosted.org"));
	cr_expect_not(net_names_allowed(&pol.names, "evilpythonhosted.org"));
	allow_domain("*");
	cr_expect(net_names_allowed(&pol.names, "anything.example"));
}

Test(net_names, pins_last_their_ttl_within_floor_and_ceiling)
{
	allow_domain("a.test");
	allow_domain("ssh.test:22");
	net_names_pin(&pol.names, 4, v4("192.0.2.10"), "a.test", 0, 0);
	/* TTL 0 still lasts the floor, for the port the rule names. */
	cr_expect(net_names_permit(&pol.names, 4, v4("192.0.2.10"), 443, NULL,
				   (NET_PIN_TTL_MIN_S - 1) * SEC));
	cr_expect_not(
	    net_names_permit(&pol.names, 4, v4("192.0.2.10"), 22, NULL, 1));
	cr_expect_not(net_names_permit(&pol.names, 4, v4("192.0.2.10"), 443,
				       NULL, NET_PIN_TTL_MIN_S * SEC));
	net_names_pin(&pol.names, 4, v4("192.0.2.11"), "ssh.test", 1u << 30, 0);
	cr_expect(net_names_permit(&pol.names, 4, v4("192.0.2.11"), 22, NULL,
				   (NET_PIN_TTL_MAX_S - 1) * SEC));
	cr_expect_not(net_names_permit(&pol.names, 4, v4("192.0.2.11"), 22,
				       NULL, NET_PIN_TTL_MAX_S * SEC));
	/* With a name: only that name's pin counts. */
	net_names_pin(&pol.names, 4, v4("192.0.2.10"), "a.test", 60, 0);
	cr_expect(net_names_permit(&pol.names, 4, v4("192.0.2.10"), 443,
				   "a.test", 1));
	cr_expect_not(net_names_permit(&pol.names, 4, v4("192.0.2.10"), 443,
				       "b.test", 1));
}

Test(net_names, the_pinned_set_stays_bounded)
{
	allow_domain("*");
	for (unsigned i = 0; i < NET_PIN_MAX + 100; i++) {
		uint8_t a[4] = {198, 18, (uint8_t)(i >> 8), (uint8_t)i};

		net_names_pin(&pol.names, 4, a, "n.test", 60 + i, 0);
	}
	cr_expect_eq(pol.names.npins, NET_PIN_MAX);
	cr_expect_eq(pol.names.pins_replaced, 100);
}

/* A DNS message in wire format from ldns, malloc'd. */
static uint8_t *query_wire(const char *name, size_t *len)
{
	ldns_pkt *q = NULL;
	uint8_t *wire = NULL;

	cr_assert_eq(ldns_pkt_query_new_frm_str(&q, name, LDNS_RR_TYPE_A,
						LDNS_RR_CLASS_IN, LDNS_RD),
		     LDNS_STATUS_OK);
	ldns_pkt_set_id(q, 0x1234);
	cr_assert_eq(ldns_pkt2wire(&wire, q, len), LDNS_STATUS_OK);
	ldns_pkt_free(q);
	return wire;
}

static uint8_t *answer_wire(const char *name, const char *const *rrs,
			    size_t *len)
{
	ldns_pkt *a = NULL;
	uint8_t *wire = NULL;

	cr_assert_eq(ldns_pkt_query_new_frm_str(&a, name, LDNS_RR_TYPE_A,
						LDNS_RR_CLASS_IN, LDNS_RD),
		     LDNS_STATUS_OK);
	ldns_pkt_set_qr(a, true);
	for (; *rrs; rrs++) {
		ldns_rr *rr = NULL;

		cr_assert_eq(ldns_rr_new_frm_str(&rr, *rrs, 0, NULL, NULL),
			     LDNS_STATUS_OK, "%s", *rrs);
		ldns_pkt_push_rr(a, LDNS_SECTION_ANSWER, rr);
	}
	cr_assert_eq(ldns_pkt2wire(&wire, a, len), LDNS_STATUS_OK);
	ldns_pkt_free(a);
	return wire;
}

Test(net_names, dns_queries_refusals_and_answers)
{
	static const char *const rrs[] = {
	    "allowed.test. 30 IN CNAME edge.cdn.test.",
	    "edge.cdn.test. 30 IN A 192.0.2.10",
	    "edge.cdn.test. 30 IN AAAA 2001:db8::10", NULL};
	char name[NET_NAME_MAX];
	uint8_t out[512];
	ldns_pkt *r = NULL;
	size_t len;
	uint8_t *q = query_wire("Allowed.Test.", &len), *a;
	int n;

	cr_assert_eq(net_dns_query_name(q, len, name, sizeof(name)), 0);
	cr_expect_str_eq(name, "allowed.test");
	n = net_dns_refused(q, len, out, sizeof(out));
	cr_assert_gt(n, 0);
	cr_assert_eq(ldns_wire2pkt(&r, out, (size_t)n), LDNS_STATUS_OK);
	cr_expect_eq(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	cr_expect_eq(ldns_pkt_id(r), 0x1234);
	cr_expect(ldns_pkt_qr(r));
	ldns_pkt_free(r);
	/* Cut short anywhere: refused, never read past the end. */
	for (size_t cut = 0; cut < len; cut++)
		cr_expect_neq(net_dns_query_name(q, cut, name, sizeof(name)),
			      0);
	free(q);

	a = answer_wire("allowed.test.", rrs, &len);
	/* No rule: nothing pinned. */
	cr_expect_eq(net_dns_pin_answer(&pol.names, a, len, 0), 0);
	allow_domain("allowed.test");
	cr_expect_eq(net_dns_pin_answer(&pol.names, a, len, 0), 2);
	cr_expect(net_names_permit(&pol.names, 4, v4("192.0.2.10"), 443,
				   "allowed.test", SEC));
	/* An answer is not a query. */
	cr_expect_neq(net_dns_query_name(a, len, name, sizeof(name)), 0);
	free(a);
}

/* A minimal ClientHello naming name (NULL: no server_name). */
static size_t client_hello(uint8_t *p, const char *name)
{
	size_t n = name ? strlen(name) : 0, off = 0, ext = name ? 9 + n : 0;
	size_t body = 2 + 32 + 1 + 4 + 2 + 2 + ext;

	p[off++] = 22;
	p[off++] = 3;
	p[off++] = 1;
	p[off++] = (uint8_t)((4 + body) >> 8);
	p[off++] = (uint8_t)(4 + body);
	p[off++] = 1;
	p[off++] = 0;
	p[off++] = (uint8_t)(body >> 8);
	p[off++] = (uint8_t)body;
	p[off++] = 3;
	p[off++] = 3;
	memset(p + off, 0xab, 32);
	off += 32;
	p[off++] = 0;			    /* session id */
	memcpy(p + off, "\0\2\x13\x01", 4); /* one cipher suite */
	off += 4;
	memcpy(p + off, "\1\0", 2); /* compression: null */
	off += 2;
	p[off++] = (uint8_t)(ext >> 8);
	p[off++] = (uint8_t)ext;
	if (name) {
		p[off++] = 0;
		p[off++] = 0; /* server_name */
		p[off++] = (uint8_t)((5 + n) >> 8);
		p[off++] = (uint8_t)(5 + n);
		p[off++] = (uint8_t)((3 + n) >> 8);
		p[off++] = (uint8_t)(3 + n);
		p[off++] = 0; /* host_name */
		p[off++] = (uint8_t)(n >> 8);
		p[off++] = (uint8_t)n;
		memcpy(p + off, name, n);
		off += n;
	}
	return off;
}

Test(net_names, names_from_tls_and_http)
{
	uint8_t hello[512];
	char name[NET_NAME_MAX];
	size_t len = client_hello(hello, "Allowed.test");
	static const char req[] = "GET / HTTP/1.1\r\nUser-Agent: x\r\nhOsT: "
				  "Allowed.Test:8080\r\n\r\n";

	cr_assert_eq(net_tls_sni(hello, len, name, sizeof(name)), 0);
	cr_expect_str_eq(name, "allowed.test");
	for (size_t cut = 0; cut < len; cut++)
		cr_expect_neq(net_tls_sni(hello, cut, name, sizeof(name)), 0,
			      "cut at %zu", cut);
	len = client_hello(hello, NULL);
	cr_expect_neq(net_tls_sni(hello, len, name, sizeof(name)), 0);
	cr_assert_eq(net_http_host((const uint8_t *)req, strlen(req), name,
				   sizeof(name)),
		     0);
	cr_expect_str_eq(name, "allowed.test");
	for (size_t cut = 0; cut < strlen(req) - 10; cut++)
		cr_expect_neq(net_http_host((const uint8_t *)req, cut, name,
					    sizeof(name)),
			      0, "cut at %zu", cut);
	cr_expect_neq(net_http_host((const uint8_t *)"SSH-2.0-x\r\nHost: a\r\n",
				    20, name, sizeof(name)),
		      0);
}

/* The filter end to end, with frames as the guest would send them. */
struct sink {
	uint8_t frame[4][2048];
	size_t len[4];
	unsigned n;
};

static void to_sink(void *opaque, const uint8_t *frame, size_t len)
{
	struct sink *s = opaque;

	if (s->n < 4) {
		memcpy(s->frame[s->n], frame, len);
		s->len[s->n++] = len;
	}
}

static struct sink guest, peer;
static const struct net_filter_io io = {to_sink, to_sink, NULL};

static enum net_filter_verdict filter(const uint8_t *f, size_t len,
				      uint64_t now)
{
	struct net_filter_io sio = {to_sink, to_sink, &guest};

	(void)io;
	sio.to_peer = to_sink;
	return net_filter_tx(&pol, f, len, now, &sio);
}

/* Ethernet + IPv4 + UDP or TCP with payload, from the guest to dst. */
static size_t frame(uint8_t *f, uint8_t proto, const char *dst, uint16_t dport,
		    uint8_t flags, const void *data, size_t dlen)
{
	size_t l4 = proto == 6 ? 20 : 8, len = 14 + 20 + l4 + dlen;

	memset(f, 0, 14 + 20 + l4);
	memcpy(f, "\x52\x55\x0a\x00\x02\x02", 6);
	memcpy(f + 6, "\x52\x54\x00\x12\x34\x56", 6);
	f[12] = 0x08;
	f[14] = 0x45;
	f[16] = (uint8_t)((len - 14) >> 8);
	f[17] = (uint8_t)(len - 14);
	f[23] = proto;
	inet_pton(AF_INET, "10.0.2.15", f + 26);
	inet_pton(AF_INET, dst, f + 30);
	f[34] = 0x9c;
	f[35] = 0x40; /* 40000 */
	f[36] = (uint8_t)(dport >> 8);
	f[37] = (uint8_t)dport;
	if (proto == 6) {
		f[46] = 5 << 4;
		f[47] = flags;
		memcpy(f + 38, "\0\0\0\x10", 4); /* seq */
		memcpy(f + 42, "\0\0\0\x20", 4); /* ack */
	}
	memcpy(f + 14 + 20 + l4, data, dlen);
	return len;
}

Test(net_names, dns_pinning_and_connection_names_end_to_end)
{
	static const char *const rrs[] = {"allowed.test. 60 IN A 192.0.2.10",
					  NULL};
	uint8_t f[2048], hello[512], *msg;
	size_t len, mlen;
	ldns_pkt *r = NULL;

	(void)peer;
	allow_domain("allowed.test");
	/* A query for another name: REFUSED, from "the resolver". */
	msg = query_wire("blocked.test.", &mlen);
	len = frame(f, 17, "10.0.2.3", 53, 0, msg, mlen);
	free(msg);
	cr_expect_eq(filter(f, len, SEC), NET_DROP);
	cr_assert_eq(guest.n, 1);
	cr_assert_eq(ldns_wire2pkt(&r, guest.frame[0] + 42, guest.len[0] - 42),
		     LDNS_STATUS_OK);
	cr_expect_eq(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	cr_expect_eq(memcmp(guest.frame[0] + 26, v4("10.0.2.3"), 4), 0);
	/* For the allowed name: out it goes; the answer pins. */
	msg = query_wire("allowed.test.", &mlen);
	len = frame(f, 17, "10.0.2.3", 53, 0, msg, mlen);
	free(msg);
	cr_expect_eq(filter(f, len, SEC), NET_PASS);
	/* DNS elsewhere, or over TCP: no. */
	len = frame(f, 17, "192.0.2.53", 53, 0, "x", 1);
	cr_expect_eq(filter(f, len, SEC), NET_DROP);
	len = frame(f, 6, "10.0.2.3", 53, 0x02, "", 0);
	cr_expect_eq(filter(f, len, SEC), NET_DROP);
	/* Not pinned yet. */
	len = frame(f, 6, "192.0.2.10", 443, 0x02, "", 0);
	cr_expect_eq(filter(f, len, SEC), NET_DROP);
	msg = answer_wire("allowed.test.", rrs, &mlen);
	len = frame(f, 17, "10.0.2.15", 40000, 0, msg, mlen);
	free(msg);
	/* As the resolver sends it: from 10.0.2.3:53. */
	inet_pton(AF_INET, "10.0.2.3", f + 26);
	inet_pton(AF_INET, "10.0.2.15", f + 30);
	f[34] = 0;
	f[35] = 53;
	net_filter_rx(&pol, f, len, SEC);
	/* Connect, handshake, then the ClientHello decides. */
	len = frame(f, 6, "192.0.2.10", 443, 0x02, "", 0);
	cr_expect_eq(filter(f, len, SEC), NET_PASS);
	len = frame(f, 6, "192.0.2.10", 443, 0x10, "", 0);
	cr_expect_eq(filter(f, len, SEC), NET_PASS);
	mlen = client_hello(hello, "allowed.test");
	len = frame(f, 6, "192.0.2.10", 443, 0x18, hello, mlen);
	cr_expect_eq(filter(f, len, SEC), NET_PASS);
	cr_expect_eq(filter(f, len, SEC), NET_PASS); /* and from then on */
	/* Another connection naming another name: reset both ways. */
	guest.n = 0;
	len = frame(f, 6, "192.0.2.10", 443, 0x02, "", 0);
	f[35] = 0x41;
	cr_expect_eq(filter(f, len, SEC), NET_PASS);
	mlen = client_hello(hello, "evil.test");
	len = frame(f, 6, "192.0.2.10", 443, 0x18, hello, mlen);
	f[35] = 0x41;
	cr_expect_eq(filter(f, len, SEC), NET_DROP);
	cr_assert_eq(guest.n, 2);
	cr_expect_eq(guest.frame[0][47], 0x04); /* RST to the guest */
	cr_expect_eq(memcmp(guest.frame[0] + 38, "\0\0\0\x20", 4), 0);
	cr_expect_eq(guest.frame[1][47], 0x04); /* and to the peer */
	cr_expect_eq(memcmp(guest.frame[1] + 38, "\0\0\0\x10", 4), 0);
	/* Later segments of it stay dropped. */
	cr_expect_eq(filter(f, len, SEC), NET_DROP);
	/* Plain HTTP: the Host header decides. */
	len = frame(f, 6, "192.0.2.10", 80, 0x02, "", 0);
	f[35] = 0x42;
	cr_expect_eq(filter(f, len, SEC), NET_PASS);
	len = frame(f, 6, "192.0.2.10", 80, 0x18,
		    "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n", 35);
	f[35] = 0x42;
	cr_expect_eq(filter(f, len, SEC), NET_DROP);
	/* Pins end with their TTL: no new connection. */
	len = frame(f, 6, "192.0.2.10", 443, 0x02, "", 0);
	f[35] = 0x43;
	cr_expect_eq(filter(f, len, 62 * SEC), NET_DROP);
	/* A name pinned to a sensitive address opens nothing. */
	net_names_pin(&pol.names, 4, v4("169.254.169.254"), "allowed.test", 60,
		      0);
	len = frame(f, 6, "169.254.169.254", 80, 0x02, "", 0);
	cr_expect_eq(filter(f, len, SEC), NET_DROP);
}
