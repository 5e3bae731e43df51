/* SPDX-License-Identifier: MIT */
/*
 * DNS messages on the guest's link, read and written with ldns: the name
 * a guest's query asks for, the REFUSED answer hutch gives in the
 * resolver's place for a name no rule allows, and the A and AAAA records
 * of the resolver's answers (the addresses to pin).  Everything here is
 * hostile input; a message ldns does not parse is dropped.
 */
#ifndef HUTCH_NET_DNS_H
#define HUTCH_NET_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "devices/net/net_names.h"

/* The one question of a query, normalised, into name.  0, or -EINVAL:
 * not a query with exactly one question and nothing else. */
int net_dns_query_name(const uint8_t *msg, size_t len, char *name,
		       size_t name_len);

/* A REFUSED answer to the query msg into out (at most out_len bytes).
 * Its length, or -EINVAL. */
int net_dns_refused(const uint8_t *msg, size_t len, uint8_t *out,
		    size_t out_len);

/*
 * An answer from the resolver: if its question names an allowed name,
 * pin each A and AAAA record's address to that name for its TTL (CNAME
 * chains included: every address in the answer is what the name
 * resolved to).  How many addresses were pinned, or -EINVAL.
 */
int net_dns_pin_answer(struct net_names *names, const uint8_t *msg, size_t len,
		       uint64_t now_ns);

#endif
