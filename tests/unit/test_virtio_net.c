// SPDX-License-Identifier: MIT
/*
 * virtio-net's receive path over fake guest memory, with a fake backend
 * that takes and gives segmentation (as a TAP): the backend's offloads
 * follow what the driver acked, a 64 KiB segment read in place spans the
 * driver's mergeable buffers whole with its header and num_buffers, and
 * what the driver did not ack, or a big frame that is not a segment, is
 * dropped and counted.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/uio.h>

#include "devices/net/net_backend.h"
#include "devices/net/virtio_net.h"
#include "tests/support/fake_mmio.h"
#include "tests/support/fake_ring.h"
#include "vmm/base/le.h"

FAKE_UBSAN_FATAL()

#define MEM	 (4u << 20)
#define RX_SIZE	 64
#define BUF_LEN	 1526 /* Linux's smallest mergeable buffer: 1518 + header */
#define BUF_GPA	 0x100000u
#define FRAME_SZ 60000u

struct fake_backend {
	struct net_backend be;
	uint64_t offloads;
	unsigned offload_calls;
};

static struct fake_mem fm;
static struct fake_ring rxr, txr;
static struct virtio_net nic;
static struct fake_backend fb;
static uint8_t frame[FRAME_SZ];

static int fb_send(struct net_backend *be, const uint8_t *hdr, const uint8_t *f,
		   size_t len)
{
	(void)be, (void)hdr, (void)f, (void)len;
	return 0;
}

static unsigned fb_poll_fill(struct net_backend *be, struct pollfd *pfd,
			     unsigned max, int *timeout_ms)
{
	(void)be, (void)pfd, (void)max, (void)timeout_ms;
	return 0;
}

static void fb_poll_done(struct net_backend *be, const struct pollfd *pfd,
			 unsigned n, bool error)
{
	(void)be, (void)pfd, (void)n, (void)error;
}

static void fb_print_stats(struct net_backend *be, FILE *out)
{
	(void)be, (void)out;
}

static void fb_destroy(struct net_backend *be)
{
	(void)be; /* static */
}

static int fb_set_offloads(struct net_backend *be, uint64_t features)
{
	struct fake_backend *f = (struct fake_backend *)be;

	f->offloads = features;
	f->offload_calls++;
	return 0;
}

static const struct net_backend_ops fb_ops = {
    .name = "fake",
    .takes_gso = true,
    .set_offloads = fb_set_offloads,
    .send = fb_send,
    .poll_fill = fb_poll_fill,
    .poll_done = fb_poll_done,
    .print_stats = fb_print_stats,
    .destroy = fb_destroy,
};

static void wr(uint64_t off, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	virtio_mmio_write(&nic.vdev, off, b, 4);
}

/* A driver that acks these features (the low word) and VERSION_1. */
static void driver_up(uint32_t features)
{
	const uint32_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	wr(VIRTIO_MMIO_STATUS, 0); /* reset */
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS, s);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, features);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 1);
	wr(VIRTIO_MMIO_STATUS, s | VIRTIO_STATUS_FEATURES_OK);
	fake_ring_init_at(&rxr, &fm, RX_SIZE, 0x1000, 0x3000, 0x4000);
	fake_ring_init_at(&txr, &fm, 16, 0x6000, 0x8000, 0x9000);
	cr_assert(fake_ring_attach(&nic.vdev, NET_RXQ, &rxr));
	cr_assert(fake_ring_attach(&nic.vdev, NET_TXQ, &txr));
	wr(VIRTIO_MMIO_STATUS,
	   s | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	cr_assert(virtio_dev_live(&nic.vdev));
}

/* Receive buffers first .. first + n - 1 (descriptor i at buffer i), of
 * BUF_LEN each, 0xee-filled. */
static void post_buffers(unsigned first, unsigned n)
{
	memset(fake_ptr(&fm, BUF_GPA + (uint64_t)first * BUF_LEN,
			(size_t)n * BUF_LEN),
	       0xee, (size_t)n * BUF_LEN);
	for (unsigned i = first; i < first + n; i++) {
		fake_desc(&rxr, (uint16_t)i, BUF_GPA + (uint64_t)i * BUF_LEN,
			  BUF_LEN, VIRTQ_DESC_F_WRITE, 0);
		fake_publish(&rxr, (uint16_t)i);
	}
}

/* A frame read in place, as the TAP does: header, then len bytes. */
static void tap_reads(const uint8_t hdr[VIRTIO_NET_HDR_LEN], size_t len)
{
	struct iovec iov[2];

	cr_assert(virtio_net_rx_place(&nic, iov), "no room");
	cr_assert_geq(iov[1].iov_len, len);
	memcpy(iov[0].iov_base, hdr, VIRTIO_NET_HDR_LEN);
	memcpy(iov[1].iov_base, frame, len);
	virtio_net_rx_commit(&nic, VIRTIO_NET_HDR_LEN + len);
}

static void setup(void)
{
	struct guest_region r = {.gpa = 0, .size = MEM};
	struct virtio_host host = {.mem = &fm.mem, .vm_fd = -1, .ep = -1};
	struct net_policy pol;
	static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};

	fake_mem_init_regions(&fm, &r, 1);
	memset(&fb, 0, sizeof(fb));
	fb.be.ops = &fb_ops;
	cr_assert_eq(net_policy_init(&pol), 0);
	cr_assert_eq(virtio_net_create(&nic, &host, NULL, 0xd0000000, 5, mac,
				       &fb.be, &pol),
		     0);
	/* An IPv4 TCP segment's headers, then a counting pattern. */
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 7 + 3);
	frame[12] = 0x08, frame[13] = 0x00, frame[14] = 0x45, frame[23] = 6;
}

static void teardown(void)
{
	virtio_net_destroy(&nic);
	fake_mem_fini(&fm);
}

TestSuite(virtio_net, .init = setup, .fini = teardown);

static const uint32_t acked =
    (uint32_t)(VIRTIO_NET_F_MRG_RXBUF | VIRTIO_NET_F_GUEST_CSUM |
	       VIRTIO_NET_F_GUEST_TSO4 | VIRTIO_NET_F_CSUM | VIRTIO_NET_F_MAC);

/* TCPv4 segmentation, a partial checksum at 34 + 16. */
static const uint8_t gso4[VIRTIO_NET_HDR_LEN] = {1,  1, 54, 0, 0xa8, 5,
						 34, 0, 16, 0, 0,    0};

Test(virtio_net, the_backend_s_offloads_follow_the_driver)
{
	virtio_net_sync_offloads(&nic);
	cr_expect_eq(fb.offload_calls, 0, "offloads set with no driver");
	driver_up(acked);
	virtio_net_sync_offloads(&nic);
	cr_expect_eq(fb.offloads,
		     VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_GUEST_TSO4);
	virtio_net_sync_offloads(&nic);
	cr_expect_eq(fb.offload_calls, 1, "set again without a change");
	wr(VIRTIO_MMIO_STATUS, 0); /* the driver resets the device */
	virtio_net_sync_offloads(&nic);
	cr_expect_eq(fb.offloads, 0);
	cr_expect_eq(fb.offload_calls, 2);
}

Test(virtio_net, a_segment_spans_mergeable_buffers_whole)
{
	unsigned need = (VIRTIO_NET_HDR_LEN + FRAME_SZ + BUF_LEN - 1) / BUF_LEN;
	uint8_t got[VIRTIO_NET_HDR_LEN + FRAME_SZ];
	size_t off = 0;

	cr_assert_leq(need, NET_RX_MAX_CHAINS_GSO);
	driver_up(acked);
	post_buffers(0, need - 1);
	tap_reads(gso4, FRAME_SZ);
	virtio_net_rx_pump(&nic);
	cr_expect_eq(fake_used_idx(&rxr), 0, "delivered into too few buffers");
	cr_expect_eq(nic.rx_count, 1, "the frame did not wait");
	post_buffers(need - 1, 1);
	virtio_net_rx_pump(&nic);
	cr_assert_eq(fake_used_idx(&rxr), need);
	for (unsigned i = 0; i < need; i++) {
		uint32_t id, len;

		fake_used_elem(&rxr, (uint16_t)i, &id, &len);
		cr_assert_eq(id, i);
		cr_assert_eq(len, i + 1 < need ? BUF_LEN : sizeof(got) - off);
		fake_read(&fm, BUF_GPA + (uint64_t)i * BUF_LEN, got + off, len);
		off += len;
	}
	cr_assert_eq(off, sizeof(got));
	/* The TAP's header, with num_buffers; then the frame, whole. */
	cr_expect_eq(memcmp(got, gso4, 10), 0);
	cr_expect_eq(get_le16(got + 10), need);
	cr_expect_eq(memcmp(got + VIRTIO_NET_HDR_LEN, frame, FRAME_SZ), 0);
	cr_expect_eq(nic.stats.rx_gso, 1);
	cr_expect_eq(nic.stats.rx_frames, 1);
	cr_expect_eq(nic.stats.rx_bytes, FRAME_SZ);
	cr_expect_eq(nic.rx_big_count, 0, "its big slot was not given back");
}

Test(virtio_net, what_the_driver_did_not_ack_is_dropped_and_counted)
{
	uint8_t hdr[VIRTIO_NET_HDR_LEN];

	/* No GUEST_TSO6: a TCPv6 segment read before the offloads caught
	 * up is dropped at delivery. */
	driver_up(acked);
	post_buffers(0, RX_SIZE);
	memcpy(hdr, gso4, sizeof(hdr));
	hdr[1] = 4;
	tap_reads(hdr, FRAME_SZ);
	/* A big frame without segmentation: dropped when read. */
	memset(hdr, 0, sizeof(hdr));
	tap_reads(hdr, 4000);
	/* A small frame with DATA_VALID passes, its flag kept. */
	hdr[0] = 2;
	tap_reads(hdr, 100);
	virtio_net_rx_pump(&nic);
	cr_expect_eq(nic.stats.rx_dropped, 2);
	cr_expect_eq(nic.stats.rx_frames, 1);
	cr_assert_eq(fake_used_idx(&rxr), 1);
	cr_expect_eq(*(uint8_t *)fake_ptr(&fm, BUF_GPA, 1), 2);
	cr_expect_eq(memcmp(fake_ptr(&fm, BUF_GPA + VIRTIO_NET_HDR_LEN, 100),
			    frame, 100),
		     0);
	/* Without GUEST_TSO4 too, the v4 segment goes the same way. */
	driver_up((uint32_t)(VIRTIO_NET_F_MRG_RXBUF | VIRTIO_NET_F_GUEST_CSUM));
	post_buffers(0, RX_SIZE);
	tap_reads(gso4, FRAME_SZ);
	virtio_net_rx_pump(&nic);
	cr_expect_eq(fake_used_idx(&rxr), 0);
	cr_expect_eq(nic.stats.rx_dropped, 3);
	cr_expect_eq(nic.rx_big_count, 0);
}

Test(virtio_net, big_slots_bound_what_waits)
{
	struct iovec iov[2];

	driver_up(acked);
	/* No buffers: segments wait, four at most, then no room. */
	for (unsigned i = 0; i < NET_RX_BIG_SLOTS; i++)
		tap_reads(gso4, FRAME_SZ);
	cr_expect_not(virtio_net_rx_place(&nic, iov));
	cr_expect_eq(virtio_net_rx_room(&nic), 0);
	/* The driver resets: what waited is dropped, room again. */
	wr(VIRTIO_MMIO_STATUS, 0);
	virtio_net_rx_pump(&nic);
	cr_expect_eq(nic.stats.rx_dropped, NET_RX_BIG_SLOTS);
	cr_expect(virtio_net_rx_place(&nic, iov));
}
