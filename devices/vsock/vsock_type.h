/* SPDX-License-Identifier: MIT */
/* virtio-vsock's row of the device table (devices/device.h). */
#ifndef HUTCH_VSOCK_TYPE_H
#define HUTCH_VSOCK_TYPE_H

#include <stdint.h>

#include "devices/device.h"

#define VSOCK_DEFAULT_CID 3

struct vsock_config {
	const char *path; /* the Unix socket hutch listens on */
	uint32_t guest_cid;
};

extern const struct device_type virtio_vsock_type;

/* --vsock PATH[,cid=N] (modified in place; the config points into it).
 * 0 or -EINVAL after saying why. */
int vsock_parse_option(char *spec, struct vsock_config *c);

#endif
