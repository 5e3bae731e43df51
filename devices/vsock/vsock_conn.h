/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock, middle layer: the connections (vsock_conn.c), as the
 * device above sees them.  It takes the guest's packets once the device
 * has checked them, hands out the packets the guest is owed, and tells
 * the device anything else only through struct vsock_conn_up.  It knows
 * no virtqueues; it reaches the Unix sockets through the multiplexer
 * below (vsock_mux.h).
 *
 * A connection's life:
 *
 *   LINE        host program connected to PATH; reading "CONNECT <port>\n"
 *   CONNECTING  REQUEST queued/sent to the guest; waiting for RESPONSE
 *   OPEN        bytes flow; each side may shut down one direction
 *   CLOSING     the host side is gone; we sent SHUTDOWN of both
 *               directions and wait (bounded) for the guest's RST
 *   DEAD        host side closed, RST queued; the slot is freed once the
 *               RST went out (or the guest sent its own)
 *
 * Packets for the guest are not queued as packets: a connection carries
 * flags for the control packets it owes and sits on the work list while
 * it owes any or has host data and credit to send.
 *
 * Threads and locks: the event loop's thread, with the device lock held
 * for every call below but init (made before the loop runs).  The
 * callbacks come with it held too, at the end of a host event, never
 * from within a call of the device's.
 */
#ifndef HUTCH_VSOCK_CONN_H
#define HUTCH_VSOCK_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/vsock/vsock_mux.h"
#include "devices/vsock/vsock_proto.h"

enum vsock_state {
	VS_FREE,
	VS_LINE,
	VS_CONNECTING,
	VS_OPEN,
	VS_CLOSING,
	VS_DEAD,
};

struct vsock_conns;

/* One connection.  The layer's own: the device never looks inside (the
 * unit tests check the buffer's bound). */
struct vsock_conn {
	struct vsock_conns *cs;
	enum vsock_state state;
	uint32_t local_port;		  /* host side */
	uint32_t peer_port;		  /* guest side */
	struct vsock_conn *hnext;	  /* hash chain */
	struct vsock_conn *wprev, *wnext; /* work list */
	bool queued;			  /* on the work list */
	bool hashed;

	unsigned pending;    /* control packets owed (PEND_* in the .c) */
	uint32_t shut_flags; /* what our pending SHUTDOWN says */
	uint32_t peer_shut;  /* SHUTDOWN flags the guest sent so far */
	bool readable;	     /* the Unix side may have bytes for us */
	bool writable;	     /* the Unix side may take bytes */
	bool local_eof;	     /* the Unix side sent EOF */
	bool wr_shut;	     /* we shut down the Unix side's write half */
	uint64_t deadline;   /* LINE, CONNECTING, CLOSING: when we give up */

	/* Host to guest: what we sent, and the guest's credit. */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	/* Guest to host: bytes handed to the Unix side, and the last count
	 * the guest heard of. */
	uint32_t fwd_cnt, fwd_reported;
	uint8_t *buf; /* guest bytes the Unix side did not take yet */
	uint32_t buf_cap, buf_off, buf_len;
	char prefix[24]; /* "OK <port>\n", before any data */
	uint8_t prefix_len, prefix_off;
};

/* What the connection layer tells the device (lock held). */
struct vsock_conn_up {
	/* Connections owe the guest packets: fill rx buffers now. */
	void (*kick)(void *ctx);
	/* May a host program's CONNECT reach the guest (driver ready)? */
	bool (*guest_ready)(void *ctx);
};

struct vsock_conns {
	struct vsock_mux mux; /* the layer below */
	const struct vsock_conn_up *up;
	void *ctx;
	struct virtio_vsock_stats *stats; /* we count conns_*, tx_bytes */
	uint64_t close_timeout_ns, line_timeout_ns, connect_timeout_ns;
	uint64_t timer_at; /* the timer is armed for this; 0: not armed */

	/* Slots: allocated once, never freed before the device. */
	struct vsock_conn *slots;
	unsigned nconns;
	struct vsock_conn *hash[2 * VSOCK_MAX_CONNS];
	struct vsock_conn *work_head, *work_tail; /* owe the guest packets */
	uint32_t next_local_port;
};

/*
 * Listen on path (see vsock_mux_init) with event loop ep (< 0: none) and
 * the device's lock, counting into *stats.  0 or negative errno,
 * reported; vsock_conns_fini is safe after a failure, and on a zeroed
 * struct.
 */
int vsock_conns_init(struct vsock_conns *cs, const char *path, int ep,
		     pthread_mutex_t *lock, struct virtio_vsock_stats *stats,
		     const struct vsock_conn_up *up, void *ctx)
    __attribute__((warn_unused_result));
/* Close every connection, unlink the socket, free everything. */
void vsock_conns_fini(struct vsock_conns *cs);

/*
 * A packet from the guest whose header the device checked (our CIDs,
 * stream type, payload present): niov buffers holding exactly h->len
 * bytes of payload.  True if it belongs to no connection and should be
 * answered with an RST.
 */
bool vsock_conns_recv(struct vsock_conns *cs, const struct vsock_hdr *h,
		      const struct iovec *payload, unsigned niov);

/* Does a connection owe the guest a packet (or may it have data)? */
bool vsock_conns_owed(struct vsock_conns *cs);
/*
 * After vsock_conns_owed said so: the next packet, ports, op, flags and
 * our credit in *h (the device adds CIDs and type), its payload read
 * straight into iov (the room the guest gave, at most VSOCK_MAX_PKT; the
 * array may be changed).  False if there was nothing after all (the
 * host had no data): the buffers are still free.
 */
bool vsock_conns_fill(struct vsock_conns *cs, struct vsock_hdr *h,
		      struct iovec *iov, unsigned niov);

/* Give up on connections whose time ran out by now_ns (vsock_mux_now's
 * clock). */
void vsock_conns_expire(struct vsock_conns *cs, uint64_t now_ns);
/* The guest's sockets are gone: close every connection. */
void vsock_conns_drop_all(struct vsock_conns *cs);

/*
 * For tests only (tests/fuzz/fuzz_vsock.c checks the table with them
 * after every operation; the device never calls them): the hashed
 * connection with these ports, or NULL; and whether c still owes the
 * guest an RST (what a VS_DEAD connection waits to send).
 */
struct vsock_conn *vsock_conns_find(struct vsock_conns *cs, uint32_t local_port,
				    uint32_t peer_port);
bool vsock_conn_owes_rst(const struct vsock_conn *c);

#endif
