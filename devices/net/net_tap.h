/* SPDX-License-Identifier: MIT */
/* The `tap` backend: see net_tap.c. */
#ifndef HUTCH_NET_TAP_H
#define HUTCH_NET_TAP_H

#include <net/if.h>

struct net_backend;

/*
 * The TAP device called name: attached to if it exists (a TAP the
 * caller may use: made with `ip tuntap add ... user U`, or any as root),
 * else created (needs CAP_NET_ADMIN) and brought up, and then gone when
 * the VMM exits however it ends (the kernel removes a TAP that is not
 * persistent when its last descriptor closes).  0 or negative errno,
 * reported.
 */
int net_tap_create(const char *name, struct net_backend **out)
    __attribute__((warn_unused_result));

#endif
