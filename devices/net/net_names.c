// SPDX-License-Identifier: MIT
/* Domain allowlists and the pinned set (net_names.h). */
#include "devices/net/net_names.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/base/log.h"

bool net_name_normalise(char *out, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (n && name[n - 1] == '.')
		n--;
	if (!n || n >= len)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[n] = 0;
	return true;
}

/* Letters, digits, '-', '_' and dots between labels. */
static bool valid_name(const char *s)
{
	size_t label = 0;

	for (; *s; s++) {
		if (*s == '.') {
			if (!label)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

int net_domain_parse(const char *text, struct net_domain *d)
{
	char buf[NET_NAME_MAX + 16], *colon, *end;
	const char *name;
	unsigned long lo, hi;

	memset(d, 0, sizeof(*d));
	if (strlen(text) >= sizeof(buf))
		goto bad;
	strcpy(buf, text);
	strcpy(d->text, text);
	d->web_ports = true;
	colon = strchr(buf, ':');
	if (colon) {
		*colon++ = 0;
		if (*colon < '0' || *colon > '9')
			goto bad;
		lo = hi = strtoul(colon, &end, 10);
		if (*end == '-') {
			if (end[1] < '0' || end[1] > '9')
				goto bad;
			hi = strtoul(end + 1, &end, 10);
		}
		if (*end || lo == 0 || hi > 65535 || lo > hi)
			goto bad;
		d->web_ports = false;
		d->port_lo = (uint16_t)lo;
		d->port_hi = (uint16_t)hi;
	}
	name = buf;
	if (!strcmp(name, "*")) {
		d->any = true;
		return 0;
	}
	if (!strncmp(name, "*.", 2)) {
		d->suffix = true;
		name += 2;
	}
	if (!net_name_normalise(d->name, sizeof(d->name), name) ||
	    !valid_name(d->name))
		goto bad;
	return 0;
bad:
	log_errx("allowed domain '%s': expected NAME, *.SUFFIX or * with an "
		 "optional :PORT[-PORT]",
		 text);
	return -EINVAL;
}

int net_names_init(struct net_names *n)
{
	memset(n, 0, sizeof(*n));
	n->pins = calloc(NET_PIN_MAX, sizeof(*n->pins));
	return n->pins ? 0 : -ENOMEM;
}

void net_names_free(struct net_names *n)
{
	free(n->pins);
	n->pins = NULL;
}

int net_names_add(struct net_names *n, const struct net_domain *d)
{
	for (unsigned i = 0; i < n->ndomains; i++) {
		const struct net_domain *e = &n->domains[i];

		if (e->any == d->any && e->suffix == d->suffix &&
		    e->web_ports == d->web_ports && e->port_lo == d->port_lo &&
		    e->port_hi == d->port_hi && !strcmp(e->name, d->name))
			return 0;
	}
	if (n->ndomains == NET_MAX_DOMAINS)
		return -ENOSPC;
	n->domains[n->ndomains++] = *d;
	return 0;
}

static bool domain_matches(const struct net_domain *d, const char *name)
{
	size_t nl, dl;

	if (d->any)
		return true;
	if (!d->suffix)
		return !strcmp(d->name, name);
	nl = strlen(name);
	dl = strlen(d->name);
	return nl > dl + 1 && name[nl - dl - 1] == '.' &&
	       !strcmp(name + nl - dl, d->name);
}

static bool domain_port(const struct net_domain *d, uint16_t port)
{
	if (d->web_ports)
		return port == 80 || port == 443;
	return port >= d->port_lo && port <= d->port_hi;
}

bool net_names_allowed(const struct net_names *n, const char *name)
{
	for (unsigned i = 0; i < n->ndomains; i++)
		if (domain_matches(&n->domains[i], name))
			return true;
	return false;
}

void net_names_pin(struct net_names *n, uint8_t family, const uint8_t *addr,
		   const char *name, uint32_t ttl_s, uint64_t now_ns)
{
	unsigned len = family == 4 ? 4 : 16, slot = n->npins, oldest = 0;
	uint64_t expires;

	if (ttl_s < NET_PIN_TTL_MIN_S)
		ttl_s = NET_PIN_TTL_MIN_S;
	if (ttl_s > NET_PIN_TTL_MAX_S)
		ttl_s = NET_PIN_TTL_MAX_S;
	expires = now_ns + (uint64_t)ttl_s * 1000000000ull;
	for (unsigned i = 0; i < n->npins; i++) {
		struct net_pin *p = &n->pins[i];

		if (p->family == family && !memcmp(p->addr, addr, len) &&
		    !strcmp(p->name, name)) {
			if (expires > p->expires_ns)
				p->expires_ns = expires;
			return;
		}
		/* Reuse an expired entry, else remember the soonest to go. */
		if (p->expires_ns <= now_ns && slot == n->npins)
			slot = i;
		if (p->expires_ns < n->pins[oldest].expires_ns)
			oldest = i;
	}
	if (slot == n->npins) {
		if (n->npins < NET_PIN_MAX) {
			n->npins++;
		} else {
			slot = oldest;
			n->pins_replaced++;
		}
	}
	n->pins[slot].family = family;
	memset(n->pins[slot].addr, 0, 16);
	memcpy(n->pins[slot].addr, addr, len);
	strcpy(n->pins[slot].name, name);
	n->pins[slot].expires_ns = expires;
}

bool net_names_permit(const struct net_names *n, uint8_t family,
		      const uint8_t *addr, uint16_t port, const char *name,
		      uint64_t now_ns)
{
	unsigned len = family == 4 ? 4 : 16;

	for (unsigned i = 0; i < n->npins; i++) {
		const struct net_pin *p = &n->pins[i];

		if (p->family != family || p->expires_ns <= now_ns ||
		    memcmp(p->addr, addr, len) ||
		    (name && strcmp(p->name, name)))
			continue;
		/* The rule that allows the name must allow the port. */
		for (unsigned k = 0; k < n->ndomains; k++)
			if (domain_matches(&n->domains[k], p->name) &&
			    domain_port(&n->domains[k], port))
				return true;
	}
	return false;
}
