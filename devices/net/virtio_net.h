/* SPDX-License-Identifier: MIT */
/*
 * virtio-net (virtio 1.x, 5.1): one receive and one transmit queue, a
 * MAC address, mergeable receive buffers, and checksum offload in both
 * directions (the device completes a checksum the guest left partial
 * before any backend or the policy sees the frame; frames to the guest
 * carry complete checksums and are marked DATA_VALID).  TCP segmentation
 * both ways (HOST_TSO4/6, GUEST_TSO4/6) is offered only with a backend
 * that takes and gives it (a TAP): then frames either way may be up to
 * NET_GSO_FRAME_MAX, else none exceeds NET_FRAME_MAX.  The TAP's
 * offloads toward the guest follow what the driver acked (turned on at
 * DRIVER_OK, off at reset), and every header it gives is checked against
 * the features acked at delivery.
 *
 * Each NIC has its own thread (net_thread.c), which runs the device's
 * queue notifications (its own epoll, passed to the transport) and its
 * backend (struct net_backend: user networking through libslirp, or a
 * TAP) in one
 * poll loop.  So the backend and the receive ring are only ever touched
 * by that thread; vCPU threads only reach the transport's registers, under
 * the device lock as always.
 *
 * Frames from the guest: copied out of guest memory whole (the guest
 * cannot change what the policy checked), checked (length, header,
 * checksum request), then the egress policy (net_policy.h), then the
 * backend.  Frames to the guest: queued in a fixed ring of NET_RX_SLOTS
 * (segmentation frames in NET_RX_BIG_SLOTS buffers beside it); when the
 * guest stops taking them the ring fills and further frames are dropped
 * and counted (TCP backs off; a TAP is not read meanwhile), so the VMM's
 * memory never grows with what the guest does not read.
 */
#ifndef HUTCH_VIRTIO_NET_H
#define HUTCH_VIRTIO_NET_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/net/net_policy.h"
#include "devices/virtio/virtio.h"
#include "vmm/base/token_bucket.h"
#include "vmm/base/vm_control.h"

#define VIRTIO_ID_NET 1

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM	(1ull << 0)
#define VIRTIO_NET_F_GUEST_CSUM (1ull << 1)
#define VIRTIO_NET_F_MTU	(1ull << 3)
#define VIRTIO_NET_F_MAC	(1ull << 5)
#define VIRTIO_NET_F_GUEST_TSO4 (1ull << 7)
#define VIRTIO_NET_F_GUEST_TSO6 (1ull << 8)
#define VIRTIO_NET_F_HOST_TSO4	(1ull << 11)
#define VIRTIO_NET_F_HOST_TSO6	(1ull << 12)
#define VIRTIO_NET_F_MRG_RXBUF	(1ull << 15)

/* struct virtio_net_hdr (5.1.6), little endian. */
#define VIRTIO_NET_HDR_LEN	    12
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE	    0

#define NET_QUEUE_SIZE 256
#define NET_RXQ	       0
#define NET_TXQ	       1
#define NET_MTU	       1500
/* Ethernet header, an optional VLAN tag, the MTU. */
#define NET_FRAME_MAX (14 + 4 + NET_MTU)
/* A TCP segmentation frame (HOST_TSO4/6, for a backend that takes them):
 * an Ethernet header, a VLAN tag, the largest IP packet. */
#define NET_GSO_FRAME_MAX (14 + 4 + 65535)
#define NET_RX_SLOTS	  256
/* Segmentation frames for the guest waiting at once (4 x 64 KiB). */
#define NET_RX_BIG_SLOTS 4
/* Most receive chains one frame may take (mergeable buffers): an MTU
 * frame, or a 64 KiB segmentation frame in Linux's smallest mergeable
 * buffers (1.5 KiB). */
#define NET_RX_MAX_CHAINS     8
#define NET_RX_MAX_CHAINS_GSO 48

struct net_backend;

struct net_rx_slot {
	uint32_t len;
	bool seen;    /* net_filter_rx has seen it */
	bool has_hdr; /* hdr is the backend's (checked at delivery) */
	uint8_t hdr[VIRTIO_NET_HDR_LEN];
	uint8_t *big; /* the frame, when over NET_FRAME_MAX: a big slot */
	uint8_t data[NET_FRAME_MAX];
};

/* Guest-facing rate limits of one direction (token buckets): bytes and
 * frames per second, each with its burst (0: one second's worth); 0
 * rates: no limit.  Bytes are Ethernet frames' (the guest's interface
 * counters count the same). */
struct net_rate {
	uint64_t bps, bps_burst;
	uint64_t pps, pps_burst;
};

struct net_limits {
	struct net_rate tx; /* from the guest */
	struct net_rate rx; /* to the guest */
};

struct net_stats {
	uint64_t tx_frames, tx_bytes;
	uint64_t tx_gso;    /* of them, TCP segmentation frames */
	uint64_t tx_bad;    /* malformed: short, oversized, bad header */
	uint64_t tx_denied; /* the policy dropped it */
	uint64_t tx_backend_err;
	uint64_t tx_flow_full; /* a new flow the backend had no room for */
	uint64_t rx_frames, rx_bytes;
	uint64_t rx_dropped; /* ring full, frame too big, driver not ready */
	uint64_t rx_gso;     /* segmentation frames to the guest */
	uint64_t deferred;
	uint64_t tx_throttled; /* times a frame waited for the limits */
	uint64_t rx_throttled;
};

struct virtio_net {
	struct virtio_dev vdev;
	uint8_t config[10]; /* mac[6], status (unused), max pairs */
	struct net_policy policy;
	struct net_backend *be;
	struct net_stats stats;

	/* Frames for the guest, oldest at rx_head (net thread only); the
	 * big slots (a backend with takes_gso only) are taken and given
	 * back in the same order. */
	struct net_rx_slot *rx;
	unsigned rx_head, rx_count;
	uint8_t *rx_big;
	unsigned rx_big_head, rx_big_count;
	/* The guest features the backend's offloads follow now (net
	 * thread). */
	uint64_t rx_offloads;

	/* Scratch (net thread, device lock held). */
	struct virtq_chain *chains;
	unsigned max_chains;
	uint8_t tx_buf[VIRTIO_NET_HDR_LEN + NET_GSO_FRAME_MAX];

	/* Rate limits (device lock).  A frame over them waits where it is
	 * (a transmit chain stays in the guest's ring, a received frame in
	 * rx), and the thread comes back at throttle_until (monotonic ns;
	 * 0: nothing waits). */
	struct net_limits limits;
	struct token_bucket tx_bytes, tx_frames, rx_bytes, rx_frames;
	uint64_t throttle_until;

	/* The thread (net_thread.c). */
	const struct vm_control *ctl; /* its filter; stopping the VM */
	int ep;			      /* its epoll: queue notifications */
	int wake_efd;		      /* written to stop or wake it */
	bool stopping;		      /* set before wake_efd: end */
	pthread_t thread;
	bool thread_running;
};

/*
 * A NIC with this MAC, its backend and its policy (both taken over:
 * freed with the device, even if this fails).  The thread starts with
 * virtio_net_start, once the VM is set up.  0 or negative errno, reported.
 */
int virtio_net_create(struct virtio_net *n, const struct virtio_host *host,
		      const struct vm_control *ctl, uint64_t mmio_base,
		      unsigned gsi, const uint8_t mac[6],
		      struct net_backend *be, const struct net_policy *policy)
    __attribute__((warn_unused_result));
void virtio_net_destroy(struct virtio_net *n);

/* A frame from the backend for the guest (net thread), complete, with
 * no header (libslirp's, or one hutch made): queued, or dropped and
 * counted if the ring is full or the frame too big.  A backend with a
 * header of its own reads in place (virtio_net_rx_place). */
void virtio_net_receive(struct virtio_net *n, const uint8_t *frame, size_t len);

/* Reading in place (a backend with takes_gso, net thread): where the
 * next frame goes, its header into iov[0] and the frame (up to
 * NET_GSO_FRAME_MAX) into iov[1], or false while there is no room; then
 * commit the bytes read (header and frame), which queues the frame as
 * virtio_net_receive would, without copying a segmentation frame again. */
bool virtio_net_rx_place(struct virtio_net *n, struct iovec iov[2]);
void virtio_net_rx_commit(struct virtio_net *n, size_t len);

/* Frames the receive ring can still queue (net thread): a backend
 * that can hold back (a TAP) reads no more than this.  With big slots,
 * none while they are all taken (the next frame may need one). */
static inline unsigned virtio_net_rx_room(const struct virtio_net *n)
{
	if (n->rx_big && n->rx_big_count == NET_RX_BIG_SLOTS)
		return 0;
	return NET_RX_SLOTS - n->rx_count;
}

/* The backend's offloads toward the guest brought in line with what the
 * driver acked (net thread, before reading the backend). */
void virtio_net_sync_offloads(struct virtio_net *n);

/* Move queued frames into the guest's receive buffers (net thread,
 * device lock held). */
void virtio_net_rx_pump(struct virtio_net *n);

/* Frames that waited for the rate limits go on where they stopped, both
 * ways (net thread, device lock held). */
void virtio_net_resume(struct virtio_net *n);

/* Change the rate limits (device lock held): buckets full again, and
 * whatever waited is tried at once. */
void virtio_net_set_limits(struct virtio_net *n, const struct net_limits *l);

/* net_thread.c: start and stop the NIC's thread, and wake it (to look
 * at throttle_until again).  0 or negative errno, reported. */
int net_thread_start(struct virtio_net *n) __attribute__((warn_unused_result));
void net_thread_stop(struct virtio_net *n);
void net_thread_wake(struct virtio_net *n);

#endif
