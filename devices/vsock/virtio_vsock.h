/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock (virtio 1.x, 5.10), stream sockets only, bridged to Unix
 * sockets on the host the way Firecracker documents it:
 *
 *   - hutch listens on PATH.  A host program connects there and writes
 *     "CONNECT <port>\n"; hutch sends the guest a REQUEST to that port
 *     and, once the guest answers RESPONSE, writes "OK <host port>\n"
 *     back; from then on bytes flow both ways unchanged.  A guest that
 *     answers RST (nothing listening) gets the Unix connection closed.
 *   - A guest REQUEST to host port P is bridged to a connection to the
 *     Unix socket PATH_P (e.g. /run/v.sock_1234); RST if nothing listens.
 *
 * Everything runs in the VMM's event loop with the device lock held:
 * the listening socket, every Unix connection (edge-triggered), the rx
 * and tx queue notifications, and a timer for connections waiting for
 * the guest's RST after a SHUTDOWN.
 *
 * Memory is bounded whatever the guest does: at most VSOCK_MAX_CONNS
 * connections, each buffering at most VSOCK_BUF_ALLOC bytes of guest data
 * the host side has not taken yet (that is the credit we advertise; a
 * guest sending beyond it is reset), and pending host-to-guest control
 * packets are per-connection flags plus a small ring for replies to
 * packets that belong to no connection.
 */
#ifndef HUTCH_VIRTIO_VSOCK_H
#define HUTCH_VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/virtio/virtio.h"
#include "devices/vsock/vsock_mux.h"
#include "devices/vsock/vsock_proto.h"

#define VIRTIO_ID_VSOCK 19

#define VSOCK_HOST_CID	  2
#define VSOCK_QUEUE_SIZE  256
#define VSOCK_CONFIG_LEN  8
#define VSOCK_HDR_LEN	  44
#define VSOCK_TYPE_STREAM 1
/* The operations, the per-connection bounds and timeouts, the decoded
 * header and the counters are in vsock_proto.h (included above), which
 * the layers below the device share without virtio types. */

/* Queues (5.10.2). */
#define VSOCK_RXQ 0
#define VSOCK_TXQ 1
#define VSOCK_EVQ 2

/* Largest payload we put in one packet to the guest. */
#define VSOCK_MAX_PKT (64u * 1024)
/* Replies (RST) to packets of no connection, waiting for rx buffers. */
#define VSOCK_ORPHAN_RING 64

struct vsock_conn;

struct vsock_orphan {
	uint64_t src_cid; /* the CID the guest addressed */
	uint32_t src_port, dst_port;
};

struct virtio_vsock {
	struct virtio_dev vdev;
	uint8_t config[VSOCK_CONFIG_LEN];
	uint64_t guest_cid;
	struct vsock_mux mux; /* the Unix sockets and the timer */
	uint64_t timer_at;    /* armed for this time; 0: not armed */
	uint64_t close_timeout_ns, line_timeout_ns, connect_timeout_ns;

	/* Connection slots: allocated once, never freed before the device,
	 * so an event the loop already fetched never points at freed
	 * memory (it reaches the slot's next occupant, harmlessly). */
	struct vsock_conn *slots;
	unsigned nconns;
	struct vsock_conn *hash[2 * VSOCK_MAX_CONNS];
	struct vsock_conn *work_head, *work_tail; /* have packets to send */
	uint32_t next_local_port;

	struct vsock_orphan orphans[VSOCK_ORPHAN_RING];
	unsigned orphan_head, orphan_len;

	/* An rx chain taken from the ring but not used yet. */
	struct virtq_chain rx_chain;
	bool rx_held;
	struct virtq_chain tx_chain;
	struct iovec iov[VIRTQ_MAX_SIZE];

	struct virtio_vsock_stats stats;
};

/*
 * Listen on path (which must not exist, or be a stale socket nobody
 * listens on: that is unlinked) and set up the device.  0 or negative
 * errno, reported.
 */
int virtio_vsock_create(struct virtio_vsock *v, const char *path,
			uint64_t guest_cid, const struct virtio_host *host,
			uint64_t mmio_base, unsigned gsi)
    __attribute__((warn_unused_result));

/* Close every connection, unlink the socket, free everything. */
void virtio_vsock_destroy(struct virtio_vsock *v);

/* Send RST for connections whose close timed out by now_ns (the timer
 * calls this; tests call it with a time of their choosing). */
void virtio_vsock_expire(struct virtio_vsock *v, uint64_t now_ns);

/* Header codec (44 bytes, little endian). */
void vsock_hdr_decode(const uint8_t *raw, struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *raw);

#endif
