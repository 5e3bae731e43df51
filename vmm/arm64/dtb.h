/* SPDX-License-Identifier: MIT */
/*
 * The arm64 guest's device tree (issue 15), built with libfdt: memory,
 * the vCPUs (PSCI), the in-kernel GICv3 and the architected timer, a
 * 16550 UART, the virtio-mmio devices, and /chosen.  Independent of the
 * host's architecture (it is built and unit-tested on x86 hosts too);
 * the arm64 VMM that uses it comes with the rest of vmm/arm64/.
 *
 * The guest physical layout (vmm/arm64/layout.h) is fixed: devices
 * below 1 GiB, RAM from ARM64_RAM_BASE.
 */
#ifndef HUTCH_ARM64_DTB_H
#define HUTCH_ARM64_DTB_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/arm64/layout.h"

struct arm64_fdt_device {
	uint64_t base; /* ARM64_VIRTIO_SIZE bytes of MMIO */
	unsigned spi;  /* its interrupt: a GIC SPI number (from 0) */
};

struct arm64_fdt_config {
	unsigned ncpus;	       /* 1..ARM64_MAX_CPUS */
	uint64_t mem_size;     /* bytes of RAM from ARM64_RAM_BASE */
	const char *bootargs;  /* the kernel command line */
	uint64_t initrd_start; /* guest physical; in RAM */
	uint64_t initrd_size;  /* 0: none */
	unsigned ndevices;     /* up to ARM64_MAX_VIRTIO */
	struct arm64_fdt_device devices[ARM64_MAX_VIRTIO];
};

/*
 * Build the device tree for c into buf (size bytes: the budget; the
 * booting protocol allows up to 2 MiB).  0, or a negative errno with
 * *why saying what is wrong: -EINVAL for a configuration no guest can
 * boot with (no CPUs or too many, RAM that does not fit the guest's
 * address space, an initrd outside RAM, devices overlapping or outside
 * the MMIO window, interrupts shared or out of range), -ENOSPC for a
 * tree over the budget.
 */
int arm64_fdt_build(const struct arm64_fdt_config *c, void *buf, size_t size,
		    const char **why) __attribute__((warn_unused_result));

#endif
