/* SPDX-License-Identifier: MIT */
/*
 * Linux bzImage: header parsing and the zero page (struct boot_params) for
 * the 64-bit boot protocol (Documentation/arch/x86/boot.rst).  Parsing
 * works on an in-memory image and trusts nothing in it.
 */
#ifndef HUTCH_X86_BZIMAGE_H
#define HUTCH_X86_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/x86/e820.h"

/* Offsets in the image / zero page (boot.rst "THE REAL-MODE KERNEL HEADER"
 * and zero-page.rst). */
#define BP_ACPI_RSDP_ADDR    0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES	     0x1e8
#define BP_HDR		     0x1f1
#define BP_SETUP_SECTS	     0x1f1
#define BP_VID_MODE	     0x1fa
#define BP_BOOT_FLAG	     0x1fe
#define BP_JUMP		     0x200
#define BP_HEADER	     0x202
#define BP_VERSION	     0x206
#define BP_TYPE_OF_LOADER    0x210
#define BP_LOADFLAGS	     0x211
#define BP_CODE32_START	     0x214
#define BP_RAMDISK_IMAGE     0x218
#define BP_RAMDISK_SIZE	     0x21c
#define BP_HEAP_END_PTR	     0x224
#define BP_CMD_LINE_PTR	     0x228
#define BP_INITRD_ADDR_MAX   0x22c
#define BP_KERNEL_ALIGNMENT  0x230
#define BP_RELOCATABLE	     0x234
#define BP_XLOADFLAGS	     0x236
#define BP_CMDLINE_SIZE	     0x238
#define BP_PREF_ADDRESS	     0x258
#define BP_INIT_SIZE	     0x260
#define BP_SYSSIZE	     0x1f4
#define BP_E820_TABLE	     0x2d0
#define BP_E820_MAX	     128
#define BP_SIZE		     4096

#define BZ_BOOT_FLAG		 0xaa55
#define BZ_HDRS_MAGIC		 0x53726448 /* "HdrS" */
#define BZ_MIN_VERSION		 0x020c	    /* 2.12: xloadflags, 64-bit entry */
#define BZ_LOADED_HIGH		 0x01
#define BZ_CAN_USE_HEAP		 0x80
#define BZ_XLF_KERNEL_64	 0x01
#define BZ_LOADER_TYPE_UNDEFINED 0xff
#define BZ_STARTUP_64_OFFSET	 0x200 /* 64-bit entry: load address + 0x200 */

struct bzimage_info {
	uint16_t version;
	uint32_t setup_size;  /* real-mode part incl. boot sector, bytes */
	uint32_t kernel_size; /* protected-mode part present in the file */
	uint32_t init_size;   /* memory the kernel needs while booting */
	uint32_t initrd_addr_max;
	uint32_t cmdline_max; /* longest command line, excluding NUL */
	uint64_t pref_address;
	uint32_t hdr_end; /* end of the setup header in the image */
};

/* 0, or -EINVAL/-ENOEXEC with *why set to a short reason. */
int bzimage_parse(const uint8_t *img, size_t len, struct bzimage_info *out,
		  const char **why);

struct boot_params_args {
	uint64_t cmdline_addr;
	uint32_t cmdline_len; /* excluding NUL */
	uint64_t initrd_addr;
	uint64_t initrd_size;
	uint64_t rsdp_addr;
	const struct e820_entry *e820;
	unsigned e820_entries;
};

/* Fill a BP_SIZE zero page: the image's setup header plus what the boot
 * loader must set.  0 or -EINVAL. */
int bzimage_build_zero_page(uint8_t *zp, const uint8_t *img,
			    const struct bzimage_info *bi,
			    const struct boot_params_args *a);

#endif
