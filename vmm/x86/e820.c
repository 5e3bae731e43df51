// SPDX-License-Identifier: MIT
#include "vmm/x86/e820.h"

#include <errno.h>

#include "vmm/x86/layout.h"

unsigned x86_ram_regions(uint64_t mem_bytes,
			 struct guest_region out[GUEST_MEM_MAX_REGIONS])
{
	uint64_t low =
	    mem_bytes < X86_MMIO_HOLE_START ? mem_bytes : X86_MMIO_HOLE_START;

	out[0] = (struct guest_region){.gpa = 0, .size = low};
	if (mem_bytes == low)
		return 1;
	out[1] = (struct guest_region){.gpa = X86_MMIO_HOLE_END,
				       .size = mem_bytes - low};
	return 2;
}

int x86_e820_build(const struct guest_mem *m, struct e820_entry *out,
		   unsigned max)
{
	unsigned n = 0;

	if (m->nr_regions == 0 || m->regions[0].gpa != 0 ||
	    m->regions[0].size <= X86_HIMEM_START || max < 2 + m->nr_regions)
		return -EINVAL;

	out[n++] = (struct e820_entry){0, X86_EBDA_START, E820_RAM};
	out[n++] = (struct e820_entry){
	    X86_EBDA_START, X86_HIMEM_START - X86_EBDA_START, E820_RESERVED};
	out[n++] = (struct e820_entry){
	    X86_HIMEM_START, m->regions[0].size - X86_HIMEM_START, E820_RAM};
	for (unsigned i = 1; i < m->nr_regions; i++)
		out[n++] = (struct e820_entry){m->regions[i].gpa,
					       m->regions[i].size, E820_RAM};
	return (int)n;
}
