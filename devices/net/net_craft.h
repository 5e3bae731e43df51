/* SPDX-License-Identifier: MIT */
/* Frames hutch puts on the guest's link itself (net_craft.c). */
#ifndef HUTCH_NET_CRAFT_H
#define HUTCH_NET_CRAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/net/net_policy.h"

/* A UDP datagram carrying payload back to the sender of the guest's
 * datagram frame (flow f).  Its length, or -1 if out is too small. */
int net_craft_udp_reply(const uint8_t *frame, const struct net_flow *f,
			const uint8_t *payload, size_t plen, uint8_t *out,
			size_t out_len);

/* A TCP reset for the guest's segment frame (flow f): to the guest as if
 * from the peer (to_guest), or onward to the peer as if from the guest.
 * Its length, or -1. */
int net_craft_tcp_rst(const uint8_t *frame, const struct net_flow *f,
		      bool to_guest, uint8_t *out, size_t out_len);

/*
 * A guest frame's virtio-net header (VIRTIO_NET_HDR_LEN bytes): refuse
 * unknown flags, and segmentation unless gso_ok (then only TCPv4/v6,
 * without ECN, with a checksum request inside the frame and a segment
 * size; the backend segments and completes the checksums).  Otherwise
 * complete a checksum the guest left to the device (NEEDS_CSUM: from
 * csum_start to the end, stored at csum_start + csum_offset, the
 * pseudo-header's sum already there; virtio 1.x 5.1.6.2) and clear the
 * request from the header.  False: drop the frame.
 */
bool net_tx_hdr_apply(uint8_t *hdr, uint8_t *frame, size_t len, bool gso_ok);

/*
 * The virtio-net header a backend (a TAP) put before a frame of len bytes
 * for the guest: may it go to a driver that acked checksum offload
 * (csum_ok: GUEST_CSUM) and TCP receive segmentation (tso4_ok, tso6_ok:
 * GUEST_TSO4/6)?  Only NEEDS_CSUM and DATA_VALID flags, a checksum
 * request inside the frame, segmentation only as TCPv4/v6 without ECN,
 * acked, with a segment size and a checksum request.  The offloads are
 * turned on only for a driver that acked them, but frames read before a
 * reset may still carry them.  False: drop the frame.
 */
bool net_rx_hdr_check(const uint8_t *hdr, size_t len, bool csum_ok,
		      bool tso4_ok, bool tso6_ok);

#endif
