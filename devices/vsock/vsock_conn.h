/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock internals shared by virtio_vsock.c (queues, packets),
 * vsock_conn.c (connections, their buffers and closing) and vsock_unix.c
 * (the listening socket, CONNECT lines, connections to PATH_<port>).
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
 * flags for the control packets it owes (PEND_*) and sits on the device's
 * work list while it owes any or has host data and credit to send.
 */
#ifndef HUTCH_VSOCK_CONN_H
#define HUTCH_VSOCK_CONN_H

#include "devices/vsock/virtio_vsock.h"

enum vsock_state {
	VS_FREE,
	VS_LINE,
	VS_CONNECTING,
	VS_OPEN,
	VS_CLOSING,
	VS_DEAD,
};

#define PEND_REQUEST  1u
#define PEND_RESPONSE 2u
#define PEND_CREDIT   4u
#define PEND_SHUTDOWN 8u
#define PEND_RST      16u

struct vsock_conn {
	struct virtio_vsock *v;
	enum vsock_state state;
	uint32_t local_port;		  /* host side */
	uint32_t peer_port;		  /* guest side */
	struct vsock_conn *hnext;	  /* hash chain */
	struct vsock_conn *wprev, *wnext; /* work list */
	bool queued;			  /* on the work list */
	bool hashed;

	unsigned pending;    /* PEND_* */
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

/* vsock_conn.c: connections and their bytes. */
/* Set up the connection slots and listen on path.  0 or negative errno,
 * reported; vsock_conn_fini is safe after a failure. */
int vsock_conn_init(struct virtio_vsock *v, const char *path)
    __attribute__((warn_unused_result));
void vsock_conn_fini(struct virtio_vsock *v);
/* The connection's id with the multiplexer. */
unsigned vsock_conn_id(const struct vsock_conn *c);
struct vsock_conn *vsock_conn_find(struct virtio_vsock *v, uint32_t local,
				   uint32_t peer);
/* Owe the guest these packets (0: just data) and get on the work list. */
void vsock_conn_queue(struct vsock_conn *c, unsigned pend);
void vsock_conn_unqueue(struct vsock_conn *c);
/* Close the Unix side; owe the guest an RST. */
void vsock_conn_kill(struct vsock_conn *c, const char *why);
/* Forget the connection entirely (closes the Unix side). */
void vsock_conn_free(struct vsock_conn *c);
void vsock_drop_all(struct virtio_vsock *v);
uint32_t vsock_conn_credit(const struct vsock_conn *c);
/* The Unix side reached EOF (a read returned 0). */
void vsock_conn_eof(struct vsock_conn *c);

/* Guest packets for a known connection or none (virtio_vsock.c decoded
 * and checked the header; chain holds the payload after it). */
void vsock_guest_request(struct virtio_vsock *v, const struct vsock_hdr *h);
void vsock_conn_response(struct vsock_conn *c);
void vsock_conn_data(struct vsock_conn *c, const struct virtq_chain *chain,
		     uint32_t len);
void vsock_conn_shutdown(struct vsock_conn *c, uint32_t flags);

/* virtio_vsock.c */
/* Send what connections owe the guest while rx buffers last. */
void vsock_rx_pump(struct virtio_vsock *v);
/* Answer a packet of no connection with RST (bounded; may drop). */
void vsock_orphan_rst(struct virtio_vsock *v, const struct vsock_hdr *h);
uint64_t vsock_now_ns(void);

#endif
