/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk's I/O engine: Linux AIO (libaio) on O_DIRECT file
 * descriptors, completions signalled through an eventfd the VMM's event
 * loop watches.  A request is submitted as one iocb per extent, as
 * disk_map_read gives them (a COW read may span base and overlay); writes
 * are bracketed by disk_write_begin and disk_write_end, the latter called
 * on completion, before the request is reported done.  The engine knows
 * nothing of disk formats beyond disk.h.  Where O_DIRECT is impossible
 * (tmpfs), the buffers are not aligned for it, or a read is split too
 * finely, the caller does the request synchronously instead.
 */
#ifndef HUTCH_BLK_AIO_H
#define HUTCH_BLK_AIO_H

#include <libaio.h>
#include <stdbool.h>

#include "vmm/base/evloop.h"
#include "devices/blk/blk_req.h"
#include "devices/blk/disk.h"

#define BLK_AIO_MAX_EXTENTS 16

/* One request slot; the device owns an array of them. */
struct blk_aio_req {
	struct blk_req req;
	uint16_t head;
	unsigned generation; /* device reset count when it started */
	bool in_use;
	unsigned pending; /* iocbs not yet completed */
	int error;	  /* first failure, negative errno */
	/* The disk of a write between disk_write_begin and _end, else
	 * NULL. */
	struct disk *writing;
	struct iocb iocbs[BLK_AIO_MAX_EXTENTS];
	struct iovec iov[VIRTQ_MAX_SIZE + BLK_AIO_MAX_EXTENTS];
};

struct blk_aio {
	io_context_t ctx;
	bool usable; /* io_setup worked */
	int efd;
	unsigned inflight;   /* requests with iocbs outstanding */
	struct iocb **batch; /* prepared, not yet submitted */
	unsigned nbatch;
	void (*done)(void *opaque, struct blk_aio_req *r);
	void *opaque;
};

/* 0, or negative errno (then every request goes the synchronous way). */
int blk_aio_init(struct blk_aio *a, unsigned depth,
		 void (*done)(void *opaque, struct blk_aio_req *r),
		 void *opaque);
void blk_aio_destroy(struct blk_aio *a);

/* Prepare an IN or OUT request.  1: queued, done() follows once
 * blk_aio_kick() submitted it; 0: not suitable for AIO, do it
 * synchronously; negative errno: failed. */
int blk_aio_submit(struct blk_aio *a, struct disk *d, struct blk_aio_req *r);

/* Submit everything prepared since the last kick, in one io_submit. */
void blk_aio_kick(struct blk_aio *a);

/* Handle completed iocbs (the eventfd fired). */
void blk_aio_reap(struct blk_aio *a);

/* Handle iocbs that completed already, without waiting or a syscall
 * where the kernel's completion ring can be read directly. */
void blk_aio_poll(struct blk_aio *a);

/* Submit what is prepared, then wait until nothing is in flight (VMM
 * exit, or a write that must wait for the writes before it: see
 * disk_write_begin's -EBUSY).  Completions are handled, so done() runs. */
void blk_aio_drain(struct blk_aio *a);

#endif
