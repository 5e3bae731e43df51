// SPDX-License-Identifier: MIT
/*
 * The virtio-blk request parser, rule by rule (blk_req.h): chains are
 * built in fake guest memory and taken with virtq_pop(), as the device
 * does, then parsed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/blk/blk_req.h"
#include "tests/support/fake_ring.h"
#include "vmm/base/le.h"

FAKE_UBSAN_FATAL()

#define CAP	 (64ull * BLK_SECTOR) /* a 32 KiB disk */
#define BUF_GPA	 FAKE_DATA_GPA
#define BUF_STEP 0x2000u
#define TABLE	 0x80000u

static struct fake_mem fm;
static struct fake_ring ring;
static struct virtq q;
static struct virtq_chain ch;
static struct blk_req r;

static void setup(void)
{
	fake_mem_init(&fm);
	fake_ring_init(&ring, &fm, 16);
	memset(&q, 0, sizeof(q));
	q.indirect = true;
	cr_assert_eq(fake_ring_start(&ring, &q), 0);
}

static void teardown(void)
{
	fake_mem_fini(&fm);
}

TestSuite(blk_req, .init = setup, .fini = teardown);

/* Buffer sizes; WR() marks a device-writable one. */
#define WFLAG (1ll << 40)
#define WR(n) ((long long)(n) | WFLAG)

static uint64_t buf_gpa(unsigned i)
{
	return BUF_GPA + (uint64_t)i * BUF_STEP;
}

static uint8_t *buf(unsigned i)
{
	return fake_ptr(&fm, buf_gpa(i), 1);
}

/* Lay out one buffer per size at buf_gpa(i), chain them, pop the chain. */
static void chain_of(const long long *sizes, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t len = (uint32_t)(sizes[i] & ~WFLAG);
		uint16_t flags = (sizes[i] & WFLAG ? VIRTQ_DESC_F_WRITE : 0) |
				 (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);

		cr_assert_leq(len, BUF_STEP);
		fake_desc(&ring, (uint16_t)i, buf_gpa(i), len, flags,
			  (uint16_t)(i + 1));
	}
	fake_publish(&ring, 0);
	cr_assert_eq(virtq_pop(&q, &ch), 1, "%s", q.error ? q.error : "");
}

#define CHAIN(...)                                                             \
	do {                                                                   \
		const long long s_[] = {__VA_ARGS__};                          \
		chain_of(s_, sizeof(s_) / sizeof(s_[0]));                      \
	} while (0)

/* Write bytes into the readable part of the chain at offset off. */
static void chain_write(uint64_t off, const void *src, size_t len)
{
	const uint8_t *p = src;

	for (unsigned i = 0; i < ch.nreadable && len; i++) {
		size_t n;

		if (off >= ch.bufs[i].len) {
			off -= ch.bufs[i].len;
			continue;
		}
		n = ch.bufs[i].len - off;
		if (n > len)
			n = len;
		memcpy(ch.bufs[i].hva + off, p, n);
		p += n;
		len -= n;
		off = 0;
	}
	cr_assert_eq(len, 0, "readable part too short for the test data");
}

static void header(uint32_t type, uint64_t sector)
{
	uint8_t h[BLK_HDR_LEN] = {0};

	put_le32(h, type);
	put_le32(h + 4, 0xdeadbeef); /* reserved: ignored */
	put_le64(h + 8, sector);
	chain_write(0, h, sizeof(h));
}

static void segment(uint64_t off, uint64_t sector, uint32_t n, uint32_t flags)
{
	uint8_t s[BLK_DZ_SEG_LEN];

	put_le64(s, sector);
	put_le32(s + 8, n);
	put_le32(s + 12, flags);
	chain_write(off, s, sizeof(s));
}

static void parse_ok(uint64_t cap, bool ro)
{
	memset(&r, 0x5a, sizeof(r)); /* nothing may be left from before */
	cr_assert_eq(blk_req_parse(&ch, cap, ro, &r), 0);
}

static void expect_verdict(uint8_t verdict)
{
	const struct virtq_buf *last = &ch.bufs[ch.nbufs - 1];

	cr_assert_eq(r.verdict, verdict, "verdict %u, expected %u", r.verdict,
		     verdict);
	/* Whatever the verdict, the status byte is the chain's last byte. */
	cr_assert_eq(r.status, last->hva + last->len - 1);
}

static void expect_iov(unsigned i, const uint8_t *base, size_t len)
{
	cr_assert_lt(i, r.niov);
	cr_assert_eq(r.iov[i].iov_base, base, "iov %u base", i);
	cr_assert_eq(r.iov[i].iov_len, len, "iov %u len %zu, expected %zu", i,
		     r.iov[i].iov_len, len);
}

/* ---- IN / OUT ---- */

Test(blk_req, read_request)
{
	CHAIN(16, WR(1024), WR(1));
	header(VIRTIO_BLK_T_IN, 3);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.type, VIRTIO_BLK_T_IN);
	cr_assert_eq(r.sector, 3);
	cr_assert_eq(r.offset, 3 * 512);
	cr_assert_eq(r.len, 1024);
	cr_assert_eq(r.niov, 1);
	expect_iov(0, buf(1), 1024);
	cr_assert_eq(r.status, buf(2));
}

Test(blk_req, write_request_over_several_buffers)
{
	CHAIN(16, 512, 1024, WR(1));
	header(VIRTIO_BLK_T_OUT, 10);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.type, VIRTIO_BLK_T_OUT);
	cr_assert_eq(r.offset, 10 * 512);
	cr_assert_eq(r.len, 1536);
	cr_assert_eq(r.niov, 2);
	expect_iov(0, buf(1), 512);
	expect_iov(1, buf(2), 1024);
}

Test(blk_req, write_data_sharing_the_header_buffer)
{
	CHAIN(16 + 1024, WR(1));
	header(VIRTIO_BLK_T_OUT, 0);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.niov, 1);
	expect_iov(0, buf(0) + 16, 1024);
}

Test(blk_req, read_data_sharing_the_status_buffer)
{
	CHAIN(16, WR(1024 + 1));
	header(VIRTIO_BLK_T_IN, 0);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.len, 1024);
	cr_assert_eq(r.niov, 1);
	expect_iov(0, buf(1), 1024);
	cr_assert_eq(r.status, buf(1) + 1024);
}

Test(blk_req, read_data_split_unevenly_up_to_the_status)
{
	CHAIN(16, WR(300), WR(212 + 1));
	header(VIRTIO_BLK_T_IN, 1);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.len, 512);
	cr_assert_eq(r.niov, 2);
	expect_iov(0, buf(1), 300);
	expect_iov(1, buf(2), 212);
	cr_assert_eq(r.status, buf(2) + 212);
}

Test(blk_req, header_split_across_descriptors)
{
	CHAIN(7, 9, WR(1));
	header(VIRTIO_BLK_T_IN, 0x0102030405ull);
	parse_ok(UINT64_MAX & ~511ull, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.type, VIRTIO_BLK_T_IN);
	cr_assert_eq(r.sector, 0x0102030405ull);
	cr_assert_eq(r.len, 0);
}

Test(blk_req, write_data_after_a_split_header)
{
	CHAIN(10, 6 + 512, WR(1));
	header(VIRTIO_BLK_T_OUT, 2);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.sector, 2);
	cr_assert_eq(r.niov, 1);
	expect_iov(0, buf(1) + 6, 512);
}

Test(blk_req, indirect_chain_parses_the_same)
{
	fake_desc_at(&fm, TABLE, 0, buf_gpa(0), 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc_at(&fm, TABLE, 1, buf_gpa(1), 512,
		     VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	fake_desc_at(&fm, TABLE, 2, buf_gpa(2), 1, VIRTQ_DESC_F_WRITE, 0);
	fake_desc(&ring, 5, TABLE, 48, VIRTQ_DESC_F_INDIRECT, 0);
	fake_publish(&ring, 5);
	cr_assert_eq(virtq_pop(&q, &ch), 1);
	header(VIRTIO_BLK_T_IN, 7);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.offset, 7 * 512);
	expect_iov(0, buf(1), 512);
	cr_assert_eq(r.status, buf(2));
}

/* ---- not a request at all: -EPROTO ---- */

Test(blk_req, empty_chain_is_a_protocol_error)
{
	struct virtq_chain empty = {0};

	cr_assert_eq(blk_req_parse(&empty, CAP, false, &r), -EPROTO);
}

Test(blk_req, missing_header_is_a_protocol_error)
{
	CHAIN(WR(512), WR(1));
	cr_assert_eq(blk_req_parse(&ch, CAP, false, &r), -EPROTO);
}

Test(blk_req, short_header_is_a_protocol_error)
{
	CHAIN(15, WR(1));
	cr_assert_eq(blk_req_parse(&ch, CAP, false, &r), -EPROTO);
}

Test(blk_req, header_not_completed_by_writable_bytes)
{
	/* 8 readable bytes and plenty of writable ones: no header. */
	CHAIN(8, WR(8), WR(1));
	cr_assert_eq(blk_req_parse(&ch, CAP, false, &r), -EPROTO);
}

Test(blk_req, missing_status_is_a_protocol_error)
{
	CHAIN(16, 512);
	header(VIRTIO_BLK_T_OUT, 0);
	cr_assert_eq(blk_req_parse(&ch, CAP, false, &r), -EPROTO);
}

Test(blk_req, readable_status_is_a_protocol_error)
{
	CHAIN(16 + 1);
	header(VIRTIO_BLK_T_FLUSH, 0);
	cr_assert_eq(blk_req_parse(&ch, CAP, false, &r), -EPROTO);
}

Test(blk_req, zero_length_last_buffer_is_a_protocol_error)
{
	CHAIN(16, WR(512), WR(0));
	header(VIRTIO_BLK_T_IN, 0);
	cr_assert_eq(blk_req_parse(&ch, CAP, false, &r), -EPROTO);
}

/* ---- direction and length rules: IOERR ---- */

Test(blk_req, read_with_readable_data_is_ioerr)
{
	CHAIN(16 + 512, WR(512), WR(1));
	header(VIRTIO_BLK_T_IN, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, write_with_writable_data_is_ioerr)
{
	CHAIN(16, 512, WR(512 + 1));
	header(VIRTIO_BLK_T_OUT, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, length_not_whole_sectors_is_ioerr)
{
	CHAIN(16, WR(100), WR(1));
	header(VIRTIO_BLK_T_IN, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, write_length_not_whole_sectors_is_ioerr)
{
	CHAIN(16 + 511, WR(1));
	header(VIRTIO_BLK_T_OUT, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

/* ---- ranges ---- */

Test(blk_req, read_ending_exactly_at_capacity_is_ok)
{
	CHAIN(16, WR(1024 + 1));
	header(VIRTIO_BLK_T_IN, 62);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.offset, CAP - 1024);
	cr_assert_eq(r.len, 1024);
}

Test(blk_req, read_past_capacity_is_ioerr)
{
	CHAIN(16, WR(1024 + 1));
	header(VIRTIO_BLK_T_IN, 63);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, write_starting_past_capacity_is_ioerr)
{
	CHAIN(16 + 512, WR(1));
	header(VIRTIO_BLK_T_OUT, 64);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, zero_length_read_is_ok)
{
	CHAIN(16, WR(1));
	header(VIRTIO_BLK_T_IN, 5);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.len, 0);
	cr_assert_eq(r.niov, 0);
	cr_assert_eq(r.offset, 5 * 512);
}

Test(blk_req, zero_length_read_at_capacity_ok_beyond_ioerr)
{
	CHAIN(16, WR(1));
	header(VIRTIO_BLK_T_IN, 64);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	header(VIRTIO_BLK_T_IN, 65);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, sector_times_512_overflow_is_ioerr)
{
	/* Sectors whose byte offset wraps to something small or huge. */
	const uint64_t bad[] = {1ull << 63, 1ull << 55, (1ull << 55) + 1,
				UINT64_MAX, UINT64_MAX / 512 + 1};

	CHAIN(16, WR(512 + 1));
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		header(VIRTIO_BLK_T_IN, bad[i]);
		parse_ok(UINT64_MAX & ~511ull, false);
		expect_verdict(VIRTIO_BLK_S_IOERR);
	}
}

Test(blk_req, range_near_2_pow_64_checked_without_overflow)
{
	const uint64_t cap = UINT64_MAX & ~511ull; /* 2^64 - 512 */

	CHAIN(16, WR(512 + 1));
	header(VIRTIO_BLK_T_IN, (1ull << 55) - 2); /* ends at cap */
	parse_ok(cap, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.offset, cap - 512);
	header(VIRTIO_BLK_T_IN, (1ull << 55) - 1); /* starts at cap */
	parse_ok(cap, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

/* ---- read-only disks ---- */

Test(blk_req, read_only_refuses_writes)
{
	CHAIN(16 + 512, WR(1));
	header(VIRTIO_BLK_T_OUT, 0);
	parse_ok(CAP, true);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, read_only_refuses_discard_and_write_zeroes)
{
	CHAIN(16 + 16, WR(1));
	segment(16, 0, 8, 0);
	header(VIRTIO_BLK_T_DISCARD, 0);
	parse_ok(CAP, true);
	expect_verdict(VIRTIO_BLK_S_IOERR);
	header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
	parse_ok(CAP, true);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, read_only_allows_reads_flush_and_get_id)
{
	CHAIN(16, WR(512 + 1));
	header(VIRTIO_BLK_T_IN, 0);
	parse_ok(CAP, true);
	expect_verdict(BLK_NO_STATUS_YET);
	header(VIRTIO_BLK_T_GET_ID, 0);
	parse_ok(CAP, true);
	expect_verdict(BLK_NO_STATUS_YET);
}

Test(blk_req, read_only_flush_is_ok)
{
	CHAIN(16, WR(1));
	header(VIRTIO_BLK_T_FLUSH, 0);
	parse_ok(CAP, true);
	expect_verdict(BLK_NO_STATUS_YET);
}

/* ---- FLUSH, GET_ID ---- */

Test(blk_req, flush)
{
	CHAIN(16, WR(1));
	header(VIRTIO_BLK_T_FLUSH, 12345);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.type, VIRTIO_BLK_T_FLUSH);
	cr_assert_eq(r.niov, 0);
}

Test(blk_req, get_id_of_exactly_20_bytes)
{
	CHAIN(16, WR(20), WR(1));
	header(VIRTIO_BLK_T_GET_ID, 0);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.len, 20);
	cr_assert_eq(r.niov, 1);
	expect_iov(0, buf(1), 20);
}

Test(blk_req, get_id_capped_at_20_bytes)
{
	CHAIN(16, WR(10), WR(54 + 1));
	header(VIRTIO_BLK_T_GET_ID, 0);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.len, BLK_ID_LEN);
	cr_assert_eq(r.niov, 2);
	expect_iov(0, buf(1), 10);
	expect_iov(1, buf(2), 10);
}

Test(blk_req, get_id_shorter_buffer)
{
	CHAIN(16, WR(8 + 1));
	header(VIRTIO_BLK_T_GET_ID, 0);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.len, 8);
	expect_iov(0, buf(1), 8);
}

Test(blk_req, get_id_with_readable_data_is_ioerr)
{
	CHAIN(16 + 4, WR(20 + 1));
	header(VIRTIO_BLK_T_GET_ID, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

/* ---- DISCARD, WRITE_ZEROES ---- */

Test(blk_req, discard_segment_in_the_header_buffer)
{
	CHAIN(16 + 16, WR(1));
	header(VIRTIO_BLK_T_DISCARD, 999); /* header sector is unused */
	segment(16, 8, 16, 0);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.type, VIRTIO_BLK_T_DISCARD);
	cr_assert_eq(r.offset, 8 * 512);
	cr_assert_eq(r.len, 16 * 512);
	cr_assert_eq(r.dz_flags, 0);
}

Test(blk_req, write_zeroes_segment_split_across_buffers)
{
	CHAIN(16, 5, 11, WR(1));
	header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
	segment(16, 60, 4, VIRTIO_BLK_WZ_UNMAP);
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	cr_assert_eq(r.offset, 60 * 512);
	cr_assert_eq(r.len, 4 * 512);
	cr_assert_eq(r.dz_flags, VIRTIO_BLK_WZ_UNMAP);
}

Test(blk_req, discard_with_unmap_flag_is_unsupp)
{
	CHAIN(32, WR(1));
	header(VIRTIO_BLK_T_DISCARD, 0);
	segment(16, 0, 8, VIRTIO_BLK_WZ_UNMAP);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_UNSUPP);
}

Test(blk_req, write_zeroes_unknown_flag_is_unsupp)
{
	CHAIN(32, WR(1));
	header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
	segment(16, 0, 8, 2);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_UNSUPP);
	segment(16, 0, 8, 0x80000000u | VIRTIO_BLK_WZ_UNMAP);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_UNSUPP);
}

Test(blk_req, two_segments_are_ioerr)
{
	CHAIN(16 + 32, WR(1));
	header(VIRTIO_BLK_T_DISCARD, 0);
	segment(16, 0, 8, 0);
	segment(32, 8, 8, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, missing_or_partial_segment_is_ioerr)
{
	CHAIN(16, WR(1));
	header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
	CHAIN(16 + 8, WR(1));
	header(VIRTIO_BLK_T_DISCARD, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

Test(blk_req, segment_range_is_checked)
{
	CHAIN(32, WR(1));
	header(VIRTIO_BLK_T_DISCARD, 0);
	segment(16, 56, 8, 0); /* ends at capacity */
	parse_ok(CAP, false);
	expect_verdict(BLK_NO_STATUS_YET);
	segment(16, 57, 8, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
	segment(16, 0, UINT32_MAX, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
	segment(16, (1ull << 55) + 1, 1, 0); /* wraps to sector 1 */
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
	segment(16, UINT64_MAX, 1, 0);
	parse_ok(CAP, false);
	expect_verdict(VIRTIO_BLK_S_IOERR);
}

/* ---- unknown types ---- */

Test(blk_req, unknown_types_are_unsupp)
{
	const uint32_t types[] = {2, 3, 5, 7, 9, 10, 12, 14, 0xffffffffu};

	CHAIN(16 + 512, WR(512 + 1));
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		header(types[i], 0);
		parse_ok(CAP, false);
		expect_verdict(VIRTIO_BLK_S_UNSUPP);
		cr_assert_eq(r.type, types[i]);
	}
}
