// SPDX-License-Identifier: MIT
/* virtio-net as a row of the device table (net_type.h). */
#include "devices/net/net_type.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/net/net_backend.h"
#include "devices/net/net_tap.h"
#include "devices/net/virtio_net.h"
#include "vmm/base/log.h"
#include "vmm/base/token_bucket.h"

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (*end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* "[tcp:|udp:][ADDR:]HOSTPORT:GUESTPORT" */
static int parse_forward(char *s, struct net_forward *f)
{
	char *parts[3];
	unsigned n = 0;
	struct in_addr a;

	memset(f, 0, sizeof(*f));
	inet_pton(AF_INET, "127.0.0.1", &a);
	if (!strncmp(s, "tcp:", 4)) {
		s += 4;
	} else if (!strncmp(s, "udp:", 4)) {
		f->udp = true;
		s += 4;
	}
	for (char *p = s; n < 3; n++) {
		parts[n] = p;
		p = strchr(p, ':');
		if (!p) {
			n++;
			break;
		}
		*p++ = 0;
		if (n == 2)
			return -EINVAL;
	}
	if (n == 3 && inet_pton(AF_INET, parts[0], &a) != 1)
		return -EINVAL;
	if (n < 2 || parse_port(parts[n - 2], &f->host_port) ||
	    parse_port(parts[n - 1], &f->guest_port))
		return -EINVAL;
	f->host_addr = a.s_addr;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &end) != 6 ||
	    strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	/* A multicast address cannot be a NIC's own. */
	return mac[0] & 1 ? -EINVAL : 0;
}

#define LIMIT_KEYS "[tx_|rx_]bps=, pps=, bps_burst=, pps_burst="

/* One rate-limit key into l.  1: it was one, 0: it was not, -EINVAL
 * after saying why. */
static int parse_limit_key(const char *key, const char *value,
			   struct net_limits *l)
{
	static const char *const names[] = {"bps", "bps_burst", "pps",
					    "pps_burst"};
	struct net_rate *dirs[2] = {&l->tx, &l->rx};
	unsigned ndirs = 2, i;
	const char *k = key;
	uint64_t v;

	if (!strncmp(k, "tx_", 3) || !strncmp(k, "rx_", 3)) {
		if (k[0] == 'r')
			dirs[0] = &l->rx;
		ndirs = 1;
		k += 3;
	}
	for (i = 0; i < 4 && strcmp(k, names[i]); i++)
		;
	if (i == 4)
		return 0;
	if (tb_parse_value(key, value, &v))
		return -EINVAL;
	for (unsigned d = 0; d < ndirs; d++) {
		uint64_t *fields[] = {&dirs[d]->bps, &dirs[d]->bps_burst,
				      &dirs[d]->pps, &dirs[d]->pps_burst};

		*fields[i] = v;
	}
	return 1;
}

int net_parse_limits(char *spec, struct net_limits *l)
{
	char *tok, *save = NULL;

	for (tok = strtok_r(spec, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *value = strchr(tok, '=');
		int ret;

		if (value)
			*value++ = 0;
		ret = parse_limit_key(tok, value, l);
		if (ret == 0)
			log_errx("unknown NIC limit '%s' (expected " LIMIT_KEYS
				 ")",
				 tok);
		if (ret <= 0)
			return -EINVAL;
	}
	return 0;
}

/* ip=A.B.C.D/N, gw=A.B.C.D or dns=A.B.C.D (tap only) into c.  0, or
 * -EINVAL after saying why. */
static int parse_static(const char *key, char *value, struct net_config *c)
{
	char *slash = key[0] == 'i' ? strchr(value, '/') : NULL;
	uint8_t *to = key[0] == 'i' ? c->ip4 : key[0] == 'g' ? c->gw4 : c->dns4;
	unsigned long prefix = 32;
	char *end = NULL;

	if (!c->tap) {
		log_errx("--net %s=: for tap=; user networking's guest is "
			 "10.0.2.15, its gateway 10.0.2.2",
			 key);
		return -EINVAL;
	}
	if (slash) {
		*slash++ = 0;
		prefix = strtoul(slash, &end, 10);
	}
	if (inet_pton(AF_INET, value, to) != 1 ||
	    (key[0] == 'i' && (!slash || *slash < '0' || *slash > '9' || *end ||
			       prefix < 1 || prefix > 30)) ||
	    !to[0]) {
		log_errx("--net %s=%s: expected %s", key, value,
			 key[0] == 'i' ? "an IPv4 address/prefix (1-30), "
					 "e.g. 10.9.0.2/24"
				       : "an IPv4 address");
		return -EINVAL;
	}
	if (key[0] == 'i') {
		c->prefix = (unsigned)prefix;
		c->have_ip = true;
	}
	return 0;
}

int net_parse_spec(char *spec, struct net_config *c)
{
	char *tok, *save = NULL;
	bool first = true;

	memset(c, 0, sizeof(*c));
	for (tok = strtok_r(spec, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save), first = false) {
		char *value = strchr(tok, '=');

		if (first) {
			if (!strncmp(tok, "tap=", 4) && tok[4]) {
				c->tap = tok + 4;
				continue;
			}
			if (strcmp(tok, "user")) {
				log_errx("--net '%s': the backend comes first; "
					 "hutch has: user, tap=IFNAME",
					 tok);
				return -EINVAL;
			}
			continue;
		}
		if (!value) {
			log_errx("--net: '%s' needs a value", tok);
			return -EINVAL;
		}
		*value++ = 0;
		if (!strcmp(tok, "mac")) {
			if (parse_mac(value, c->mac)) {
				log_errx("--net mac=%s: expected a unicast "
					 "MAC, 6 hex bytes with colons",
					 value);
				return -EINVAL;
			}
			c->have_mac = true;
		} else if (!strcmp(tok, "ip") || !strcmp(tok, "gw") ||
			   !strcmp(tok, "dns")) {
			if (parse_static(tok, value, c))
				return -EINVAL;
		} else if (!strcmp(tok, "in")) {
			if (!c->tap || c->nin == NET_MAX_FORWARDS ||
			    parse_port(value, &c->in_ports[c->nin])) {
				log_errx(
				    "--net in=%s: expected a guest TCP port, "
				    "with tap= (at most %d)",
				    value, NET_MAX_FORWARDS);
				return -EINVAL;
			}
			c->nin++;
		} else if (!strcmp(tok, "fwd")) {
			if (c->tap) {
				log_errx(
				    "--net fwd=: user networking's; with a "
				    "TAP the host reaches the guest "
				    "directly");
				return -EINVAL;
			}
			if (c->nfwd == NET_MAX_FORWARDS) {
				log_errx("--net: at most %d fwd=",
					 NET_MAX_FORWARDS);
				return -EINVAL;
			}
			if (parse_forward(value, &c->fwd[c->nfwd])) {
				log_errx("--net fwd=%s: expected "
					 "[tcp:|udp:][ADDR:]HOSTPORT:GUESTPORT",
					 value);
				return -EINVAL;
			}
			c->nfwd++;
		} else if (!strcmp(tok, "allow") || !strcmp(tok, "deny")) {
			if (c->nrules == NET_POLICY_MAX_RULES) {
				log_errx("--net: at most %d rules",
					 NET_POLICY_MAX_RULES);
				return -EINVAL;
			}
			if (net_rule_parse(value, tok[0] == 'a',
					   &c->rules[c->nrules]))
				return -EINVAL;
			c->nrules++;
		} else if (!strcmp(tok, "allow-domain")) {
			if (c->ndomains == NET_MAX_DOMAINS) {
				log_errx("--net: at most %d allowed domains",
					 NET_MAX_DOMAINS);
				return -EINVAL;
			}
			if (net_domain_parse(value, &c->domains[c->ndomains]))
				return -EINVAL;
			c->ndomains++;
		} else if (!strcmp(tok, "log")) {
			if (!*value) {
				log_errx("--net log=: expected a file");
				return -EINVAL;
			}
			c->log_path = value;
		} else {
			int ret = parse_limit_key(tok, value, &c->limits);

			if (ret == 0)
				log_errx("--net: unknown key '%s' (expected "
					 "mac=, fwd=, ip=, gw=, dns=, in=, "
					 "allow=, deny=, allow-domain=, "
					 "log=, " LIMIT_KEYS ")",
					 tok);
			if (ret <= 0)
				return -EINVAL;
		}
	}
	if (first) {
		log_errx("--net: expected a backend (user or tap=IFNAME)");
		return -EINVAL;
	}
	if ((c->gw4[0] || c->dns4[0]) && !c->have_ip) {
		log_errx("--net: gw= and dns= go with ip=");
		return -EINVAL;
	}
	return 0;
}

static int parse(char *value, void **cfg, void *const *earlier,
		 unsigned n_earlier)
{
	struct net_config *c = malloc(sizeof(*c));
	int ret;

	(void)earlier;
	(void)n_earlier;
	if (!c)
		return -ENOMEM;
	ret = net_parse_spec(value, c);
	if (ret) {
		free(c);
		return ret;
	}
	*cfg = c;
	return 0;
}

static void free_config(void *cfg)
{
	free(cfg);
}

static void destroy(void *dev)
{
	virtio_net_destroy(dev);
	free(dev);
}

static int create(const void *cfg, const struct device_env *env, void **dev)
{
	const struct net_config *c = cfg;
	struct net_policy *policy = NULL;
	struct net_backend *be = NULL;
	struct virtio_net *n = NULL;
	uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	int ret = -ENOMEM;

	if (!c)
		return -EINVAL;
	policy = malloc(sizeof(*policy));
	n = malloc(sizeof(*n));
	if (!policy || !n || net_policy_init(policy)) {
		free(policy);
		free(n);
		return -ENOMEM;
	}
	if (c->tap)
		memcpy(policy->infra.dns4, c->dns4, 4);
	else
		net_slirp_infra(&policy->infra);
	policy->vm_name = c->vm_name ? c->vm_name : "";
	for (unsigned i = 0; i < c->nfwd; i++)
		if (!c->fwd[i].udp && policy->nfwd < 16)
			policy->fwd_ports[policy->nfwd++] =
			    c->fwd[i].guest_port;
	for (unsigned i = 0; i < c->nin && policy->nfwd < 16; i++)
		policy->fwd_ports[policy->nfwd++] = c->in_ports[i];
	for (unsigned i = 0; i < c->nrules; i++)
		if (net_policy_add(policy, &c->rules[i]))
			break;
	for (unsigned i = 0; i < c->ndomains; i++)
		if (net_names_add(&policy->names, &c->domains[i]))
			break;
	if (c->log_path) {
		policy->log_fd =
		    open(c->log_path,
			 O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			 0600);
		if (policy->log_fd < 0) {
			ret = -errno;
			log_err(ret, "--net log=%s", c->log_path);
			goto fail;
		}
	}
	ret = c->tap ? net_tap_create(c->tap, &be)
		     : net_slirp_create(c->fwd, c->nfwd, &be);
	if (ret)
		goto fail;
	if (c->have_mac)
		memcpy(mac, c->mac, 6);
	else
		mac[5] = (uint8_t)(mac[5] + env->index);
	/* The device takes the backend and the policy's contents, even if
	 * this fails. */
	ret = virtio_net_create(n, &env->host, env->ctl, env->mmio_base,
				env->gsi, mac, be, policy);
	free(policy);
	if (ret) {
		destroy(n);
		return ret;
	}
	virtio_net_set_limits(n, &c->limits);
	*dev = n;
	return 0;
fail:
	if (policy->log_fd >= 0)
		close(policy->log_fd);
	net_policy_free(policy);
	free(policy);
	free(n);
	return ret;
}

static struct virtio_dev *virtio(void *dev)
{
	return &((struct virtio_net *)dev)->vdev;
}

/* The kernel configures the first NIC by DHCP before init runs (and
 * records the resolver in /proc/net/pnp, which the agent makes the
 * root's /etc/resolv.conf). */
static int cmdline(void *dev, const void *cfg, unsigned index, char *buf,
		   size_t len)
{
	const struct net_config *c = cfg;
	char ip[16], gw[16] = "", mask[16], dns[16] = "";
	uint32_t m;
	int k;

	(void)dev;
	buf[0] = 0;
	if (index != 0)
		return 0;
	if (!c || !c->have_ip) {
		if (len < sizeof("ip=dhcp"))
			return -ENOSPC;
		strcpy(buf, "ip=dhcp");
		return 0;
	}
	/* ip=CLIENT:SERVER:GW:NETMASK:HOSTNAME:DEVICE:AUTOCONF:DNS0
	 * (Documentation/admin-guide/nfs/nfsroot.rst). */
	m = htonl(~0u << (32 - c->prefix));
	inet_ntop(AF_INET, c->ip4, ip, sizeof(ip));
	inet_ntop(AF_INET, &m, mask, sizeof(mask));
	if (c->gw4[0])
		inet_ntop(AF_INET, c->gw4, gw, sizeof(gw));
	if (c->dns4[0])
		inet_ntop(AF_INET, c->dns4, dns, sizeof(dns));
	k = snprintf(buf, len, "ip=%s::%s:%s::eth0:off:%s", ip, gw, mask, dns);
	return k < 0 || (size_t)k >= len ? -ENOSPC : 0;
}

static void print_stats(void *dev, unsigned index, FILE *out)
{
	struct virtio_net *n = dev;
	const struct net_stats *s = &n->stats;

	fprintf(out,
		"hutch-stats: net=%u tx_frames=%" PRIu64 " tx_gso=%" PRIu64
		" tx_bytes=%" PRIu64 " tx_bad=%" PRIu64 " tx_denied=%" PRIu64
		" tx_flow_full=%" PRIu64 " rx_frames=%" PRIu64
		" rx_gso=%" PRIu64 " rx_bytes=%" PRIu64 " rx_dropped=%" PRIu64
		" denials_logged=%" PRIu64 " deferred=%" PRIu64
		" tx_throttled=%" PRIu64 " rx_throttled=%" PRIu64
		" breaks=%" PRIu64,
		index, s->tx_frames, s->tx_gso, s->tx_bytes, s->tx_bad,
		s->tx_denied, s->tx_flow_full, s->rx_frames, s->rx_gso,
		s->rx_bytes, s->rx_dropped, n->policy.logged, s->deferred,
		s->tx_throttled, s->rx_throttled, n->vdev.breaks);
	n->be->ops->print_stats(n->be, out);
	fputc('\n', out);
}

static int start(void *dev)
{
	return net_thread_start(dev);
}

static void stop(void *dev)
{
	net_thread_stop(dev);
}

static uint64_t max_file_size(void *dev)
{
	(void)dev;
	return NET_POLICY_LOG_MAX + 65536;
}

/* "allow=RULE", "deny=RULE" or "allow-domain=NAME" (hutch net NAME
 * allow|deny|allow-domain RULE): for new packets from now on.  Else rate
 * limits (hutch limit NAME net KEY=N,...), for the next frame. */
static int set_limits(void *dev, char *spec)
{
	struct virtio_net *n = dev;
	char *value = strchr(spec, '=');
	struct net_limits l;
	struct net_domain d;
	struct net_rule r;
	int ret;

	if (value && strncmp(spec, "allow", 5) && strncmp(spec, "deny=", 5)) {
		pthread_mutex_lock(&n->vdev.lock);
		l = n->limits;
		ret = net_parse_limits(spec, &l);
		if (!ret)
			virtio_net_set_limits(n, &l);
		pthread_mutex_unlock(&n->vdev.lock);
		return ret;
	}
	if (value && !strncmp(spec, "allow-domain=", 13)) {
		if (net_domain_parse(value + 1, &d))
			return -EINVAL;
		pthread_mutex_lock(&n->vdev.lock);
		ret = net_names_add(&n->policy.names, &d);
		pthread_mutex_unlock(&n->vdev.lock);
		if (ret)
			log_errx("net: at most %d allowed domains",
				 NET_MAX_DOMAINS);
		return ret;
	}
	if (!value ||
	    (strncmp(spec, "allow=", 6) && strncmp(spec, "deny=", 5))) {
		log_errx("net: expected allow=RULE, deny=RULE, "
			 "allow-domain=NAME or " LIMIT_KEYS);
		return -EINVAL;
	}
	if (net_rule_parse(value + 1, spec[0] == 'a', &r))
		return -EINVAL;
	pthread_mutex_lock(&n->vdev.lock);
	ret = net_policy_add(&n->policy, &r);
	pthread_mutex_unlock(&n->vdev.lock);
	if (ret)
		log_errx("net: at most %d rules", NET_POLICY_MAX_RULES);
	return ret;
}

static bool host_network(const void *cfg)
{
	(void)cfg;
	/* user networking's sockets are the host's, and so is a TAP (the
	 * descriptor would do, but its name is the host namespace's). */
	return true;
}

const struct device_type virtio_net_type = {
    .name = "virtio-net",
    .option = "net",
    .option_arg = "user|tap=IF[,mac=M][,fwd=..][,ip=A/N,gw=A,dns=A,in=P]"
		  "[,allow=RULE][,deny=RULE][,allow-domain=NAME][,log=F]"
		  "[,[tx_|rx_]bps|pps=N]",
    .option_help = "a NIC with user-mode networking (libslirp) or a host "
		   "TAP, and an egress policy: nothing leaves unless "
		   "allowed",
    .max = 4,
    .parse = parse,
    .free_config = free_config,
    .create = create,
    .virtio = virtio,
    .cmdline = cmdline,
    .print_stats = print_stats,
    .start = start,
    .stop = stop,
    .max_file_size = max_file_size,
    .set_limits = set_limits,
    .host_network = host_network,
    .destroy = destroy,
};
