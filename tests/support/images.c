// SPDX-License-Identifier: MIT
#include "images.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/base/le.h"
#include "vmm/x86/bzimage.h"

uint8_t *make_bzimage(size_t payload_len, size_t *len)
{
	size_t setup = 2 * 512; /* boot sector + 1 setup sector */
	uint8_t *img = calloc(1, setup + payload_len);

	img[BP_SETUP_SECTS] = 1;
	put_le32(img + BP_SYSSIZE, (uint32_t)(payload_len / 16));
	put_le16(img + BP_BOOT_FLAG, BZ_BOOT_FLAG);
	img[BP_JUMP] = 0xeb;
	img[BP_JUMP + 1] = 0x66; /* header ends at 0x268 */
	put_le32(img + BP_HEADER, BZ_HDRS_MAGIC);
	put_le16(img + BP_VERSION, 0x020f);
	img[BP_LOADFLAGS] = BZ_LOADED_HIGH;
	put_le32(img + BP_INITRD_ADDR_MAX, 0x7fffffff);
	put_le32(img + BP_KERNEL_ALIGNMENT, 0x200000);
	img[BP_RELOCATABLE] = 1;
	put_le16(img + BP_XLOADFLAGS, BZ_XLF_KERNEL_64);
	put_le32(img + BP_CMDLINE_SIZE, 2047);
	put_le64(img + BP_PREF_ADDRESS, 0x1000000);
	put_le32(img + BP_INIT_SIZE, (uint32_t)payload_len * 2);
	memset(img + setup, 0x90, payload_len);
	*len = setup + payload_len;
	return img;
}

/* ud2 after loading a zero-limit IDT: #UD -> #GP -> #DF -> shutdown. */
const uint8_t triple_fault_code[] = {
    0xfa,			  /* cli */
    0x0f, 0x01, 0x1d, 0, 0, 0, 0, /* lidt [abs32] (patched) */
    0x0f, 0x0b,			  /* ud2 */
    0xf4,			  /* hlt (never reached) */
    0,	  0,	0,    0, 0, 0,	  /* idtr: limit 0, base 0 */
};
const size_t triple_fault_code_len = sizeof(triple_fault_code);

uint8_t *make_pvh_elf(const uint8_t *code, size_t code_len, size_t *len)
{
	const size_t phoff = sizeof(Elf64_Ehdr);
	const size_t note_off = phoff + 2 * sizeof(Elf64_Phdr);
	const size_t note_len = 12 + 4 + 8; /* header, "Xen\0", 8-byte desc */
	const size_t code_off = 0x1000;
	size_t total = code_off + code_len;
	uint8_t *img = calloc(1, total);
	Elf64_Ehdr eh = {0};
	Elf64_Phdr ph[2] = {0};
	uint8_t *note = img + note_off;

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = TEST_ELF_LOAD_ADDR;
	eh.e_phoff = phoff;
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 2;

	ph[0].p_type = PT_LOAD;
	ph[0].p_offset = code_off;
	ph[0].p_paddr = ph[0].p_vaddr = TEST_ELF_LOAD_ADDR;
	ph[0].p_filesz = code_len;
	ph[0].p_memsz = code_len + 4096; /* some bss */
	ph[0].p_flags = PF_R | PF_X;
	ph[1].p_type = PT_NOTE;
	ph[1].p_offset = note_off;
	ph[1].p_filesz = note_len;

	memcpy(img, &eh, sizeof(eh));
	memcpy(img + phoff, ph, sizeof(ph));
	put_le32(note, 4);
	put_le32(note + 4, 8);
	put_le32(note + 8, 18); /* XEN_ELFNOTE_PHYS32_ENTRY */
	memcpy(note + 12, "Xen", 4);
	put_le64(note + 16, TEST_ELF_LOAD_ADDR);

	memcpy(img + code_off, code, code_len);
	/* Patch absolute operands that point into the code itself. */
	if (code == triple_fault_code)
		put_le32(img + code_off + 4, TEST_ELF_LOAD_ADDR + 11);
	*len = total;
	return img;
}
