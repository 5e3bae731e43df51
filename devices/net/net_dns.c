// SPDX-License-Identifier: MIT
/* DNS messages through ldns (net_dns.h). */
#include "devices/net/net_dns.h"

#include <errno.h>
#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

/* The question of pkt (exactly one), normalised into name. */
static int question_name(const ldns_pkt *pkt, char *name, size_t len)
{
	const ldns_rr_list *q = ldns_pkt_question(pkt);
	char *text;
	bool ok;

	if (!q || ldns_rr_list_rr_count(q) != 1)
		return -EINVAL;
	text = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(q, 0)));
	if (!text)
		return -EINVAL;
	ok = net_name_normalise(name, len, text);
	free(text);
	return ok ? 0 : -EINVAL;
}

int net_dns_query_name(const uint8_t *msg, size_t len, char *name,
		       size_t name_len)
{
	ldns_pkt *pkt = NULL;
	int ret = -EINVAL;

	if (ldns_wire2pkt(&pkt, msg, len) != LDNS_STATUS_OK)
		return -EINVAL;
	if (!ldns_pkt_qr(pkt) &&
	    ldns_pkt_get_opcode(pkt) == LDNS_PACKET_QUERY &&
	    ldns_pkt_ancount(pkt) == 0 && ldns_pkt_nscount(pkt) == 0)
		ret = question_name(pkt, name, name_len);
	ldns_pkt_free(pkt);
	return ret;
}

int net_dns_refused(const uint8_t *msg, size_t len, uint8_t *out,
		    size_t out_len)
{
	ldns_pkt *q = NULL, *r = NULL;
	uint8_t *wire = NULL;
	size_t wire_len = 0;
	int ret = -EINVAL;

	if (ldns_wire2pkt(&q, msg, len) != LDNS_STATUS_OK)
		return -EINVAL;
	r = ldns_pkt_new();
	if (!r)
		goto out;
	ldns_pkt_set_id(r, ldns_pkt_id(q));
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_opcode(r, LDNS_PACKET_QUERY);
	ldns_pkt_set_rd(r, ldns_pkt_rd(q));
	ldns_pkt_set_ra(r, true);
	ldns_pkt_set_rcode(r, LDNS_RCODE_REFUSED);
	if (ldns_pkt_question(q) && ldns_rr_list_rr_count(ldns_pkt_question(q)))
		ldns_pkt_push_rr(
		    r, LDNS_SECTION_QUESTION,
		    ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0)));
	if (ldns_pkt2wire(&wire, r, &wire_len) == LDNS_STATUS_OK &&
	    wire_len <= out_len) {
		memcpy(out, wire, wire_len);
		ret = (int)wire_len;
	}
out:
	free(wire);
	if (r)
		ldns_pkt_free(r);
	ldns_pkt_free(q);
	return ret;
}

int net_dns_pin_answer(struct net_names *names, const uint8_t *msg, size_t len,
		       uint64_t now_ns)
{
	ldns_pkt *pkt = NULL;
	const ldns_rr_list *an;
	char name[NET_NAME_MAX];
	int pinned = 0;

	if (ldns_wire2pkt(&pkt, msg, len) != LDNS_STATUS_OK)
		return -EINVAL;
	if (!ldns_pkt_qr(pkt) || question_name(pkt, name, sizeof(name))) {
		ldns_pkt_free(pkt);
		return -EINVAL;
	}
	an = ldns_pkt_answer(pkt);
	if (!net_names_allowed(names, name) || !an) {
		ldns_pkt_free(pkt);
		return 0;
	}
	for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(an, i);
		ldns_rr_type t = ldns_rr_get_type(rr);
		const ldns_rdf *rd = ldns_rr_rdf(rr, 0);
		size_t want = t == LDNS_RR_TYPE_A ? 4 : 16;

		if ((t != LDNS_RR_TYPE_A && t != LDNS_RR_TYPE_AAAA) || !rd ||
		    ldns_rdf_size(rd) != want)
			continue;
		net_names_pin(names, want == 4 ? 4 : 6, ldns_rdf_data(rd), name,
			      ldns_rr_ttl(rr), now_ns);
		pinned++;
	}
	ldns_pkt_free(pkt);
	return pinned;
}
