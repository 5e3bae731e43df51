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
 * Three layers, each calling only the one below it by name; news goes
 * up only through the callback structs each gives the one below at init:
 *
 *   vmm/vm.c      virtio_vsock_create / _destroy, the transport's ops
 *      |
 *   virtio_vsock.c  the device: virtqueues, decoding and checking guest
 *      |            packets (header, length, CIDs, type), the orphan RST
 *      |            ring, rx buffers, the per-notification budgets
 *      |
 *      |  vsock_conns_recv(hdr, payload iovec)    ^ struct vsock_conn_up:
 *      |  vsock_conns_owed, _fill(hdr, rx iovec)  |  kick (fill rx now),
 *      |  vsock_conns_expire, _drop_all           |  guest_ready
 *      v                                          |
 *   vsock_conn.c    connections: LINE/CONNECTING/OPEN/CLOSING/DEAD, the
 *      |            control packets owed, the work list, credit both
 *      |            ways, the bounded buffer, timeouts
 *      |
 *      |  vsock_mux_accept, _read_line, _connect  ^ struct vsock_mux_up:
 *      |  vsock_mux_recv, _send, _shut_wr, _close |  incoming, event,
 *      |  vsock_mux_timer                         |  timer
 *      v                                          |
 *   vsock_unix.c    the Unix-socket multiplexer: PATH, every connected
 *                   fd, epoll, the timer; all the socket syscalls
 *
 * Headers: vsock_proto.h (what all three share, no virtio types),
 * vsock_mux.h (what the multiplexer offers the connection layer),
 * vsock_conn.h (what the connection layer offers the device), this one
 * (what the device offers the VMM).
 *
 * A guest packet goes down once: the device checks it and hands header
 * and payload to vsock_conns_recv, which writes the payload straight from
 * guest memory to the socket when it can.  Host bytes go up in the
 * device's rx pump: vsock_conns_fill reads them straight into the
 * guest's buffer.  A host event (socket, listening socket, timer) enters
 * at the bottom: the multiplexer's handler takes the device lock and
 * tells the connection layer, which ends by kicking the device's pump.
 *
 * Everything runs in the VMM's event loop with the device lock held:
 * the listening socket, every Unix connection (edge-triggered), the rx
 * and tx queue notifications, and the timer for connections waiting for
 * a CONNECT line, for the guest's answer, or for its RST after a
 * SHUTDOWN.
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
#include "devices/vsock/vsock_conn.h"
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

struct vsock_orphan {
	uint64_t src_cid; /* the CID the guest addressed */
	uint32_t src_port, dst_port;
};

struct virtio_vsock {
	struct virtio_dev vdev;
	uint8_t config[VSOCK_CONFIG_LEN];
	uint64_t guest_cid;
	struct vsock_conns conns; /* the layers below */

	struct vsock_orphan orphans[VSOCK_ORPHAN_RING];
	unsigned orphan_head, orphan_len;

	/* An rx chain taken from the ring but not used yet. */
	struct virtq_chain rx_chain;
	bool rx_held;
	struct virtq_chain tx_chain;
	/* A guest packet's payload, or an rx buffer's room: never both. */
	struct iovec iov[VIRTQ_MAX_SIZE];

	struct virtio_vsock_stats stats;

	/* Restored (vsock_snap.c): the guest was told its transport was
	 * reset and has not yet taken the event (it refills the event
	 * queue once it did, and we asked to be notified then).  Host
	 * connections wait meanwhile, at most VSOCK_RESET_WAIT_NS: the
	 * reset would close them. */
	bool reset_pending;
	uint64_t reset_sent_ns;
};

#define VSOCK_RESET_WAIT_NS (2000ull * 1000 * 1000)

/* CLOCK_MONOTONIC in ns. */
uint64_t virtio_vsock_now_ns(void);

/*
 * Listen on path (which must not exist, or be a stale socket nobody
 * listens on: that is unlinked) and set up the device.  0 or negative
 * errno, reported.
 */
int virtio_vsock_create(struct virtio_vsock *v, const char *path,
			uint64_t guest_cid, const struct virtio_host *host,
			uint64_t mmio_base, unsigned gsi)
    __attribute__((warn_unused_result));

/* Snapshots (vsock_snap.c; device.h's hooks). */
struct snap_writer;
struct snap_reader;
int virtio_vsock_save(struct virtio_vsock *v, struct snap_writer *w);
int virtio_vsock_restore(struct virtio_vsock *v, struct snap_reader *r);

/* Close every connection, unlink the socket, free everything. */
void virtio_vsock_destroy(struct virtio_vsock *v);

/* Give up on connections whose time ran out by now_ns (CLOCK_MONOTONIC,
 * in ns): a close the guest never answered gets an RST, a silent host
 * program or an unanswered request is closed.  The timer calls this;
 * tests call it with a time of their choosing (lock held). */
void virtio_vsock_expire(struct virtio_vsock *v, uint64_t now_ns);

/* Header codec (44 bytes, little endian). */
void vsock_hdr_decode(const uint8_t *raw, struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *raw);

#endif
