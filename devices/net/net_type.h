/* SPDX-License-Identifier: MIT */
/*
 * virtio-net's row of the device table (devices/device.h): --net SPEC,
 *
 *   user[,mac=MAC][,fwd=[tcp:|udp:][ADDR:]HOSTPORT:GUESTPORT]...
 *       [,allow=RULE]...[,deny=RULE]...[,allow-domain=NAME]...[,log=PATH]
 *       [,LIMIT=N]...
 *   tap=IFNAME[,ip=ADDR/PREFIX[,gw=ADDR][,dns=ADDR]][,in=PORT]...
 *       [,mac=..,allow=..,...]
 *
 * tap: the host's TAP device IFNAME (created if missing and allowed);
 * the guest configures itself statically from ip=, gw= and dns= (the
 * kernel's ip=), else by DHCP from whatever serves the TAP's network.
 * in=PORT: a guest TCP port the host's network may connect to (the
 * replies pass the policy, as a user networking fwd='s do).
 * LIMIT: [tx_|rx_](bps|pps)[_burst], the NIC's rate limits (tx: from the
 * guest, rx: to it; without tx_ or rx_: both ways).
 * RULE as in net_policy.h, NAME as in net_names.h.  No --net: no NIC.  A NIC
 * without allow rules lets nothing out but what its own virtual network needs.
 */
#ifndef HUTCH_NET_TYPE_H
#define HUTCH_NET_TYPE_H

#include "devices/device.h"
#include "devices/net/net_policy.h"
#include "devices/net/net_slirp.h"
#include "devices/net/virtio_net.h"

#define NET_MAX_FORWARDS 16

struct net_config {
	const char *tap; /* tap=IFNAME; NULL: user networking */
	bool have_ip;	 /* tap: the guest's static address */
	uint8_t ip4[4], gw4[4], dns4[4];
	unsigned prefix;
	uint16_t in_ports[NET_MAX_FORWARDS]; /* tap: in= */
	unsigned nin;
	uint8_t mac[6];
	bool have_mac;
	struct net_forward fwd[NET_MAX_FORWARDS];
	unsigned nfwd;
	struct net_rule rules[NET_POLICY_MAX_RULES];
	unsigned nrules;
	struct net_domain domains[NET_MAX_DOMAINS];
	unsigned ndomains;
	const char *log_path; /* the deny log; NULL: none */
	const char *vm_name;  /* in the deny log's lines */
	struct net_limits limits;
};

/* SPEC (modified in place: the config points into it) into c.  0, or
 * -EINVAL after one line saying why. */
int net_parse_spec(char *spec, struct net_config *c);

/* "KEY=N[,KEY=N...]" (the LIMIT keys above) into l, changing only the
 * keys given.  0, or -EINVAL after one line saying why. */
int net_parse_limits(char *spec, struct net_limits *l);

extern const struct device_type virtio_net_type;

#endif
