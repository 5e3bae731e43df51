// SPDX-License-Identifier: MIT
#include "vmm/x86/elf_pvh.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

#include "vmm/base/le.h"

int elf_is_elf(const uint8_t *img, size_t len)
{
	return len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0;
}

/* Does [off, off+size) lie within a buffer of len bytes? */
static int in_file(uint64_t off, uint64_t size, size_t len)
{
	uint64_t end;

	return !__builtin_add_overflow(off, size, &end) && end <= len;
}

/* Walk one PT_NOTE segment for the Xen PVH entry note. */
static int find_pvh_note(const uint8_t *p, uint64_t size, uint32_t *entry)
{
	uint64_t pos = 0;

	while (size - pos >= 12) {
		uint32_t namesz = get_le32(p + pos);
		uint32_t descsz = get_le32(p + pos + 4);
		uint32_t type = get_le32(p + pos + 8);
		uint64_t name_off = pos + 12;
		uint64_t desc_off = name_off + (((uint64_t)namesz + 3) & ~3ull);
		uint64_t next = desc_off + (((uint64_t)descsz + 3) & ~3ull);

		if (next > size)
			return -EINVAL;
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
		    memcmp(p + name_off, "Xen", 4) == 0) {
			if (descsz != 4 && descsz != 8)
				return -EINVAL;
			*entry = get_le32(p + desc_off);
			return 1;
		}
		pos = next;
	}
	return 0;
}

int elf_pvh_parse(const uint8_t *img, size_t len, struct elf_pvh_info *out,
		  const char **why)
{
	const Elf64_Ehdr *eh = (const void *)img;
	Elf64_Ehdr h;
	int have_entry = 0;

	memset(out, 0, sizeof(*out));
	if (!elf_is_elf(img, len)) {
		*why = "not an ELF file";
		return -ENOEXEC;
	}
	if (len < sizeof(h)) {
		*why = "truncated ELF header";
		return -EINVAL;
	}
	memcpy(&h, eh, sizeof(h));
	if (h.e_ident[EI_CLASS] != ELFCLASS64 ||
	    h.e_ident[EI_DATA] != ELFDATA2LSB || h.e_machine != EM_X86_64) {
		*why = "not a little-endian x86_64 ELF";
		return -EINVAL;
	}
	if (h.e_type != ET_EXEC) {
		*why = "ELF is not an executable";
		return -EINVAL;
	}
	if (h.e_phentsize != sizeof(Elf64_Phdr) || h.e_phnum == 0 ||
	    !in_file(h.e_phoff, (uint64_t)h.e_phnum * sizeof(Elf64_Phdr),
		     len)) {
		*why = "program headers missing or outside the file";
		return -EINVAL;
	}

	for (unsigned i = 0; i < h.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t end;

		memcpy(&ph, img + h.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE)
			continue;
		if (!in_file(ph.p_offset, ph.p_filesz, len)) {
			*why = "truncated (segment extends past end of file)";
			return -EINVAL;
		}
		if (ph.p_type == PT_NOTE) {
			int r = find_pvh_note(img + ph.p_offset, ph.p_filesz,
					      &out->pvh_entry);

			if (r < 0) {
				*why = "malformed ELF note";
				return -EINVAL;
			}
			have_entry |= r;
			continue;
		}
		if (ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz ||
		    __builtin_add_overflow(ph.p_paddr, ph.p_memsz, &end)) {
			*why = "malformed load segment";
			return -EINVAL;
		}
		if (out->nr_segments == ELF_MAX_LOAD_SEGMENTS) {
			*why = "too many load segments";
			return -EINVAL;
		}
		out->seg[out->nr_segments++] = (struct elf_segment){
		    .offset = ph.p_offset,
		    .filesz = ph.p_filesz,
		    .paddr = ph.p_paddr,
		    .memsz = ph.p_memsz,
		};
		if (end > out->kernel_end)
			out->kernel_end = end;
	}
	if (!out->nr_segments) {
		*why = "no loadable segments";
		return -EINVAL;
	}
	if (!have_entry) {
		*why = "no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY); "
		       "build the kernel with CONFIG_PVH=y or boot a bzImage";
		return -EINVAL;
	}
	return 0;
}

size_t pvh_start_info_size(unsigned e820_entries)
{
	return PVH_MEMMAP_OFFSET + (size_t)e820_entries * PVH_MEMMAP_ENTRY;
}

int pvh_build_start_info(uint8_t *buf, size_t len, const struct pvh_args *a)
{
	if (len < pvh_start_info_size(a->e820_entries))
		return -ENOSPC;
	memset(buf, 0, pvh_start_info_size(a->e820_entries));

	put_le32(buf + 0, PVH_START_MAGIC);
	put_le32(buf + 4, 1); /* version 1: has memmap fields */
	put_le32(buf + 8, 0); /* flags */
	if (a->initrd_size) {
		uint8_t *mod = buf + PVH_MODLIST_OFFSET;

		put_le32(buf + 12, 1);
		put_le64(buf + 16, a->base_gpa + PVH_MODLIST_OFFSET);
		put_le64(mod + 0, a->initrd_addr);
		put_le64(mod + 8, a->initrd_size);
	}
	put_le64(buf + 24, a->cmdline_addr);
	put_le64(buf + 32, a->rsdp_addr);
	put_le64(buf + 40, a->base_gpa + PVH_MEMMAP_OFFSET);
	put_le32(buf + 48, a->e820_entries);
	for (unsigned i = 0; i < a->e820_entries; i++) {
		uint8_t *e = buf + PVH_MEMMAP_OFFSET + i * PVH_MEMMAP_ENTRY;

		put_le64(e, a->e820[i].addr);
		put_le64(e + 8, a->e820[i].size);
		put_le32(e + 16, a->e820[i].type);
	}
	return 0;
}
