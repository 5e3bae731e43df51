/* SPDX-License-Identifier: MIT */
/* The `user` backend (libslirp): see net_slirp.c. */
#ifndef HUTCH_NET_SLIRP_H
#define HUTCH_NET_SLIRP_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/net/net_policy.h"

#define NET_SLIRP_GUEST4 "10.0.2.15"
#define NET_SLIRP_GW4	 "10.0.2.2"
#define NET_SLIRP_DNS4	 "10.0.2.3"
#define NET_SLIRP_GW6	 "fec0::2"
#define NET_SLIRP_DNS6	 "fec0::3"
/* Host sockets libslirp may hold for guest flows before new ones wait
 * (its poll set must hold them: NET_POLL_MAX in net_thread.c). */
#define NET_SLIRP_MAX_SOCKETS 2048

struct net_backend;

/* A host port forwarded into the guest (fwd=). */
struct net_forward {
	bool udp;
	uint32_t host_addr; /* network order; 127.0.0.1 unless given */
	uint16_t host_port, guest_port;
};

/* The virtual network's gateway and resolver, for the policy. */
void net_slirp_infra(struct net_infra *in);

/* A user-mode network with these forwards (listening on the host from
 * now on).  0 or negative errno, reported. */
int net_slirp_create(const struct net_forward *fwd, unsigned nfwd,
		     struct net_backend **out)
    __attribute__((warn_unused_result));

#endif
