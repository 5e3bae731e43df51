// SPDX-License-Identifier: MIT
/* bzImage header parsing and zero-page construction. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "support/images.h"
#include "vmm/base/le.h"
#include "vmm/x86/bzimage.h"
#include "vmm/x86/e820.h"

Test(bzimage, parses_a_wellformed_header)
{
	size_t len;
	uint8_t *img = make_bzimage(4096, &len);
	struct bzimage_info bi;
	const char *why = NULL;

	cr_assert_eq(bzimage_parse(img, len, &bi, &why), 0, "%s", why);
	cr_assert_eq(bi.setup_size, 1024);
	cr_assert_eq(bi.kernel_size, 4096);
	cr_assert_eq(bi.version, 0x020f);
	cr_assert_eq(bi.cmdline_max, 2047);
	cr_assert_eq(bi.pref_address, 0x1000000);
	cr_assert_eq(bi.hdr_end, 0x268);
	free(img);
}

Test(bzimage, rejects_every_truncation)
{
	size_t len;
	uint8_t *img = make_bzimage(4096, &len);
	struct bzimage_info bi;
	const char *why = NULL;

	/* Every prefix of the image must be refused, never read past. */
	for (size_t cut = 0; cut < len; cut += 7) {
		uint8_t *copy = malloc(cut ? cut : 1);

		memcpy(copy, img, cut);
		cr_assert_neq(bzimage_parse(copy, cut, &bi, &why), 0,
			      "accepted a %zu-byte prefix", cut);
		free(copy);
	}
	free(img);
}

Test(bzimage, rejects_bad_magic_old_protocol_and_32bit)
{
	size_t len;
	uint8_t *img = make_bzimage(4096, &len);
	struct bzimage_info bi;
	const char *why = NULL;

	img[BP_HEADER] = 'X';
	cr_assert_eq(bzimage_parse(img, len, &bi, &why), -ENOEXEC);
	put_le32(img + BP_HEADER, BZ_HDRS_MAGIC);
	put_le16(img + BP_VERSION, 0x0206);
	cr_assert_eq(bzimage_parse(img, len, &bi, &why), -EINVAL);
	cr_assert(strstr(why, "2.12"));
	put_le16(img + BP_VERSION, 0x020f);
	put_le16(img + BP_XLOADFLAGS, 0);
	cr_assert_eq(bzimage_parse(img, len, &bi, &why), -EINVAL);
	cr_assert(strstr(why, "64-bit"));
	free(img);
}

Test(bzimage, rejects_garbage_and_absurd_fields)
{
	uint8_t junk[8192];
	size_t len;
	uint8_t *img = make_bzimage(4096, &len);
	struct bzimage_info bi;
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	cr_assert_neq(bzimage_parse(junk, sizeof(junk), &bi, &why), 0);

	img[BP_JUMP + 1] = 0xff; /* header claims to run past the table */
	cr_assert_eq(bzimage_parse(img, len, &bi, &why), -EINVAL);
	img[BP_JUMP + 1] = 0x66;
	img[BP_SETUP_SECTS] = 200; /* setup larger than the file */
	cr_assert_eq(bzimage_parse(img, len, &bi, &why), -EINVAL);
	img[BP_SETUP_SECTS] = 1;
	put_le32(img + BP_INIT_SIZE, 16); /* smaller than the kernel */
	cr_assert_eq(bzimage_parse(img, len, &bi, &why), -EINVAL);
	free(img);
}

Test(bzimage, zero_page_has_loader_fields_and_e820)
{
	size_t len;
	uint8_t *img = make_bzimage(4096, &len);
	uint8_t zp[BP_SIZE];
	struct bzimage_info bi;
	const char *why = NULL;
	struct e820_entry e820[3] = {
	    {0, 0x9fc00, E820_RAM},
	    {0x9fc00, 0x60400, E820_RESERVED},
	    {0x100000, 0x7f00000, E820_RAM},
	};
	struct boot_params_args a = {
	    .cmdline_addr = 0x20000,
	    .cmdline_len = 10,
	    .initrd_addr = 0x7000000,
	    .initrd_size = 0x123456,
	    .rsdp_addr = 0xe0000,
	    .e820 = e820,
	    .e820_entries = 3,
	};

	cr_assert_eq(bzimage_parse(img, len, &bi, &why), 0);
	cr_assert_eq(bzimage_build_zero_page(zp, img, &bi, &a), 0);
	cr_assert_eq(get_le32(zp + BP_HEADER), BZ_HDRS_MAGIC, "header copied");
	cr_assert_eq(zp[BP_TYPE_OF_LOADER], 0xff);
	cr_assert(zp[BP_LOADFLAGS] & BZ_CAN_USE_HEAP);
	cr_assert_eq(get_le32(zp + BP_CMD_LINE_PTR), 0x20000);
	cr_assert_eq(get_le32(zp + BP_RAMDISK_IMAGE), 0x7000000);
	cr_assert_eq(get_le32(zp + BP_RAMDISK_SIZE), 0x123456);
	cr_assert_eq(get_le64(zp + BP_ACPI_RSDP_ADDR), 0xe0000);
	cr_assert_eq(zp[BP_E820_ENTRIES], 3);
	cr_assert_eq(get_le64(zp + BP_E820_TABLE + 2 * 20), 0x100000);
	cr_assert_eq(get_le64(zp + BP_E820_TABLE + 2 * 20 + 8), 0x7f00000);
	cr_assert_eq(get_le32(zp + BP_E820_TABLE + 1 * 20 + 16), E820_RESERVED);

	a.e820_entries = BP_E820_MAX + 1;
	cr_assert_eq(bzimage_build_zero_page(zp, img, &bi, &a), -EINVAL);
	free(img);
}

Test(e820, low_memory_only)
{
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	struct guest_mem m = {0};
	struct e820_entry e[8];
	unsigned n = x86_ram_regions(128ull << 20, r);

	cr_assert_eq(n, 1);
	m.nr_regions = n;
	memcpy(m.regions, r, sizeof(r));
	cr_assert_eq(x86_e820_build(&m, e, 8), 3);
	cr_assert_eq(e[0].addr, 0);
	cr_assert_eq(e[0].type, E820_RAM);
	cr_assert_eq(e[1].type, E820_RESERVED);
	cr_assert_eq(e[1].addr + e[1].size, 0x100000);
	cr_assert_eq(e[2].addr, 0x100000);
	cr_assert_eq(e[2].addr + e[2].size, 128ull << 20);
}

Test(e820, memory_above_4g_skips_the_mmio_hole)
{
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	struct guest_mem m = {0};
	struct e820_entry e[8];
	unsigned n = x86_ram_regions(5ull << 30, r);
	uint64_t ram = 0;

	cr_assert_eq(n, 2);
	cr_assert_eq(r[0].size, 3ull << 30);
	cr_assert_eq(r[1].gpa, 4ull << 30);
	cr_assert_eq(r[1].size, 2ull << 30);
	m.nr_regions = n;
	memcpy(m.regions, r, sizeof(r));
	cr_assert_eq(x86_e820_build(&m, e, 8), 4);
	for (int i = 0; i < 4; i++) {
		if (e[i].type == E820_RAM)
			ram += e[i].size;
		/* nothing in the hole */
		cr_assert(e[i].addr + e[i].size <= 0xc0000000ull ||
			  e[i].addr >= 0x100000000ull);
	}
	cr_assert_eq(ram, (5ull << 30) - (0x100000 - 0x9fc00));
	cr_assert_eq(x86_e820_build(&m, e, 3), -EINVAL, "too small a table");
}
