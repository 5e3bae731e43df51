/* SPDX-License-Identifier: MIT */
/*
 * A running VM's control channel: a Unix socket (mode 0600; for hutch
 * start/run NAME/control.sock in the state directory) that takes one
 * line per connection and answers one:
 *
 *   limit TYPE INDEX KEY=VALUE[,KEY=VALUE...]\n  ->  ok\n | error: WHY\n
 *
 *   snapshot\n  + SCM_RIGHTS [state, memory, overlay...]  ->  ok\n | error:
 * WHY\n
 *
 * e.g. "limit virtio-blk 0 bps=1048576,iops=0" (0: no limit).  A
 * snapshot writes the VM into the files passed with the line (the front
 * end creates them: a jailed VMM could not), one per drive overlay after
 * the state and memory files, and the VM runs on (vm_snapshot).  Lines are
 * at most 255 bytes; anything else is refused.  The socket is bound
 * before the jail closes, so a jailed VMM keeps it.
 *
 * Threads: control_open during set-up (before any other thread); the
 * connections are served on the event loop thread.
 */
#ifndef HUTCH_CONTROL_H
#define HUTCH_CONTROL_H

#include <stddef.h>

#include "vmm/base/evloop.h"

#define CONTROL_MAX_CONNS 4
/* Descriptors one request may pass (snapshot: state, memory, and one
 * per drive). */
#define CONTROL_MAX_FDS 12

struct vm;
struct control;

struct control_conn {
	struct control *c;
	int fd; /* -1: free */
	struct ev_handler ev;
	char buf[256];
	size_t len;
	int fds[CONTROL_MAX_FDS]; /* passed with the request */
	unsigned nfds;
};

struct control {
	struct vm *vm;
	int fd; /* listening; -1: none */
	struct ev_handler listen_ev;
	struct control_conn conns[CONTROL_MAX_CONNS];
};

/* Listen on path (a stale socket there is replaced; a live one is
 * refused).  0 or negative errno, reported. */
int control_open(struct control *c, struct vm *vm, const char *path);
void control_close(struct control *c);

#endif
