// SPDX-License-Identifier: MIT
/* virtio-rng as a row of the device table: on by default, --no-rng. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "devices/rng/rng_type.h"
#include "devices/rng/virtio_rng.h"

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
};
