/* SPDX-License-Identifier: MIT */
/*
 * How devices connect to a host Unix socket by path (vsock's guest-made
 * connections to PATH_<port>).  Normally a plain socket and connect
 * here; a jailed VMM, which can reach no host path and no longer has the
 * permissions to, installs a broker (vmm/jail.c) that connects outside
 * the jail and passes the descriptor back.
 *
 * Threads: host_unix_connect_set during set-up, before any other thread
 * exists; host_unix_connect from the event loop thread.
 */
#ifndef HUTCH_HOST_CONNECT_H
#define HUTCH_HOST_CONNECT_H

/* A non-blocking, close-on-exec stream socket connected to path: the
 * descriptor, or negative errno. */
int host_unix_connect(const char *path);

/* Route host_unix_connect through fn (NULL: connect directly). */
void host_unix_connect_set(int (*fn)(void *opaque, const char *path),
			   void *opaque);

#endif
