/* SPDX-License-Identifier: MIT */
/* virtio-blk's row of the device table (devices/device.h). */
#ifndef HUTCH_BLK_TYPE_H
#define HUTCH_BLK_TYPE_H

#include "devices/blk/disk.h"
#include "devices/device.h"

/* Disks per VM (each is one virtio-mmio device). */
#define BLK_MAX_DRIVES 8

extern const struct device_type virtio_blk_type;

/*
 * --drive path=FILE[,ro][,root][,overlay=FILE][,serial=ID][,bps=N]
 * [,bps_burst=N][,iops=N][,iops_burst=N]: keys in any order; paths
 * cannot contain commas.  The string is modified (the config points into
 * it).  0 or -EINVAL after saying why.
 */
int blk_parse_drive(char *spec, struct drive_config *d);

/* "bps=N,iops=N,..." (the rate-limit keys of --drive) into l, changing
 * only the keys given.  The string is modified.  0 or -EINVAL after
 * saying why. */
int blk_parse_limits(char *spec, struct blk_limits *l);

#endif
