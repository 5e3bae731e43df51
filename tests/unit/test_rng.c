// SPDX-License-Identifier: MIT
/*
 * virtio-rng over fake guest memory: buffers of every size are filled
 * with random bytes (at most VIRTIO_RNG_MAX_FILL each), a buffer the
 * device may not write breaks the device and nothing else, and a driver
 * that never posts buffers costs nothing.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "devices/rng/virtio_rng.h"
#include "tests/support/fake_ring.h"
#include "vmm/base/le.h"

FAKE_UBSAN_FATAL()

#define BUF_GPA 0x40000u
#define MEM	(4u << 20)

static struct fake_mem fm;
static struct fake_ring ring;
static struct virtio_rng rng;
static uint16_t used_seen;

static uint32_t rd(uint64_t off)
{
	uint8_t b[4];

	virtio_mmio_read(&rng.vdev, off, b, 4);
	return get_le32(b);
}

static void wr(uint64_t off, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	virtio_mmio_write(&rng.vdev, off, b, 4);
}

static void setup(void)
{
	struct guest_region r = {.gpa = 0, .size = MEM};
	struct virtio_host host = {.mem = &fm.mem, .vm_fd = -1, .ep = -1};

	fake_mem_init_regions(&fm, &r, 1);
	cr_assert_eq(virtio_rng_create(&rng, &host, 0xd0000000, 5), 0);
	fake_ring_init(&ring, &fm, 16);
	used_seen = 0;
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE |
				   VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), VIRTIO_RNG_QUEUE_SIZE);
	wr(VIRTIO_MMIO_QUEUE_NUM, ring.size);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)ring.desc_gpa);
	wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)ring.avail_gpa);
	wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)ring.used_gpa);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	wr(VIRTIO_MMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	cr_assert(virtio_dev_live(&rng.vdev));
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
}

static void teardown(void)
{
	virtio_rng_destroy(&rng);
	fake_mem_fini(&fm);
}

TestSuite(rng, .init = setup, .fini = teardown);

/* Post one device-writable buffer of len bytes (0xee-filled) and let the
 * device at it; the used length. */
static uint32_t request(uint32_t len)
{
	uint32_t id, used;

	memset(fake_ptr(&fm, BUF_GPA, len), 0xee, len);
	fake_desc(&ring, 0, BUF_GPA, len, VIRTQ_DESC_F_WRITE, 0);
	fake_publish(&ring, 0);
	virtio_dev_notify(&rng.vdev, 0);
	cr_assert_eq(fake_used_idx(&ring), (uint16_t)(used_seen + 1),
		     "no buffer came back");
	fake_used_elem(&ring, used_seen++, &id, &used);
	cr_assert_eq(id, 0);
	return used;
}

/* 0xee in every byte of a random buffer of that size is beyond chance;
 * count the bytes that changed. */
static uint32_t changed(uint32_t len)
{
	const uint8_t *p = fake_ptr(&fm, BUF_GPA, len);
	uint32_t n = 0;

	for (uint32_t i = 0; i < len; i++)
		n += p[i] != 0xee;
	return n;
}

Test(rng, buffers_of_every_size_are_filled)
{
	cr_assert_eq(request(1), 1);
	cr_assert_eq(request(16), 16);
	cr_assert_geq(changed(16), 8);
	cr_assert_eq(request(4096), 4096);
	cr_assert_geq(changed(4096), 4000);
	cr_assert_eq(rng.stats.requests, 3);
	cr_assert_eq(rng.stats.bytes, 1 + 16 + 4096);
}

Test(rng, an_oversized_buffer_gets_the_most_one_request_gives)
{
	uint32_t big = 1u << 20;
	const uint8_t *p = fake_ptr(&fm, BUF_GPA, big);

	cr_assert_eq(request(big), VIRTIO_RNG_MAX_FILL);
	/* Filled up to there, untouched after. */
	cr_assert_geq(changed(VIRTIO_RNG_MAX_FILL), VIRTIO_RNG_MAX_FILL - 300);
	for (uint32_t i = VIRTIO_RNG_MAX_FILL; i < big; i++)
		cr_assert_eq(p[i], 0xee, "byte %u written", i);
}

Test(rng, a_request_split_over_descriptors_fills_each)
{
	/* Two writable descriptors: both are filled. */
	memset(fake_ptr(&fm, BUF_GPA, 256), 0xee, 256);
	fake_desc(&ring, 0, BUF_GPA, 100,
		  VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	fake_desc(&ring, 1, BUF_GPA + 128, 100, VIRTQ_DESC_F_WRITE, 0);
	fake_publish(&ring, 0);
	virtio_dev_notify(&rng.vdev, 0);
	cr_assert_eq(fake_used_idx(&ring), 1);
	{
		uint32_t id, used;

		fake_used_elem(&ring, 0, &id, &used);
		cr_assert_eq(used, 200);
	}
	cr_assert_eq(*(uint8_t *)fake_ptr(&fm, BUF_GPA + 100, 1), 0xee,
		     "the gap was written");
}

Test(rng, a_buffer_the_device_may_not_write_breaks_only_the_device)
{
	fake_desc(&ring, 0, BUF_GPA, 64, 0, 0); /* device-readable */
	fake_publish(&ring, 0);
	virtio_dev_notify(&rng.vdev, 0);
	cr_assert_eq(fake_used_idx(&ring), 0);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(rng.vdev.breaks, 1);
	/* A reset brings it back. */
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
}

Test(rng, a_driver_that_never_posts_buffers_costs_nothing)
{
	for (int i = 0; i < 1000; i++)
		virtio_dev_notify(&rng.vdev, 0);
	cr_assert_eq(fake_used_idx(&ring), 0);
	cr_assert_eq(rng.stats.requests, 0);
	cr_assert(virtio_dev_live(&rng.vdev));
}
