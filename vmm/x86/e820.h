/* SPDX-License-Identifier: MIT */
/* The guest's physical memory map, shared by the zero page and PVH. */
#ifndef HUTCH_X86_E820_H
#define HUTCH_X86_E820_H

#include <stdint.h>

#include "vmm/base/guest_mem.h"

#define E820_RAM	 1
#define E820_RESERVED	 2
#define E820_MAX_ENTRIES 8

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/* Guest RAM regions for mem_bytes of memory, leaving the MMIO hole below
 * 4 GiB.  Returns the number of regions (1 or 2). */
unsigned x86_ram_regions(uint64_t mem_bytes,
			 struct guest_region out[GUEST_MEM_MAX_REGIONS]);

/* The e820 map for the guest's RAM: conventional memory, the reserved
 * EBDA/BIOS area that holds our MP and ACPI tables, then RAM above 1 MiB.
 * Returns the number of entries or -EINVAL if RAM is smaller than 1 MiB or
 * there are too many regions. */
int x86_e820_build(const struct guest_mem *m, struct e820_entry *out,
		   unsigned max);

#endif
