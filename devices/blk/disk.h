/* SPDX-License-Identifier: MIT */
/*
 * The host side of a virtio-blk drive: a raw image file, or a read-only
 * base image with a copy-on-write overlay (cow.h).  Opening checks what a
 * user can get wrong (missing or unreadable files, sizes that are not
 * whole sectors, an overlay made for another base) and says so once.
 */
#ifndef HUTCH_DISK_H
#define HUTCH_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/blk/blk_req.h"

struct cow;

/* Guest-facing rate limits of a drive (token buckets): bytes and
 * requests per second, each with its burst (0: one second's worth);
 * 0 rates: no limit. */
struct blk_limits {
	uint64_t bps, bps_burst;
	uint64_t iops, iops_burst;
};

struct drive_config {
	const char *path;
	const char *overlay; /* NULL: write to path itself (unless ro) */
	const char *serial;  /* NULL: "hutch-<index>" */
	bool read_only;
	bool root; /* the guest's root filesystem */
	struct blk_limits limits;
};

struct disk {
	const char *path;
	uint64_t size; /* bytes, a multiple of BLK_SECTOR */
	bool read_only;
	struct cow *cow; /* the overlay (cow.h), or NULL for a raw image */
	/* Buffered fds: the image (raw) or the base (COW, read-only), and
	 * the file writes go to (the image, or the overlay; -1 if none). */
	int fd;
	int write_fd;
	/* O_DIRECT twins, -1 where the file system refuses O_DIRECT. */
	int direct_fd;
	int write_direct_fd;
	unsigned dio_align; /* buffer address, length and offset alignment */
	char serial[BLK_ID_LEN + 1];
};

/* Where a piece of a read lives: len bytes at file_offset in fd. */
struct disk_extent {
	int fd;
	uint64_t file_offset;
	uint64_t len;
};

/* Copy the iovecs covering bytes [skip, skip + len) of iov into out (at
 * most max entries); returns how many. */
unsigned iov_slice(const struct iovec *iov, unsigned niov, uint64_t skip,
		   uint64_t len, struct iovec *out, unsigned max);

int disk_open(struct disk *d, const struct drive_config *cfg, unsigned index)
    __attribute__((warn_unused_result));
void disk_close(struct disk *d);

/*
 * The I/O engine's view of a disk, whatever its format.
 *
 * disk_map_read: where the bytes of a read of [off, off + len) live, as
 * extents in order, each in one file: at most max of them, covering a
 * prefix of the range (all of it unless max ran out; the caller maps the
 * rest from where they end).  direct: the extents name the O_DIRECT
 * descriptors, or the call fails with -EOPNOTSUPP where a piece's file
 * has none.  Returns the number of extents or negative errno.
 *
 * disk_write_begin / disk_write_end bracket every write of [off, off +
 * len): begin before the data is written, giving in *pos the offset in
 * the file writes go to (write_fd, or its twin write_direct_fd); end once
 * the write completed (ok) or failed, before the guest is told.  On an
 * overlay, clusters the write covers whole become the overlay's only at
 * end (cow_write_begin explains why).  -EBUSY from begin: the write would
 * have to copy base data into a cluster that an earlier write, begun and
 * not ended, covers whole; nothing was done, and the caller lets the
 * writes in flight complete (blk_aio_drain), then begins again.
 * Otherwise 0 or negative errno.
 */
int disk_map_read(const struct disk *d, uint64_t off, uint64_t len, bool direct,
		  struct disk_extent *out, unsigned max);
int disk_write_begin(struct disk *d, uint64_t off, uint64_t len, uint64_t *pos)
    __attribute__((warn_unused_result));
int disk_write_end(struct disk *d, uint64_t off, uint64_t len, bool ok)
    __attribute__((warn_unused_result));

/* Synchronous I/O on the buffered fds (tmpfs, unaligned buffers, COW
 * reads spanning many extents).  0 or negative errno. */
int disk_read_sync(struct disk *d, const struct iovec *iov, unsigned niov,
		   uint64_t off, uint64_t len);
int disk_write_sync(struct disk *d, const struct iovec *iov, unsigned niov,
		    uint64_t off);
int disk_flush(struct disk *d);
/* DISCARD (unmap == false) or WRITE_ZEROES. */
int disk_discard(struct disk *d, uint64_t off, uint64_t len);
int disk_write_zeroes(struct disk *d, uint64_t off, uint64_t len);

#endif
