// SPDX-License-Identifier: MIT
/*
 * Copy-on-write overlays (cow.h) on real files: formatting, validation of
 * an existing overlay against its base, copy-up of partly written
 * clusters, when clusters are marked, and the extents a read is split
 * into; then a disk (disk.h) with an overlay under the AIO engine.  Files
 * live in /var/tmp (ext4 here: O_DIRECT and Linux AIO work) and are
 * unlinked as soon as they are open, or at the end of the test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "devices/blk/blk_aio.h"
#include "devices/blk/cow.h"
#include "devices/blk/disk.h"
#include "tests/support/fake_ring.h"
#include "vmm/base/le.h"

FAKE_UBSAN_FATAL()

#define CS	   COW_CLUSTER_SIZE
#define DATA_OFF   (1ull << 20)
#define BASE_PATH  "/images/base.img"
#define BASE_SMALL (16 * CS) /* 64 KiB */

static int base_fd = -1, ov_fd = -1;
static struct cow c;
static bool c_open;

static int temp_fd(void)
{
	char path[] = "/var/tmp/hutch-test-cow-XXXXXX";
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	return fd;
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 12) * 13 + 1);
}

static void fill_base(uint64_t size)
{
	uint8_t buf[CS];

	cr_assert_eq(ftruncate(base_fd, 0), 0);
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

		for (size_t k = 0; k < n; k++)
			buf[k] = pattern(off + k);
		cr_assert_eq(pwrite(base_fd, buf, n, (off_t)off), (ssize_t)n);
	}
}

static void setup(void)
{
	base_fd = temp_fd();
	ov_fd = temp_fd();
	c_open = false;
}

static void teardown(void)
{
	if (c_open)
		cow_close(&c);
	close(base_fd);
	close(ov_fd);
}

TestSuite(cow, .init = setup, .fini = teardown);

static int open_cow(uint64_t base_size, const char **why)
{
	int ret;

	if (c_open)
		cow_close(&c);
	c_open = false;
	ret = cow_open(&c, ov_fd, base_fd, base_size, BASE_PATH, why);
	c_open = ret == 0;
	return ret;
}

static void open_ok(uint64_t base_size)
{
	const char *why = "unset";
	int ret = open_cow(base_size, &why);

	cr_assert_eq(ret, 0, "cow_open: %d (%s)", ret, why ? why : "?");
	cr_assert_null(why);
}

static void open_fails(uint64_t base_size, int err, const char *reason)
{
	const char *why = NULL;
	int ret = open_cow(base_size, &why);

	cr_assert_eq(ret, err, "cow_open returned %d, expected %d", ret, err);
	cr_assert_not_null(why);
	cr_assert_not_null(strstr(why, reason), "why \"%s\", expected \"%s\"",
			   why, reason);
}

static void read_overlay(uint64_t off, void *buf, size_t len)
{
	cr_assert_eq(pread(ov_fd, buf, len, (off_t)off), (ssize_t)len);
}

static void write_overlay(uint64_t off, const void *buf, size_t len)
{
	cr_assert_eq(pwrite(ov_fd, buf, len, (off_t)off), (ssize_t)len);
}

/* Rewrite header bytes, optionally fixing the checksum after. */
static void patch_header(unsigned off, const void *bytes, size_t len,
			 bool fix_crc)
{
	uint8_t h[COW_HEADER_SIZE];

	read_overlay(0, h, sizeof(h));
	memcpy(h + off, bytes, len);
	if (fix_crc)
		put_le32(h + COW_HEADER_SIZE - 4,
			 (uint32_t)crc32(0, h, COW_HEADER_SIZE - 4));
	write_overlay(0, h, sizeof(h));
}

/* The overlay's copy of disk bytes [off, off + len) equals the base's. */
static void expect_copied_up(uint64_t off, size_t len)
{
	uint8_t got[CS];

	cr_assert_leq(len, sizeof(got));
	read_overlay(DATA_OFF + off, got, len);
	for (size_t k = 0; k < len; k++)
		cr_assert_eq(got[k], pattern(off + k),
			     "overlay byte %llu: 0x%02x, base has 0x%02x",
			     (unsigned long long)(off + k), got[k],
			     pattern(off + k));
}

static void expect_zeros_in_overlay(uint64_t off, size_t len)
{
	uint8_t got[CS];

	cr_assert_leq(len, sizeof(got));
	read_overlay(DATA_OFF + off, got, len);
	for (size_t k = 0; k < len; k++)
		cr_assert_eq(got[k], 0, "overlay byte %llu copied up",
			     (unsigned long long)(off + k));
}

static void expect_present(uint64_t first, uint64_t n, bool present)
{
	for (uint64_t i = first; i < first + n; i++)
		cr_assert_eq(cow_present(&c, i), present, "cluster %llu",
			     (unsigned long long)i);
}

static void expect_extent(const struct cow_extent *e, bool ov, uint64_t off,
			  uint64_t len)
{
	cr_assert_eq(e->in_overlay, ov);
	cr_assert_eq(e->file_offset, off, "extent at 0x%llx, expected 0x%llx",
		     (unsigned long long)e->file_offset,
		     (unsigned long long)off);
	cr_assert_eq(e->len, len, "extent len %llu, expected %llu",
		     (unsigned long long)e->len, (unsigned long long)len);
}

/* ---- format and validation ---- */

Test(cow, formats_an_empty_overlay)
{
	uint8_t h[COW_HEADER_SIZE], bitmap[2];
	uint32_t fp;
	struct stat st;

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(c.disk_size, BASE_SMALL);
	cr_assert_eq(c.cluster_size, CS);
	cr_assert_eq(c.bitmap_offset, COW_HEADER_SIZE);
	cr_assert_eq(c.bitmap_len, 2);
	cr_assert_eq(c.data_offset, DATA_OFF);
	cr_assert_eq(fstat(ov_fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, DATA_OFF + BASE_SMALL);

	read_overlay(0, h, sizeof(h));
	cr_assert_arr_eq(h, COW_MAGIC, 8);
	cr_assert_eq(get_le32(h + 8), COW_VERSION);
	cr_assert_eq(get_le32(h + 12), COW_HEADER_SIZE);
	cr_assert_eq(get_le32(h + 16), CS);
	cr_assert_eq(get_le32(h + 20), 0);
	cr_assert_eq(get_le64(h + 24), BASE_SMALL);
	cr_assert_eq(get_le64(h + 32), COW_HEADER_SIZE);
	cr_assert_eq(get_le64(h + 40), 2);
	cr_assert_eq(get_le64(h + 48), DATA_OFF);
	cr_assert_eq(get_le64(h + 56), BASE_SMALL);
	cr_assert_eq(cow_fingerprint(base_fd, BASE_SMALL, &fp), 0);
	cr_assert_eq(get_le32(h + 64), fp);
	cr_assert_eq(get_le16(h + 68), strlen(BASE_PATH));
	cr_assert_arr_eq(h + 128, BASE_PATH, strlen(BASE_PATH));
	cr_assert_eq(get_le32(h + COW_HEADER_SIZE - 4),
		     (uint32_t)crc32(0, h, COW_HEADER_SIZE - 4));
	read_overlay(COW_HEADER_SIZE, bitmap, sizeof(bitmap));
	cr_assert_eq(bitmap[0] | bitmap[1], 0);
	expect_present(0, 16, false);
}

Test(cow, formats_without_a_base_path)
{
	/* base_path is informational; NULL must be fine (the code checks
	 * for it).  Under UBSan this also catches memcpy(dst, NULL, 0). */
	uint8_t h[COW_HEADER_SIZE];
	const char *why = "unset";

	fill_base(BASE_SMALL);
	cr_assert_eq(cow_open(&c, ov_fd, base_fd, BASE_SMALL, NULL, &why), 0);
	c_open = true;
	read_overlay(0, h, sizeof(h));
	cr_assert_eq(get_le16(h + 68), 0);
	open_ok(BASE_SMALL);
}

Test(cow, reopen_validates_and_keeps_the_bitmap)
{
	uint8_t bitmap[2];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(cow_mark(&c, 3, 1), 0);
	cr_assert_eq(cow_mark(&c, 9, 2), 0);
	cr_assert_eq(cow_mark(&c, 3, 1), 0, "marking twice is harmless");
	read_overlay(COW_HEADER_SIZE, bitmap, sizeof(bitmap));
	cr_assert_eq(bitmap[0], 1u << 3);
	cr_assert_eq(bitmap[1], (1u << 1) | (1u << 2));

	open_ok(BASE_SMALL);
	expect_present(0, 3, false);
	expect_present(3, 1, true);
	expect_present(4, 5, false);
	expect_present(9, 2, true);
	expect_present(11, 5, false);
}

Test(cow, overlay_must_be_a_regular_file)
{
	int fd = open("/dev/null", O_RDWR);
	const char *why = NULL;

	cr_assert_geq(fd, 0);
	fill_base(BASE_SMALL);
	cr_assert_eq(cow_open(&c, fd, base_fd, BASE_SMALL, BASE_PATH, &why),
		     -EINVAL);
	cr_assert_not_null(strstr(why, "not a regular file"));
	close(fd);
}

Test(cow, bad_magic_refused)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	patch_header(0, "HUTCHCOX", 8, true);
	open_fails(BASE_SMALL, -EINVAL, "bad magic");
}

Test(cow, short_non_empty_file_refused)
{
	fill_base(BASE_SMALL);
	write_overlay(0, "HUTCHCOW", 8);
	open_fails(BASE_SMALL, -EINVAL, "bad magic");
}

Test(cow, unknown_version_refused)
{
	uint8_t v[4];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	put_le32(v, 2);
	patch_header(8, v, 4, true);
	open_fails(BASE_SMALL, -EINVAL, "unsupported overlay version");
}

Test(cow, checksum_mismatch_refused)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	patch_header(200, "x", 1, false); /* padding, but checksummed */
	open_fails(BASE_SMALL, -EINVAL, "checksum");
}

Test(cow, inconsistent_layout_refused)
{
	uint8_t v[8];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	put_le32(v, 8192); /* cluster size */
	patch_header(16, v, 4, true);
	open_fails(BASE_SMALL, -EINVAL, "layout");

	cr_assert_eq(ftruncate(ov_fd, 0), 0);
	open_ok(BASE_SMALL);
	put_le64(v, DATA_OFF + 4096); /* data offset not 1 MiB aligned */
	patch_header(48, v, 8, true);
	open_fails(BASE_SMALL, -EINVAL, "layout");

	cr_assert_eq(ftruncate(ov_fd, 0), 0);
	open_ok(BASE_SMALL);
	put_le64(v, 3); /* bitmap length */
	patch_header(40, v, 8, true);
	open_fails(BASE_SMALL, -EINVAL, "layout");
}

Test(cow, truncated_overlay_refused)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(ftruncate(ov_fd, COW_HEADER_SIZE + 2), 0);
	open_fails(BASE_SMALL, -EINVAL, "truncated");
}

Test(cow, lost_sparse_tail_is_restored)
{
	struct stat st;

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(ftruncate(ov_fd, DATA_OFF + 4096), 0);
	open_ok(BASE_SMALL);
	cr_assert_eq(fstat(ov_fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, DATA_OFF + BASE_SMALL);
}

Test(cow, base_size_changed_is_stale)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	fill_base(BASE_SMALL + CS);
	open_fails(BASE_SMALL + CS, -ESTALE, "changed size");
	fill_base(BASE_SMALL - CS);
	open_fails(BASE_SMALL - CS, -ESTALE, "changed size");
}

Test(cow, base_content_changed_in_first_block_is_stale)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(pwrite(base_fd, "!", 1, 100), 1);
	open_fails(BASE_SMALL, -ESTALE, "fingerprint");
}

Test(cow, base_content_changed_in_last_block_is_stale)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(pwrite(base_fd, "!", 1, BASE_SMALL - 1), 1);
	open_fails(BASE_SMALL, -ESTALE, "fingerprint");
}

Test(cow, fingerprint_samples_blocks_not_everything)
{
	/* 1 MiB base: blocks at multiples of 16 KiB are sampled, the one at
	 * 4 KiB is not (the documented trade-off). */
	const uint64_t size = 1ull << 20;

	fill_base(size);
	open_ok(size);
	cr_assert_eq(pwrite(base_fd, "!", 1, 5000), 1);
	open_ok(size);
	cr_assert_eq(pwrite(base_fd, "!", 1, 16384 + 10), 1);
	open_fails(size, -ESTALE, "fingerprint");
}

Test(cow, tiny_base_smaller_than_a_sample)
{
	fill_base(1000);
	open_ok(1000);
	cr_assert_eq(c.bitmap_len, 1);
	open_ok(1000);
	cr_assert_eq(pwrite(base_fd, "!", 1, 999), 1);
	open_fails(1000, -ESTALE, "fingerprint");
}

/* ---- reads: extents ---- */

Test(cow, untouched_disk_reads_from_the_base_in_one_extent)
{
	struct cow_extent e[4];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(cow_map_read(&c, 0, BASE_SMALL, e, 4), 1);
	expect_extent(&e[0], false, 0, BASE_SMALL);
	cr_assert_eq(cow_map_read(&c, 1000, 5000, e, 4), 1);
	expect_extent(&e[0], false, 1000, 5000);
	cr_assert_eq(cow_map_read(&c, 0, 0, e, 0), 0);
}

Test(cow, alternating_clusters_give_alternating_extents)
{
	struct cow_extent e[8];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	for (uint64_t k = 0; k < 8; k += 2)
		cr_assert_eq(cow_mark(&c, k, 1), 0);
	cr_assert_eq(cow_map_read(&c, 0, 8 * CS, e, 8), 8);
	for (unsigned k = 0; k < 8; k++)
		expect_extent(&e[k], k % 2 == 0,
			      (k % 2 == 0 ? DATA_OFF : 0) + k * CS, CS);
	/* Starting and ending inside clusters. */
	cr_assert_eq(cow_map_read(&c, CS + 100, CS, e, 8), 2);
	expect_extent(&e[0], false, CS + 100, CS - 100);
	expect_extent(&e[1], true, DATA_OFF + 2 * CS, 100);
}

Test(cow, neighbouring_clusters_merge_into_one_extent)
{
	struct cow_extent e[4];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(cow_mark(&c, 1, 3), 0);
	cr_assert_eq(cow_map_read(&c, 0, 6 * CS, e, 4), 3);
	expect_extent(&e[0], false, 0, CS);
	expect_extent(&e[1], true, DATA_OFF + CS, 3 * CS);
	expect_extent(&e[2], false, 4 * CS, 2 * CS);
}

Test(cow, a_full_extent_array_maps_a_prefix)
{
	struct cow_extent e[8];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	for (uint64_t k = 0; k < 8; k += 2)
		cr_assert_eq(cow_mark(&c, k, 1), 0);
	/* 7 of the 8 extents; the caller goes on from cluster 7. */
	cr_assert_eq(cow_map_read(&c, 0, 8 * CS, e, 7), 7);
	expect_extent(&e[6], true, DATA_OFF + 6 * CS, CS);
	cr_assert_eq(cow_map_read(&c, 7 * CS, CS, e, 7), 1);
	expect_extent(&e[0], false, 7 * CS, CS);
	cr_assert_eq(cow_map_read(&c, 0, 1, e, 0), 0);
	cr_assert_eq(cow_map_read(&c, 0, 8 * CS, e, 8), 8);
}

/* ---- writes: copy-up, and when clusters are marked ---- */

/* A write that begins and completes (the guest's data itself is not
 * written unless the test does it). */
static void write_ok(uint64_t off, uint64_t len)
{
	cr_assert_eq(cow_write_begin(&c, base_fd, off, len), 0);
	cr_assert_eq(cow_write_end(&c, off, len, true), 0);
}

/* Whether cluster is marked in the overlay file itself: what a VMM
 * opening it now (after a crash of this one) would see. */
static bool present_in_file(uint64_t cluster)
{
	uint8_t byte;

	read_overlay(COW_HEADER_SIZE + cluster / 8, &byte, 1);
	return byte & (1u << (cluster % 8));
}

Test(cow, partial_clusters_are_copied_up)
{
	struct cow_extent e[4];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	/* Both clusters partly covered: copied and marked at begin. */
	cr_assert_eq(cow_write_begin(&c, base_fd, 1000, 5000), 0);
	expect_present(0, 2, true);
	expect_present(2, 14, false);
	expect_copied_up(0, CS);
	expect_copied_up(CS, CS);
	cr_assert(present_in_file(0) && present_in_file(1));
	cr_assert_eq(cow_write_end(&c, 1000, 5000, true), 0);
	cr_assert_eq(cow_map_read(&c, 0, 3 * CS, e, 4), 2);
	expect_extent(&e[0], true, DATA_OFF, 2 * CS);
	expect_extent(&e[1], false, 2 * CS, CS);
	/* The bits reached the file. */
	open_ok(BASE_SMALL);
	expect_present(0, 2, true);
}

Test(cow, fully_covered_clusters_are_not_copied)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	/* Clusters 3 (from byte 100), 4 (all of it), 5 (to byte 100). */
	write_ok(3 * CS + 100, 2 * CS);
	expect_present(2, 1, false);
	expect_present(3, 3, true);
	expect_present(6, 1, false);
	expect_copied_up(3 * CS, CS);
	expect_zeros_in_overlay(4 * CS, CS);
	expect_copied_up(5 * CS, CS);
	/* Whole first or last clusters of a longer write are not copied. */
	write_ok(10 * CS, CS + 100);
	expect_zeros_in_overlay(10 * CS, CS);
	expect_copied_up(11 * CS, CS);
	write_ok(12 * CS + 100, 2 * CS - 100);
	expect_copied_up(12 * CS, CS);
	expect_zeros_in_overlay(13 * CS, CS);
	expect_present(10, 4, true);
	/* An aligned whole-cluster write copies nothing. */
	write_ok(8 * CS, CS);
	expect_present(8, 1, true);
	expect_zeros_in_overlay(8 * CS, CS);
}

/*
 * A whole cluster still reads as the base's until its write completed:
 * marking it earlier let a read racing the write, or a VMM killed before
 * the data landed, see zeros (the overlay's hole) where the old data was.
 */
Test(cow, whole_clusters_are_marked_when_their_write_ends)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	/* Cluster 3 partly, 4 and 5 whole. */
	cr_assert_eq(cow_write_begin(&c, base_fd, 3 * CS + 512, 3 * CS - 512),
		     0);
	expect_present(3, 1, true);
	expect_present(4, 2, false);
	cr_assert(!present_in_file(4) && !present_in_file(5));
	cr_assert(present_in_file(3));
	cr_assert_eq(cow_write_end(&c, 3 * CS + 512, 3 * CS - 512, true), 0);
	expect_present(3, 3, true);
	cr_assert(present_in_file(4) && present_in_file(5));
	open_ok(BASE_SMALL);
	expect_present(3, 3, true);
}

Test(cow, a_failed_write_leaves_whole_clusters_to_the_base)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(cow_write_begin(&c, base_fd, 2 * CS, 2 * CS + 100), 0);
	cr_assert_eq(cow_write_end(&c, 2 * CS, 2 * CS + 100, false), 0);
	expect_present(2, 2, false);
	expect_present(4, 1, true); /* copied up: its old bytes are there */
	/* Nothing is left pending: a partial write there copies up. */
	cr_assert_eq(cow_write_begin(&c, base_fd, 2 * CS, 512), 0);
	expect_copied_up(2 * CS, CS);
	cr_assert_eq(cow_write_end(&c, 2 * CS, 512, true), 0);
}

/*
 * A partial write into a cluster that an earlier write still in flight
 * covers whole: the earlier write's data may be in the overlay already
 * (its bit is not set yet), so copying the base up would destroy it.
 * Refused with -EBUSY and nothing done, until the earlier write ended.
 */
Test(cow, copy_up_into_a_cluster_being_written_is_busy)
{
	uint8_t landed[CS], got[CS];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(cow_write_begin(&c, base_fd, 6 * CS, 2 * CS), 0);
	memset(landed, 0x5c, sizeof(landed)); /* its data, landed */
	write_overlay(DATA_OFF + 7 * CS, landed, sizeof(landed));
	cr_assert_eq(cow_write_begin(&c, base_fd, 7 * CS + 512, 512), -EBUSY);
	cr_assert_eq(cow_write_begin(&c, base_fd, 5 * CS, CS + 512), -EBUSY);
	expect_present(5, 3, false);
	read_overlay(DATA_OFF + 7 * CS, got, sizeof(got));
	cr_assert_arr_eq(got, landed, sizeof(got), "copy-up went ahead");
	/* Whole-cluster writes there need no copy and go ahead. */
	write_ok(7 * CS, CS);
	/* Once the first write ended, the partial one needs no copy. */
	cr_assert_eq(cow_write_end(&c, 6 * CS, 2 * CS, true), 0);
	write_ok(7 * CS + 512, 512);
	read_overlay(DATA_OFF + 7 * CS, got, sizeof(got));
	cr_assert_arr_eq(got, landed, sizeof(got));
	expect_present(5, 1, false);
	expect_present(6, 2, true);
}

Test(cow, identical_writes_in_flight_are_pending_until_both_end)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(cow_write_begin(&c, base_fd, 9 * CS, CS), 0);
	cr_assert_eq(cow_write_begin(&c, base_fd, 9 * CS, CS), 0);
	cr_assert_eq(cow_write_end(&c, 9 * CS, CS, false), 0);
	expect_present(9, 1, false);
	cr_assert_eq(cow_write_begin(&c, base_fd, 9 * CS, 512), -EBUSY);
	cr_assert_eq(cow_write_end(&c, 9 * CS, CS, false), 0);
	cr_assert_eq(cow_write_begin(&c, base_fd, 9 * CS, 512), 0);
	cr_assert_eq(cow_write_end(&c, 9 * CS, 512, true), 0);
	expect_copied_up(9 * CS, CS);
}

Test(cow, many_writes_in_flight)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	/* More than the pending table's first allocation. */
	for (unsigned i = 0; i < 40; i++)
		cr_assert_eq(cow_write_begin(&c, base_fd, (i % 16) * CS, CS),
			     0);
	expect_present(0, 16, false);
	for (unsigned i = 0; i < 40; i++)
		cr_assert_eq(cow_write_end(&c, (i % 16) * CS, CS, true), 0);
	expect_present(0, 16, true);
	cr_assert_eq(c.npending, 0);
}

Test(cow, present_cluster_is_not_copied_again)
{
	uint8_t junk[CS], got[CS];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	write_ok(10, 10);
	memset(junk, 0xee, sizeof(junk));
	write_overlay(DATA_OFF, junk, sizeof(junk)); /* the guest's data */
	write_ok(20, 10);
	read_overlay(DATA_OFF, got, sizeof(got));
	cr_assert_arr_eq(got, junk, sizeof(got));
}

Test(cow, zero_length_write_changes_nothing)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	write_ok(100, 0);
	expect_present(0, 16, false);
}

Test(cow, last_partial_cluster)
{
	/* 2 clusters + 3 sectors: the last cluster is 1536 bytes long. */
	const uint64_t size = 2 * CS + 3 * 512;
	struct cow_extent e[4];

	fill_base(size);
	open_ok(size);
	cr_assert_eq(c.bitmap_len, 1);
	write_ok(9000, size - 9000);
	expect_present(0, 2, false);
	expect_present(2, 1, true);
	expect_copied_up(2 * CS, size - 2 * CS);
	cr_assert_eq(cow_map_read(&c, 8000, size - 8000, e, 4), 2);
	expect_extent(&e[0], false, 8000, 2 * CS - 8000);
	expect_extent(&e[1], true, DATA_OFF + 2 * CS, size - 2 * CS);
}

Test(cow, whole_last_partial_cluster_is_not_copied)
{
	const uint64_t size = 2 * CS + 3 * 512;

	fill_base(size);
	open_ok(size);
	cr_assert_eq(cow_write_begin(&c, base_fd, 2 * CS, size - 2 * CS), 0);
	expect_present(2, 1, false); /* whole: pending */
	cr_assert_eq(cow_write_end(&c, 2 * CS, size - 2 * CS, true), 0);
	expect_present(2, 1, true);
	expect_zeros_in_overlay(2 * CS, size - 2 * CS);
}

Test(cow, overlay_stays_sparse)
{
	const uint64_t size = 16ull << 20;
	uint8_t data[512];
	struct stat st;

	/* A sparse 16 MiB base: only the fingerprint's samples are read. */
	cr_assert_eq(ftruncate(base_fd, (off_t)size), 0);
	open_ok(size);
	memset(data, 0x42, sizeof(data));
	for (uint64_t k = 0; k < 3; k++) {
		uint64_t off = k * (5ull << 20) + 512;

		cr_assert_eq(cow_write_begin(&c, base_fd, off, sizeof(data)),
			     0);
		write_overlay(cow_data_pos(&c, off), data, sizeof(data));
		cr_assert_eq(cow_write_end(&c, off, sizeof(data), true), 0);
	}
	cr_assert_eq(fsync(ov_fd), 0);
	cr_assert_eq(fstat(ov_fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, DATA_OFF + size);
	/* Header, bitmap and three clusters: far below 1 MiB. */
	cr_assert_leq((uint64_t)st.st_blocks * 512, 256u << 10,
		      "overlay uses %llu bytes",
		      (unsigned long long)st.st_blocks * 512);
}

/* ---- a disk with an overlay under the AIO engine ---- */

static char dbase_path[64], dov_path[64];
static struct disk disk;
static struct blk_aio aio;
static struct blk_aio_req areq;
static uint8_t *abuf;
static unsigned completions;
static int completion_error;

static void on_done(void *opaque, struct blk_aio_req *r)
{
	(void)opaque;
	completions++;
	completion_error = r->error;
}

static int temp_path_fd(char *path, size_t len, const char *tag)
{
	int fd;

	snprintf(path, len, "/var/tmp/hutch-test-%s-XXXXXX", tag);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	return fd;
}

static void disk_setup(void)
{
	struct drive_config cfg = {.path = dbase_path, .overlay = dov_path};

	base_fd = temp_path_fd(dbase_path, sizeof(dbase_path), "dbase");
	ov_fd = temp_path_fd(dov_path, sizeof(dov_path), "dov");
	c_open = false;
	fill_base(BASE_SMALL);
	cr_assert_eq(disk_open(&disk, &cfg, 0), 0);
	cr_assert_eq(blk_aio_init(&aio, 4, on_done, NULL), 0);
	abuf = aligned_alloc(4096, 2 * CS);
	cr_assert_not_null(abuf);
	completions = 0;
	completion_error = 0;
}

static void disk_teardown(void)
{
	blk_aio_destroy(&aio);
	disk_close(&disk);
	free(abuf);
	unlink(dbase_path);
	unlink(dov_path);
	teardown();
}

TestSuite(disk_aio, .init = disk_setup, .fini = disk_teardown);

static void need_aio(void)
{
	if (!aio.usable || disk.write_direct_fd < 0 || disk.dio_align > CS)
		cr_skip_test("no O_DIRECT or Linux AIO in /var/tmp");
}

/* Submit a write of len bytes of fill at off through the engine. */
static void aio_write(uint64_t off, uint32_t len, uint8_t fill)
{
	memset(&areq, 0, sizeof(areq));
	memset(abuf, fill, len);
	areq.req.type = VIRTIO_BLK_T_OUT;
	areq.req.offset = off;
	areq.req.len = len;
	areq.req.iov[0] = (struct iovec){.iov_base = abuf, .iov_len = len};
	areq.req.niov = 1;
	cr_assert_eq(blk_aio_submit(&aio, &disk, &areq), 1);
	blk_aio_kick(&aio);
}

/* Wait until the kernel completed the write, without reaping it. */
static void wait_kernel_done(void)
{
	struct pollfd p = {.fd = aio.efd, .events = POLLIN};

	cr_assert_eq(poll(&p, 1, 5000), 1, "AIO write did not complete");
	cr_assert_eq(completions, 0);
}

/* What a VMM started now, after this one died, would see of cluster:
 * the overlay opened afresh from its file. */
static bool present_after_crash(uint64_t cluster)
{
	struct cow fresh;
	const char *why = NULL;
	int fd = open(dov_path, O_RDWR);
	bool present;

	cr_assert_geq(fd, 0);
	cr_assert_eq(cow_open(&fresh, fd, base_fd, BASE_SMALL, NULL, &why), 0,
		     "%s", why ? why : "");
	present = cow_present(&fresh, cluster);
	cow_close(&fresh);
	close(fd);
	return present;
}

/* Read cluster through the disk (what the guest reads now). */
static void expect_disk_cluster(uint64_t cluster, int fill)
{
	uint8_t got[CS];
	struct iovec v = {.iov_base = got, .iov_len = CS};

	cr_assert_eq(disk_read_sync(&disk, &v, 1, cluster * CS, CS), 0);
	for (unsigned k = 0; k < CS; k++)
		cr_assert_eq(
		    got[k],
		    fill < 0 ? pattern(cluster * CS + k) : (uint8_t)fill,
		    "cluster %llu byte %u", (unsigned long long)cluster, k);
}

/*
 * The crash case: a whole-cluster write submitted (and even completed by
 * the kernel) but not yet reaped by the VMM.  Its cluster's bit must
 * still be clear in the overlay file, so a VMM killed now leaves the
 * base's data there, not zeros; once the completion is handled the bit is
 * set and the data reads back.
 */
Test(disk_aio, whole_cluster_is_marked_only_after_its_write_completed)
{
	need_aio();
	aio_write(3 * CS, CS, 0xa7);
	wait_kernel_done();
	cr_assert(!present_after_crash(3),
		  "bit set before the write completed");
	cr_assert(!cow_present(disk.cow, 3));
	expect_disk_cluster(3, -1); /* a racing read sees the old data */
	blk_aio_reap(&aio);
	cr_assert_eq(completions, 1);
	cr_assert_eq(completion_error, 0);
	cr_assert(cow_present(disk.cow, 3));
	cr_assert(present_after_crash(3));
	expect_disk_cluster(3, 0xa7);
	expect_disk_cluster(2, -1);
	expect_disk_cluster(4, -1);
}

/*
 * A partial write (synchronous path) into a cluster whose whole-cluster
 * AIO write has landed but not been reaped: disk_write_begin refuses
 * (-EBUSY) rather than copying the base over that data; after the writes
 * in flight drained, the partial write goes on top of it.
 */
Test(disk_aio, partial_write_waits_for_a_whole_cluster_write_in_flight)
{
	uint8_t part[512], got[CS];
	struct iovec v = {.iov_base = part, .iov_len = sizeof(part)};
	uint64_t pos;

	need_aio();
	aio_write(5 * CS, CS, 0x3c);
	wait_kernel_done();
	cr_assert_eq(disk_write_begin(&disk, 5 * CS + 1024, 512, &pos), -EBUSY);
	cr_assert_eq(disk_write_sync(&disk, &v, 1, 5 * CS + 1024), -EBUSY);
	read_overlay(DATA_OFF + 5 * CS, got, CS);
	for (unsigned k = 0; k < CS; k++)
		cr_assert_eq(got[k], 0x3c, "base copied over byte %u", k);
	blk_aio_drain(&aio);
	cr_assert_eq(completions, 1);
	memset(part, 0x99, sizeof(part));
	cr_assert_eq(disk_write_sync(&disk, &v, 1, 5 * CS + 1024), 0);
	read_overlay(DATA_OFF + 5 * CS, got, CS);
	for (unsigned k = 0; k < CS; k++)
		cr_assert_eq(got[k], k >= 1024 && k < 1536 ? 0x99 : 0x3c,
			     "byte %u", k);
}

/* WRITE_ZEROES (and DISCARD, through it) mark whole clusters only once
 * the zeroing is done, like writes. */
Test(disk_aio, write_zeroes_marks_after_zeroing)
{
	cr_assert_eq(disk_write_zeroes(&disk, 6 * CS, 2 * CS), 0);
	cr_assert(present_after_crash(6) && present_after_crash(7));
	expect_disk_cluster(6, 0);
	expect_disk_cluster(7, 0);
	expect_disk_cluster(8, -1);
}

/* ---- opening drives: file modes, symbolic links, locks ---- */

static char obase[64], oov[64], olink[80];
static struct disk d1, d2;

static void disk_unused(struct disk *d)
{
	memset(d, 0, sizeof(*d));
	d->fd = d->write_fd = d->direct_fd = d->write_direct_fd = -1;
}

static void open_setup(void)
{
	base_fd = temp_path_fd(obase, sizeof(obase), "obase");
	ov_fd = temp_path_fd(oov, sizeof(oov), "oov");
	c_open = false;
	fill_base(BASE_SMALL);
	/* The overlay path names no file yet: disk_open creates it. */
	unlink(oov);
	snprintf(olink, sizeof(olink), "%s.link", oov);
	disk_unused(&d1);
	disk_unused(&d2);
}

static void open_teardown(void)
{
	disk_close(&d1);
	disk_close(&d2);
	unlink(obase);
	unlink(oov);
	unlink(olink);
	teardown();
}

TestSuite(disk_open, .init = open_setup, .fini = open_teardown);

static int open_drive(struct disk *d, const char *path, const char *overlay,
		      bool ro)
{
	struct drive_config cfg = {
	    .path = path, .overlay = overlay, .read_only = ro};

	disk_close(d);
	return disk_open(d, &cfg, 0);
}

Test(disk_open, a_created_overlay_is_private_to_its_user)
{
	mode_t old = umask(0);
	struct stat st;
	int ret = open_drive(&d1, obase, oov, false);

	umask(old);
	cr_assert_eq(ret, 0);
	cr_assert_eq(stat(oov, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "overlay mode %o",
		     (unsigned)(st.st_mode & 0777));
}

Test(disk_open, an_overlay_path_that_is_a_symlink_is_refused)
{
	char target[96];
	struct stat st;

	/* Dangling: hutch would create the file it points to. */
	snprintf(target, sizeof(target), "%s.target", oov);
	cr_assert_eq(symlink(target, olink), 0);
	cr_assert_eq(open_drive(&d1, obase, olink, false), -ELOOP);
	cr_assert_neq(stat(target, &st), 0, "symlink target created");
	/* To an existing file: it would be formatted over. */
	unlink(olink);
	cr_assert_eq(symlink(obase, olink), 0);
	cr_assert_eq(open_drive(&d1, obase, olink, false), -ELOOP);
	cr_assert_eq(stat(obase, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, BASE_SMALL);
	/* A symbolic link to an image is fine: hutch only reads it. */
	cr_assert_eq(open_drive(&d1, olink, oov, false), 0);
}

Test(disk_open, an_overlay_has_one_writer)
{
	cr_assert_eq(open_drive(&d1, obase, oov, false), 0);
	cr_assert_eq(open_drive(&d2, obase, oov, false), -EBUSY);
	/* Held by another process (another hutch) as well. */
	disk_close(&d1);
	{
		int fd = open(oov, O_RDWR);

		cr_assert_geq(fd, 0);
		cr_assert_eq(flock(fd, LOCK_EX), 0);
		cr_assert_eq(open_drive(&d2, obase, oov, false), -EBUSY);
		close(fd);
	}
	cr_assert_eq(open_drive(&d2, obase, oov, false), 0);
}

Test(disk_open, a_refused_overlay_is_left_alone)
{
	int fd = open(oov, O_RDWR | O_CREAT, 0600);
	struct stat st;

	cr_assert_geq(fd, 0);
	cr_assert_eq(flock(fd, LOCK_EX), 0);
	cr_assert_eq(open_drive(&d1, obase, oov, false), -EBUSY);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 0, "the overlay was formatted");
	close(fd);
}

Test(disk_open, a_writable_image_has_no_other_user)
{
	cr_assert_eq(open_drive(&d1, obase, NULL, false), 0);
	cr_assert_eq(open_drive(&d2, obase, NULL, false), -EBUSY);
	cr_assert_eq(open_drive(&d2, obase, NULL, true), -EBUSY);
	cr_assert_eq(open_drive(&d2, obase, oov, false), -EBUSY);
	disk_close(&d1);
	cr_assert_eq(open_drive(&d2, obase, NULL, true), 0);
	cr_assert_eq(open_drive(&d1, obase, NULL, false), -EBUSY);
}

Test(disk_open, readers_share_a_base)
{
	char ov2[96];

	snprintf(ov2, sizeof(ov2), "%s.2", oov);
	cr_assert_eq(open_drive(&d1, obase, NULL, true), 0);
	cr_assert_eq(open_drive(&d2, obase, NULL, true), 0);
	cr_assert_eq(open_drive(&d1, obase, oov, false), 0);
	cr_assert_eq(open_drive(&d2, obase, ov2, false), 0);
	disk_close(&d2);
	unlink(ov2);
}
