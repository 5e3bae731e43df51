/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock: what all three layers (see virtio_vsock.h) share, free of
 * virtio types: the decoded packet header, the operations, and the
 * bounds.  The connection layer and the Unix-socket multiplexer include
 * this, never virtio_vsock.h (which brings the virtqueues with it).
 * Definitions only; no thread or lock rules apply.
 */
#ifndef HUTCH_VSOCK_PROTO_H
#define HUTCH_VSOCK_PROTO_H

#include <stdint.h>

/* Operations (5.10.6). */
#define VSOCK_OP_REQUEST	1
#define VSOCK_OP_RESPONSE	2
#define VSOCK_OP_RST		3
#define VSOCK_OP_SHUTDOWN	4
#define VSOCK_OP_RW		5
#define VSOCK_OP_CREDIT_UPDATE	6
#define VSOCK_OP_CREDIT_REQUEST 7

#define VSOCK_SHUTDOWN_RCV  1u
#define VSOCK_SHUTDOWN_SEND 2u

/* Per connection: the receive buffer we advertise (buf_alloc), hence
 * the most guest data we ever hold for a slow host reader. */
#define VSOCK_BUF_ALLOC (256u * 1024)
/* Tell the guest about freed space once this much is forwarded. */
#define VSOCK_CREDIT_THRESHOLD (VSOCK_BUF_ALLOC / 2)
/* Connections at once, host- and guest-initiated together. */
#define VSOCK_MAX_CONNS 256
/* After our SHUTDOWN of both directions, how long the guest has to
 * answer RST before we send one. */
#define VSOCK_CLOSE_TIMEOUT_NS 2000000000ull
/* A host program has this long to send its CONNECT line, and the guest
 * this long to accept or refuse it; then the connection is closed (and
 * the guest's half reset), so silent peers cannot hold slots forever. */
#define VSOCK_LINE_TIMEOUT_NS	 10000000000ull
#define VSOCK_CONNECT_TIMEOUT_NS 10000000000ull
/* First local port for host-initiated connections (as Firecracker). */
#define VSOCK_FIRST_LOCAL_PORT (1u << 30)
/* "CONNECT 4294967295\n" fits; a longer line is refused. */
#define VSOCK_LINE_MAX 32

/* The packet header (5.10.6), decoded. */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags;
	uint32_t buf_alloc, fwd_cnt;
};

/* The device's counters (--stats); each layer counts what it sees. */
struct virtio_vsock_stats {
	uint64_t conns_host, conns_guest; /* connections established */
	uint64_t rx_bytes, tx_bytes;	  /* payload to / from the guest */
	uint64_t rst_sent, bad_packets, orphans_dropped;
	uint64_t deferred; /* queue runs cut short by the per-call budget */
};

#endif
