/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues (virtio 1.x, 2.7): the one place that reads the rings a
 * guest shares with us.  Every device takes requests through virtq_pop(),
 * which walks a descriptor chain under these rules and refuses it
 * otherwise:
 *
 *   - avail->idx runs at most queue-size entries ahead of what we consumed;
 *   - every head and next index is below the queue size;
 *   - a chain visits at most queue-size descriptors (catches loops);
 *   - an indirect descriptor is the only one in its chain, its table is a
 *     non-empty multiple of 16 bytes with at most queue-size entries, and
 *     holds no further indirect descriptors;
 *   - device-readable buffers come before device-writable ones;
 *   - every buffer lies wholly inside one guest RAM region, and the chain's
 *     total length fits in 32 bits.
 *
 * Guest-shared fields are read once into locals, then checked, then used.
 * A refused chain means the driver broke the protocol: the caller puts the
 * device into DEVICE_NEEDS_RESET and stops using the queue.
 */
#ifndef HUTCH_VIRTQ_H
#define HUTCH_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/base/guest_mem.h"

#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

/* Largest queue any hutch device offers, hence the longest chain. */
#define VIRTQ_MAX_SIZE 256

struct virtq {
	/* Set by the transport while the driver configures the queue. */
	uint16_t size; /* power of two, <= VIRTQ_MAX_SIZE */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_F_INDIRECT_DESC negotiated */

	/* Valid once virtq_start() succeeded. */
	bool ready;
	const struct guest_mem *mem;
	uint8_t *desc;	      /* size * 16 bytes */
	uint8_t *avail;	      /* flags, idx, ring[size], used_event */
	uint8_t *used;	      /* flags, idx, ring[size] * 8, avail_event */
	uint16_t last_avail;  /* next avail ring entry to take */
	uint16_t used_idx;    /* our copy of used->idx */
	uint16_t signalled;   /* used_idx when we last decided on an irq */
	bool signalled_valid; /* false until the first decision */
	const char *error;    /* the rule the last refused chain broke */
};

struct virtq_buf {
	uint8_t *hva;
	uint32_t len;
	bool writable;
};

/* One request: its buffers in order, readable ones first. */
struct virtq_chain {
	uint16_t head;
	unsigned nbufs;
	unsigned nreadable; /* bufs[0..nreadable) are device-readable */
	uint64_t readable_len, writable_len;
	struct virtq_buf bufs[VIRTQ_MAX_SIZE];
};

/*
 * Check the ring addresses against guest memory (alignment, bounds) and
 * make the queue usable.  0 or -EINVAL.
 */
int virtq_start(struct virtq *q, const struct guest_mem *mem)
    __attribute__((warn_unused_result));

/*
 * A queue restored from a snapshot (after virtq_start): carry on from
 * these indexes.  They must agree with the rings in guest memory (the
 * used index the device last published, at most a queue's worth of
 * available entries ahead): 0, or -ESTALE if they do not, -EINVAL if the
 * queue is not started.
 */
int virtq_resume_at(struct virtq *q, uint16_t last_avail, uint16_t used_idx)
    __attribute__((warn_unused_result));

/* Forget everything (device reset). */
void virtq_reset(struct virtq *q);

/*
 * Take the next available chain.  1: *c filled; 0: queue empty (with
 * EVENT_IDX, the driver is asked to notify at the next entry); -EPROTO:
 * the driver broke a rule, named in q->error.
 */
int virtq_pop(struct virtq *q, struct virtq_chain *c)
    __attribute__((warn_unused_result));

/* Ask the driver to notify when it next adds a buffer, even with
 * buffers still available (EVENT_IDX's avail_event). */
void virtq_notify_on_next(struct virtq *q);

/* Give a chain back with the number of bytes written into it. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/*
 * After one or more pushes: does the driver want an interrupt now?  Honours
 * VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event exactly with EVENT_IDX.
 */
bool virtq_should_notify(struct virtq *q);

/* Copy len bytes at byte offset off of the chain's readable part into dst.
 * 0 or -EFAULT if the readable part is too short. */
int virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst,
		     size_t len) __attribute__((warn_unused_result));

/* Give back the last n chains taken and not pushed, as if never taken
 * (a device that took buffers for one frame and found too few); they are
 * walked and checked again when next taken. */
void virtq_unpop(struct virtq *q, uint16_t n);

/* Copy len bytes from src into the chain's writable part at byte offset
 * off.  0 or -EFAULT if the writable part is too short. */
int virtq_chain_write(const struct virtq_chain *c, uint64_t off,
		      const void *src, size_t len)
    __attribute__((warn_unused_result));

#endif
