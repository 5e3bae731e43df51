// SPDX-License-Identifier: MIT
/*
 * The snapshot state codec (vmm/base/snap.c): round trips, the layout
 * the header documents, and every way a file can lie.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "vmm/base/le.h"
#include "vmm/base/snap.h"

#define TAG_A SNAP_TAG('A', 'A', 'A', 'A')
#define TAG_B SNAP_TAG('B', 'B', 'B', 'B')

static struct snap_writer w;

static void teardown(void)
{
	snap_writer_free(&w);
}

TestSuite(snap, .fini = teardown);

/* Two sections with every field type. */
static void write_sample(void)
{
	snap_writer_init(&w);
	snap_section_begin(&w, TAG_A, 0);
	snap_put_u8(&w, 0xab);
	snap_put_u16(&w, 0xcdef);
	snap_put_u32(&w, 0x01234567);
	snap_put_u64(&w, 0x89abcdef01234567ull);
	snap_put_str(&w, "virtio-blk");
	snap_section_end(&w);
	snap_section_begin(&w, TAG_B, 7);
	snap_put_bytes(&w, "xyz", 3);
	snap_section_end(&w);
	cr_assert_eq(snap_writer_finish(&w), 0);
}

Test(snap, sections_round_trip)
{
	struct snap_reader body, sec;
	uint32_t tag, inst;
	uint16_t minor;
	const char *why;
	char str[32], bytes[3];

	write_sample();
	cr_assert_eq(snap_file_open(w.p, w.len, &body, &minor, &why), 0, "%s",
		     why);
	cr_assert_eq(minor, SNAP_MINOR);
	cr_assert_eq(snap_next_section(&body, &tag, &inst, &sec), 1);
	cr_assert_eq(tag, TAG_A);
	cr_assert_eq(inst, 0);
	cr_assert_eq(snap_get_u8(&sec), 0xab);
	cr_assert_eq(snap_get_u16(&sec), 0xcdef);
	cr_assert_eq(snap_get_u32(&sec), 0x01234567);
	cr_assert_eq(snap_get_u64(&sec), 0x89abcdef01234567ull);
	snap_get_str(&sec, str, sizeof(str));
	cr_assert_str_eq(str, "virtio-blk");
	cr_assert_eq(snap_reader_done(&sec), 0);
	cr_assert_eq(snap_next_section(&body, &tag, &inst, &sec), 1);
	cr_assert_eq(tag, TAG_B);
	cr_assert_eq(inst, 7);
	snap_get_bytes(&sec, bytes, 3);
	cr_assert_eq(memcmp(bytes, "xyz", 3), 0);
	cr_assert_eq(snap_reader_done(&sec), 0);
	cr_assert_eq(snap_next_section(&body, &tag, &inst, &sec), 0);
}

Test(snap, the_layout_is_the_documented_one)
{
	write_sample();
	cr_assert_eq(memcmp(w.p, "HUTCHSNP", 8), 0);
	cr_assert_eq(get_le16(w.p + 8), SNAP_MAJOR);
	cr_assert_eq(get_le32(w.p + 16), TAG_A);
	cr_assert_eq(get_le32(w.p + 20), 0);
	cr_assert_eq(get_le64(w.p + 24), 1 + 2 + 4 + 8 + 4 + 10);
	cr_assert_eq(get_le32(w.p + w.len - 4),
		     (uint32_t)crc32(0, w.p, (uInt)(w.len - 4)));
}

/* One flipped bit anywhere, and every truncation, is refused. */
Test(snap, any_flipped_bit_or_truncation_is_refused)
{
	struct snap_reader body;
	uint16_t minor;
	const char *why;
	uint8_t *copy;

	write_sample();
	copy = malloc(w.len);
	cr_assert_not_null(copy);
	for (size_t i = 0; i < w.len; i++)
		for (int bit = 0; bit < 8; bit++) {
			memcpy(copy, w.p, w.len);
			copy[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(
			    snap_file_open(copy, w.len, &body, &minor, &why),
			    -EINVAL, "byte %zu bit %d accepted", i, bit);
		}
	for (size_t n = 0; n < w.len; n++)
		cr_assert_eq(snap_file_open(w.p, n, &body, &minor, &why),
			     -EINVAL, "truncated to %zu accepted", n);
	free(copy);
}

/* Re-seal a modified file (as an attacker who can compute a CRC would). */
static void reseal(uint8_t *p, size_t len)
{
	put_le32(p + len - 4, (uint32_t)crc32(0, p, (uInt)(len - 4)));
}

Test(snap, a_newer_major_version_is_refused_with_its_reason)
{
	struct snap_reader body;
	uint16_t minor;
	const char *why;

	write_sample();
	put_le16(w.p + 8, SNAP_MAJOR + 1);
	reseal(w.p, w.len);
	cr_assert_eq(snap_file_open(w.p, w.len, &body, &minor, &why), -EINVAL);
	cr_assert(strstr(why, "major version"), "%s", why);
	/* A newer minor of the same major opens. */
	put_le16(w.p + 8, SNAP_MAJOR);
	put_le16(w.p + 10, SNAP_MINOR + 5);
	reseal(w.p, w.len);
	cr_assert_eq(snap_file_open(w.p, w.len, &body, &minor, &why), 0);
	cr_assert_eq(minor, SNAP_MINOR + 5);
}

/* Correctly sealed files whose section lengths lie. */
Test(snap, lying_section_lengths_are_refused_not_followed)
{
	struct snap_reader body, sec;
	uint32_t tag, inst;
	uint16_t minor;
	const char *why;
	uint64_t lies[] = {1ull << 40, UINT64_MAX, 1000};

	for (size_t k = 0; k < sizeof(lies) / sizeof(lies[0]); k++) {
		write_sample();
		put_le64(w.p + 24, lies[k]);
		reseal(w.p, w.len);
		cr_assert_eq(snap_file_open(w.p, w.len, &body, &minor, &why),
			     0);
		cr_assert_eq(snap_next_section(&body, &tag, &inst, &sec),
			     -EINVAL, "length %llu",
			     (unsigned long long)lies[k]);
		snap_writer_free(&w);
	}
}

/* A reader never reads past its section, whatever it asks for. */
Test(snap, reads_past_a_section_latch_bad)
{
	struct snap_reader body, sec;
	uint32_t tag, inst;
	uint16_t minor;
	const char *why;
	char str[4];

	write_sample();
	cr_assert_eq(snap_file_open(w.p, w.len, &body, &minor, &why), 0);
	cr_assert_eq(snap_next_section(&body, &tag, &inst, &sec), 1);
	(void)snap_get_u64(&sec); /* u8, u16, u32 and part of the u64 */
	(void)snap_get_u64(&sec);
	snap_get_str(&sec, str, sizeof(str)); /* "virtio-blk" is too long */
	cr_assert(sec.bad);
	cr_assert_eq(snap_get_u64(&sec), 0);
	cr_assert_eq(snap_reader_done(&sec), -EINVAL);
}

Test(snap, a_section_read_short_is_not_done)
{
	struct snap_reader body, sec;
	uint32_t tag, inst;
	uint16_t minor;
	const char *why;

	write_sample();
	cr_assert_eq(snap_file_open(w.p, w.len, &body, &minor, &why), 0);
	cr_assert_eq(snap_next_section(&body, &tag, &inst, &sec), 1);
	(void)snap_get_u8(&sec);
	cr_assert_eq(snap_reader_done(&sec), -EINVAL, "unread bytes left");
}
