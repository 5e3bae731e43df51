/* SPDX-License-Identifier: MIT */
/* A fake driver's side of the virtio-mmio transport (fake_ring.h's rings
 * handed to a device's registers); apart from fake_ring.c, so that the
 * fuzz targets without the transport need not link it. */
#ifndef HUTCH_TEST_FAKE_MMIO_H
#define HUTCH_TEST_FAKE_MMIO_H

#include <stdbool.h>

#include "devices/virtio/virtio.h"
#include "tests/support/fake_ring.h"

/* As a driver through the MMIO transport: size and addresses of queue q
 * of device d from r, then QueueReady; whether the device reports the
 * queue ready. */
bool fake_ring_attach(struct virtio_dev *d, unsigned q,
		      const struct fake_ring *r);

#endif
