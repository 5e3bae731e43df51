// SPDX-License-Identifier: MIT
/* virtio-vsock as a row of the device table: --vsock, one per VM. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vsock/virtio_vsock.h"
#include "devices/vsock/vsock_type.h"
#include "vmm/base/log.h"

/* Strict decimal within [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end || errno == ERANGE || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * PATH[,cid=N]: the Unix socket hutch listens on (host programs connect
 * there; guest connections to port P reach PATH_P) and the guest's CID,
 * 3 .. 2^32 - 2 (0-2 are reserved, -1 means "any").
 */
int vsock_parse_option(char *spec, struct vsock_config *c)
{
	enum { V_CID };
	char *const keys[] = {"cid", NULL};
	char *opts = strchr(spec, ','), *value;
	uint64_t cid = VSOCK_DEFAULT_CID;

	if (opts)
		*opts++ = 0;
	if (!*spec) {
		log_errx("--vsock: expected PATH[,cid=N]");
		return -EINVAL;
	}
	while (opts && *opts) {
		int k = getsubopt(&opts, keys, &value);

		if (k != V_CID) {
			log_errx("--vsock: unknown key '%s' (expected cid=)",
				 value);
			return -EINVAL;
		}
		if (parse_u64(value, 3, UINT32_MAX - 1, &cid)) {
			log_errx("--vsock: cid '%s': expected a number from 3 "
				 "to %u",
				 value ? value : "", UINT32_MAX - 1);
			return -EINVAL;
		}
	}
	c->path = spec;
	c->guest_cid = (uint32_t)cid;
	return 0;
}

static int parse(char *value, void **cfg, void *const *earlier,
		 unsigned n_earlier)
{
	struct vsock_config *c;

	(void)earlier;
	if (n_earlier) {
		log_errx("--vsock: only one vsock device");
		return -EINVAL;
	}
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (vsock_parse_option(value, c)) {
		free(c);
		return -EINVAL;
	}
	*cfg = c;
	return 0;
}

static void destroy(void *dev)
{
	virtio_vsock_destroy(dev); /* closes and unlinks its socket */
	free(dev);
}

static int create(const void *cfg, const struct device_env *env, void **dev)
{
	const struct vsock_config *c = cfg;
	struct virtio_vsock *v = calloc(1, sizeof(*v));
	int ret;

	if (!v)
		return -ENOMEM;
	ret = virtio_vsock_create(v, c->path, c->guest_cid, &env->host,
				  env->mmio_base, env->gsi);
	if (ret) {
		destroy(v);
		return ret;
	}
	*dev = v;
	return 0;
}

static struct virtio_dev *virtio(void *dev)
{
	return &((struct virtio_vsock *)dev)->vdev;
}

static void print_stats(void *dev, unsigned index, FILE *out)
{
	const struct virtio_vsock *v = dev;
	const struct virtio_vsock_stats *s = &v->stats;

	(void)index;
	fprintf(out,
		"hutch-stats: vsock conns_host=%" PRIu64 " conns_guest=%" PRIu64
		" rx_bytes=%" PRIu64 " tx_bytes=%" PRIu64 " rst_sent=%" PRIu64
		" bad_packets=%" PRIu64 " orphans_dropped=%" PRIu64
		" deferred=%" PRIu64 " breaks=%" PRIu64 "\n",
		s->conns_host, s->conns_guest, s->rx_bytes, s->tx_bytes,
		s->rst_sent, s->bad_packets, s->orphans_dropped, s->deferred,
		v->vdev.breaks);
}

/* Guest connections to host port P go to PATH_P. */
static const char *host_path(const void *cfg)
{
	return ((const struct vsock_config *)cfg)->path;
}

static int save(void *dev, struct snap_writer *w, int file_fd)
{
	(void)file_fd;
	return virtio_vsock_save(dev, w);
}

static int restore(void *dev, struct snap_reader *r)
{
	return virtio_vsock_restore(dev, r);
}

const struct device_type virtio_vsock_type = {
    .name = "virtio-vsock",
    .option = "vsock",
    .option_arg = "PATH[,cid=N]",
    .option_help = "a virtio-vsock device; hutch listens on the Unix "
		   "socket PATH",
    .max = 1,
    .parse = parse,
    .free_config = free,
    .create = create,
    .virtio = virtio,
    .print_stats = print_stats,
    .host_path = host_path,
    .destroy = destroy,
    .save = save,
    .restore = restore,
};
