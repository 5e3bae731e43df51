/* SPDX-License-Identifier: MIT */
/*
 * Uncompressed ELF vmlinux booted through its PVH entry point
 * (XEN_ELFNOTE_PHYS32_ENTRY): no decompression, the fast path.
 */
#ifndef HUTCH_X86_ELF_PVH_H
#define HUTCH_X86_ELF_PVH_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/x86/e820.h"

#define ELF_MAX_LOAD_SEGMENTS	 16
#define XEN_ELFNOTE_PHYS32_ENTRY 18

struct elf_segment {
	uint64_t offset; /* in the file */
	uint64_t filesz;
	uint64_t paddr;
	uint64_t memsz;
};

struct elf_pvh_info {
	uint32_t pvh_entry;
	unsigned nr_segments;
	struct elf_segment seg[ELF_MAX_LOAD_SEGMENTS];
	uint64_t kernel_end; /* highest paddr + memsz */
};

/* 1 if the image starts with the ELF magic. */
int elf_is_elf(const uint8_t *img, size_t len);

/* 0, or -ENOEXEC/-EINVAL with *why set. */
int elf_pvh_parse(const uint8_t *img, size_t len, struct elf_pvh_info *out,
		  const char **why);

/* hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h),
 * version 1 with a memory map. */
#define PVH_START_MAGIC	    0x336ec578
#define PVH_START_INFO_SIZE 56
#define PVH_MODLIST_OFFSET  64
#define PVH_MODLIST_ENTRY   32
#define PVH_MEMMAP_OFFSET   128
#define PVH_MEMMAP_ENTRY    24

struct pvh_args {
	uint64_t base_gpa; /* where buf will be placed in the guest */
	uint64_t cmdline_addr;
	uint64_t initrd_addr;
	uint64_t initrd_size; /* 0: no initrd */
	uint64_t rsdp_addr;
	const struct e820_entry *e820;
	unsigned e820_entries;
};

/* Size of the buffer pvh_build_start_info() needs. */
size_t pvh_start_info_size(unsigned e820_entries);

/* Lay out start info, module list and memory map in buf. 0 or -ENOSPC. */
int pvh_build_start_info(uint8_t *buf, size_t len, const struct pvh_args *a);

#endif
