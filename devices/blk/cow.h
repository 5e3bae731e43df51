/* SPDX-License-Identifier: MIT */
/*
 * Copy-on-write overlays: many VMs share one read-only base image and each
 * writes only to its own sparse overlay file.
 *
 * Overlay file format, version 1 (all integers little endian):
 *
 *   0      header, 4096 bytes:
 *            0  magic "HUTCHCOW"
 *            8  u32 version (1)
 *           12  u32 header size (4096)
 *           16  u32 cluster size (4096; a power of two, >= 512)
 *           20  u32 flags (0)
 *           24  u64 disk size in bytes (= base size)
 *           32  u64 bitmap offset (4096)
 *           40  u64 bitmap length in bytes (ceil(clusters / 8))
 *           48  u64 data offset (1 MiB aligned, after the bitmap)
 *           56  u64 base size in bytes
 *           64  u32 base fingerprint: crc32 of 65 sampled 4 KiB blocks
 *               (block i at i * (size / 64), rounded down to 4 KiB, and
 *               the last one), so a base changed under the overlay is
 *               caught without reading all of it
 *           68  u16 length of the base path, then at 128 the path
 *               (informational, at most 1024 bytes)
 *         4092  u32 crc32 of bytes 0..4091
 *   4096   bitmap: bit (c % 8) of byte (c / 8) set = cluster c lives in the
 *          overlay; clear = read it from the base.  The set of changed
 *          blocks is exactly this bitmap.
 *   data   cluster c at data offset + c * cluster size.  The file is sparse:
 *          only clusters the guest wrote take space.
 */
#ifndef HUTCH_COW_H
#define HUTCH_COW_H

#include <stdbool.h>
#include <stdint.h>

#define COW_MAGIC	 "HUTCHCOW"
#define COW_VERSION	 1
#define COW_HEADER_SIZE	 4096u
#define COW_CLUSTER_SIZE 4096u

/* Whole clusters [first, end) of a write begun and not yet ended. */
struct cow_pending {
	uint64_t first, end;
};

struct cow {
	int overlay_fd; /* read-write, buffered: header and bitmap */
	uint64_t disk_size;
	uint32_t cluster_size;
	uint64_t bitmap_offset;
	uint64_t bitmap_len;
	uint64_t data_offset;
	uint8_t *bitmap;
	struct cow_pending *pending; /* see cow_write_begin */
	unsigned npending, pending_cap;
};

/* Where a piece of a guest request lives. */
struct cow_extent {
	bool in_overlay;
	uint64_t file_offset; /* in the overlay or the base */
	uint64_t len;
};

/*
 * Open the overlay on the given base (both fds open).  An empty overlay
 * file is formatted for this base; otherwise its header must be intact and
 * match the base's size and fingerprint.  0 or negative errno with a
 * one-line reason in *why.
 */
int cow_open(struct cow *c, int overlay_fd, int base_fd, uint64_t base_size,
	     const char *base_path, const char **why)
    __attribute__((warn_unused_result));
void cow_close(struct cow *c);

/* Fingerprint of a base image (see the format above). 0 or -errno. */
int cow_fingerprint(int fd, uint64_t size, uint32_t *out)
    __attribute__((warn_unused_result));

bool cow_present(const struct cow *c, uint64_t cluster);

/* Mark clusters [first, first + n) as living in the overlay and write the
 * changed bitmap bytes.  0 or negative errno. */
int cow_mark(struct cow *c, uint64_t first, uint64_t n)
    __attribute__((warn_unused_result));

/*
 * Split a read of [off, off + len) (inside the disk) into runs of clusters
 * from the same file, in order.  Returns the number of extents written to
 * out: at most max, covering a prefix of the range (all of it unless max
 * ran out first; the caller maps the rest from where they end).
 */
int cow_map_read(const struct cow *c, uint64_t off, uint64_t len,
		 struct cow_extent *out, unsigned max);

/* Offset in the overlay file of disk byte off. */
static inline uint64_t cow_data_pos(const struct cow *c, uint64_t off)
{
	return c->data_offset + off;
}

/*
 * Every write of [off, off + len) to the overlay (at cow_data_pos(off)) is
 * bracketed by these two; each begin that returned 0 is followed by
 * exactly one end for the same range.
 *
 * cow_write_begin copies each partially covered cluster that is still in
 * the base into the overlay (synchronously) and marks it: its old bytes
 * are in the overlay now, so reads may come from there at once.  Fully
 * covered clusters are not marked yet: until the guest's data reached
 * them they read as the base's, so neither a read racing the write nor a
 * VMM killed before it completed sees a cluster the write never filled
 * (zeros) where the old data was.  They are pending until
 * cow_write_end(ok) marks them (a failed write leaves them as they were).
 *
 * A pending cluster may already hold part or all of its write's data, so
 * copying the base over it would lose that data: a later write that
 * needs to copy up a cluster still pending for an earlier write gets
 * -EBUSY, with nothing done.  Its caller must let the writes in flight
 * complete and end (blk_aio_drain), then begin again.
 *
 * 0 or negative errno.
 */
int cow_write_begin(struct cow *c, int base_fd, uint64_t off, uint64_t len)
    __attribute__((warn_unused_result));
int cow_write_end(struct cow *c, uint64_t off, uint64_t len, bool ok)
    __attribute__((warn_unused_result));

#endif
