// SPDX-License-Identifier: MIT
/* virtio-rng as a row of the device table: on by default, --no-rng. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "devices/rng/rng_type.h"
#include "devices/rng/virtio_rng.h"
#include "vmm/base/log.h"
#include "vmm/base/snap.h"

static void destroy(void *dev)
{
	virtio_rng_destroy(dev);
	free(dev);
}

static int create(const void *cfg, const struct device_env *env, void **dev)
{
	struct virtio_rng *r = calloc(1, sizeof(*r));
	int ret;

	(void)cfg;
	if (!r)
		return -ENOMEM;
	ret = virtio_rng_create(r, &env->host, env->mmio_base, env->gsi);
	if (ret) {
		destroy(r);
		return ret;
	}
	*dev = r;
	return 0;
}

static struct virtio_dev *virtio(void *dev)
{
	return &((struct virtio_rng *)dev)->vdev;
}

static void print_stats(void *dev, unsigned index, FILE *out)
{
	const struct virtio_rng *r = dev;

	(void)index;
	fprintf(out,
		"hutch-stats: rng requests=%" PRIu64 " bytes=%" PRIu64
		" deferred=%" PRIu64 " breaks=%" PRIu64 "\n",
		r->stats.requests, r->stats.bytes, r->stats.deferred,
		r->vdev.breaks);
}

/* Snapshots: the transport is all there is (requests are served whole
 * within one notification). */
static int save(void *dev, struct snap_writer *w, int file_fd)
{
	(void)file_fd;
	virtio_dev_save(&((struct virtio_rng *)dev)->vdev, w, NULL);
	return 0;
}

static int restore(void *dev, struct snap_reader *r)
{
	int ret = virtio_dev_restore(&((struct virtio_rng *)dev)->vdev, r);

	if (!ret && snap_reader_done(r)) {
		log_errx("snapshot: virtio-rng state too long");
		ret = -EINVAL;
	}
	return ret;
}

const struct device_type virtio_rng_type = {
    .name = "virtio-rng",
    .no_option = "no-rng",
    .no_option_help = "no virtio-rng entropy device (there is one by "
		      "default)",
    .max = 1,
    .create = create,
    .virtio = virtio,
    .print_stats = print_stats,
    .destroy = destroy,
    .save = save,
    .restore = restore,
};
