// SPDX-License-Identifier: MIT
/*
 * The virtio-mmio transport as a driver sees it: registers, the status
 * state machine, feature negotiation, queue set-up windows, config space,
 * and DEVICE_NEEDS_RESET for a driver that breaks the ring protocol.  A
 * tiny fake device exercises the transport alone; the real virtio-blk
 * device is then driven end to end over a temporary file.  No KVM:
 * interrupts are counted on the device's irq eventfd.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/blk/cow.h"
#include "devices/virtio/virtio.h"
#include "devices/blk/virtio_blk.h"
#include "tests/support/capture.h"
#include "tests/support/fake_mmio.h"
#include "tests/support/fake_ring.h"
#include "vmm/base/le.h"

FAKE_UBSAN_FATAL()

#define ACK  VIRTIO_STATUS_ACKNOWLEDGE
#define DRV  VIRTIO_STATUS_DRIVER
#define FOK  VIRTIO_STATUS_FEATURES_OK
#define DOK  VIRTIO_STATUS_DRIVER_OK
#define NR   VIRTIO_STATUS_NEEDS_RESET
#define FAIL VIRTIO_STATUS_FAILED

#define FAKE_ID	      42
#define FAKE_QMAX     16
#define FAKE_FEATURE  (1ull << 3)
#define FAKE_FEATURES (FAKE_FEATURE | VIRTIO_F_EVENT_IDX)
#define DATA	      0x80000u

static struct fake_mem fm;

/* ---- register access ---- */

static uint32_t rd(struct virtio_dev *d, uint64_t off)
{
	uint8_t b[4];

	virtio_mmio_read(d, off, b, 4);
	return get_le32(b);
}

static void wr(struct virtio_dev *d, uint64_t off, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	virtio_mmio_write(d, off, b, 4);
}

static uint64_t irq_count(struct virtio_dev *d)
{
	uint64_t v;

	return read(d->irq_fd, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

static void ack_features(struct virtio_dev *d, uint64_t f)
{
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
}

static void setup_queue(struct virtio_dev *d, unsigned q,
			const struct fake_ring *r)
{
	fake_ring_attach(d, q, r);
}

/* The initialisation sequence of virtio 3.1.1, checked at each step. */
static void init_device(struct virtio_dev *d, uint64_t features,
			const struct fake_ring *rings, unsigned nq)
{
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), 0);
	wr(d, VIRTIO_MMIO_STATUS, ACK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV);
	ack_features(d, features);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV | FOK);
	for (unsigned q = 0; q < nq; q++) {
		setup_queue(d, q, &rings[q]);
		cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 1, "queue %u", q);
	}
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);
}

/* ---- the fake device ---- */

struct fdev {
	struct virtio_dev vdev;
	uint8_t config[8];
	unsigned handled[2];
	unsigned activations, resets;
	bool refuse_activate;
	struct virtq_chain chain;
};

static struct fdev *to_fdev(struct virtio_dev *d)
{
	return container_of(d, struct fdev, vdev);
}

static const uint8_t *fdev_config(struct virtio_dev *d, uint32_t *len)
{
	*len = sizeof(to_fdev(d)->config);
	return to_fdev(d)->config;
}

static int fdev_activate(struct virtio_dev *d)
{
	to_fdev(d)->activations++;
	return to_fdev(d)->refuse_activate ? -EIO : 0;
}

/* Complete every chain, reporting its writable length as written. */
static void fdev_notify(struct virtio_dev *d, unsigned q)
{
	struct fdev *f = to_fdev(d);
	struct virtq *vq = &d->queues[q];

	for (;;) {
		int ret = virtq_pop(vq, &f->chain);

		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_dev_broken(d, vq->error);
			return;
		}
		virtq_push(vq, f->chain.head, (uint32_t)f->chain.writable_len);
		f->handled[q]++;
	}
	virtio_dev_queue_done(d, q);
}

static void fdev_reset(struct virtio_dev *d)
{
	to_fdev(d)->resets++;
}

static const struct virtio_dev_ops fdev_ops = {
    .name = "fake",
    .device_id = FAKE_ID,
    .num_queues = 2,
    .queue_max = FAKE_QMAX,
    .config = fdev_config,
    .activate = fdev_activate,
    .queue_notify = fdev_notify,
    .reset = fdev_reset,
};

static struct fdev *fa, *fb;	      /* two instances */
static struct fake_ring ra[2], rb[2]; /* their queues */

static struct fdev *new_fdev(unsigned n, struct fake_ring *rings)
{
	struct fdev *f = calloc(1, sizeof(*f));
	struct virtio_host host = {.mem = &fm.mem, .vm_fd = -1, .ep = -1};

	cr_assert_not_null(f);
	for (unsigned i = 0; i < sizeof(f->config); i++)
		f->config[i] = (uint8_t)(0x11 * (i + 1));
	cr_assert_eq(virtio_dev_init(&f->vdev, &fdev_ops, FAKE_FEATURES, &host,
				     0xd0000000 + 0x1000 * n, 5 + n),
		     0);
	for (unsigned q = 0; q < 2; q++) {
		uint64_t base = 0x20000 + (uint64_t)(2 * n + q) * 0x4000;

		fake_ring_init_at(&rings[q], &fm, FAKE_QMAX, base,
				  base + 0x1000, base + 0x2000);
	}
	return f;
}

static void setup(void)
{
	fake_mem_init(&fm);
	fa = new_fdev(0, ra);
	fb = new_fdev(1, rb);
}

static void teardown(void)
{
	virtio_dev_destroy(&fa->vdev);
	virtio_dev_destroy(&fb->vdev);
	free(fa);
	free(fb);
	fake_mem_fini(&fm);
}

TestSuite(virtio_mmio, .init = setup, .fini = teardown);

/* A well-formed request on ring r: 16 readable bytes, 8 writable. */
static void good_chain(struct fake_ring *r, unsigned n)
{
	fake_desc(r, 0, DATA + 0x100 * n, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(r, 1, DATA + 0x100 * n + 0x40, 8, VIRTQ_DESC_F_WRITE, 0);
	fake_publish(r, 0);
}

Test(virtio_mmio, identity_registers)
{
	struct virtio_dev *d = &fa->vdev;

	cr_assert_eq(rd(d, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	cr_assert_eq(rd(d, VIRTIO_MMIO_VERSION), 2);
	cr_assert_eq(rd(d, VIRTIO_MMIO_DEVICE_ID), FAKE_ID);
	cr_assert_eq(rd(d, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_DEVICE_FEATURES),
		     (uint32_t)FAKE_FEATURES);
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	cr_assert_eq(rd(d, VIRTIO_MMIO_DEVICE_FEATURES),
		     (uint32_t)(VIRTIO_F_VERSION_1 >> 32));
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	cr_assert_eq(rd(d, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	wr(d, VIRTIO_MMIO_QUEUE_SEL, 1);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX), FAKE_QMAX);
	wr(d, VIRTIO_MMIO_QUEUE_SEL, 2);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_CONFIG_GENERATION), 0);
	/* Write-only and reserved registers read as 0. */
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_NOTIFY), 0);
	cr_assert_eq(rd(d, 0x0c0), 0);
}

Test(virtio_mmio, legal_init_reaches_driver_ok_and_runs_queues)
{
	struct virtio_dev *d = &fa->vdev;
	uint32_t id, len;

	init_device(d, VIRTIO_F_VERSION_1 | FAKE_FEATURE, ra, 2);
	cr_assert_eq(fa->activations, 1);
	cr_assert(virtio_dev_live(d));
	cr_assert_eq(d->acked, VIRTIO_F_VERSION_1 | FAKE_FEATURE);
	cr_assert_not(d->queues[0].event_idx, "EVENT_IDX was not acked");

	good_chain(&ra[1], 0);
	virtio_dev_notify(d, 1);
	cr_assert_eq(fa->handled[1], 1);
	cr_assert_eq(fake_used_idx(&ra[1]), 1);
	fake_used_elem(&ra[1], 0, &id, &len);
	cr_assert_eq(id, 0);
	cr_assert_eq(len, 8);
	cr_assert_eq(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_VRING);
	cr_assert_eq(irq_count(d), 1);
	wr(d, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_VRING);
	cr_assert_eq(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(fa->handled[0], 0);
}

Test(virtio_mmio, event_idx_negotiated_reaches_the_queues)
{
	struct virtio_dev *d = &fa->vdev;

	init_device(d, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX, ra, 1);
	cr_assert(d->queues[0].event_idx);
	cr_assert_not(d->queues[0].indirect, "INDIRECT_DESC not offered");
	/* An empty run asks the driver to notify at entry 0. */
	virtio_dev_notify(d, 0);
	cr_assert_eq(fake_avail_event(&ra[0]), 0);
	good_chain(&ra[0], 0);
	virtio_dev_notify(d, 0);
	cr_assert_eq(fa->handled[0], 1);
	cr_assert_eq(fake_avail_event(&ra[0]), 1);
}

Test(virtio_mmio, illegal_status_transitions_are_ignored)
{
	struct virtio_dev *d = &fa->vdev;

	wr(d, VIRTIO_MMIO_STATUS, DRV); /* skips ACKNOWLEDGE */
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), 0);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV); /* two steps at once */
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), 0);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), 0);
	wr(d, VIRTIO_MMIO_STATUS, ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | DOK); /* DRIVER_OK early */
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV);
	wr(d, VIRTIO_MMIO_STATUS, ACK); /* clearing a bit */
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | NR); /* NEEDS_RESET is ours */
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV);
	wr(d, VIRTIO_MMIO_STATUS, ACK | FAIL); /* FAILED, but DRIVER dropped */
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV);
	cr_assert_eq(fa->activations, 0);
	/* FAILED may be added at any time; after it, nothing moves. */
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FAIL);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV | FAIL);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | FAIL);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV | FAIL);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV | FAIL);
	cr_assert_not(virtio_dev_live(d));
}

Test(virtio_mmio, features_ok_refused_without_version_1)
{
	struct virtio_dev *d = &fa->vdev;

	wr(d, VIRTIO_MMIO_STATUS, ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, FAKE_FEATURE); /* a legacy driver */
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV,
		     "FEATURES_OK must read back clear");
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV);
	ack_features(d, FAKE_FEATURE | VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV | FOK);
}

Test(virtio_mmio, acked_features_are_masked_by_offered)
{
	struct virtio_dev *d = &fa->vdev;

	wr(d, VIRTIO_MMIO_STATUS, ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, ~0ull);
	cr_assert_eq(d->acked, FAKE_FEATURES | VIRTIO_F_VERSION_1,
		     "acked 0x%llx", (unsigned long long)d->acked);
	/* Selector beyond the two feature words: ignored. */
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	cr_assert_eq(d->acked, FAKE_FEATURES | VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	setup_queue(d, 0, &ra[0]);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	cr_assert(d->queues[0].event_idx);
	cr_assert_not(d->queues[0].indirect,
		      "INDIRECT_DESC acked although never offered");
}

Test(virtio_mmio, driver_features_only_while_negotiating)
{
	struct virtio_dev *d = &fa->vdev;

	wr(d, VIRTIO_MMIO_STATUS, ACK);
	ack_features(d, VIRTIO_F_VERSION_1); /* before DRIVER */
	cr_assert_eq(d->acked, 0);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	ack_features(d, VIRTIO_F_VERSION_1 | FAKE_FEATURES); /* too late */
	cr_assert_eq(d->acked, VIRTIO_F_VERSION_1);
	ack_features(d, 0);
	cr_assert_eq(d->acked, VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	ack_features(d, 0);
	cr_assert_eq(d->acked, VIRTIO_F_VERSION_1);
}

Test(virtio_mmio, queue_registers_ignored_before_features_ok)
{
	struct virtio_dev *d = &fa->vdev;

	wr(d, VIRTIO_MMIO_STATUS, ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, VIRTIO_F_VERSION_1);
	setup_queue(d, 0, &ra[0]);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0);
	cr_assert_eq(d->queues[0].size, 0);
	cr_assert_eq(d->queues[0].desc_gpa, 0);
	cr_assert_eq(d->queues[0].avail_gpa, 0);
	cr_assert_eq(d->queues[0].used_gpa, 0);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	setup_queue(d, 0, &ra[0]);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 1);
	cr_assert_eq(d->queues[0].desc_gpa, ra[0].desc_gpa);
}

Test(virtio_mmio, queue_registers_ignored_after_driver_ok)
{
	struct virtio_dev *d = &fa->vdev;
	struct virtq before;

	init_device(d, VIRTIO_F_VERSION_1, ra, 1);
	before = d->queues[0];
	wr(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(d, VIRTIO_MMIO_QUEUE_NUM, 8);
	wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x12340);
	wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 1);
	wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, 0x50000);
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, 0x60000);
	wr(d, VIRTIO_MMIO_QUEUE_READY, 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 1);
	cr_assert_eq(memcmp(&before, &d->queues[0], sizeof(before)), 0,
		     "running queue changed after DRIVER_OK");
	/* A queue left unconfigured cannot be started late either. */
	setup_queue(d, 1, &ra[1]);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0);
	cr_assert_eq(d->queues[1].size, 0);
}

Test(virtio_mmio, running_queue_registers_frozen_before_driver_ok)
{
	/* Between FEATURES_OK and DRIVER_OK, a ready queue is not changed
	 * under the device; making it not ready unfreezes it. */
	struct virtio_dev *d = &fa->vdev;

	wr(d, VIRTIO_MMIO_STATUS, ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	setup_queue(d, 0, &ra[0]);
	wr(d, VIRTIO_MMIO_QUEUE_NUM, 8);
	wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x12340);
	cr_assert_eq(d->queues[0].size, FAKE_QMAX);
	cr_assert_eq(d->queues[0].desc_gpa, ra[0].desc_gpa);
	wr(d, VIRTIO_MMIO_QUEUE_READY, 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0);
	wr(d, VIRTIO_MMIO_QUEUE_NUM, 8);
	cr_assert_eq(d->queues[0].size, 8);
}

Test(virtio_mmio, oversized_queue_sel_is_harmless)
{
	struct virtio_dev *d = &fa->vdev;
	const uint32_t sels[] = {2, 3, 4, 255, 0x80000000u, 0xffffffffu};
	struct virtq before[VIRTIO_MAX_QUEUES];

	wr(d, VIRTIO_MMIO_STATUS, ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	memcpy(before, d->queues, sizeof(before));
	for (unsigned i = 0; i < sizeof(sels) / sizeof(sels[0]); i++) {
		wr(d, VIRTIO_MMIO_QUEUE_SEL, sels[i]);
		cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
		setup_queue(d, sels[i], &ra[0]);
		cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0);
		wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, sels[i]);
	}
	cr_assert_eq(memcmp(before, d->queues, sizeof(before)), 0,
		     "a queue changed through an out-of-range QueueSel");
	/* The notify eventfds of the real queues were not written. */
	for (unsigned q = 0; q < 2; q++) {
		uint64_t v;

		cr_assert_eq(read(d->notify[q].fd, &v, sizeof(v)), -1);
	}
}

Test(virtio_mmio, bad_queue_sizes_and_addresses_leave_queue_not_ready)
{
	struct virtio_dev *d = &fa->vdev;
	const uint32_t sizes[] = {0, 3, 12, 32, 1024, 0x10010};

	wr(d, VIRTIO_MMIO_STATUS, ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	setup_queue(d, 0, &ra[0]);
	wr(d, VIRTIO_MMIO_QUEUE_READY, 0);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		wr(d, VIRTIO_MMIO_QUEUE_NUM, sizes[i]);
		wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
		cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0,
			     "QueueNum %u accepted", sizes[i]);
	}
	wr(d, VIRTIO_MMIO_QUEUE_NUM, 8); /* smaller than the max is fine */
	wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)ra[0].desc_gpa + 8);
	wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0, "misaligned table");
	wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)ra[0].desc_gpa);
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 1); /* used ring beyond RAM */
	wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 0, "used ring off RAM");
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
	wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	cr_assert_eq(rd(d, VIRTIO_MMIO_QUEUE_READY), 1);
	cr_assert_eq(d->queues[0].size, 8);
}

static void cfg_read(struct virtio_dev *d, uint64_t off, uint8_t *out,
		     unsigned len)
{
	memset(out, 0xaa, 8);
	virtio_mmio_read(d, VIRTIO_MMIO_CONFIG + off, out, len);
}

Test(virtio_mmio, config_space_reads_within_bounds)
{
	struct virtio_dev *d = &fa->vdev;
	uint8_t b[8];

	cfg_read(d, 0, b, 1);
	cr_assert_eq(b[0], 0x11);
	cr_assert_eq(b[1], 0xaa, "wrote past the access width");
	cfg_read(d, 2, b, 2);
	cr_assert_eq(get_le16(b), 0x4433);
	cfg_read(d, 4, b, 4);
	cr_assert_eq(get_le32(b), 0x88776655);
	cfg_read(d, 0, b, 8);
	cr_assert_eq(get_le64(b), 0x8877665544332211ull);
	cfg_read(d, 7, b, 1);
	cr_assert_eq(b[0], 0x88);
}

Test(virtio_mmio, config_space_reads_beyond_are_zeros)
{
	struct virtio_dev *d = &fa->vdev;
	const uint64_t offs[] = {8,
				 9,
				 0x100,
				 0xeff,
				 0x7fffffffffffffffull,
				 UINT64_MAX - VIRTIO_MMIO_CONFIG - 7,
				 UINT64_MAX - VIRTIO_MMIO_CONFIG};
	const unsigned widths[] = {1, 2, 4, 8};
	uint8_t b[8];

	for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		for (unsigned w = 0; w < 4; w++) {
			cfg_read(d, offs[i], b, widths[w]);
			for (unsigned k = 0; k < widths[w]; k++)
				cr_assert_eq(b[k], 0, "off 0x%llx width %u",
					     (unsigned long long)offs[i],
					     widths[w]);
		}
	/* Straddling the end: all zeros, not a partial copy. */
	cfg_read(d, 6, b, 4);
	cr_assert_eq(get_le32(b), 0);
	cfg_read(d, 1, b, 8);
	cr_assert_eq(get_le64(b), 0);
}

Test(virtio_mmio, config_space_is_read_only)
{
	struct virtio_dev *d = &fa->vdev;
	uint8_t v[4] = {1, 2, 3, 4}, b[8];

	virtio_mmio_write(d, VIRTIO_MMIO_CONFIG, v, 4);
	virtio_mmio_write(d, VIRTIO_MMIO_CONFIG + 4, v, 1);
	cfg_read(d, 0, b, 8);
	cr_assert_eq(get_le64(b), 0x8877665544332211ull);
}

Test(virtio_mmio, non_32bit_register_accesses_are_ignored)
{
	struct virtio_dev *d = &fa->vdev;
	uint8_t b[8], one[8] = {ACK};

	memset(b, 0xaa, sizeof(b));
	virtio_mmio_read(d, VIRTIO_MMIO_MAGIC_VALUE, b, 2);
	cr_assert_eq(get_le16(b), 0);
	cr_assert_eq(b[2], 0xaa);
	virtio_mmio_read(d, VIRTIO_MMIO_MAGIC_VALUE, b, 8);
	cr_assert_eq(get_le64(b), 0);
	virtio_mmio_read(d, VIRTIO_MMIO_MAGIC_VALUE, b, 1);
	cr_assert_eq(b[0], 0);
	virtio_mmio_read(d, VIRTIO_MMIO_MAGIC_VALUE + 1, b, 4);
	cr_assert_eq(get_le32(b), 0);

	virtio_mmio_write(d, VIRTIO_MMIO_STATUS, one, 1);
	virtio_mmio_write(d, VIRTIO_MMIO_STATUS, one, 2);
	virtio_mmio_write(d, VIRTIO_MMIO_STATUS, one, 8);
	virtio_mmio_write(d, VIRTIO_MMIO_STATUS + 2, one, 4);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), 0);
	virtio_mmio_write(d, VIRTIO_MMIO_STATUS, one, 4);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK);
	/* Reads through the bus ops agree. */
	virtio_mmio_bus_ops.read(d, VIRTIO_MMIO_STATUS, b, 4);
	cr_assert_eq(get_le32(b), ACK);
}

Test(virtio_mmio, reset_clears_everything)
{
	struct virtio_dev *d = &fa->vdev;
	uint32_t id, len;

	init_device(d, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX, ra, 2);
	good_chain(&ra[0], 0);
	virtio_dev_notify(d, 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_VRING);
	wr(d, VIRTIO_MMIO_QUEUE_SEL, 1);
	wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);

	wr(d, VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(fa->resets, 1);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert_eq(d->acked, 0);
	cr_assert_eq(d->queue_sel, 0);
	cr_assert_eq(d->dev_features_sel, 0);
	cr_assert_eq(d->drv_features_sel, 0);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		cr_assert_not(d->queues[q].ready);
		cr_assert_eq(d->queues[q].size, 0);
		cr_assert_eq(d->queues[q].desc_gpa, 0);
		cr_assert_eq(d->queues[q].last_avail, 0);
		cr_assert_eq(d->queues[q].used_idx, 0);
	}
	cr_assert_not(virtio_dev_live(d));
	/* Nothing runs until the driver starts over... */
	good_chain(&ra[0], 0);
	virtio_dev_notify(d, 0);
	cr_assert_eq(fa->handled[0], 1);
	/* ...and then from index 0 of fresh rings. */
	fake_ring_init_at(&ra[0], &fm, FAKE_QMAX, ra[0].desc_gpa,
			  ra[0].avail_gpa, ra[0].used_gpa);
	init_device(d, VIRTIO_F_VERSION_1, ra, 1);
	good_chain(&ra[0], 1);
	virtio_dev_notify(d, 0);
	cr_assert_eq(fa->handled[0], 2);
	cr_assert_eq(fake_used_idx(&ra[0]), 1);
	fake_used_elem(&ra[0], 0, &id, &len);
	cr_assert_eq(len, 8);
}

Test(virtio_mmio, notify_before_driver_ok_does_nothing)
{
	struct virtio_dev *d = &fa->vdev;

	wr(d, VIRTIO_MMIO_STATUS, ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	setup_queue(d, 0, &ra[0]);
	good_chain(&ra[0], 0);
	virtio_dev_notify(d, 0);
	virtio_dev_notify(d, 7); /* no such queue */
	cr_assert_eq(fa->handled[0], 0);
	cr_assert_eq(fake_used_idx(&ra[0]), 0);
}

Test(virtio_mmio, queue_notify_register_kicks_the_eventfd)
{
	struct virtio_dev *d = &fa->vdev;
	uint64_t v = 0;

	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	cr_assert_eq(read(d->notify[1].fd, &v, sizeof(v)), sizeof(v));
	cr_assert_eq(v, 2);
	cr_assert_eq(read(d->notify[0].fd, &v, sizeof(v)), -1);
}

Test(virtio_mmio, config_change_interrupts_only_a_live_device)
{
	struct virtio_dev *d = &fa->vdev;

	virtio_dev_config_changed(d);
	cr_assert_eq(rd(d, VIRTIO_MMIO_CONFIG_GENERATION), 1);
	cr_assert_eq(irq_count(d), 0);
	init_device(d, VIRTIO_F_VERSION_1, ra, 1);
	virtio_dev_config_changed(d);
	cr_assert_eq(rd(d, VIRTIO_MMIO_CONFIG_GENERATION), 2);
	cr_assert_eq(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	cr_assert_eq(irq_count(d), 1);
}

Test(virtio_mmio, hostile_ring_breaks_only_its_device)
{
	struct virtio_dev *a = &fa->vdev, *b = &fb->vdev;

	init_device(a, VIRTIO_F_VERSION_1, ra, 2);
	init_device(b, VIRTIO_F_VERSION_1, rb, 2);

	/* Device a, queue 0: one good chain, then a descriptor loop. */
	good_chain(&ra[0], 0);
	fake_desc(&ra[0], 5, DATA, 16, VIRTQ_DESC_F_NEXT, 5);
	fake_publish(&ra[0], 5);
	virtio_dev_notify(a, 0);
	cr_assert_eq(fa->handled[0], 1, "the good chain before it runs");
	cr_assert_eq(rd(a, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK | NR);
	cr_assert(rd(a, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	cr_assert_eq(irq_count(a), 1, "one config interrupt");
	cr_assert_not(virtio_dev_live(a));
	wr(a, VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(a, VIRTIO_MMIO_QUEUE_READY), 0);

	/* The broken device does nothing more, on any queue. */
	good_chain(&ra[1], 1);
	virtio_dev_notify(a, 1);
	virtio_dev_notify(a, 0);
	cr_assert_eq(fa->handled[1], 0);
	cr_assert_eq(irq_count(a), 0, "no second interrupt");
	/* A driver trying to carry on cannot clear NEEDS_RESET. */
	wr(a, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	cr_assert(rd(a, VIRTIO_MMIO_STATUS) & NR);

	/* The other instance is untouched and works. */
	cr_assert_eq(rd(b, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);
	good_chain(&rb[0], 2);
	virtio_dev_notify(b, 0);
	cr_assert_eq(fb->handled[0], 1);
	cr_assert_eq(fake_used_idx(&rb[0]), 1);
	cr_assert_eq(irq_count(b), 1);

	/* Reset brings the broken one back. */
	wr(a, VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(rd(a, VIRTIO_MMIO_STATUS), 0);
	fake_ring_init_at(&ra[0], &fm, FAKE_QMAX, ra[0].desc_gpa,
			  ra[0].avail_gpa, ra[0].used_gpa);
	init_device(a, VIRTIO_F_VERSION_1, ra, 1);
	good_chain(&ra[0], 3);
	virtio_dev_notify(a, 0);
	cr_assert_eq(fa->handled[0], 2);
}

/* A driver that breaks its device and resets it, again and again: one
 * warning in hutch's log for the device's lifetime, every break counted. */
Test(virtio_mmio, break_and_reset_loops_are_logged_once)
{
	struct virtio_dev *d = &fa->vdev;
	char *log;

	capture_stderr_begin();
	for (int i = 0; i < 100; i++) {
		wr(d, VIRTIO_MMIO_STATUS, ACK);
		wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
		ack_features(d, VIRTIO_F_VERSION_1);
		wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
		setup_queue(d, 0, &ra[0]);
		wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
		pthread_mutex_lock(&d->lock);
		virtio_dev_broken(d, "test");
		pthread_mutex_unlock(&d->lock);
		cr_assert(rd(d, VIRTIO_MMIO_STATUS) & NR);
		wr(d, VIRTIO_MMIO_STATUS, 0);
	}
	log = capture_stderr_end();
	cr_assert_eq(count_occurrences(log, "guest driver error"), 1, "%s",
		     log);
	cr_assert_eq(d->breaks, 100);
	free(log);
}

Test(virtio_mmio, refused_activation_needs_reset)
{
	struct virtio_dev *d = &fa->vdev;

	fa->refuse_activate = true;
	wr(d, VIRTIO_MMIO_STATUS, ACK);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	ack_features(d, VIRTIO_F_VERSION_1);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	setup_queue(d, 0, &ra[0]);
	wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	cr_assert_eq(fa->activations, 1);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK | NR);
	cr_assert_eq(irq_count(d), 1);
	good_chain(&ra[0], 0);
	virtio_dev_notify(d, 0);
	cr_assert_eq(fa->handled[0], 0);
}

/* ---- the real virtio-blk device over a temporary file ---- */

#define BLK_SIZE   (64u << 10) /* 128 sectors */
#define BLK_SERIAL "hutch-serial-0001"
#define HDR_GPA	   0x18000u
#define STATUS_GPA 0x18100u
#define BUF_GPA	   0x40000u /* page aligned: O_DIRECT-able */

static struct virtio_blk *blk;
static struct fake_ring bring;
static char blk_path[64];
static int blk_fd = -1; /* the test's own view of the image */
static uint16_t blk_used;

static uint8_t image_byte(uint64_t i)
{
	return (uint8_t)(i * 31 + (i >> 9));
}

/* A temporary file in /var/tmp (O_DIRECT works there, unlike tmpfs). */
static int temp_file(char *path, size_t len, const char *tag)
{
	int fd;

	snprintf(path, len, "/var/tmp/hutch-test-%s-XXXXXX", tag);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	return fd;
}

/* The device on cfg's files, with ram bytes of fake RAM and a queue of
 * qsize entries, driven to DRIVER_OK. */
static void blk_start(const struct drive_config *cfg, uint64_t ram,
		      uint16_t qsize)
{
	struct virtio_host host = {.mem = &fm.mem, .vm_fd = -1, .ep = -1};
	struct guest_region region = {.gpa = 0, .size = ram};
	int ret;

	fake_mem_init_regions(&fm, &region, 1);
	blk = calloc(1, sizeof(*blk));
	cr_assert_not_null(blk);
	ret = virtio_blk_create(blk, cfg, 0, &host, 0xd0000000, 5);
	cr_assert_eq(ret, 0);
	blk_used = 0;
	fake_ring_init(&bring, &fm, qsize);
	init_device(&blk->vdev, VIRTIO_F_VERSION_1, &bring, 1);
}

static void blk_open(bool read_only)
{
	struct drive_config cfg = {
	    .path = blk_path, .serial = BLK_SERIAL, .read_only = read_only};
	uint8_t *img = malloc(BLK_SIZE);

	blk_fd = temp_file(blk_path, sizeof(blk_path), "blk");
	cr_assert_not_null(img);
	for (uint32_t i = 0; i < BLK_SIZE; i++)
		img[i] = image_byte(i);
	cr_assert_eq(pwrite(blk_fd, img, BLK_SIZE, 0), BLK_SIZE);
	free(img);
	blk_start(&cfg, FAKE_RAM_SIZE, 16);
	unlink(blk_path); /* open fds keep it while the test runs */
}

static void blk_setup(void)
{
	blk_open(false);
}

static void blk_setup_ro(void)
{
	blk_open(true);
}

static void blk_teardown(void)
{
	virtio_blk_destroy(blk);
	free(blk);
	close(blk_fd);
	fake_mem_fini(&fm);
}

TestSuite(virtio_blk, .init = blk_setup, .fini = blk_teardown);
TestSuite(virtio_blk_ro, .init = blk_setup_ro, .fini = blk_teardown);

/* Wait until the device has used blk_used chains (AIO completes on its
 * eventfd; without an event loop the test reaps it). */
static void blk_wait(void)
{
	for (int i = 0; i < 500 && fake_used_idx(&bring) != blk_used; i++) {
		struct pollfd p = {.fd = blk->aio.efd, .events = POLLIN};

		poll(&p, 1, 10);
		pthread_mutex_lock(&blk->vdev.lock);
		blk_aio_reap(&blk->aio);
		pthread_mutex_unlock(&blk->vdev.lock);
	}
	cr_assert_eq(fake_used_idx(&bring), blk_used, "request not completed");
}

/*
 * One request: header, then data (device-readable for OUT-like
 * requests, device-writable for IN and GET_ID), then the status byte.
 * Returns the status; *used_len gets the used ring's length.
 */
struct seg {
	uint64_t gpa;
	uint32_t len;
};

/*
 * Publish one request without notifying: header at HDR_GPA + 32 * slot,
 * the data segments, the status byte at STATUS_GPA + slot; its chain
 * starts at descriptor first.  Returns the head.
 */
static uint16_t blk_publish(uint32_t type, uint64_t sector,
			    const struct seg *segs, unsigned nsegs,
			    bool device_writes, unsigned slot, uint16_t first)
{
	uint64_t hdr_gpa = HDR_GPA + 32 * slot, status_gpa = STATUS_GPA + slot;
	uint8_t *hdr = fake_ptr(&fm, hdr_gpa, 16);
	uint16_t n = first;

	put_le32(hdr, type);
	put_le32(hdr + 4, 0);
	put_le64(hdr + 8, sector);
	*(uint8_t *)fake_ptr(&fm, status_gpa, 1) = 0xee;
	fake_desc(&bring, n, hdr_gpa, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(n + 1));
	n++;
	for (unsigned i = 0; i < nsegs; i++, n++)
		fake_desc(&bring, n, segs[i].gpa, segs[i].len,
			  VIRTQ_DESC_F_NEXT |
			      (device_writes ? VIRTQ_DESC_F_WRITE : 0),
			  (uint16_t)(n + 1));
	fake_desc(&bring, n, status_gpa, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_publish(&bring, first);
	return first;
}

static uint8_t blk_status(unsigned slot)
{
	return *(uint8_t *)fake_ptr(&fm, STATUS_GPA + slot, 1);
}

/* One request of any number of data segments, completed. */
static uint8_t blk_request_segs(uint32_t type, uint64_t sector,
				const struct seg *segs, unsigned nsegs,
				bool device_writes, uint32_t *used_len)
{
	uint32_t id, len;

	blk_publish(type, sector, segs, nsegs, device_writes, 0, 0);
	virtio_dev_notify(&blk->vdev, 0);
	blk_used++;
	blk_wait();
	fake_used_elem(&bring, (uint16_t)(blk_used - 1), &id, &len);
	cr_assert_eq(id, 0);
	if (used_len)
		*used_len = len;
	return blk_status(0);
}

static uint8_t blk_request(uint32_t type, uint64_t sector, uint64_t data_gpa,
			   uint32_t data_len, bool device_writes,
			   uint32_t *used_len)
{
	struct seg s = {data_gpa, data_len};

	return blk_request_segs(type, sector, &s, data_len ? 1 : 0,
				device_writes, used_len);
}

static void expect_file(uint64_t off, const uint8_t *want, size_t len)
{
	uint8_t *got = malloc(len);

	cr_assert_not_null(got);
	cr_assert_eq(pread(blk_fd, got, len, (off_t)off), (ssize_t)len);
	cr_assert_arr_eq(got, want, len, "image differs at 0x%llx",
			 (unsigned long long)off);
	free(got);
}

static void expect_file_pristine(void)
{
	uint8_t *img = malloc(BLK_SIZE);

	cr_assert_not_null(img);
	for (uint32_t i = 0; i < BLK_SIZE; i++)
		img[i] = image_byte(i);
	expect_file(0, img, BLK_SIZE);
	free(img);
}

static void write_then_read_back(uint64_t out_gpa, uint64_t in_gpa,
				 uint64_t sector, uint32_t len)
{
	uint8_t *out = fake_ptr(&fm, out_gpa, len);
	uint8_t *in = fake_ptr(&fm, in_gpa, len);
	uint32_t used;

	for (unsigned i = 0; i < len; i++)
		out[i] = (uint8_t)(0xa5 ^ i ^ (i >> 8));
	cr_assert_eq(
	    blk_request(VIRTIO_BLK_T_OUT, sector, out_gpa, len, false, &used),
	    VIRTIO_BLK_S_OK);
	cr_assert_eq(used, 1, "OUT reports only the status byte written");
	expect_file(sector * 512, out, len);

	memset(in, 0, len);
	cr_assert_eq(
	    blk_request(VIRTIO_BLK_T_IN, sector, in_gpa, len, true, &used),
	    VIRTIO_BLK_S_OK);
	cr_assert_eq(used, len + 1);
	cr_assert_arr_eq(in, out, len);
	/* The sectors around it are the original image. */
	cr_assert_eq(
	    blk_request(VIRTIO_BLK_T_IN, sector - 1, in_gpa, 512, true, &used),
	    VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 512; i++)
		cr_assert_eq(in[i], image_byte((sector - 1) * 512 + i));
	cr_assert_eq(blk_request(VIRTIO_BLK_T_IN, sector + len / 512, in_gpa,
				 512, true, &used),
		     VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 512; i++)
		cr_assert_eq(in[i], image_byte(sector * 512 + len + i));
}

Test(virtio_blk, identity_and_config_space)
{
	uint8_t b[8];

	cr_assert_eq(rd(&blk->vdev, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	virtio_mmio_read(&blk->vdev, VIRTIO_MMIO_CONFIG, b, 8);
	cr_assert_eq(get_le64(b), BLK_SIZE / 512, "capacity in sectors");
	virtio_mmio_read(&blk->vdev, VIRTIO_MMIO_CONFIG + 20, b, 4);
	cr_assert_eq(get_le32(b), 512, "blk_size");
	wr(&blk->vdev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	cr_assert_eq(rd(&blk->vdev, VIRTIO_MMIO_DEVICE_FEATURES) &
			 (uint32_t)VIRTIO_BLK_F_RO,
		     0);
}

Test(virtio_blk, write_then_read_back_aligned)
{
	write_then_read_back(BUF_GPA, BUF_GPA + 0x1000, 8, 4096);
	/* Where the file system takes O_DIRECT, the page-aligned transfers
	 * went through libaio. */
	if (blk->aio.usable && blk->disk.direct_fd >= 0 &&
	    blk->disk.dio_align <= 4096)
		cr_assert_geq(blk->stats.aio, 2, "aio %llu, sync %llu",
			      (unsigned long long)blk->stats.aio,
			      (unsigned long long)blk->stats.sync);
}

Test(virtio_blk, write_then_read_back_unaligned_buffers)
{
	/* Buffers O_DIRECT cannot take: the synchronous path. */
	uint64_t sync_before = blk->stats.sync;

	write_then_read_back(BUF_GPA + 0x10, BUF_GPA + 0x2003, 4, 1024);
	cr_assert_geq(blk->stats.sync, sync_before + 2);
}

Test(virtio_blk, get_id_returns_the_serial)
{
	uint8_t *id = fake_ptr(&fm, BUF_GPA, BLK_ID_LEN);
	uint8_t want[BLK_ID_LEN] = BLK_SERIAL;
	uint32_t used;

	memset(id, 0xff, BLK_ID_LEN);
	cr_assert_eq(blk_request(VIRTIO_BLK_T_GET_ID, 0, BUF_GPA, BLK_ID_LEN,
				 true, &used),
		     VIRTIO_BLK_S_OK);
	cr_assert_eq(used, BLK_ID_LEN + 1);
	cr_assert_arr_eq(id, want, BLK_ID_LEN);
}

Test(virtio_blk, flush_is_ok)
{
	uint32_t used;

	cr_assert_eq(blk_request(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &used),
		     VIRTIO_BLK_S_OK);
	cr_assert_eq(used, 1);
}

Test(virtio_blk, out_of_range_is_ioerr)
{
	uint32_t used;

	cr_assert_eq(blk_request(VIRTIO_BLK_T_IN, BLK_SIZE / 512, BUF_GPA, 512,
				 true, &used),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(used, 1);
	cr_assert_eq(blk_request(VIRTIO_BLK_T_OUT, BLK_SIZE / 512 - 1, BUF_GPA,
				 1024, false, NULL),
		     VIRTIO_BLK_S_IOERR);
	cr_assert_eq(
	    blk_request(VIRTIO_BLK_T_IN, 1ull << 60, BUF_GPA, 512, true, NULL),
	    VIRTIO_BLK_S_IOERR);
	expect_file_pristine();
}

Test(virtio_blk, unsupported_type_is_unsupp)
{
	cr_assert_eq(blk_request(99, 0, 0, 0, false, NULL),
		     VIRTIO_BLK_S_UNSUPP);
}

Test(virtio_blk, write_zeroes_clears_the_range)
{
	uint8_t *seg = fake_ptr(&fm, BUF_GPA, 16);
	uint8_t zeros[2048] = {0}, before[512];

	put_le64(seg, 8);
	put_le32(seg + 8, 4);
	put_le32(seg + 12, 0);
	cr_assert_eq(
	    blk_request(VIRTIO_BLK_T_WRITE_ZEROES, 0, BUF_GPA, 16, false, NULL),
	    VIRTIO_BLK_S_OK);
	expect_file(8 * 512, zeros, sizeof(zeros));
	for (unsigned i = 0; i < 512; i++)
		before[i] = image_byte(7 * 512 + i);
	expect_file(7 * 512, before, 512);
}

Test(virtio_blk, chain_without_status_breaks_the_device)
{
	fake_desc(&bring, 0, HDR_GPA, 16, 0, 0);
	fake_publish(&bring, 0);
	virtio_dev_notify(&blk->vdev, 0);
	cr_assert(rd(&blk->vdev, VIRTIO_MMIO_STATUS) & NR);
	cr_assert_eq(irq_count(&blk->vdev), 1);
	cr_assert_eq(fake_used_idx(&bring), 0);
}

Test(virtio_blk_ro, writes_refused_image_unchanged)
{
	uint8_t *data = fake_ptr(&fm, BUF_GPA, 1024);
	uint32_t used;

	wr(&blk->vdev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	cr_assert(rd(&blk->vdev, VIRTIO_MMIO_DEVICE_FEATURES) &
		  (uint32_t)VIRTIO_BLK_F_RO);
	memset(data, 0x5a, 1024);
	cr_assert_eq(
	    blk_request(VIRTIO_BLK_T_OUT, 0, BUF_GPA, 1024, false, &used),
	    VIRTIO_BLK_S_IOERR);
	cr_assert_eq(used, 1);
	fake_write(&fm, BUF_GPA, (uint8_t[16]){0, 0, 0, 0, 0, 0, 0, 0, 2}, 16);
	cr_assert_eq(
	    blk_request(VIRTIO_BLK_T_WRITE_ZEROES, 0, BUF_GPA, 16, false, NULL),
	    VIRTIO_BLK_S_IOERR);
	cr_assert_eq(
	    blk_request(VIRTIO_BLK_T_DISCARD, 0, BUF_GPA, 16, false, NULL),
	    VIRTIO_BLK_S_IOERR);
	expect_file_pristine();
	/* Reads and FLUSH still work. */
	cr_assert_eq(blk_request(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL),
		     VIRTIO_BLK_S_OK);
	cr_assert_eq(blk_request(VIRTIO_BLK_T_IN, 1, BUF_GPA, 512, true, &used),
		     VIRTIO_BLK_S_OK);
	cr_assert_eq(used, 513);
	for (unsigned i = 0; i < 512; i++)
		cr_assert_eq(data[i], image_byte(512 + i));
}

/*
 * A guest that refills the ring as fast as the device serves it (another
 * vCPU republishing requests) must not keep the event loop inside one
 * handler: one notification takes at most a queue's worth of chains, then
 * re-arms the queue's notification for the loop's next turn.
 */
Test(virtio_blk, a_driver_refilling_the_ring_cannot_hold_the_event_loop)
{
	uint8_t *hdr = fake_ptr(&fm, HDR_GPA, 16);
	struct ring_filler rf = {.ring = &bring, .q = &blk->vdev.queues[0]};
	uint64_t published, v;
	pthread_t t;

	/* GET_ID is answered synchronously, so nothing else bounds the run.
	 * Every avail slot names this chain (head 0). */
	put_le32(hdr, VIRTIO_BLK_T_GET_ID);
	fake_desc(&bring, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&bring, 1, BUF_GPA, 20,
		  VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	fake_desc(&bring, 2, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	for (uint16_t i = 0; i < bring.size; i++)
		put_le16(fake_ptr(&fm, bring.avail_gpa + 4 + 2 * i, 2), 0);
	cr_assert_eq(pthread_create(&t, NULL, ring_keep_full, &rf), 0);
	while (atomic_load(&rf.published) == 0)
		sched_yield();
	virtio_dev_notify(&blk->vdev, 0);
	published = atomic_load(&rf.published);
	atomic_store(&rf.stop, true);
	pthread_join(t, NULL);
	/* One ring's worth served, each refilled at once, plus the fill
	 * ahead; a device that never yields sees millions. */
	cr_assert_leq(published, 3u * bring.size,
		      "the guest published %llu requests during one "
		      "notification",
		      (unsigned long long)published);
	cr_assert_eq(blk->stats.deferred, 1);
	cr_assert(virtio_dev_live(&blk->vdev));
	/* The rest is the loop's: the queue's notification is armed. */
	cr_assert_eq(read(blk->vdev.notify[0].fd, &v, sizeof(v)), sizeof(v));
}

/* ---- virtio-blk on a copy-on-write overlay ---- */

#define CLUSTER COW_CLUSTER_SIZE

static char cow_ov_path[64];

/* Open the device on the base already in blk_fd/blk_path, with a new
 * overlay; both files are unlinked once open. */
static void blk_start_cow(uint64_t ram, uint16_t qsize)
{
	struct drive_config cfg = {
	    .path = blk_path, .overlay = cow_ov_path, .serial = BLK_SERIAL};

	close(temp_file(cow_ov_path, sizeof(cow_ov_path), "ov"));
	blk_start(&cfg, ram, qsize);
	cr_assert(blk->disk.cow);
	unlink(blk_path);
	unlink(cow_ov_path);
}

/* Bytes the guest writes into cluster c of the overlay. */
static uint8_t guest_byte(uint64_t c, uint64_t i)
{
	return (uint8_t)(0x80 | (c * 3 + i * 5));
}

/* Write cluster c whole through the device (from BUF_GPA). */
static void write_cluster(uint64_t c)
{
	uint8_t *buf = fake_ptr(&fm, BUF_GPA, CLUSTER);

	for (uint64_t i = 0; i < CLUSTER; i++)
		buf[i] = guest_byte(c, i);
	cr_assert_eq(blk_request(VIRTIO_BLK_T_OUT, c * CLUSTER / 512, BUF_GPA,
				 CLUSTER, false, NULL),
		     VIRTIO_BLK_S_OK, "writing cluster %llu",
		     (unsigned long long)c);
}

/* Whether the AIO engine can take aligned requests on this disk. */
static bool blk_aio_possible(void)
{
	return blk->aio.usable && blk->disk.direct_fd >= 0 &&
	       blk->disk.write_direct_fd >= 0 && blk->disk.dio_align <= 4096;
}

#define COW_BASE_SIZE (2u << 20) /* 512 clusters */
#define COW_RAM	      (4u << 20)
#define COW_READ_GPA  0x100000u

static void blk_setup_cow(void)
{
	uint8_t *img = malloc(COW_BASE_SIZE);

	blk_fd = temp_file(blk_path, sizeof(blk_path), "base");
	cr_assert_not_null(img);
	for (uint32_t i = 0; i < COW_BASE_SIZE; i++)
		img[i] = image_byte(i);
	cr_assert_eq(pwrite(blk_fd, img, COW_BASE_SIZE, 0), COW_BASE_SIZE);
	free(img);
	blk_start_cow(COW_RAM, 16);
}

TestSuite(virtio_blk_cow, .init = blk_setup_cow, .fini = blk_teardown);

/* What the guest must read at disk byte off when the even clusters below
 * 2 * written are the guest's and everything else is the base's. */
static uint8_t expected_alternating(uint64_t off, uint64_t written)
{
	uint64_t c = off / CLUSTER;

	if (c % 2 == 0 && c < 2 * written)
		return guest_byte(c, off % CLUSTER);
	return image_byte(off);
}

/*
 * A guest's readahead over a file system whose written and unwritten
 * clusters alternate: one read spanning 300 extents (more than a queue's
 * worth, which the synchronous path once mapped at most) must return
 * every byte, whether it starts on a cluster boundary or inside one.
 */
Test(virtio_blk_cow, read_over_hundreds_of_extents)
{
	const uint64_t nclusters = 300;
	uint8_t *in = fake_ptr(&fm, COW_READ_GPA, nclusters * CLUSTER);
	uint32_t used;

	for (uint64_t c = 0; c < nclusters; c += 2)
		write_cluster(c);
	for (uint64_t start = 0; start <= 512; start += 512) {
		uint32_t len = (uint32_t)(nclusters * CLUSTER - 2 * start);

		memset(in, 0xee, nclusters * CLUSTER);
		cr_assert_eq(blk_request(VIRTIO_BLK_T_IN, start / 512,
					 COW_READ_GPA, len, true, &used),
			     VIRTIO_BLK_S_OK, "read from byte %llu",
			     (unsigned long long)start);
		cr_assert_eq(used, len + 1);
		for (uint64_t i = 0; i < len; i++)
			cr_assert_eq(
			    in[i],
			    expected_alternating(start + i, nclusters / 2),
			    "disk byte %llu of a read from %llu",
			    (unsigned long long)(start + i),
			    (unsigned long long)start);
	}
}

/* A few extents still go through Linux AIO in one request. */
Test(virtio_blk_cow, read_over_a_few_extents_takes_aio)
{
	const uint64_t nclusters = 8;
	uint8_t *in = fake_ptr(&fm, COW_READ_GPA, nclusters * CLUSTER);
	uint64_t aio_before;

	for (uint64_t c = 0; c < nclusters; c += 2)
		write_cluster(c);
	aio_before = blk->stats.aio;
	memset(in, 0xee, nclusters * CLUSTER);
	cr_assert_eq(blk_request(VIRTIO_BLK_T_IN, 0, COW_READ_GPA,
				 nclusters * CLUSTER, true, NULL),
		     VIRTIO_BLK_S_OK);
	for (uint64_t i = 0; i < nclusters * CLUSTER; i++)
		cr_assert_eq(in[i], expected_alternating(i, nclusters / 2),
			     "disk byte %llu", (unsigned long long)i);
	if (blk_aio_possible())
		cr_assert_eq(blk->stats.aio, aio_before + 1);
}

/*
 * A read of more than 2 GiB (the chain walker allows up to 4 GiB) whose
 * extents end past 2 GiB: base [0, 1.5 GiB), overlay cluster, base for
 * 1 GiB, overlay cluster.  Every extent's place in the guest's buffers
 * must be counted in 64 bits; an int once wrapped at the last extent,
 * which then was submitted with no buffers and reported done unfilled.
 * The 2.5 GiB go through 160 descriptors onto the same 16 MiB of fake
 * RAM; the last 8 KiB have their own buffer and are checked.
 */
#define BIG_X	     0x60000000ull		   /* 1.5 GiB */
#define BIG_LEN	     (0xa0000000ull + 2 * CLUSTER) /* 2.5 GiB + 8 KiB */
#define BIG_SIZE     (BIG_LEN + CLUSTER)
#define BIG_RAM	     (32u << 20)
#define BIG_A_GPA    0x100000u
#define BIG_A_LEN    (16u << 20)
#define BIG_B_GPA    0x1200000u
#define BIG_BASE_OFF (BIG_LEN - 2 * CLUSTER) /* base bytes in B */

static uint8_t big_base_byte(uint64_t i)
{
	return (uint8_t)(0x11 + i * 7);
}

static void blk_setup_cow_big(void)
{
	uint8_t pat[CLUSTER];

	blk_fd = temp_file(blk_path, sizeof(blk_path), "bigbase");
	/* Sparse, but for one known cluster just before the end. */
	cr_assert_eq(ftruncate(blk_fd, (off_t)BIG_SIZE), 0);
	for (unsigned i = 0; i < CLUSTER; i++)
		pat[i] = big_base_byte(i);
	cr_assert_eq(pwrite(blk_fd, pat, CLUSTER, (off_t)BIG_BASE_OFF),
		     CLUSTER);
	blk_start_cow(BIG_RAM, 256);
}

TestSuite(virtio_blk_cow_big, .init = blk_setup_cow_big, .fini = blk_teardown);

Test(virtio_blk_cow_big, read_beyond_2_gib_fills_every_extent)
{
	const unsigned na = (unsigned)((BIG_LEN - 2 * CLUSTER) / BIG_A_LEN);
	struct seg segs[256];
	uint8_t *b = fake_ptr(&fm, BIG_B_GPA, 2 * CLUSTER);
	uint64_t aio_before;
	uint32_t used;

	write_cluster(BIG_X / CLUSTER);
	write_cluster((BIG_LEN - CLUSTER) / CLUSTER);
	cr_assert_eq(na, 160);
	for (unsigned i = 0; i < na; i++)
		segs[i] = (struct seg){BIG_A_GPA, BIG_A_LEN};
	segs[na] = (struct seg){BIG_B_GPA, 2 * CLUSTER};
	memset(b, 0xee, 2 * CLUSTER);
	aio_before = blk->stats.aio;
	cr_assert_eq(
	    blk_request_segs(VIRTIO_BLK_T_IN, 0, segs, na + 1, true, &used),
	    VIRTIO_BLK_S_OK);
	cr_assert_eq(used, (uint32_t)(BIG_LEN + 1));
	for (unsigned i = 0; i < CLUSTER; i++)
		cr_assert_eq(b[i], big_base_byte(i), "base byte %u", i);
	for (unsigned i = 0; i < CLUSTER; i++)
		cr_assert_eq(b[CLUSTER + i],
			     guest_byte((BIG_LEN - CLUSTER) / CLUSTER, i),
			     "overlay byte %u of the last extent", i);
	/* The request went the AIO way, where the sum was done. */
	if (blk_aio_possible())
		cr_assert_eq(blk->stats.aio, aio_before + 1);
}

/*
 * A whole-cluster write and, in the same notification, a smaller write
 * into that cluster.  The first goes through AIO and its cluster is only
 * marked once it completed, so the second must not copy the base up over
 * it: it waits for the writes in flight (an unaligned buffer: the
 * synchronous path; an aligned one: AIO where the disk allows).  Both
 * succeed, and the bytes only the first wrote are the first's, never the
 * base's.
 */
static void whole_then_partial(uint64_t part_gpa)
{
	const uint64_t c = 20, part_off = 1024, part_len = 512;
	uint8_t *whole = fake_ptr(&fm, BUF_GPA, CLUSTER);
	uint8_t *part = fake_ptr(&fm, part_gpa, part_len);
	uint8_t *in = fake_ptr(&fm, COW_READ_GPA, CLUSTER);
	struct seg w1 = {BUF_GPA, CLUSTER}, w2 = {part_gpa, part_len};

	memset(whole, 0x3c, CLUSTER);
	memset(part, 0x99, part_len);
	blk_publish(VIRTIO_BLK_T_OUT, c * CLUSTER / 512, &w1, 1, false, 0, 0);
	blk_publish(VIRTIO_BLK_T_OUT, (c * CLUSTER + part_off) / 512, &w2, 1,
		    false, 1, 3);
	virtio_dev_notify(&blk->vdev, 0);
	blk_used += 2;
	blk_wait();
	cr_assert_eq(blk_status(0), VIRTIO_BLK_S_OK);
	cr_assert_eq(blk_status(1), VIRTIO_BLK_S_OK);
	cr_assert_eq(blk_request(VIRTIO_BLK_T_IN, c * CLUSTER / 512,
				 COW_READ_GPA, CLUSTER, true, NULL),
		     VIRTIO_BLK_S_OK);
	for (uint64_t i = 0; i < CLUSTER; i++) {
		if (i >= part_off && i < part_off + part_len)
			cr_assert(in[i] == 0x99 || in[i] == 0x3c, "byte %llu",
				  (unsigned long long)i);
		else
			cr_assert_eq(in[i], 0x3c, "byte %llu: 0x%02x",
				     (unsigned long long)i, in[i]);
	}
}

Test(virtio_blk_cow, partial_write_after_whole_write_in_flight_sync)
{
	whole_then_partial(BUF_GPA + 0x2003);
}

Test(virtio_blk_cow, partial_write_after_whole_write_in_flight_aio)
{
	whole_then_partial(BUF_GPA + 0x2000);
}
