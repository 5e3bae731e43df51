// SPDX-License-Identifier: MIT
#include "vmm/x86/boot.h"

#include <errno.h>
#include <string.h>

#include "vmm/base/log.h"
#include "vmm/x86/acpi.h"
#include "vmm/x86/bzimage.h"
#include "vmm/x86/e820.h"
#include "vmm/x86/elf_pvh.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/vmgenid.h"
#include "vmm/x86/mptable.h"

#define MIB (1ull << 20)

static uint64_t low_ram_end(const struct guest_mem *m)
{
	return m->regions[0].gpa + m->regions[0].size;
}

static int load_cmdline(const struct guest_mem *m, const char *cmdline,
			size_t max_len)
{
	size_t len = strlen(cmdline);

	if (len > max_len) {
		log_errx(
		    "kernel command line is %zu bytes; this kernel accepts "
		    "at most %zu",
		    len, max_len);
		return -E2BIG;
	}
	return guest_write(m, X86_CMDLINE_ADDR, cmdline, len + 1);
}

/* Place the initrd as high as allowed, page aligned, above the kernel. */
static int load_initrd(const struct guest_mem *m, const struct x86_boot_args *a,
		       uint64_t kernel_end, uint64_t addr_limit, uint64_t *addr)
{
	uint64_t top = low_ram_end(m), pos;
	int ret;

	if (a->initrd_fd < 0) {
		*addr = 0;
		return 0;
	}
	if (addr_limit && addr_limit < top)
		top = addr_limit;
	if (a->initrd_size > top ||
	    ((top - a->initrd_size) & ~0xfffull) < kernel_end) {
		log_errx("initrd (%llu MiB) does not fit in guest memory: "
			 "%llu MiB free between the kernel and %llu MiB; "
			 "raise --mem",
			 (unsigned long long)(a->initrd_size / MIB),
			 (unsigned long long)(top > kernel_end
						  ? (top - kernel_end) / MIB
						  : 0),
			 (unsigned long long)(top / MIB));
		return -ENOMEM;
	}
	pos = (top - a->initrd_size) & ~0xfffull;
	ret = guest_read_fd(m, pos, a->initrd_fd, a->initrd_size);
	if (ret) {
		log_err(ret, "cannot read initrd");
		return ret;
	}
	*addr = pos;
	return 0;
}

static int load_firmware_tables(const struct guest_mem *m, unsigned ncpus,
				uint64_t *rsdp)
{
	struct acpi_layout acpi;
	uint8_t *p;
	int ret;

	p = gpa_ptr(m, X86_MPTABLE_ADDR, X86_MPTABLE_MAX);
	if (!p)
		return -EFAULT;
	ret = mptable_build(p, X86_MPTABLE_MAX, X86_MPTABLE_ADDR, ncpus);
	if (ret) {
		log_err(ret, "cannot build MP table for %u vCPUs", ncpus);
		return ret;
	}
	p = gpa_ptr(m, X86_ACPI_ADDR, X86_ACPI_MAX);
	if (!p)
		return -EFAULT;
	ret = acpi_build(p, X86_VMGENID_ADDR - X86_ACPI_ADDR, X86_ACPI_ADDR,
			 ncpus, &acpi);
	if (ret) {
		log_err(ret, "cannot build ACPI tables");
		return ret;
	}
	ret = x86_vmgenid_new(m);
	if (ret) {
		log_err(ret, "cannot write the VM generation ID");
		return ret;
	}
	*rsdp = acpi.rsdp;
	return 0;
}

/* What both boot paths put in memory after the kernel: the initrd above
 * it, the MP and ACPI tables, and the e820 map (returned in e820/n). */
static int load_initrd_and_tables(const struct guest_mem *m,
				  const struct x86_boot_args *a,
				  uint64_t kernel_end, uint64_t initrd_limit,
				  uint64_t *initrd_addr, uint64_t *rsdp,
				  struct e820_entry *e820, unsigned *n)
{
	int ret;

	ret = load_initrd(m, a, kernel_end, initrd_limit, initrd_addr);
	if (ret)
		return ret;
	ret = load_firmware_tables(m, a->ncpus, rsdp);
	if (ret)
		return ret;
	ret = x86_e820_build(m, e820, E820_MAX_ENTRIES);
	if (ret < 0)
		return ret;
	*n = (unsigned)ret;
	return 0;
}

static int load_bzimage(const struct guest_mem *m,
			const struct x86_boot_args *a, struct x86_entry *entry)
{
	struct bzimage_info bi;
	struct e820_entry e820[E820_MAX_ENTRIES];
	struct boot_params_args bp = {0};
	uint64_t need, initrd_addr, rsdp;
	const char *why = NULL;
	uint8_t *zp;
	unsigned n;
	int ret;

	ret = bzimage_parse(a->kernel, a->kernel_len, &bi, &why);
	if (ret) {
		log_errx("kernel image is not a usable bzImage: %s", why);
		return ret;
	}
	/* A relocatable kernel loaded low decompresses itself to its
	 * preferred address; it needs init_size bytes there. */
	/* Both numbers come from the image: the sum must not wrap. */
	if (__builtin_add_overflow(bi.pref_address > X86_KERNEL_LOAD
				       ? bi.pref_address
				       : X86_KERNEL_LOAD,
				   (uint64_t)bi.init_size, &need)) {
		log_errx(
		    "kernel image is not a usable bzImage: preferred "
		    "address %#llx plus its size is past the end of memory",
		    (unsigned long long)bi.pref_address);
		return -ENOMEM;
	}
	if (need > low_ram_end(m)) {
		log_errx("kernel needs at least %llu MiB of guest memory; "
			 "raise --mem",
			 (unsigned long long)((need + MIB - 1) / MIB));
		return -ENOMEM;
	}
	ret = load_cmdline(m, a->cmdline,
			   bi.cmdline_max < X86_CMDLINE_LEN_MAX
			       ? bi.cmdline_max
			       : X86_CMDLINE_LEN_MAX);
	if (ret)
		return ret;
	ret = guest_write(m, X86_KERNEL_LOAD, a->kernel + bi.setup_size,
			  bi.kernel_size);
	if (ret)
		return ret;
	ret =
	    load_initrd_and_tables(m, a, need, (uint64_t)bi.initrd_addr_max + 1,
				   &initrd_addr, &rsdp, e820, &n);
	if (ret)
		return ret;

	bp.cmdline_addr = X86_CMDLINE_ADDR;
	bp.cmdline_len = (uint32_t)strlen(a->cmdline);
	bp.initrd_addr = initrd_addr;
	bp.initrd_size = a->initrd_fd >= 0 ? a->initrd_size : 0;
	bp.rsdp_addr = rsdp;
	bp.e820 = e820;
	bp.e820_entries = n;
	zp = gpa_ptr(m, X86_ZERO_PAGE_ADDR, BP_SIZE);
	if (!zp)
		return -EFAULT;
	ret = bzimage_build_zero_page(zp, a->kernel, &bi, &bp);
	if (ret)
		return ret;

	entry->mode = X86_ENTRY_LINUX64;
	entry->rip = X86_KERNEL_LOAD + BZ_STARTUP_64_OFFSET;
	entry->arg = X86_ZERO_PAGE_ADDR;
	return x86_write_boot_tables(m, entry->mode);
}

static int load_elf_pvh(const struct guest_mem *m,
			const struct x86_boot_args *a, struct x86_entry *entry)
{
	struct elf_pvh_info ei;
	struct e820_entry e820[E820_MAX_ENTRIES];
	struct pvh_args pa = {0};
	uint64_t initrd_addr, rsdp;
	const char *why = NULL;
	uint8_t *si;
	unsigned n;
	int ret;

	ret = elf_pvh_parse(a->kernel, a->kernel_len, &ei, &why);
	if (ret) {
		log_errx("ELF kernel cannot be booted: %s", why);
		return ret;
	}
	for (unsigned i = 0; i < ei.nr_segments; i++) {
		const struct elf_segment *s = &ei.seg[i];
		uint8_t *dst = gpa_ptr(m, s->paddr, s->memsz);

		if (s->paddr < X86_HIMEM_START) {
			log_errx("ELF kernel segment at %#llx overlaps low "
				 "memory (below 1 MiB)",
				 (unsigned long long)s->paddr);
			return -EINVAL;
		}
		if (!dst) {
			log_errx(
			    "kernel needs at least %llu MiB of guest "
			    "memory; raise --mem",
			    (unsigned long long)((ei.kernel_end + MIB - 1) /
						 MIB));
			return -ENOMEM;
		}
		memcpy(dst, a->kernel + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	ret = load_cmdline(m, a->cmdline, X86_CMDLINE_LEN_MAX);
	if (ret)
		return ret;
	ret = load_initrd_and_tables(m, a, ei.kernel_end, 0, &initrd_addr,
				     &rsdp, e820, &n);
	if (ret)
		return ret;

	pa.base_gpa = X86_START_INFO_ADDR;
	pa.cmdline_addr = X86_CMDLINE_ADDR;
	pa.initrd_addr = initrd_addr;
	pa.initrd_size = a->initrd_fd >= 0 ? a->initrd_size : 0;
	pa.rsdp_addr = rsdp;
	pa.e820 = e820;
	pa.e820_entries = n;
	si = gpa_ptr(m, X86_START_INFO_ADDR, pvh_start_info_size(n));
	if (!si)
		return -EFAULT;
	ret = pvh_build_start_info(si, pvh_start_info_size(n), &pa);
	if (ret)
		return ret;

	entry->mode = X86_ENTRY_PVH32;
	entry->rip = ei.pvh_entry;
	entry->arg = X86_START_INFO_ADDR;
	return x86_write_boot_tables(m, entry->mode);
}

int x86_load_kernel(const struct guest_mem *m, const struct x86_boot_args *a,
		    struct x86_entry *entry)
{
	if (low_ram_end(m) <= X86_HIMEM_START) {
		log_errx("guest memory must be larger than 1 MiB");
		return -EINVAL;
	}
	if (elf_is_elf(a->kernel, a->kernel_len))
		return load_elf_pvh(m, a, entry);
	return load_bzimage(m, a, entry);
}
