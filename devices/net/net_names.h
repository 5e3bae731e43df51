/* SPDX-License-Identifier: MIT */
/*
 * Domain allowlists and DNS pinning (net_policy.h's names): the allowed
 * names, exact ("pypi.org"), by suffix ("*.pythonhosted.org": the name's
 * subdomains, not the name itself) or all ("*"), each for ports
 * (default 80 and 443); and the pinned set, the addresses DNS answers for
 * allowed names gave, each with the name it was the answer for, until the
 * answer's TTL (clamped to NET_PIN_TTL_MIN_S..NET_PIN_TTL_MAX_S) runs
 * out.
 *
 * Names are compared in lower case without the final dot.
 */
#ifndef HUTCH_NET_NAMES_H
#define HUTCH_NET_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_NAME_MAX	  254 /* a DNS name's text, with its NUL */
#define NET_MAX_DOMAINS	  256
#define NET_PIN_MAX	  4096
#define NET_PIN_TTL_MIN_S 5
#define NET_PIN_TTL_MAX_S 3600

struct net_domain {
	char name[NET_NAME_MAX]; /* without "*." */
	bool suffix;		 /* "*.name" */
	bool any;		 /* "*" */
	bool web_ports;		 /* no port given: 80 and 443 */
	uint16_t port_lo, port_hi;
	char text[NET_NAME_MAX + 16];
};

struct net_pin {
	uint8_t family;
	uint8_t addr[16];
	char name[NET_NAME_MAX];
	uint64_t expires_ns;
};

struct net_names {
	struct net_domain domains[NET_MAX_DOMAINS];
	unsigned ndomains;
	struct net_pin *pins; /* NET_PIN_MAX of them, malloc'd */
	unsigned npins;
	uint64_t pins_replaced; /* the set was full: oldest entry reused */
};

/* "NAME[:PORT[-PORT]]", NAME exact, "*.suffix" or "*".  0, or -EINVAL
 * after one line saying why. */
int net_domain_parse(const char *text, struct net_domain *d);

/* 0 or -ENOMEM; net_names_free frees. */
int net_names_init(struct net_names *n);
void net_names_free(struct net_names *n);

/* Add a domain rule (an identical one once).  0 or -ENOSPC. */
int net_names_add(struct net_names *n, const struct net_domain *d);

/* Is name (normalised: lower case, no final dot) allowed at all? */
bool net_names_allowed(const struct net_names *n, const char *name);

/* Lower-case name into out and drop a final dot.  False if it does not
 * fit or is empty. */
bool net_name_normalise(char *out, size_t len, const char *name);

/* An answer: addr (4 or 16 bytes) for name, ttl seconds. */
void net_names_pin(struct net_names *n, uint8_t family, const uint8_t *addr,
		   const char *name, uint32_t ttl_s, uint64_t now_ns);

/*
 * May a connection go to addr:port on the strength of the names?  True
 * if an unexpired pin for addr names a name a domain rule with that
 * port allows; with name non-NULL, that name must be one of them.
 */
bool net_names_permit(const struct net_names *n, uint8_t family,
		      const uint8_t *addr, uint16_t port, const char *name,
		      uint64_t now_ns);

#endif
