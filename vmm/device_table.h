/* SPDX-License-Identifier: MIT */
/*
 * The device table: every device type hutch has, one row each, in the
 * order their instances take virtio slots (so disks come first and keep
 * the names vda, vdb, ...).  Adding a device is a folder under devices/
 * and a row in device_table.c.
 */
#ifndef HUTCH_DEVICE_TABLE_H
#define HUTCH_DEVICE_TABLE_H

#include <stdbool.h>

#include "devices/device.h"

/* Every type, NULL-terminated. */
extern const struct device_type *const device_types[];

/* Devices a VM can have at once (the virtio slots the arch offers). */
#define VM_MAX_DEVICES 10

/* One device a VM is to have: its type and that type's config (NULL:
 * the type's default instance). */
struct device_config {
	const struct device_type *type;
	void *cfg;
	bool owned; /* cfg came from type->parse: free_config frees it */
};

#endif
