// SPDX-License-Identifier: MIT
#include "vmm/device_table.h"

#include "devices/blk/blk_type.h"
#include "devices/net/net_type.h"
#include "devices/rng/rng_type.h"
#include "devices/vsock/vsock_type.h"

const struct device_type *const device_types[] = {
    &virtio_blk_type,
    &virtio_vsock_type,
    &virtio_rng_type,
    &virtio_net_type,
    NULL,
};
