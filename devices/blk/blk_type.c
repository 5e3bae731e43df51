// SPDX-License-Identifier: MIT
/*
 * virtio-blk as a row of the device table: --drive, one instance per
 * disk (vda, vdb, ... in the order given), root=/dev/vdX for the root
 * drive, its counters.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/blk/blk_type.h"
#include "devices/blk/cow.h"
#include "devices/blk/virtio_blk.h"
#include "vmm/base/log.h"
#include "vmm/base/token_bucket.h"

/* One rate-limit key (bps=, bps_burst=, iops=, iops_burst=) into l.
 * 1: it was one, 0: it was not, -EINVAL after saying why. */
static int parse_limit_key(const char *key, const char *value,
			   struct blk_limits *l)
{
	static const char *const names[] = {"bps", "bps_burst", "iops",
					    "iops_burst"};
	uint64_t *fields[] = {&l->bps, &l->bps_burst, &l->iops, &l->iops_burst};

	for (unsigned i = 0; i < 4; i++)
		if (!strcmp(key, names[i]))
			return tb_parse_value(key, value, fields[i]) ? -EINVAL
								     : 1;
	return 0;
}

int blk_parse_limits(char *spec, struct blk_limits *l)
{
	while (*spec) {
		char *key = spec, *value = strchr(spec, '='), *next;
		int ret;

		next = strchr(spec, ',');
		if (next)
			*next++ = 0;
		if (value && (!next || value < next - 1))
			*value++ = 0;
		else
			value = NULL;
		ret = parse_limit_key(key, value, l);
		if (ret == 0)
			log_errx("unknown limit '%s' (expected bps=, "
				 "bps_burst=, iops=, iops_burst=)",
				 key);
		if (ret <= 0)
			return -EINVAL;
		spec = next ? next : spec + strlen(spec);
	}
	return 0;
}

int blk_parse_drive(char *spec, struct drive_config *d)
{
	enum { D_PATH, D_RO, D_ROOT, D_OVERLAY, D_SERIAL, D_LIMIT };
	char *const keys[] = {"path",	    "ro",  "root",	"overlay",
			      "serial",	    "bps", "bps_burst", "iops",
			      "iops_burst", NULL};
	char *value, *opts = spec;

	memset(d, 0, sizeof(*d));
	while (*opts) {
		int k = getsubopt(&opts, keys, &value);
		bool needs_value = k == D_PATH || k == D_OVERLAY ||
				   k == D_SERIAL || k >= D_LIMIT;

		if (k < 0) {
			log_errx(
			    "--drive: unknown key '%s' (expected path=, ro, "
			    "root, overlay=, serial=, bps=, bps_burst=, iops=, "
			    "iops_burst=)",
			    value);
			return -EINVAL;
		}
		if (needs_value && (!value || !*value)) {
			log_errx("--drive: %s= needs a value", keys[k]);
			return -EINVAL;
		}
		if (!needs_value && value) {
			log_errx("--drive: %s takes no value", keys[k]);
			return -EINVAL;
		}
		switch (k) {
		case D_PATH:
			d->path = value;
			break;
		case D_RO:
			d->read_only = true;
			break;
		case D_ROOT:
			d->root = true;
			break;
		case D_OVERLAY:
			d->overlay = value;
			break;
		default:
			if (parse_limit_key(keys[k], value, &d->limits) < 0)
				return -EINVAL;
			break;
		case D_SERIAL:
			if (strlen(value) > BLK_ID_LEN) {
				log_errx("--drive: serial '%s' is longer than "
					 "%u bytes",
					 value, BLK_ID_LEN);
				return -EINVAL;
			}
			d->serial = value;
			break;
		}
	}
	if (!d->path) {
		log_errx("--drive: path=FILE is required");
		return -EINVAL;
	}
	if (d->read_only && d->overlay) {
		log_errx("--drive %s: ro and overlay= exclude each other (an "
			 "overlay exists to take writes)",
			 d->path);
		return -EINVAL;
	}
	return 0;
}

static int parse(char *value, void **cfg, void *const *earlier,
		 unsigned n_earlier)
{
	struct drive_config *d = malloc(sizeof(*d));
	int ret;

	if (!d)
		return -ENOMEM;
	ret = blk_parse_drive(value, d);
	for (unsigned i = 0; !ret && i < n_earlier; i++)
		if (d->root && ((struct drive_config *)earlier[i])->root) {
			log_errx("--drive: only one drive can be root");
			ret = -EINVAL;
		}
	if (ret) {
		free(d);
		return ret;
	}
	*cfg = d;
	return 0;
}

static void destroy(void *dev)
{
	virtio_blk_destroy(dev);
	free(dev);
}

static int create(const void *cfg, const struct device_env *env, void **dev)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return -ENOMEM;
	ret = virtio_blk_create(b, cfg, env->index, &env->host, env->mmio_base,
				env->gsi);
	if (ret) {
		destroy(b);
		return ret;
	}
	*dev = b;
	return 0;
}

static struct virtio_dev *virtio(void *dev)
{
	return &((struct virtio_blk *)dev)->vdev;
}

static int cmdline(void *dev, const void *cfg, unsigned index, char *buf,
		   size_t len)
{
	const struct drive_config *d = cfg;
	int n = 0;

	(void)dev;
	buf[0] = 0;
	/* The guest names virtio disks vda, vdb, ... in slot order, which
	 * is the order they were given in. */
	if (d->root)
		n = snprintf(buf, len, "root=/dev/vd%c %s", 'a' + index,
			     d->read_only ? "ro" : "rw");
	return n >= 0 && (size_t)n < len ? 0 : -ENOSPC;
}

static void print_stats(void *dev, unsigned index, FILE *out)
{
	const struct virtio_blk *b = dev;
	const struct virtio_blk_stats *s = &b->stats;

	fprintf(out,
		"hutch-stats: drive=%u reads=%" PRIu64 " writes=%" PRIu64
		" flushes=%" PRIu64 " aio=%" PRIu64 " sync=%" PRIu64
		" kicks=%" PRIu64 " reaps=%" PRIu64 " deferred=%" PRIu64
		" irqs=%" PRIu64 " breaks=%" PRIu64 " throttled=%" PRIu64 "\n",
		index, s->reads, s->writes, s->flushes, s->aio, s->sync,
		s->kicks, s->reaps, s->deferred, b->vdev.vring_irqs,
		b->vdev.breaks, s->throttled);
}

static int set_limits(void *dev, char *spec)
{
	struct virtio_blk *b = dev;
	struct blk_limits l;
	int ret;

	pthread_mutex_lock(&b->vdev.lock);
	l = b->limits;
	ret = blk_parse_limits(spec, &l);
	if (!ret) {
		virtio_blk_set_limits(b, &l);
		log_debug("drive: limits bps=%" PRIu64 " iops=%" PRIu64, l.bps,
			  l.iops);
	}
	pthread_mutex_unlock(&b->vdev.lock);
	return ret;
}

/* The overlay grows to its data offset plus the disk; a raw image
 * written in place keeps its size; a read-only drive writes nothing. */
static uint64_t max_file_size(void *dev)
{
	const struct virtio_blk *b = dev;

	if (b->disk.read_only)
		return 0;
	if (b->disk.cow)
		return b->disk.cow->data_offset + b->disk.size;
	return b->disk.size;
}

static int snapshot_files(void *dev)
{
	return virtio_blk_snapshot_files(dev);
}

static const char *backing_path(const void *cfg)
{
	return ((const struct drive_config *)cfg)->path;
}

static int save(void *dev, struct snap_writer *w, int file_fd)
{
	return virtio_blk_save(dev, w, file_fd);
}

static int restore(void *dev, struct snap_reader *r)
{
	return virtio_blk_restore(dev, r);
}

const struct device_type virtio_blk_type = {
    .name = "virtio-blk",
    .option = "drive",
    .option_arg = "path=FILE[,ro][,root][,overlay=FILE][,serial=ID]"
		  "[,bps=N][,iops=N]...",
    .option_help = "a virtio-blk disk (vda, vdb, ...); repeat for more",
    .max = BLK_MAX_DRIVES,
    .parse = parse,
    .free_config = free,
    .create = create,
    .virtio = virtio,
    .cmdline = cmdline,
    .print_stats = print_stats,
    .max_file_size = max_file_size,
    .set_limits = set_limits,
    .destroy = destroy,
    .snapshot_files = snapshot_files,
    .backing_path = backing_path,
    .save = save,
    .restore = restore,
};
