// SPDX-License-Identifier: MIT
/*
 * Where an arm64 Image, its initrd and device tree go in guest RAM
 * (image.h).  Facts from Linux's Documentation/arm64/booting.rst: the
 * 64-byte header (code0, code1, text_offset, image_size, flags, three
 * reserved words, the magic "ARM\x64" at byte 56); since 3.17 image_size
 * is set, and the image is loaded text_offset bytes above a 2 MiB
 * aligned base; the DTB on an 8-byte boundary, at most 2 MiB, in a 2 MiB
 * region of its own (it is mapped in 2 MiB blocks).
 */
#include "vmm/arm64/image.h"

#include <errno.h>
#include <string.h>

#include "vmm/arm64/layout.h"
#include "vmm/base/le.h"

#define SZ_2M		  0x200000ull
#define ARM64_IMAGE_MAGIC 0x644d5241u /* "ARM\x64" */
/* Before 3.17 image_size was 0 and text_offset meant 0x80000. */
#define ARM64_OLD_TEXT_OFFSET 0x80000ull

int arm64_image_place(const uint8_t *img, size_t len, uint64_t initrd_size,
		      uint64_t mem_size, struct arm64_placement *p,
		      const char **why)
{
	uint64_t text_offset, image_size, ram_end, dtb, top;

	memset(p, 0, sizeof(*p));
	if (len < ARM64_IMAGE_HEADER_SIZE) {
		*why = "too small for an arm64 Image header (64 bytes)";
		return -ENOEXEC;
	}
	if (get_le32(img + 56) != ARM64_IMAGE_MAGIC) {
		*why = "not an arm64 Image (no \"ARM\\x64\" magic at byte 56; "
		       "a compressed Image.gz must be decompressed first)";
		return -ENOEXEC;
	}
	text_offset = get_le64(img + 8);
	image_size = get_le64(img + 16);
	if (image_size == 0) {
		text_offset = ARM64_OLD_TEXT_OFFSET;
		image_size = len;
	}
	if (get_le64(img + 24) & 1) {
		*why = "a big-endian kernel (flags bit 0); hutch boots "
		       "little-endian guests";
		return -ENOEXEC;
	}
	if (text_offset >= SZ_2M || (text_offset & 0xfff) || image_size < len) {
		*why = "malformed header (text_offset or image_size)";
		return -ENOEXEC;
	}
	/* The device tree takes RAM's last 2 MiB, the initrd sits below it,
	 * the kernel (with its bss, image_size) at the bottom. */
	if (mem_size < 2 * SZ_2M || (mem_size & 0xfff)) {
		*why = "RAM too small (the kernel and its device tree need "
		       "more than 4 MiB)";
		return -ENOMEM;
	}
	ram_end = ARM64_RAM_BASE + mem_size;
	dtb = (ram_end - SZ_2M) & ~(SZ_2M - 1);
	p->kernel = ARM64_RAM_BASE + text_offset;
	p->kernel_end = p->kernel + image_size;
	p->dtb = dtb;
	p->dtb_max = SZ_2M;
	top = dtb;
	if (p->kernel_end > top) {
		*why = "kernel does not fit in guest memory; raise --mem";
		return -ENOMEM;
	}
	if (initrd_size) {
		if (initrd_size > top - p->kernel_end) {
			*why = "initrd does not fit in guest memory above the "
			       "kernel; raise --mem";
			return -ENOMEM;
		}
		p->initrd = (top - initrd_size) & ~0xfffull;
		if (p->initrd < p->kernel_end) {
			*why = "initrd does not fit in guest memory above the "
			       "kernel; raise --mem";
			return -ENOMEM;
		}
		p->initrd_size = initrd_size;
	}
	return 0;
}
