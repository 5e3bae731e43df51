// SPDX-License-Identifier: MIT
#include "devices/rng/virtio_rng.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "vmm/base/log.h"

static struct virtio_rng *to_rng(struct virtio_dev *d)
{
	return container_of(d, struct virtio_rng, vdev);
}

/* Fill the chain's writable buffers, up to VIRTIO_RNG_MAX_FILL bytes;
 * how many were written. */
static uint32_t fill(const struct virtq_chain *c)
{
	uint32_t done = 0;

	for (unsigned i = c->nreadable; i < c->nbufs; i++) {
		const struct virtq_buf *b = &c->bufs[i];
		uint32_t want = b->len;
		uint32_t off = 0;

		if (want > VIRTIO_RNG_MAX_FILL - done)
			want = VIRTIO_RNG_MAX_FILL - done;
		while (off < want) {
			ssize_t n = getrandom(b->hva + off, want - off, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return done + off; /* give what we have */
			off += (uint32_t)n;
		}
		done += want;
		if (done == VIRTIO_RNG_MAX_FILL)
			break;
	}
	return done;
}

static void rng_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_rng *r = to_rng(d);
	struct virtq *vq = &d->queues[0];
	unsigned budget = vq->size;
	bool used = false;

	(void)q;
	for (;;) {
		uint32_t n;
		int ret;

		if (budget-- == 0) {
			r->stats.deferred++;
			virtio_dev_defer(d, 0);
			break;
		}
		ret = virtq_pop(vq, &r->chain);
		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_dev_broken(d, vq->error);
			return;
		}
		/* The request queue holds only buffers for us to write. */
		if (r->chain.nreadable) {
			virtio_dev_broken(d, "rng buffer the device cannot "
					     "write");
			return;
		}
		n = fill(&r->chain);
		r->stats.requests++;
		r->stats.bytes += n;
		virtq_push(vq, r->chain.head, n);
		used = true;
	}
	if (used)
		virtio_dev_queue_done(d, 0);
}

static const struct virtio_dev_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = VIRTIO_ID_RNG,
    .num_queues = 1,
    .queue_max = VIRTIO_RNG_QUEUE_SIZE,
    .queue_notify = rng_queue_notify,
};

int virtio_rng_create(struct virtio_rng *r, const struct virtio_host *host,
		      uint64_t mmio_base, unsigned gsi)
{
	memset(r, 0, sizeof(*r));
	return virtio_dev_init(&r->vdev, &rng_ops,
			       VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC,
			       host, mmio_base, gsi);
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	virtio_dev_destroy(&r->vdev);
}
