/* SPDX-License-Identifier: MIT */
/*
 * The arm64 Image format (Linux's Documentation/arm64/booting.rst) and
 * where the kernel, initrd and device tree go in guest RAM.  Independent
 * of the host's architecture, so it is unit-tested everywhere.
 */
#ifndef HUTCH_ARM64_IMAGE_H
#define HUTCH_ARM64_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define ARM64_IMAGE_HEADER_SIZE 64

/* Guest physical addresses (RAM starts at ARM64_RAM_BASE). */
struct arm64_placement {
	uint64_t kernel;     /* where the Image's first byte goes: the entry */
	uint64_t kernel_end; /* kernel + image_size (its bss included) */
	uint64_t initrd;     /* page aligned; 0 with no initrd */
	uint64_t initrd_size;
	uint64_t dtb; /* 2 MiB aligned, RAM's last 2 MiB */
	uint64_t dtb_max;
};

/*
 * Check img (len bytes) is an arm64 Image hutch can boot and place it
 * with an initrd of initrd_size bytes (0: none) in mem_size bytes of RAM.
 * 0, or -ENOEXEC (not a bootable Image) or -ENOMEM (does not fit), with
 * *why saying which.
 */
int arm64_image_place(const uint8_t *img, size_t len, uint64_t initrd_size,
		      uint64_t mem_size, struct arm64_placement *p,
		      const char **why) __attribute__((warn_unused_result));

#endif
