// SPDX-License-Identifier: MIT
/*
 * Copy-on-write overlays (cow.h) on real files: formatting, validation of
 * an existing overlay against its base, copy-up of partly written
 * clusters, and the extents a read is split into.  Files live in /var/tmp
 * and are unlinked as soon as they are open.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "devices/cow.h"
#include "tests/support/fake_ring.h"
#include "vmm/le.h"

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

/* ---- writes: copy-up ---- */

Test(cow, partial_clusters_are_copied_up)
{
	struct cow_extent e[4];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(cow_prepare_write(&c, base_fd, 1000, 5000), 0);
	expect_present(0, 2, true);
	expect_present(2, 14, false);
	expect_copied_up(0, CS);
	expect_copied_up(CS, CS);
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
	cr_assert_eq(cow_prepare_write(&c, base_fd, 3 * CS + 100, 2 * CS), 0);
	expect_present(2, 1, false);
	expect_present(3, 3, true);
	expect_present(6, 1, false);
	expect_copied_up(3 * CS, CS);
	expect_zeros_in_overlay(4 * CS, CS);
	expect_copied_up(5 * CS, CS);
	/* Whole first or last clusters of a longer write are not copied. */
	cr_assert_eq(cow_prepare_write(&c, base_fd, 10 * CS, CS + 100), 0);
	expect_zeros_in_overlay(10 * CS, CS);
	expect_copied_up(11 * CS, CS);
	cr_assert_eq(
	    cow_prepare_write(&c, base_fd, 12 * CS + 100, 2 * CS - 100), 0);
	expect_copied_up(12 * CS, CS);
	expect_zeros_in_overlay(13 * CS, CS);
	expect_present(10, 4, true);
	/* An aligned whole-cluster write copies nothing. */
	cr_assert_eq(cow_prepare_write(&c, base_fd, 8 * CS, CS), 0);
	expect_present(8, 1, true);
	expect_zeros_in_overlay(8 * CS, CS);
}

Test(cow, present_cluster_is_not_copied_again)
{
	uint8_t junk[CS], got[CS];

	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(cow_prepare_write(&c, base_fd, 10, 10), 0);
	memset(junk, 0xee, sizeof(junk));
	write_overlay(DATA_OFF, junk, sizeof(junk)); /* the guest's data */
	cr_assert_eq(cow_prepare_write(&c, base_fd, 20, 10), 0);
	read_overlay(DATA_OFF, got, sizeof(got));
	cr_assert_arr_eq(got, junk, sizeof(got));
}

Test(cow, zero_length_write_changes_nothing)
{
	fill_base(BASE_SMALL);
	open_ok(BASE_SMALL);
	cr_assert_eq(cow_prepare_write(&c, base_fd, 100, 0), 0);
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
	cr_assert_eq(cow_prepare_write(&c, base_fd, 9000, size - 9000), 0);
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
	cr_assert_eq(cow_prepare_write(&c, base_fd, 2 * CS, size - 2 * CS), 0);
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

		cr_assert_eq(cow_prepare_write(&c, base_fd, off, sizeof(data)),
			     0);
		write_overlay(cow_data_pos(&c, off), data, sizeof(data));
	}
	cr_assert_eq(fsync(ov_fd), 0);
	cr_assert_eq(fstat(ov_fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, DATA_OFF + size);
	/* Header, bitmap and three clusters: far below 1 MiB. */
	cr_assert_leq((uint64_t)st.st_blocks * 512, 256u << 10,
		      "overlay uses %llu bytes",
		      (unsigned long long)st.st_blocks * 512);
}
