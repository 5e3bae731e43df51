// SPDX-License-Identifier: MIT
/* The arm64 Image header and where the kernel, initrd and device tree go
 * (vmm/arm64/image.c), against Documentation/arm64/booting.rst. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "vmm/arm64/image.h"
#include "vmm/arm64/layout.h"
#include "vmm/base/le.h"

#define MIB (1ull << 20)

static uint8_t img[4096];

/* A header as Linux writes it: text_offset 0, image_size past the file
 * (the bss), little-endian, 4 KiB pages, the magic at byte 56. */
static void header(uint64_t text_offset, uint64_t image_size, uint64_t flags)
{
	memset(img, 0, sizeof(img));
	put_le32(img + 0, 0xfa405a4d); /* "MZ" + a branch (EFI stub) */
	put_le64(img + 8, text_offset);
	put_le64(img + 16, image_size);
	put_le64(img + 24, flags);
	put_le32(img + 56, 0x644d5241);
}

Test(arm64_image, a_kernel_initrd_and_tree_each_in_their_place)
{
	struct arm64_placement p;
	const char *why = NULL;

	header(0, 40 * MIB, 0xa); /* 4K pages, anywhere in memory */
	cr_assert_eq(
	    arm64_image_place(img, sizeof(img), 5 * MIB, 512 * MIB, &p, &why),
	    0, "%s", why);
	cr_assert_eq(p.kernel, ARM64_RAM_BASE, "the entry at RAM's base");
	cr_assert_eq(p.kernel_end, ARM64_RAM_BASE + 40 * MIB, "bss counted");
	/* The tree in RAM's last 2 MiB, 2 MiB aligned. */
	cr_assert_eq(p.dtb, ARM64_RAM_BASE + 510 * MIB);
	cr_assert_eq(p.dtb % (2 * MIB), 0);
	cr_assert_eq(p.dtb_max, 2 * MIB);
	/* The initrd right below it, page aligned, above the kernel. */
	cr_assert_eq(p.initrd_size, 5 * MIB);
	cr_assert_eq(p.initrd, p.dtb - 5 * MIB);
	cr_assert_eq(p.initrd & 0xfff, 0);
	cr_assert_geq(p.initrd, p.kernel_end);
}

Test(arm64_image, text_offset_moves_the_kernel_and_old_images_use_0x80000)
{
	struct arm64_placement p;
	const char *why = NULL;

	header(0x80000, 8 * MIB, 0);
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 64 * MIB, &p, &why),
		     0, "%s", why);
	cr_assert_eq(p.kernel, ARM64_RAM_BASE + 0x80000);
	cr_assert_eq(p.initrd, 0, "no initrd, none placed");
	/* Before 3.17: image_size 0, text_offset is taken as 0x80000 and
	 * the file's length as the size. */
	header(0x1234, 0, 0);
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 64 * MIB, &p, &why),
		     0, "%s", why);
	cr_assert_eq(p.kernel, ARM64_RAM_BASE + 0x80000);
	cr_assert_eq(p.kernel_end, p.kernel + sizeof(img));
}

Test(arm64_image, what_is_not_a_bootable_image_is_refused_with_the_reason)
{
	struct arm64_placement p;
	const char *why;

	header(0, 8 * MIB, 0);
	why = NULL;
	cr_assert_eq(arm64_image_place(img, 63, 0, 64 * MIB, &p, &why),
		     -ENOEXEC);
	cr_assert(why && strstr(why, "header"), "%s", why);

	img[56] = 'X';
	why = NULL;
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 64 * MIB, &p, &why),
		     -ENOEXEC);
	cr_assert(why && strstr(why, "magic"), "%s", why);

	header(0, 8 * MIB, 1); /* big-endian */
	why = NULL;
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 64 * MIB, &p, &why),
		     -ENOEXEC);
	cr_assert(why && strstr(why, "big-endian"), "%s", why);

	header(2 * MIB, 8 * MIB, 0); /* text_offset past 2 MiB */
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 64 * MIB, &p, &why),
		     -ENOEXEC);
	header(0x800, 8 * MIB, 0); /* not page aligned */
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 64 * MIB, &p, &why),
		     -ENOEXEC);
	header(0, 100, 0); /* image_size below the file's length */
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 64 * MIB, &p, &why),
		     -ENOEXEC);
}

Test(arm64_image, what_does_not_fit_asks_for_more_memory)
{
	struct arm64_placement p;
	const char *why;

	header(0, 40 * MIB, 0);
	why = NULL;
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 40 * MIB, &p, &why),
		     -ENOMEM, "the kernel and the tree's 2 MiB need 42");
	cr_assert(why && strstr(why, "--mem"), "%s", why);
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 42 * MIB, &p, &why),
		     0, "exactly enough");
	why = NULL;
	cr_assert_eq(arm64_image_place(img, sizeof(img), 1, 42 * MIB, &p, &why),
		     -ENOMEM, "no byte left for an initrd");
	cr_assert(why && strstr(why, "initrd"), "%s", why);
	cr_assert_eq(arm64_image_place(img, sizeof(img), 0, 2 * MIB, &p, &why),
		     -ENOMEM);
	cr_assert_eq(arm64_image_place(img, sizeof(img), UINT64_MAX, 512 * MIB,
				       &p, &why),
		     -ENOMEM, "a huge initrd does not wrap around");
}
