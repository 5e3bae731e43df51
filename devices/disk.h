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

#include "blk_req.h"
#include "cow.h"

struct drive_config {
	const char *path;
	const char *overlay; /* NULL: write to path itself (unless ro) */
	const char *serial;  /* NULL: "hutch-<index>" */
	bool read_only;
	bool root; /* the guest's root filesystem */
};

struct disk {
	const char *path;
	uint64_t size; /* bytes, a multiple of BLK_SECTOR */
	bool read_only;
	bool has_cow;
	struct cow cow;
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

/* Copy the iovecs covering bytes [skip, skip + len) of iov into out (at
 * most max entries); returns how many. */
unsigned iov_slice(const struct iovec *iov, unsigned niov, uint64_t skip,
		   uint64_t len, struct iovec *out, unsigned max);

int disk_open(struct disk *d, const struct drive_config *cfg, unsigned index)
    __attribute__((warn_unused_result));
void disk_close(struct disk *d);

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
