/* SPDX-License-Identifier: MIT */
/* The name a TLS or HTTP connection asks for (net_sni.c). */
#ifndef HUTCH_NET_SNI_H
#define HUTCH_NET_SNI_H

#include <stddef.h>
#include <stdint.h>

/* A ClientHello's server name, normalised, into name.  0, or -1: not a
 * ClientHello, or no whole server name in these bytes. */
int net_tls_sni(const uint8_t *p, size_t len, char *name, size_t name_len);

/* An HTTP/1 request's Host header (without its port), normalised.  0 or
 * -1 as for net_tls_sni. */
int net_http_host(const uint8_t *p, size_t len, char *name, size_t name_len);

#endif
