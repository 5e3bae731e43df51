// SPDX-License-Identifier: MIT
#include "vmm/x86/bzimage.h"

#include <errno.h>
#include <string.h>

#include "vmm/base/le.h"
#include "vmm/x86/layout.h"

int bzimage_parse(const uint8_t *img, size_t len, struct bzimage_info *out,
		  const char **why)
{
	uint32_t setup_sects, syssize;
	uint64_t setup_size;

	memset(out, 0, sizeof(*out));
	if (len < BP_CMDLINE_SIZE + 4) {
		*why = "too small for a bzImage header";
		return -ENOEXEC;
	}
	if (get_le16(img + BP_BOOT_FLAG) != BZ_BOOT_FLAG ||
	    get_le32(img + BP_HEADER) != BZ_HDRS_MAGIC) {
		*why = "no Linux boot header (HdrS)";
		return -ENOEXEC;
	}
	out->version = get_le16(img + BP_VERSION);
	if (out->version < BZ_MIN_VERSION) {
		*why = "boot protocol older than 2.12 (no 64-bit entry)";
		return -EINVAL;
	}
	if (!(img[BP_LOADFLAGS] & BZ_LOADED_HIGH) ||
	    !(get_le16(img + BP_XLOADFLAGS) & BZ_XLF_KERNEL_64)) {
		*why = "not a 64-bit bzImage";
		return -EINVAL;
	}
	out->hdr_end = BP_HEADER + img[BP_JUMP + 1];
	if (out->hdr_end > len || out->hdr_end < BP_INIT_SIZE + 4 ||
	    out->hdr_end > BP_E820_TABLE) {
		*why = "setup header length out of range";
		return -EINVAL;
	}

	setup_sects = img[BP_SETUP_SECTS] ? img[BP_SETUP_SECTS] : 4;
	setup_size = (uint64_t)(setup_sects + 1) * 512;
	syssize = get_le32(img + BP_SYSSIZE);
	if (setup_size >= len) {
		*why = "truncated (no protected-mode kernel)";
		return -EINVAL;
	}
	out->setup_size = (uint32_t)setup_size;
	/* syssize counts 16-byte paragraphs of protected-mode code: a file
	 * shorter than that was cut off. */
	if (syssize == 0 || (uint64_t)syssize * 16 > len - setup_size) {
		*why = "truncated (file shorter than the header's syssize)";
		return -EINVAL;
	}
	if (len - setup_size > UINT32_MAX) {
		*why = "protected-mode kernel larger than 4 GiB";
		return -EINVAL;
	}
	out->kernel_size = (uint32_t)(len - setup_size);
	out->init_size = get_le32(img + BP_INIT_SIZE);
	if (out->init_size < out->kernel_size) {
		*why = "init_size smaller than the kernel";
		return -EINVAL;
	}
	out->initrd_addr_max = get_le32(img + BP_INITRD_ADDR_MAX);
	out->cmdline_max = get_le32(img + BP_CMDLINE_SIZE);
	out->pref_address = get_le64(img + BP_PREF_ADDRESS);
	return 0;
}

int bzimage_build_zero_page(uint8_t *zp, const uint8_t *img,
			    const struct bzimage_info *bi,
			    const struct boot_params_args *a)
{
	if (a->e820_entries > BP_E820_MAX || a->cmdline_addr > UINT32_MAX ||
	    a->initrd_addr + a->initrd_size > UINT32_MAX + 1ull)
		return -EINVAL;

	memset(zp, 0, BP_SIZE);
	/* The setup header is copied from the image, then the loader-owned
	 * fields are filled in. */
	memcpy(zp + BP_HDR, img + BP_HDR, bi->hdr_end - BP_HDR);
	put_le16(zp + BP_VID_MODE, 0xffff); /* "normal" */
	zp[BP_TYPE_OF_LOADER] = BZ_LOADER_TYPE_UNDEFINED;
	zp[BP_LOADFLAGS] = (uint8_t)((zp[BP_LOADFLAGS] | BZ_CAN_USE_HEAP) &
				     ~0x20 /* not QUIET */);
	put_le16(zp + BP_HEAP_END_PTR, 0xfe00);
	put_le32(zp + BP_CODE32_START, (uint32_t)X86_KERNEL_LOAD);
	put_le32(zp + BP_CMD_LINE_PTR, (uint32_t)a->cmdline_addr);
	put_le32(zp + BP_RAMDISK_IMAGE, (uint32_t)a->initrd_addr);
	put_le32(zp + BP_RAMDISK_SIZE, (uint32_t)a->initrd_size);
	put_le64(zp + BP_ACPI_RSDP_ADDR, a->rsdp_addr);

	zp[BP_E820_ENTRIES] = (uint8_t)a->e820_entries;
	for (unsigned i = 0; i < a->e820_entries; i++) {
		uint8_t *e = zp + BP_E820_TABLE + i * 20;

		put_le64(e, a->e820[i].addr);
		put_le64(e + 8, a->e820[i].size);
		put_le32(e + 16, a->e820[i].type);
	}
	return 0;
}
