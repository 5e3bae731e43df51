/* SPDX-License-Identifier: MIT */
/* virtio-rng's row of the device table (devices/device.h). */
#ifndef HUTCH_RNG_TYPE_H
#define HUTCH_RNG_TYPE_H

#include "devices/device.h"

extern const struct device_type virtio_rng_type;

#endif
