/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng (virtio 1.x, 5.4): an entropy source.  The driver posts
 * device-writable buffers on its one queue; the device fills each with
 * bytes from the host's getrandom(2) and gives it back.  Guests get good
 * entropy early in boot (the kernel seeds its RNG from hw_random), and
 * the snapshot work will reseed restored clones through it.
 *
 * Threads: queue notifications run on the event loop with the device lock
 * held (virtio.h).  No config space, no feature bits of its own.
 */
#ifndef HUTCH_VIRTIO_RNG_H
#define HUTCH_VIRTIO_RNG_H

#include <stdint.h>

#include "devices/virtio/virtio.h"

#define VIRTIO_ID_RNG	      4
#define VIRTIO_RNG_QUEUE_SIZE 64
/* At most this much per buffer: a request for more gets this much (the
 * used length says so, as the spec allows), so one guest request cannot
 * hold the event loop for long. */
#define VIRTIO_RNG_MAX_FILL (64u * 1024)

struct virtio_rng_stats {
	uint64_t requests, bytes;
	uint64_t deferred; /* queue runs cut short by the budget */
};

struct virtio_rng {
	struct virtio_dev vdev;
	struct virtq_chain chain; /* scratch for virtq_pop */
	struct virtio_rng_stats stats;
};

/* 0 or negative errno, reported. */
int virtio_rng_create(struct virtio_rng *r, const struct virtio_host *host,
		      uint64_t mmio_base, unsigned gsi)
    __attribute__((warn_unused_result));
void virtio_rng_destroy(struct virtio_rng *r);

#endif
