/* SPDX-License-Identifier: MIT */
/*
 * What a NIC's backend is to the device: where the guest's frames go
 * and where frames for the guest come from.  Everything here runs on the
 * NIC's thread (net_thread.c), which polls the backend's descriptors
 * beside the device's own.
 */
#ifndef HUTCH_NET_BACKEND_H
#define HUTCH_NET_BACKEND_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct virtio_net;
struct net_backend;

struct net_backend_ops {
	const char *name;
	/* It takes TCP segmentation frames (up to 64 KiB) with their
	 * header, and segments them itself, and gives them with
	 * set_offloads: the device offers the guest HOST_TSO4/6 and
	 * GUEST_TSO4/6. */
	bool takes_gso;
	/* Frames for the guest from now on may carry what these acked
	 * virtio-net features allow (GUEST_CSUM, GUEST_TSO4/6; 0: none,
	 * complete checksums, MTU-sized).  0 or negative errno. */
	int (*set_offloads)(struct net_backend *be, uint64_t features);
	/* May the guest open another flow (a TCP SYN, any UDP datagram)
	 * now?  NULL: always.  False: the frame is dropped and counted
	 * (tx_flow_full), and the guest's retries go through once the
	 * backend's older flows closed or expired. */
	bool (*new_flow_ok)(struct net_backend *be);
	/* A frame from the guest, checked and allowed.  hdr: NULL (a frame
	 * hutch made), or the guest's virtio-net header, stored right
	 * before the frame (frame == hdr + VIRTIO_NET_HDR_LEN), its
	 * checksum request already done unless the frame is a TCP
	 * segmentation (GSO) frame, which only a backend with takes_gso
	 * gets.  0, or negative errno (the frame is dropped and counted). */
	int (*send)(struct net_backend *be, const uint8_t *hdr,
		    const uint8_t *frame, size_t len);
	/* Before the thread sleeps: the descriptors to watch, at most max,
	 * into pfd (how many), and *timeout_ms lowered to the backend's
	 * next timer (-1: none). */
	unsigned (*poll_fill)(struct net_backend *be, struct pollfd *pfd,
			      unsigned max, int *timeout_ms);
	/* After it woke: the same descriptors with their revents (error:
	 * poll itself failed).  Frames for the guest go to
	 * virtio_net_receive(be->nic, ...),
	 * or, with a header, virtio_net_rx_place/commit. */
	void (*poll_done)(struct net_backend *be, const struct pollfd *pfd,
			  unsigned n, bool error);
	/* --stats: its own counters, appended to the NIC's line. */
	void (*print_stats)(struct net_backend *be, FILE *out);
	void (*destroy)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	struct virtio_net *nic; /* set by virtio_net_create */
};

#endif
