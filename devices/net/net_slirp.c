// SPDX-License-Identifier: MIT
/*
 * The `user` backend: rootless user-mode networking through libslirp.
 * The guest sits on 10.0.2.0/24 (and fec0::/64) behind a virtual router
 * at 10.0.2.2 (fec0::2), which hands out 10.0.2.15 by DHCP, answers DNS
 * at 10.0.2.3 (fec0::3) by forwarding to the host's resolvers, and
 * re-originates the guest's TCP and UDP from this process's own sockets.
 * 10.0.2.2 stands for the host's loopback.  Port forwards (fwd=) listen
 * on the host and connect into the guest.
 *
 * libslirp is driven from the NIC's thread only: its sockets through
 * slirp_pollfds_fill/_poll, its timers (IPv6 router advertisements)
 * kept here and fired from the same loop.
 */
#include "devices/net/net_slirp.h"

#include <errno.h>
#include <limits.h>
#include <slirp/libslirp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "devices/net/net_backend.h"
#include "devices/net/virtio_net.h"
#include "vmm/base/log.h"
#include "vmm/base/mono_time.h"

#define SLIRP_MAX_TIMERS 4

struct slirp_timer {
	bool used, armed;
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms;
};

struct net_slirp {
	struct net_backend be;
	Slirp *slirp;
	struct slirp_timer timers[SLIRP_MAX_TIMERS];
	/* The poll set being filled or read (poll_fill .. poll_done). */
	struct pollfd *pfd;
	const struct pollfd *rfd;
	unsigned npfd, maxpfd;
	uint64_t guest_errors, poll_full;
	/* Host sockets libslirp had at the last poll_fill, and how many it
	 * may have before new guest flows wait (net_slirp_create). */
	unsigned nsockets, max_sockets;
};

static int64_t now_ns(void)
{
	return (int64_t)mono_ns();
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct net_slirp *s = opaque;

	virtio_net_receive(s->be.nic, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct net_slirp *s = opaque;

	if (s->guest_errors++ == 0)
		log_debug("virtio-net user: guest error: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return now_ns();
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct net_slirp *s = opaque;

	for (unsigned i = 0; i < SLIRP_MAX_TIMERS; i++)
		if (!s->timers[i].used) {
			s->timers[i] = (struct slirp_timer){
			    .used = true, .id = id, .cb_opaque = cb_opaque};
			return &s->timers[i];
		}
	log_errx("virtio-net user: out of timers");
	return NULL;
}

static void cb_timer_free(void *timer, void *opaque)
{
	(void)opaque;
	if (timer)
		memset(timer, 0, sizeof(struct slirp_timer));
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_timer *t = timer;

	(void)opaque;
	if (!t)
		return;
	t->armed = true;
	t->expire_ms = expire_ms;
}

static void cb_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque; /* every socket is polled through pollfds_fill */
}

static void cb_notify(void *opaque)
{
	(void)opaque; /* the loop asks slirp again every round */
}

static const SlirpCb callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_poll_fd,
    .unregister_poll_fd = cb_poll_fd,
    .notify = cb_notify,
    .timer_new_opaque = cb_timer_new_opaque,
};

static struct net_slirp *to_slirp(struct net_backend *be)
{
	return container_of(be, struct net_slirp, be);
}

static int slirp_send(struct net_backend *be, const uint8_t *hdr,
		      const uint8_t *frame, size_t len)
{
	(void)hdr; /* no segmentation offered, checksums complete */
	slirp_input(to_slirp(be)->slirp, frame, (int)len);
	return 0;
}

static int add_poll(int fd, int events, void *opaque)
{
	struct net_slirp *s = opaque;
	short ev = 0;

	if (s->npfd == s->maxpfd) {
		s->poll_full++;
		return -1;
	}
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	s->pfd[s->npfd] = (struct pollfd){.fd = fd, .events = ev};
	return (int)s->npfd++;
}

static int get_revents(int idx, void *opaque)
{
	struct net_slirp *s = opaque;
	int ev = 0;
	short r;

	if (idx < 0 || (unsigned)idx >= s->npfd)
		return 0;
	r = s->rfd[idx].revents;
	if (r & POLLIN)
		ev |= SLIRP_POLL_IN;
	if (r & POLLOUT)
		ev |= SLIRP_POLL_OUT;
	if (r & POLLPRI)
		ev |= SLIRP_POLL_PRI;
	if (r & POLLERR)
		ev |= SLIRP_POLL_ERR;
	if (r & POLLHUP)
		ev |= SLIRP_POLL_HUP;
	return ev;
}

static unsigned slirp_poll_fill(struct net_backend *be, struct pollfd *pfd,
				unsigned max, int *timeout_ms)
{
	struct net_slirp *s = to_slirp(be);
	uint32_t t = UINT32_MAX;
	int64_t now = now_ns() / 1000000;

	s->pfd = pfd;
	s->npfd = 0;
	s->maxpfd = max;
	slirp_pollfds_fill(s->slirp, &t, add_poll, s);
	for (unsigned i = 0; i < SLIRP_MAX_TIMERS; i++) {
		const struct slirp_timer *tm = &s->timers[i];

		if (tm->used && tm->armed) {
			int64_t left = tm->expire_ms - now;

			if (left < 0)
				left = 0;
			if ((uint64_t)left < t)
				t = (uint32_t)left;
		}
	}
	if (t != UINT32_MAX && (*timeout_ms < 0 || t < (uint32_t)*timeout_ms))
		*timeout_ms = t > INT_MAX ? INT_MAX : (int)t;
	s->nsockets = s->npfd;
	return s->npfd;
}

static void slirp_poll_done(struct net_backend *be, const struct pollfd *pfd,
			    unsigned n, bool error)
{
	struct net_slirp *s = to_slirp(be);
	int64_t now;

	s->rfd = pfd;
	s->npfd = n;
	slirp_pollfds_poll(s->slirp, error, get_revents, s);
	now = now_ns() / 1000000;
	for (unsigned i = 0; i < SLIRP_MAX_TIMERS; i++) {
		struct slirp_timer *tm = &s->timers[i];

		if (tm->used && tm->armed && tm->expire_ms <= now) {
			tm->armed = false;
			slirp_handle_timer(s->slirp, tm->id, tm->cb_opaque);
		}
	}
}

/* Every guest TCP connection and UDP flow (a DNS question from a new
 * source port, too: 10 s each) costs libslirp a host socket, and the
 * process's descriptors are shared with everything else (vsock, the
 * control socket): past max_sockets, new flows wait until old ones
 * close or expire. */
static bool slirp_new_flow_ok(struct net_backend *be)
{
	struct net_slirp *s = to_slirp(be);

	return s->nsockets < s->max_sockets;
}

static void slirp_print_stats(struct net_backend *be, FILE *out)
{
	struct net_slirp *s = to_slirp(be);

	fprintf(out, " user_guest_errors=%llu user_poll_full=%llu",
		(unsigned long long)s->guest_errors,
		(unsigned long long)s->poll_full);
}

static void slirp_destroy(struct net_backend *be)
{
	struct net_slirp *s = to_slirp(be);

	if (s->slirp)
		slirp_cleanup(s->slirp);
	free(s);
}

static const struct net_backend_ops slirp_ops = {
    .name = "user",
    .send = slirp_send,
    .new_flow_ok = slirp_new_flow_ok,
    .poll_fill = slirp_poll_fill,
    .poll_done = slirp_poll_done,
    .print_stats = slirp_print_stats,
    .destroy = slirp_destroy,
};

void net_slirp_infra(struct net_infra *in)
{
	memset(in, 0, sizeof(*in));
	inet_pton(AF_INET, NET_SLIRP_GW4, in->gw4);
	inet_pton(AF_INET, NET_SLIRP_DNS4, in->dns4);
	inet_pton(AF_INET6, NET_SLIRP_GW6, in->gw6);
	inet_pton(AF_INET6, NET_SLIRP_DNS6, in->dns6);
}

int net_slirp_create(const struct net_forward *fwd, unsigned nfwd,
		     struct net_backend **out)
{
	struct net_slirp *s = calloc(1, sizeof(*s));
	SlirpConfig cfg = {
	    .version = 4,
	    .in_enabled = true,
	    .in6_enabled = true,
	    .vprefix_len = 64,
	    .if_mtu = NET_MTU,
	    .if_mru = NET_MTU,
	};
	struct in_addr guest;

	struct rlimit nofile;

	if (!s)
		return -ENOMEM;
	s->be.ops = &slirp_ops;
	/* Half the process's descriptors at most (the jail's limit may be
	 * higher, never lower), and NET_SLIRP_MAX_SOCKETS. */
	s->max_sockets = NET_SLIRP_MAX_SOCKETS;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
	    nofile.rlim_cur / 2 < s->max_sockets)
		s->max_sockets = (unsigned)(nofile.rlim_cur / 2);
	inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
	inet_pton(AF_INET, NET_SLIRP_GW4, &cfg.vhost);
	inet_pton(AF_INET, NET_SLIRP_GUEST4, &cfg.vdhcp_start);
	inet_pton(AF_INET, NET_SLIRP_DNS4, &cfg.vnameserver);
	inet_pton(AF_INET6, "fec0::", &cfg.vprefix_addr6);
	inet_pton(AF_INET6, NET_SLIRP_GW6, &cfg.vhost6);
	inet_pton(AF_INET6, NET_SLIRP_DNS6, &cfg.vnameserver6);
	inet_pton(AF_INET, NET_SLIRP_GUEST4, &guest);
	s->slirp = slirp_new(&cfg, &callbacks, s);
	if (!s->slirp) {
		log_errx("virtio-net user: libslirp would not start");
		free(s);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < nfwd; i++) {
		struct in_addr host;

		host.s_addr = fwd[i].host_addr;
		if (slirp_add_hostfwd(s->slirp, fwd[i].udp, host,
				      fwd[i].host_port, guest,
				      fwd[i].guest_port) < 0) {
			log_errx("virtio-net user: cannot forward host port "
				 "%u (in use?)",
				 fwd[i].host_port);
			slirp_destroy(&s->be);
			return -EADDRINUSE;
		}
	}
	*out = &s->be;
	return 0;
}
