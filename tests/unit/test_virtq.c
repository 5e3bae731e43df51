// SPDX-License-Identifier: MIT
/*
 * The descriptor-chain walker against hostile drivers: every rule of
 * virtq.h is broken once and must be refused with its reason, and every
 * boundary that is still legal must yield exactly the buffers the driver
 * described.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/virtio/virtq.h"
#include "tests/support/fake_ring.h"

FAKE_UBSAN_FATAL()

#define QSIZE 16
#define D     FAKE_DATA_GPA
#define TABLE 0x20000u /* indirect tables */
#define R     0	       /* device-readable */
#define N     VIRTQ_DESC_F_NEXT
#define W     VIRTQ_DESC_F_WRITE
#define IND   VIRTQ_DESC_F_INDIRECT

static struct fake_mem fm;
static struct fake_ring ring;
static struct virtq q;
static struct virtq_chain ch;

static void start_ring(uint16_t size, bool event_idx, bool indirect)
{
	memset(&q, 0, sizeof(q));
	fake_ring_init(&ring, &fm, size);
	q.event_idx = event_idx;
	q.indirect = indirect;
	cr_assert_eq(fake_ring_start(&ring, &q), 0);
}

static void setup(void)
{
	fake_mem_init(&fm);
	start_ring(QSIZE, false, true);
}

static void teardown(void)
{
	fake_mem_fini(&fm);
}

TestSuite(virtq, .init = setup, .fini = teardown);

/* The next pop must refuse the chain for the given reason, consume
 * nothing, and refuse it again if asked again. */
static void expect_refused(const char *why)
{
	uint16_t last = q.last_avail;
	int ret = virtq_pop(&q, &ch);

	cr_assert_eq(ret, -EPROTO, "pop returned %d, expected -EPROTO (%s)",
		     ret, why);
	cr_assert_not_null(q.error);
	cr_assert_not_null(strstr(q.error, why),
			   "error \"%s\", expected \"%s\"", q.error, why);
	cr_assert_eq(q.last_avail, last, "a refused chain was consumed");
	q.error = NULL;
	cr_assert_eq(virtq_pop(&q, &ch), -EPROTO);
	cr_assert_not_null(strstr(q.error, why));
}

static void expect_chain(uint16_t head, unsigned nbufs, unsigned nreadable)
{
	int ret = virtq_pop(&q, &ch);

	cr_assert_eq(ret, 1, "pop returned %d (%s)", ret,
		     q.error ? q.error : "no error");
	cr_assert_eq(ch.head, head);
	cr_assert_eq(ch.nbufs, nbufs);
	cr_assert_eq(ch.nreadable, nreadable);
}

static void expect_buf(unsigned i, uint64_t gpa, uint32_t len, bool writable)
{
	cr_assert_lt(i, ch.nbufs);
	cr_assert_eq(ch.bufs[i].hva, fake_ptr(&fm, gpa, len ? len : 1),
		     "buffer %u at the wrong host address", i);
	cr_assert_eq(ch.bufs[i].len, len, "buffer %u: len %u, expected %u", i,
		     ch.bufs[i].len, len);
	cr_assert_eq(ch.bufs[i].writable, writable, "buffer %u direction", i);
}

/* ---- well-formed chains ---- */

Test(virtq, single_readable_buffer)
{
	fake_desc(&ring, 0, D, 100, R, 0);
	fake_publish(&ring, 0);
	expect_chain(0, 1, 1);
	expect_buf(0, D, 100, false);
	cr_assert_eq(ch.readable_len, 100);
	cr_assert_eq(ch.writable_len, 0);
	cr_assert_eq(virtq_pop(&q, &ch), 0, "queue should now be empty");
	cr_assert_eq(q.last_avail, 1);
}

Test(virtq, chain_follows_next_in_any_order)
{
	fake_desc(&ring, 5, D, 16, N, 9);
	fake_desc(&ring, 9, D + 0x100, 512, N, 2);
	fake_desc(&ring, 2, D + 0x400, 1, W, 0);
	fake_publish(&ring, 5);
	expect_chain(5, 3, 2);
	expect_buf(0, D, 16, false);
	expect_buf(1, D + 0x100, 512, false);
	expect_buf(2, D + 0x400, 1, true);
	cr_assert_eq(ch.readable_len, 528);
	cr_assert_eq(ch.writable_len, 1);
}

Test(virtq, chains_come_out_in_avail_order)
{
	fake_desc(&ring, 2, D, 1, R, 0);
	fake_desc(&ring, 0, D + 1, 2, W, 0);
	fake_desc(&ring, 7, D + 3, 3, R, 0);
	fake_publish(&ring, 2);
	fake_publish(&ring, 0);
	fake_publish(&ring, 7);
	expect_chain(2, 1, 1);
	expect_buf(0, D, 1, false);
	expect_chain(0, 1, 0);
	expect_buf(0, D + 1, 2, true);
	expect_chain(7, 1, 1);
	expect_buf(0, D + 3, 3, false);
	cr_assert_eq(virtq_pop(&q, &ch), 0);
}

Test(virtq, zero_length_buffer_is_kept_as_such)
{
	fake_desc(&ring, 0, D, 0, N, 1);
	fake_desc(&ring, 1, D + 16, 0, W | N, 2);
	fake_desc(&ring, 2, D + 32, 1, W, 0);
	fake_publish(&ring, 0);
	expect_chain(0, 3, 1);
	expect_buf(0, D, 0, false);
	expect_buf(1, D + 16, 0, true);
	expect_buf(2, D + 32, 1, true);
	cr_assert_eq(ch.readable_len, 0);
	cr_assert_eq(ch.writable_len, 1);
}

Test(virtq, chain_through_every_descriptor_is_legal)
{
	for (uint16_t i = 0; i < QSIZE; i++)
		fake_desc(&ring, i, D + 16 * i, 16, i < QSIZE - 1 ? N : 0,
			  (uint16_t)(i + 1));
	fake_publish(&ring, 0);
	expect_chain(0, QSIZE, QSIZE);
	for (unsigned i = 0; i < QSIZE; i++)
		expect_buf(i, D + 16 * i, 16, false);
	cr_assert_eq(ch.readable_len, 16 * QSIZE);
}

Test(virtq, buffer_ending_exactly_at_end_of_ram)
{
	fake_desc(&ring, 0, FAKE_RAM_SIZE - 10, 10, R, 0);
	fake_publish(&ring, 0);
	expect_chain(0, 1, 1);
	expect_buf(0, FAKE_RAM_SIZE - 10, 10, false);
}

/* ---- loops and indices ---- */

Test(virtq, self_loop_refused)
{
	fake_desc(&ring, 3, D, 16, N, 3);
	fake_publish(&ring, 3);
	expect_refused("loop in descriptor chain");
}

Test(virtq, three_cycle_refused)
{
	fake_desc(&ring, 0, D, 16, N, 1);
	fake_desc(&ring, 1, D, 16, N, 2);
	fake_desc(&ring, 2, D, 16, N, 0);
	fake_publish(&ring, 1);
	expect_refused("loop in descriptor chain");
}

Test(virtq, loop_entered_late_refused)
{
	/* 0 -> 1 -> ... -> 15 -> 8: one step more than the queue holds. */
	for (uint16_t i = 0; i < QSIZE; i++)
		fake_desc(&ring, i, D + 16 * i, 16, N,
			  i < QSIZE - 1 ? (uint16_t)(i + 1) : 8);
	fake_publish(&ring, 0);
	expect_refused("loop in descriptor chain");
}

Test(virtq, chain_longer_than_queue_refused)
{
	/* All 16 descriptors, then the last points back at the head: the
	 * 17th step is one more than any legal chain has. */
	for (uint16_t i = 0; i < QSIZE; i++)
		fake_desc(&ring, i, D, 16, N, (uint16_t)((i + 1) % QSIZE));
	fake_publish(&ring, 0);
	expect_refused("loop in descriptor chain");
}

Test(virtq, head_out_of_range_refused)
{
	fake_publish(&ring, QSIZE);
	expect_refused("head index out of range");
	fake_set_avail_idx(&ring, 0);
	fake_publish(&ring, 0xffff);
	expect_refused("head index out of range");
	/* The same slot, corrected, is taken. */
	fake_set_avail_idx(&ring, 0);
	fake_desc(&ring, QSIZE - 1, D, 8, R, 0);
	fake_publish(&ring, QSIZE - 1);
	expect_chain(QSIZE - 1, 1, 1);
}

Test(virtq, next_out_of_range_refused)
{
	fake_desc(&ring, 0, D, 16, N, QSIZE);
	fake_publish(&ring, 0);
	expect_refused("next index out of range");
	fake_desc(&ring, 0, D, 16, N, 0xffff);
	expect_refused("next index out of range");
}

Test(virtq, next_ignored_without_next_flag)
{
	fake_desc(&ring, 0, D, 16, R, 0xffff);
	fake_publish(&ring, 0);
	expect_chain(0, 1, 1);
}

Test(virtq, avail_idx_more_than_size_ahead_refused)
{
	fake_set_avail_idx(&ring, QSIZE + 1);
	expect_refused("avail index ahead by more than the queue");
	fake_set_avail_idx(&ring, 0x8000);
	expect_refused("avail index ahead by more than the queue");
}

Test(virtq, avail_idx_exactly_size_ahead_is_legal)
{
	for (uint16_t i = 0; i < QSIZE; i++) {
		fake_desc(&ring, i, D + i, 1, R, 0);
		fake_publish(&ring, (uint16_t)(QSIZE - 1 - i));
	}
	for (uint16_t i = 0; i < QSIZE; i++) {
		expect_chain((uint16_t)(QSIZE - 1 - i), 1, 1);
		expect_buf(0, D + QSIZE - 1 - i, 1, false);
	}
	cr_assert_eq(virtq_pop(&q, &ch), 0);
}

Test(virtq, avail_idx_moving_backwards_refused)
{
	fake_desc(&ring, 0, D, 1, R, 0);
	fake_publish(&ring, 0);
	fake_publish(&ring, 0);
	expect_chain(0, 1, 1);
	expect_chain(0, 1, 1);
	fake_set_avail_idx(&ring, 1); /* pending would be 0xffff */
	expect_refused("avail index ahead by more than the queue");
}

Test(virtq, avail_idx_wraps_at_65536)
{
	fake_desc(&ring, 0, D, 1, R, 0);
	fake_desc(&ring, 1, D + 1, 1, R, 0);
	for (unsigned n = 0; n < 65536 + 5; n++) {
		uint16_t head = n & 1;

		fake_publish(&ring, head);
		cr_assert_eq(virtq_pop(&q, &ch), 1, "pop %u: %s", n,
			     q.error ? q.error : "empty");
		cr_assert_eq(ch.head, head);
		virtq_push(&q, head, 0);
	}
	cr_assert_eq(q.last_avail, 5);
	cr_assert_eq(virtq_pop(&q, &ch), 0);
}

/* ---- buffers against guest memory ---- */

Test(virtq, buffer_outside_ram_refused)
{
	fake_desc(&ring, 0, FAKE_RAM_SIZE, 1, R, 0);
	fake_publish(&ring, 0);
	expect_refused("buffer outside guest memory");
	fake_desc(&ring, 0, 0xfffffffffffff000ull, 16, W, 0);
	expect_refused("buffer outside guest memory");
	/* Wraps around the address space into RAM. */
	fake_desc(&ring, 0, UINT64_MAX - 7, 16, R, 0);
	expect_refused("buffer outside guest memory");
	/* Zero length is no excuse for a bogus address. */
	fake_desc(&ring, 0, FAKE_RAM_SIZE + 4096, 0, R, 0);
	expect_refused("buffer outside guest memory");
}

Test(virtq, buffer_straddling_end_of_ram_refused)
{
	fake_desc(&ring, 0, D, 16, N, 1);
	fake_desc(&ring, 1, FAKE_RAM_SIZE - 10, 11, W, 0);
	fake_publish(&ring, 0);
	expect_refused("buffer outside guest memory");
}

Test(virtq, length_4gib_minus_1_outside_small_ram_refused)
{
	fake_desc(&ring, 0, D, 0xffffffffu, R, 0);
	fake_publish(&ring, 0);
	expect_refused("buffer outside guest memory");
}

Test(virtq, readable_after_writable_refused)
{
	fake_desc(&ring, 0, D, 16, N, 1);
	fake_desc(&ring, 1, D + 16, 16, W | N, 2);
	fake_desc(&ring, 2, D + 32, 16, R, 0);
	fake_publish(&ring, 0);
	expect_refused("readable buffer after a writable one");
}

/* ---- indirect tables ---- */

Test(virtq, indirect_table_yields_its_buffers)
{
	fake_desc_at(&fm, TABLE, 0, D, 16, N, 2);
	fake_desc_at(&fm, TABLE, 2, D + 0x100, 512, N, 1);
	fake_desc_at(&fm, TABLE, 1, D + 0x400, 1, W, 0);
	fake_desc(&ring, 4, TABLE, 3 * 16, IND, 0);
	fake_publish(&ring, 4);
	expect_chain(4, 3, 2);
	expect_buf(0, D, 16, false);
	expect_buf(1, D + 0x100, 512, false);
	expect_buf(2, D + 0x400, 1, true);
	cr_assert_eq(ch.readable_len, 528);
	cr_assert_eq(ch.writable_len, 1);
}

Test(virtq, indirect_table_of_queue_size_is_legal)
{
	for (uint16_t i = 0; i < QSIZE; i++)
		fake_desc_at(&fm, TABLE, i, D + 8 * i, 8, i < QSIZE - 1 ? N : W,
			     (uint16_t)(i + 1));
	fake_desc(&ring, 0, TABLE, QSIZE * 16, IND, 0);
	fake_publish(&ring, 0);
	expect_chain(0, QSIZE, QSIZE - 1);
	expect_buf(QSIZE - 1, D + 8 * (QSIZE - 1), 8, true);
}

Test(virtq, indirect_len_not_multiple_of_16_refused)
{
	fake_desc_at(&fm, TABLE, 0, D, 16, R, 0);
	fake_desc(&ring, 0, TABLE, 24, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("indirect table length not a multiple of 16");
	fake_desc(&ring, 0, TABLE, 15, IND, 0);
	expect_refused("indirect table length not a multiple of 16");
}

Test(virtq, indirect_len_zero_refused)
{
	fake_desc(&ring, 0, TABLE, 0, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("indirect table length not a multiple of 16");
}

Test(virtq, indirect_table_larger_than_queue_refused)
{
	fake_desc_at(&fm, TABLE, 0, D, 16, R, 0);
	fake_desc(&ring, 0, TABLE, (QSIZE + 1) * 16, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("indirect table larger than the queue");
	/* A length whose entry count overflows 16 bits. */
	fake_desc(&ring, 0, TABLE, 0x100000u * 16, IND, 0);
	expect_refused("indirect table larger than the queue");
}

Test(virtq, nested_indirect_refused)
{
	fake_desc_at(&fm, TABLE, 0, D, 16, N, 1);
	fake_desc_at(&fm, TABLE, 1, TABLE + 0x100, 16, IND, 0);
	fake_desc_at(&fm, TABLE + 0x100, 0, D, 16, R, 0);
	fake_desc(&ring, 0, TABLE, 32, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("nested indirect table");
}

Test(virtq, indirect_with_next_refused)
{
	fake_desc_at(&fm, TABLE, 0, D, 16, R, 0);
	fake_desc(&ring, 0, TABLE, 16, IND | N, 1);
	fake_desc(&ring, 1, D, 1, W, 0);
	fake_publish(&ring, 0);
	expect_refused("indirect descriptor with NEXT");
}

Test(virtq, indirect_inside_chain_refused)
{
	fake_desc_at(&fm, TABLE, 0, D, 16, W, 0);
	fake_desc(&ring, 0, D, 16, N, 1);
	fake_desc(&ring, 1, TABLE, 16, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("indirect descriptor inside a chain");
}

Test(virtq, indirect_not_negotiated_refused)
{
	start_ring(QSIZE, false, false);
	fake_desc_at(&fm, TABLE, 0, D, 16, R, 0);
	fake_desc(&ring, 0, TABLE, 16, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("indirect descriptor not negotiated");
}

Test(virtq, loop_in_indirect_table_refused)
{
	fake_desc_at(&fm, TABLE, 0, D, 16, N, 1);
	fake_desc_at(&fm, TABLE, 1, D, 16, N, 0);
	fake_desc(&ring, 0, TABLE, 2 * 16, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("loop in indirect table");
	fake_desc_at(&fm, TABLE, 0, D, 16, N, 0);
	fake_desc(&ring, 0, TABLE, 16, IND, 0);
	expect_refused("loop in indirect table");
}

Test(virtq, indirect_next_out_of_range_refused)
{
	/* next counts within the table (2 entries), not the ring (16). */
	fake_desc_at(&fm, TABLE, 0, D, 16, N, 2);
	fake_desc_at(&fm, TABLE, 1, D, 16, R, 0);
	fake_desc_at(&fm, TABLE, 2, D, 16, R, 0);
	fake_desc(&ring, 0, TABLE, 2 * 16, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("indirect next index out of range");
	fake_desc_at(&fm, TABLE, 0, D, 16, N, 0xffff);
	expect_refused("indirect next index out of range");
}

Test(virtq, indirect_table_outside_ram_refused)
{
	fake_desc(&ring, 0, FAKE_RAM_SIZE - 16, 32, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("indirect table outside guest memory");
	fake_desc(&ring, 0, 0xfffffffffffffff0ull, 32, IND, 0);
	expect_refused("indirect table outside guest memory");
}

Test(virtq, indirect_entry_outside_ram_refused)
{
	fake_desc_at(&fm, TABLE, 0, D, 16, N, 1);
	fake_desc_at(&fm, TABLE, 1, FAKE_RAM_SIZE - 1, 2, W, 0);
	fake_desc(&ring, 0, TABLE, 32, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("buffer outside guest memory");
}

Test(virtq, readable_after_writable_in_indirect_table_refused)
{
	fake_desc_at(&fm, TABLE, 0, D, 16, W | N, 1);
	fake_desc_at(&fm, TABLE, 1, D, 16, R, 0);
	fake_desc(&ring, 0, TABLE, 32, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("readable buffer after a writable one");
}

/* ---- virtq_start ---- */

static int start_with(uint16_t size, uint64_t desc, uint64_t avail,
		      uint64_t used)
{
	struct virtq t = {0};
	int ret;

	t.size = size;
	t.desc_gpa = desc;
	t.avail_gpa = avail;
	t.used_gpa = used;
	t.ready = true; /* must be cleared on failure */
	ret = virtq_start(&t, &fm.mem);

	cr_assert_eq(t.ready, ret == 0);
	return ret;
}

Test(virtq, start_checks_size)
{
	const uint16_t bad[] = {0, 3, 6, 12, 17, 255, 512, 1024, 0xffff};
	const uint16_t good[] = {1, 2, 4, 128, 256};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(start_with(bad[i], FAKE_DESC_GPA, FAKE_AVAIL_GPA,
					FAKE_USED_GPA),
			     -EINVAL, "size %u accepted", bad[i]);
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(start_with(good[i], FAKE_DESC_GPA, FAKE_AVAIL_GPA,
					FAKE_USED_GPA),
			     0, "size %u refused", good[i]);
}

Test(virtq, start_checks_alignment)
{
	cr_assert_eq(
	    start_with(16, FAKE_DESC_GPA + 8, FAKE_AVAIL_GPA, FAKE_USED_GPA),
	    -EINVAL);
	cr_assert_eq(
	    start_with(16, FAKE_DESC_GPA, FAKE_AVAIL_GPA + 1, FAKE_USED_GPA),
	    -EINVAL);
	cr_assert_eq(
	    start_with(16, FAKE_DESC_GPA, FAKE_AVAIL_GPA, FAKE_USED_GPA + 2),
	    -EINVAL);
	/* The minimum alignments of 2.7 are enough. */
	cr_assert_eq(start_with(16, FAKE_DESC_GPA + 16, FAKE_AVAIL_GPA + 2,
				FAKE_USED_GPA + 4),
		     0);
}

Test(virtq, start_checks_rings_lie_in_ram)
{
	const uint64_t end = FAKE_RAM_SIZE;

	/* Each ring exactly at the end of RAM fits; one step further not. */
	cr_assert_eq(start_with(16, end - 256, FAKE_AVAIL_GPA, FAKE_USED_GPA),
		     0);
	cr_assert_eq(
	    start_with(16, end - 256 + 16, FAKE_AVAIL_GPA, FAKE_USED_GPA),
	    -EINVAL);
	cr_assert_eq(start_with(16, FAKE_DESC_GPA, end - 38, FAKE_USED_GPA), 0);
	cr_assert_eq(start_with(16, FAKE_DESC_GPA, end - 36, FAKE_USED_GPA),
		     -EINVAL);
	cr_assert_eq(start_with(16, FAKE_DESC_GPA, FAKE_AVAIL_GPA, end - 136),
		     0);
	cr_assert_eq(start_with(16, FAKE_DESC_GPA, FAKE_AVAIL_GPA, end - 132),
		     -EINVAL);
	cr_assert_eq(start_with(16, end, FAKE_AVAIL_GPA, FAKE_USED_GPA),
		     -EINVAL);
	cr_assert_eq(start_with(16, 0xfffffffffffffff0ull, FAKE_AVAIL_GPA,
				FAKE_USED_GPA),
		     -EINVAL);
	cr_assert_eq(
	    start_with(16, FAKE_DESC_GPA, 0xfffffffffffffffeull, FAKE_USED_GPA),
	    -EINVAL);
}

Test(virtq, pop_on_a_queue_not_started_returns_empty)
{
	struct virtq t = {0};

	fake_desc(&ring, 0, D, 1, R, 0);
	fake_publish(&ring, 0);
	fake_ring_configure(&ring, &t);
	cr_assert_eq(virtq_pop(&t, &ch), 0);
}

Test(virtq, reset_forgets_the_queue)
{
	fake_desc(&ring, 0, D, 1, R, 0);
	fake_publish(&ring, 0);
	virtq_reset(&q);
	cr_assert_not(q.ready);
	cr_assert_eq(q.size, 0);
	cr_assert_eq(virtq_pop(&q, &ch), 0);
}

/* ---- used ring and notifications ---- */

Test(virtq, push_writes_used_entries)
{
	uint32_t id, len;

	virtq_push(&q, 7, 0x12345678u);
	virtq_push(&q, 3, 0);
	cr_assert_eq(fake_used_idx(&ring), 2);
	cr_assert_eq(fake_used_flags(&ring), 0);
	fake_used_elem(&ring, 0, &id, &len);
	cr_assert_eq(id, 7);
	cr_assert_eq(len, 0x12345678u);
	fake_used_elem(&ring, 1, &id, &len);
	cr_assert_eq(id, 3);
	cr_assert_eq(len, 0);
	/* Nothing written past the ring's entries (avail_event stays). */
	cr_assert_eq(fake_avail_event(&ring), 0);
}

Test(virtq, used_idx_wraps_at_65536)
{
	uint32_t id, len;

	for (unsigned n = 0; n < 65536 + 3; n++)
		virtq_push(&q, (uint16_t)(n % QSIZE), n);
	cr_assert_eq(fake_used_idx(&ring), 3);
	cr_assert_eq(q.used_idx, 3);
	for (unsigned k = 0; k < QSIZE; k++) {
		/* Slot k was last written by push number 65536+3-16+... */
		unsigned n = 65536 + 3 - QSIZE + k;

		fake_used_elem(&ring, (uint16_t)n, &id, &len);
		cr_assert_eq(id, n % QSIZE);
		cr_assert_eq(len, n, "used entry for %u: len %u", n, len);
	}
}

Test(virtq, used_entries_go_round_the_ring)
{
	uint32_t id, len;

	for (unsigned n = 0; n < QSIZE + 1; n++)
		virtq_push(&q, 0, 100 + n);
	/* Entry 16 overwrote slot 0, slot 1 still holds entry 1. */
	fake_used_elem(&ring, 0, &id, &len);
	cr_assert_eq(len, 100 + QSIZE);
	fake_used_elem(&ring, 1, &id, &len);
	cr_assert_eq(len, 101);
}

Test(virtq, event_idx_empty_pop_asks_for_next_entry)
{
	start_ring(QSIZE, true, true);
	fake_set_used_event(&ring, 0);
	/* avail_event sits after the used ring; poison it first. */
	uint8_t *ae = fake_ptr(&fm, FAKE_USED_GPA + 4 + 8 * QSIZE, 2);

	ae[0] = 0xcd;
	ae[1] = 0xab;
	cr_assert_eq(virtq_pop(&q, &ch), 0);
	cr_assert_eq(fake_avail_event(&ring), 0);

	fake_desc(&ring, 0, D, 1, R, 0);
	for (int i = 0; i < 3; i++)
		fake_publish(&ring, 0);
	for (int i = 0; i < 3; i++)
		expect_chain(0, 1, 1);
	cr_assert_eq(fake_avail_event(&ring), 0,
		     "avail_event written while chains were available");
	cr_assert_eq(virtq_pop(&q, &ch), 0);
	cr_assert_eq(fake_avail_event(&ring), 3);
}

Test(virtq, event_idx_avail_event_follows_consumption)
{
	start_ring(QSIZE, true, true);
	fake_desc(&ring, 0, D, 1, R, 0);
	fake_publish(&ring, 0);
	expect_chain(0, 1, 1);
	cr_assert_eq(virtq_pop(&q, &ch), 0);
	cr_assert_eq(fake_avail_event(&ring), 1);
	fake_publish(&ring, 0);
	expect_chain(0, 1, 1);
}

Test(virtq, no_event_idx_leaves_avail_event_alone)
{
	uint8_t *ae = fake_ptr(&fm, FAKE_USED_GPA + 4 + 8 * QSIZE, 2);

	ae[0] = 0xcd;
	ae[1] = 0xab;
	cr_assert_eq(virtq_pop(&q, &ch), 0);
	cr_assert_eq(fake_avail_event(&ring), 0xabcd);
}

static bool push_and_decide(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		virtq_push(&q, 0, 0);
	return virtq_should_notify(&q);
}

Test(virtq, event_idx_notifies_exactly_when_used_event_passed)
{
	start_ring(QSIZE, true, true);
	fake_set_used_event(&ring, 0xffff);
	cr_assert(push_and_decide(1), "the first decision always notifies");
	/* signalled = 1 */
	fake_set_used_event(&ring, 1);
	cr_assert(push_and_decide(1), "used_event 1 in [1, 2)");
	fake_set_used_event(&ring, 5);
	cr_assert_not(push_and_decide(2), "used_event 5 not in [2, 4)");
	cr_assert(push_and_decide(2), "used_event 5 in [4, 6)");
	fake_set_used_event(&ring, 6);
	cr_assert(push_and_decide(1), "used_event 6 in [6, 7)");
	fake_set_used_event(&ring, 8);
	cr_assert_not(push_and_decide(1), "used_event 8 not in [7, 8)");
	fake_set_used_event(&ring, 7);
	cr_assert_not(push_and_decide(1), "used_event 7 not in [8, 9)");
	cr_assert_not(push_and_decide(0), "nothing pushed since the last");
	/* Across the wrap of the 16-bit indices. */
	fake_set_used_event(&ring, 3);
	cr_assert_not(push_and_decide(65534 - 9), "3 not in [9, 65534)");
	cr_assert_eq(q.used_idx, 65534);
	fake_set_used_event(&ring, 1);
	cr_assert(push_and_decide(4), "1 in [65534, 2) mod 2^16");
	fake_set_used_event(&ring, 0xffff);
	cr_assert_not(push_and_decide(4), "65535 not in [2, 6)");
}

Test(virtq, event_idx_ignores_no_interrupt_flag)
{
	start_ring(QSIZE, true, true);
	cr_assert(push_and_decide(1));
	fake_set_avail_flags(&ring, VIRTQ_AVAIL_F_NO_INTERRUPT);
	fake_set_used_event(&ring, 1);
	cr_assert(push_and_decide(1),
		  "with EVENT_IDX the flag must be ignored (2.7.7.2)");
}

Test(virtq, no_interrupt_flag_without_event_idx)
{
	cr_assert(push_and_decide(1));
	fake_set_avail_flags(&ring, VIRTQ_AVAIL_F_NO_INTERRUPT);
	cr_assert_not(push_and_decide(1));
	cr_assert_not(push_and_decide(3));
	/* Other flag bits mean nothing. */
	fake_set_avail_flags(&ring, 0xfffe);
	cr_assert(push_and_decide(1));
	fake_set_avail_flags(&ring, 0);
	cr_assert(push_and_decide(1));
	/* used_event is not consulted without EVENT_IDX. */
	fake_set_used_event(&ring, 0x1234);
	cr_assert(push_and_decide(1));
}

/* ---- virtq_chain_read ---- */

Test(virtq, chain_read_spans_readable_buffers_only)
{
	uint8_t *mem = fake_ptr(&fm, D, 64);
	uint8_t out[8] = {0};

	memcpy(mem, "abc", 3);
	memcpy(mem + 16, "defgh", 5);
	memcpy(mem + 32, "XYZ", 3);
	fake_desc(&ring, 0, D, 3, N, 1);
	fake_desc(&ring, 1, D + 16, 5, N, 2);
	fake_desc(&ring, 2, D + 32, 3, W, 0);
	fake_publish(&ring, 0);
	expect_chain(0, 3, 2);
	cr_assert_eq(virtq_chain_read(&ch, 2, out, 4), 0);
	cr_assert_arr_eq(out, "cdef", 4);
	cr_assert_eq(virtq_chain_read(&ch, 0, out, 8), 0);
	cr_assert_arr_eq(out, "abcdefgh", 8);
	cr_assert_eq(virtq_chain_read(&ch, 7, out, 2), -EFAULT,
		     "read into the writable buffer");
	cr_assert_eq(virtq_chain_read(&ch, 100, out, 1), -EFAULT);
	cr_assert_eq(virtq_chain_read(&ch, 8, out, 0), 0);
}

/* ---- two regions: a boundary and a hole ---- */

#define HOLE_R0 0x80000ull  /* [0, 512K) */
#define HOLE_R1 0x80000ull  /* [512K, 1M), adjacent to region 0 */
#define HOLE_R2 0x200000ull /* [2M, 3M) after a hole */

static void setup_regions(void)
{
	struct guest_region r[3] = {
	    {.gpa = 0, .size = HOLE_R0},
	    {.gpa = HOLE_R0, .size = HOLE_R1},
	    {.gpa = HOLE_R2, .size = 0x100000},
	};

	fake_mem_init_regions(&fm, r, 3);
	start_ring(QSIZE, false, true);
}

TestSuite(virtq_regions, .init = setup_regions, .fini = teardown);

Test(virtq_regions, buffer_across_a_region_boundary_refused)
{
	/* Contiguous in host memory, but two regions: still refused. */
	fake_desc(&ring, 0, HOLE_R0 - 8, 16, R, 0);
	fake_publish(&ring, 0);
	expect_refused("buffer outside guest memory");
}

Test(virtq_regions, buffers_up_to_and_from_a_boundary_are_legal)
{
	fake_desc(&ring, 0, HOLE_R0 - 8, 8, N, 1);
	fake_desc(&ring, 1, HOLE_R0, 8, N, 2);
	fake_desc(&ring, 2, HOLE_R2, 4096, W, 0);
	fake_publish(&ring, 0);
	expect_chain(0, 3, 2);
	cr_assert_eq(ch.bufs[0].hva, fm.host + HOLE_R0 - 8);
	cr_assert_eq(ch.bufs[1].hva, fm.host + HOLE_R0);
	cr_assert_eq(ch.bufs[2].hva, fm.host + HOLE_R0 + HOLE_R1);
}

Test(virtq_regions, buffer_into_or_inside_the_hole_refused)
{
	fake_desc(&ring, 0, HOLE_R0 + HOLE_R1 - 4, 8, R, 0);
	fake_publish(&ring, 0);
	expect_refused("buffer outside guest memory");
	fake_desc(&ring, 0, 0x180000, 16, R, 0);
	expect_refused("buffer outside guest memory");
	fake_desc(&ring, 0, HOLE_R2 - 1, 2, R, 0);
	expect_refused("buffer outside guest memory");
}

Test(virtq_regions, indirect_table_across_a_boundary_refused)
{
	fake_desc(&ring, 0, HOLE_R0 - 16, 32, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("indirect table outside guest memory");
}

/* ---- chains near 4 GiB: RAM large enough for long buffers ---- */

#define BIG_RAM (32ull << 20)

static void setup_big(void)
{
	struct guest_region r = {.gpa = 0, .size = BIG_RAM};

	fake_mem_init_regions(&fm, &r, 1);
	start_ring(256, false, true);
}

TestSuite(virtq_big, .init = setup_big, .fini = teardown);

/* n descriptors all covering the same 32 MiB, the last one short by
 * `less` bytes. */
static void overlapping_chain(unsigned n, uint32_t less)
{
	for (unsigned i = 0; i < n; i++)
		fake_desc(&ring, (uint16_t)i, 0,
			  (uint32_t)BIG_RAM - (i == n - 1 ? less : 0),
			  i < n - 1 ? N : 0, (uint16_t)(i + 1));
	fake_publish(&ring, 0);
}

Test(virtq_big, chain_of_4gib_minus_1_is_legal)
{
	overlapping_chain(128, 1);
	expect_chain(0, 128, 128);
	cr_assert_eq(ch.readable_len, 0xffffffffull);
}

Test(virtq_big, chain_of_exactly_4gib_refused)
{
	overlapping_chain(128, 0);
	expect_refused("chain longer than 4 GiB");
}

Test(virtq_big, chain_over_4gib_refused)
{
	overlapping_chain(200, 0);
	expect_refused("chain longer than 4 GiB");
}

Test(virtq_big, indirect_chain_over_4gib_refused)
{
	for (uint16_t i = 0; i < 129; i++)
		fake_desc_at(&fm, TABLE, i, 0, (uint32_t)BIG_RAM,
			     i < 128 ? W | N : W, (uint16_t)(i + 1));
	fake_desc(&ring, 0, TABLE, 129 * 16, IND, 0);
	fake_publish(&ring, 0);
	expect_refused("chain longer than 4 GiB");
}

/* One buffer of 4 GiB - 1 needs RAM that large: reserve it lazily. */
#define HUGE_RAM ((4ull << 30) + (1ull << 20))

static void setup_huge(void)
{
	struct guest_region r = {.gpa = 0, .size = HUGE_RAM};

	fake_mem_init_regions(&fm, &r, 1);
	start_ring(QSIZE, false, true);
}

TestSuite(virtq_huge, .init = setup_huge, .fini = teardown);

Test(virtq_huge, single_buffer_of_4gib_minus_1_is_legal)
{
	fake_desc(&ring, 0, D, 0xffffffffu, W, 0);
	fake_publish(&ring, 0);
	expect_chain(0, 1, 0);
	cr_assert_eq(ch.bufs[0].len, 0xffffffffu);
	cr_assert_eq(ch.writable_len, 0xffffffffull);
}

Test(virtq_huge, one_byte_more_than_4gib_minus_1_refused)
{
	fake_desc(&ring, 0, D, 0xffffffffu, N, 1);
	fake_desc(&ring, 1, D, 1, W, 0);
	fake_publish(&ring, 0);
	expect_refused("chain longer than 4 GiB");
}
