// SPDX-License-Identifier: MIT
/* ELF/PVH parsing, start info, and whole kernel loads on fake memory. */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "support/images.h"
#include "vmm/base/le.h"
#include "vmm/x86/boot.h"
#include "vmm/x86/elf_pvh.h"
#include "vmm/x86/layout.h"

static const uint8_t hlt_code[] = {0xf4};

Test(elf_pvh, finds_entry_and_segments)
{
	size_t len;
	uint8_t *img = make_pvh_elf(hlt_code, 1, &len);
	struct elf_pvh_info ei;
	const char *why = NULL;

	cr_assert_eq(elf_pvh_parse(img, len, &ei, &why), 0, "%s", why);
	cr_assert_eq(ei.pvh_entry, TEST_ELF_LOAD_ADDR);
	cr_assert_eq(ei.nr_segments, 1);
	cr_assert_eq(ei.seg[0].paddr, TEST_ELF_LOAD_ADDR);
	cr_assert_eq(ei.kernel_end, TEST_ELF_LOAD_ADDR + 1 + 4096);
	free(img);
}

Test(elf_pvh, rejects_every_truncation)
{
	size_t len;
	uint8_t *img = make_pvh_elf(hlt_code, 1, &len);
	struct elf_pvh_info ei;
	const char *why = NULL;

	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);

		memcpy(copy, img, cut);
		cr_assert_neq(elf_pvh_parse(copy, cut, &ei, &why), 0,
			      "accepted a %zu-byte prefix", cut);
		free(copy);
	}
	free(img);
}

Test(elf_pvh, rejects_malformed_headers_and_notes)
{
	size_t len;
	uint8_t *img = make_pvh_elf(hlt_code, 1, &len);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff);
	uint8_t *note = img + ph[1].p_offset;
	struct elf_pvh_info ei;
	const char *why = NULL;

	eh->e_machine = EM_AARCH64;
	cr_assert_eq(elf_pvh_parse(img, len, &ei, &why), -EINVAL);
	eh->e_machine = EM_X86_64;

	eh->e_phoff = len - 8; /* program headers past the end */
	cr_assert_eq(elf_pvh_parse(img, len, &ei, &why), -EINVAL);
	eh->e_phoff = sizeof(Elf64_Ehdr);

	ph[0].p_filesz = ph[0].p_memsz + 1; /* file bigger than memory */
	cr_assert_eq(elf_pvh_parse(img, len, &ei, &why), -EINVAL);
	ph[0].p_filesz = 1;

	ph[0].p_paddr = UINT64_MAX - 10; /* wraps */
	cr_assert_eq(elf_pvh_parse(img, len, &ei, &why), -EINVAL);
	ph[0].p_paddr = TEST_ELF_LOAD_ADDR;

	put_le32(note + 4, 0xfffffff0); /* descsz runs off the note */
	cr_assert_eq(elf_pvh_parse(img, len, &ei, &why), -EINVAL);
	put_le32(note + 4, 8);

	put_le32(note + 8, 17); /* no PVH note at all */
	cr_assert_eq(elf_pvh_parse(img, len, &ei, &why), -EINVAL);
	cr_assert(strstr(why, "PVH"), "%s", why);
	free(img);
}

Test(pvh, start_info_layout)
{
	uint8_t buf[512];
	struct e820_entry e820[2] = {{0, 0x9fc00, 1}, {0x100000, 0x100000, 1}};
	struct pvh_args a = {
	    .base_gpa = 0x6000,
	    .cmdline_addr = 0x20000,
	    .initrd_addr = 0x800000,
	    .initrd_size = 4096,
	    .rsdp_addr = 0xe0000,
	    .e820 = e820,
	    .e820_entries = 2,
	};

	cr_assert_eq(pvh_build_start_info(buf, 100, &a), -ENOSPC);
	cr_assert_eq(pvh_build_start_info(buf, sizeof(buf), &a), 0);
	cr_assert_eq(get_le32(buf), PVH_START_MAGIC);
	cr_assert_eq(get_le32(buf + 4), 1, "version");
	cr_assert_eq(get_le32(buf + 12), 1, "one module");
	cr_assert_eq(get_le64(buf + 16), 0x6000 + PVH_MODLIST_OFFSET);
	cr_assert_eq(get_le64(buf + PVH_MODLIST_OFFSET), 0x800000);
	cr_assert_eq(get_le64(buf + PVH_MODLIST_OFFSET + 8), 4096);
	cr_assert_eq(get_le64(buf + 24), 0x20000);
	cr_assert_eq(get_le64(buf + 32), 0xe0000);
	cr_assert_eq(get_le64(buf + 40), 0x6000 + PVH_MEMMAP_OFFSET);
	cr_assert_eq(get_le32(buf + 48), 2);
	cr_assert_eq(get_le64(buf + PVH_MEMMAP_OFFSET + 24), 0x100000);

	a.initrd_size = 0;
	cr_assert_eq(pvh_build_start_info(buf, sizeof(buf), &a), 0);
	cr_assert_eq(get_le32(buf + 12), 0, "no initrd, no module");
}

/* Whole loads into a fake 64 MiB guest. */
static uint8_t *ram;
static struct guest_mem mem;

static void setup_ram(void)
{
	struct guest_region r = {0, 64ull << 20, NULL};

	ram = calloc(1, 64ull << 20);
	cr_assert_eq(guest_mem_init_from(&mem, ram, &r, 1), 0);
}

static void free_ram(void)
{
	free(ram);
}

TestSuite(load, .init = setup_ram, .fini = free_ram);

Test(load, pvh_kernel_with_initrd)
{
	size_t len;
	uint8_t *img = make_pvh_elf(hlt_code, 1, &len);
	char path[] = "/tmp/hutch-initrd-XXXXXX";
	int fd = mkstemp(path);
	struct x86_entry e;
	struct x86_boot_args a = {
	    .kernel = img,
	    .kernel_len = len,
	    .initrd_fd = fd,
	    .initrd_size = 8192,
	    .cmdline = "console=ttyS0",
	    .ncpus = 2,
	};
	uint8_t junk[8192];
	uint64_t initrd;

	memset(junk, 0xab, sizeof(junk));
	cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	cr_assert_eq(x86_load_kernel(&mem, &a, &e), 0);
	unlink(path);
	close(fd);
	cr_assert_eq(e.mode, X86_ENTRY_PVH32);
	cr_assert_eq(e.rip, TEST_ELF_LOAD_ADDR);
	cr_assert_eq(e.arg, X86_START_INFO_ADDR);
	cr_assert_eq(ram[TEST_ELF_LOAD_ADDR], 0xf4, "code loaded");
	cr_assert_str_eq((char *)ram + X86_CMDLINE_ADDR, "console=ttyS0");
	initrd = get_le64(ram + X86_START_INFO_ADDR + PVH_MODLIST_OFFSET);
	cr_assert_eq(initrd % 4096, 0);
	cr_assert(initrd + 8192 <= 64ull << 20);
	cr_assert_eq(ram[initrd + 100], 0xab, "initrd contents");
	cr_assert_eq(memcmp(ram + X86_ACPI_ADDR, "RSD PTR ", 8), 0);
	cr_assert_eq(memcmp(ram + X86_MPTABLE_ADDR, "_MP_", 4), 0);
	free(img);
}

Test(load, bzimage_sets_long_mode_entry)
{
	size_t len;
	uint8_t *img = make_bzimage(8192, &len);
	struct x86_entry e;
	struct x86_boot_args a = {
	    .kernel = img,
	    .kernel_len = len,
	    .initrd_fd = -1,
	    .cmdline = "quiet",
	    .ncpus = 1,
	};

	cr_assert_eq(x86_load_kernel(&mem, &a, &e), 0);
	cr_assert_eq(e.mode, X86_ENTRY_LINUX64);
	cr_assert_eq(e.rip, 0x100200);
	cr_assert_eq(e.arg, X86_ZERO_PAGE_ADDR);
	cr_assert_eq(ram[0x100000], 0x90, "payload at 1 MiB");
	cr_assert_eq(get_le32(ram + X86_ZERO_PAGE_ADDR + 0x228), 0x20000);
	/* identity map: PML4[0] -> PDPT, PD entry 8 maps 16 MiB */
	cr_assert_eq(get_le64(ram + X86_PML4_ADDR) & ~0xfffull, X86_PDPT_ADDR);
	cr_assert_eq(get_le64(ram + X86_PD_ADDR + 8 * 8), (8ull << 21) | 0x83);
	free(img);
}

Test(load, command_line_limits)
{
	size_t len;
	uint8_t *img = make_pvh_elf(hlt_code, 1, &len);
	char *line = malloc(X86_CMDLINE_MAX_BYTES + 1);
	struct x86_entry e;
	struct x86_boot_args a = {
	    .kernel = img,
	    .kernel_len = len,
	    .initrd_fd = -1,
	    .cmdline = line,
	    .ncpus = 1,
	};

	memset(line, 'a', X86_CMDLINE_LEN_MAX);
	line[X86_CMDLINE_LEN_MAX] = 0;
	cr_assert_eq(x86_load_kernel(&mem, &a, &e), 0, "2047 bytes fit");
	line[X86_CMDLINE_LEN_MAX] = 'b';
	line[X86_CMDLINE_LEN_MAX + 1] = 0;
	cr_assert_eq(x86_load_kernel(&mem, &a, &e), -E2BIG, "2048 do not");
	free(img);

	/* A bzImage advertising a shorter limit is held to it. */
	img = make_bzimage(4096, &len);
	put_le32(img + 0x238, 100);
	a.kernel = img;
	a.kernel_len = len;
	line[101] = 0;
	cr_assert_eq(x86_load_kernel(&mem, &a, &e), -E2BIG);
	line[100] = 0;
	cr_assert_eq(x86_load_kernel(&mem, &a, &e), 0);
	free(img);
	free(line);
}

Test(load, initrd_larger_than_ram_is_refused)
{
	size_t len;
	uint8_t *img = make_pvh_elf(hlt_code, 1, &len);
	struct x86_entry e;
	struct x86_boot_args a = {
	    .kernel = img,
	    .kernel_len = len,
	    .initrd_fd = 0,
	    .initrd_size = 65ull << 20,
	    .cmdline = "",
	    .ncpus = 1,
	};

	cr_assert_eq(x86_load_kernel(&mem, &a, &e), -ENOMEM);
	free(img);
}

Test(load, kernel_larger_than_ram_is_refused)
{
	size_t len;
	uint8_t *img = make_bzimage(4096, &len);
	struct x86_entry e;
	struct x86_boot_args a = {
	    .kernel = img,
	    .kernel_len = len,
	    .initrd_fd = -1,
	    .cmdline = "",
	    .ncpus = 1,
	};

	put_le32(img + 0x260, 64u << 20); /* init_size 64 MiB at 16 MiB */
	cr_assert_eq(x86_load_kernel(&mem, &a, &e), -ENOMEM);
	free(img);
}

/* A preferred address near the top of the address space: pref + init_size
 * wrapped around to a small number and the image was taken. */
Test(load, preferred_address_overflow_is_refused)
{
	size_t len;
	uint8_t *img = make_bzimage(4096, &len);
	struct x86_entry e;
	struct x86_boot_args a = {
	    .kernel = img,
	    .kernel_len = len,
	    .initrd_fd = -1,
	    .cmdline = "",
	    .ncpus = 1,
	};

	put_le64(img + 0x258, 0xfffffffffff00000ull);
	put_le32(img + 0x260, 2u << 20); /* wraps to 1 MiB */
	cr_assert_eq(x86_load_kernel(&mem, &a, &e), -ENOMEM);
	free(img);
}
