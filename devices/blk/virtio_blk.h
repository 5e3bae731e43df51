/* SPDX-License-Identifier: MIT */
/* virtio-blk (virtio 1.x, 5.2) over a disk.h backend. */
#ifndef HUTCH_VIRTIO_BLK_H
#define HUTCH_VIRTIO_BLK_H

#include "devices/blk/blk_aio.h"
#include "devices/blk/disk.h"
#include "devices/virtio/virtio.h"
#include "vmm/base/token_bucket.h"

#define VIRTIO_ID_BLOCK 2

#define VIRTIO_BLK_F_SEG_MAX	  (1ull << 2)
#define VIRTIO_BLK_F_RO		  (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE	  (1ull << 6)
#define VIRTIO_BLK_F_FLUSH	  (1ull << 9)
#define VIRTIO_BLK_F_DISCARD	  (1ull << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ull << 14)

#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_CONFIG_LEN 60

struct virtio_blk_stats {
	uint64_t reads, writes, flushes, aio, sync;
	uint64_t kicks;	    /* queue notifications handled */
	uint64_t reaps;	    /* AIO completion wake-ups */
	uint64_t deferred;  /* queue runs cut short by the per-call budget */
	uint64_t throttled; /* requests held back by the rate limits */
};

struct virtio_blk {
	struct virtio_dev vdev;
	struct disk disk;
	uint8_t config[VIRTIO_BLK_CONFIG_LEN];
	struct blk_aio aio;
	struct ev_handler aio_ev;
	struct blk_aio_req *reqs; /* VIRTIO_BLK_QUEUE_SIZE slots */
	unsigned generation;	  /* bumped on reset */
	struct virtq_chain chain; /* scratch for virtq_pop */
	struct virtio_blk_stats stats;
	/* Rate limits (blk_limits): a request that must wait is held here
	 * and the timer fires when the buckets allow it. */
	struct blk_limits limits;
	struct token_bucket bytes, ops;
	struct blk_aio_req *held;
	int throttle_fd; /* timerfd */
	struct ev_handler throttle_ev;
};

/* Change the rate limits (the event loop thread, with vdev.lock held:
 * a running VM's control channel).  Buckets start full. */
void virtio_blk_set_limits(struct virtio_blk *b, const struct blk_limits *l);

/* Open the disk and set up the device.  0 or negative errno, reported. */
int virtio_blk_create(struct virtio_blk *b, const struct drive_config *cfg,
		      unsigned index, const struct virtio_host *host,
		      uint64_t mmio_base, unsigned gsi)
    __attribute__((warn_unused_result));

/* Snapshots (blk_snap.c; device.h's hooks). */
struct snap_writer;
struct snap_reader;
int virtio_blk_snapshot_files(struct virtio_blk *b);
int virtio_blk_save(struct virtio_blk *b, struct snap_writer *w, int file_fd);
int virtio_blk_restore(struct virtio_blk *b, struct snap_reader *r);

/* Finish in-flight I/O, then free everything. */
void virtio_blk_destroy(struct virtio_blk *b);

#endif
