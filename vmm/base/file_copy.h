/* SPDX-License-Identifier: MIT */
/*
 * Copying a sparse file (a drive's overlay) without filling its holes:
 * only the data extents SEEK_DATA/SEEK_HOLE report are copied, with
 * copy_file_range (which shares blocks where the file system can), and
 * the destination gets the source's size.  Snapshots copy overlays into
 * the snapshot, and each restored VM gets its own copy back.
 */
#ifndef HUTCH_FILE_COPY_H
#define HUTCH_FILE_COPY_H

#include <stdint.h>

/* src from its start into dst (empty, opened for writing).  0 or
 * negative errno (-ENOSPC: the disk filled up). */
int copy_sparse(int src, int dst) __attribute__((warn_unused_result));

#endif
