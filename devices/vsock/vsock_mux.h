/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock, bottom layer: the Unix-socket multiplexer (vsock_unix.c),
 * as the connection layer above it sees it.  It owns the listening
 * socket PATH, every Unix connection (named by an id: the connection
 * layer's slot number), their epoll registrations and the timer, and
 * makes every syscall on them.  It tells the layer above what happened
 * only through struct vsock_mux_up.
 *
 * Threads and locks: the event loop's thread (init: the thread setting
 * up devices, before the loop runs).  The handlers take the lock given to
 * vsock_mux_init (the device's) around each callback; the other functions
 * below are called with it held.
 */
#ifndef HUTCH_VSOCK_MUX_H
#define HUTCH_VSOCK_MUX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vmm/base/evloop.h"
#include "devices/vsock/vsock_proto.h"

/* What a connection's event says (a hint: check before acting). */
#define VSOCK_MUX_IN  1u /* bytes or EOF to read */
#define VSOCK_MUX_OUT 2u /* room to write, or an error a write would get */
#define VSOCK_MUX_HUP 4u /* the peer hung up or stopped sending */

/* The layer above, told with the lock held; each call ends one event. */
struct vsock_mux_up {
	/* Host programs wait on PATH: take them with vsock_mux_accept. */
	void (*incoming)(void *ctx);
	/* Connection id has news: VSOCK_MUX_* bits. */
	void (*event)(void *ctx, unsigned id, unsigned events);
	/* The time given to vsock_mux_timer has come. */
	void (*timer)(void *ctx);
};

struct vsock_mux;

struct vsock_mux_sock {
	struct ev_handler ev;
	struct vsock_mux *mux;
	int fd; /* -1: no connection under this id */
};

struct vsock_mux {
	const struct vsock_mux_up *up;
	void *ctx;
	pthread_mutex_t *lock;
	int ep;	    /* the event loop; < 0 in tests that run none */
	char *path; /* the listening socket; PATH_P for guest connects */
	bool bound; /* we created path (unlink it at the end) */
	uint64_t sock_dev, sock_ino; /* what we bound, to unlink only that */
	int listen_fd;
	/* Out of fds: PATH is not watched until a connection closes or, at
	 * the latest, retry_fd fires (fds freed elsewhere count too). */
	bool listen_paused;
	int timer_fd;
	int retry_fd;
	struct ev_handler listen_ev, timer_ev, retry_ev;
	/* Live as long as the device, so an event the loop already fetched
	 * never points at freed memory (it reaches the id's next
	 * connection, or one closed: a hint only). */
	struct vsock_mux_sock socks[VSOCK_MAX_CONNS];
};

/*
 * Listen on path (which must not exist, or be a stale socket nobody
 * listens on: that is unlinked), created mode 0600 whatever the umask,
 * and start the timer.  0 or negative errno, reported.  vsock_mux_fini
 * is safe after a failure.
 */
int vsock_mux_init(struct vsock_mux *m, const char *path, int ep,
		   pthread_mutex_t *lock, const struct vsock_mux_up *up,
		   void *ctx) __attribute__((warn_unused_result));
/* Close every connection and the socket, unlink PATH if still ours. */
void vsock_mux_fini(struct vsock_mux *m);

/*
 * Take the next host program waiting on PATH as connection id (id < 0:
 * no room, so it is closed at once).  1: accepted; 0: nobody waits (or
 * out of fds: PATH is not watched until a connection closes); negative
 * errno: that one was closed.
 */
int vsock_mux_accept(struct vsock_mux *m, int id);

/* After running out of fds, PATH is watched again this long after, or
 * as soon as a connection closes, whichever comes first. */
#define VSOCK_ACCEPT_RETRY_NS 100000000ull

/*
 * The "CONNECT <port>\n" line of connection id: 1 and *port once it is
 * all there (only the line is consumed); 0 while it is not; negative
 * errno for a bad line or a peer that left.
 */
int vsock_mux_read_line(struct vsock_mux *m, unsigned id, uint32_t *port);

/* Connect id to PATH_<port>.  0 or negative errno. */
int vsock_mux_connect(struct vsock_mux *m, unsigned id, uint32_t port);

/* Never blocking: bytes read (0 at EOF) or negative errno. */
ssize_t vsock_mux_recv(struct vsock_mux *m, unsigned id,
		       const struct iovec *iov, unsigned niov);
/* Never blocking, never SIGPIPE: bytes written or negative errno. */
ssize_t vsock_mux_send(struct vsock_mux *m, unsigned id,
		       const struct iovec *iov, unsigned niov);
/* No more bytes to the peer (it reads EOF after what it was sent). */
void vsock_mux_shut_wr(struct vsock_mux *m, unsigned id);
/* Has the peer closed (or both halves been shut down)? */
bool vsock_mux_hung_up(struct vsock_mux *m, unsigned id);
/* Has the peer stopped sending (EOF queued)? */
bool vsock_mux_rdhup(struct vsock_mux *m, unsigned id);
/* Close connection id (no-op if none). */
void vsock_mux_close(struct vsock_mux *m, unsigned id);

/* Call up->timer at at_ns (vsock_mux_now's clock) instead of whenever
 * it was set for.  0 or negative errno. */
int vsock_mux_timer(struct vsock_mux *m, uint64_t at_ns);
/* The timer's clock (CLOCK_MONOTONIC), in nanoseconds. */
uint64_t vsock_mux_now(void);

#endif
