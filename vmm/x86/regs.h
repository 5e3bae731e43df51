/* SPDX-License-Identifier: MIT */
/* Entry state of x86 vCPUs: registers, segments, page tables, MSRs. */
#ifndef HUTCH_X86_REGS_H
#define HUTCH_X86_REGS_H

#include <stdint.h>
#include <stdio.h>

#include "vmm/base/guest_mem.h"

enum x86_entry_mode {
	X86_ENTRY_PVH32, /* 32-bit protected mode, paging off, EBX=start info */
	X86_ENTRY_LINUX64 /* long mode, identity map, RSI=zero page */
};

struct x86_entry {
	enum x86_entry_mode mode;
	uint64_t rip;
	uint64_t arg; /* EBX or RSI */
};

/* Write the GDT (and for long mode the identity-map page tables) into
 * guest memory.  0 or -EFAULT. */
int x86_write_boot_tables(const struct guest_mem *m, enum x86_entry_mode mode);

/* Registers and segments of the boot vCPU. */
int x86_setup_boot_regs(int vcpu_fd, const struct x86_entry *e);

/* MSRs, FPU and LAPIC LINT pins every vCPU needs. */
int x86_setup_vcpu_common(int vcpu_fd);

/* Print general, segment and control registers (crash reports). */
void x86_dump_regs(int vcpu_fd, FILE *out);

/* The GDT entries we hand the guest, for tests. */
#define X86_GDT_CODE32 0x00cf9b000000ffffull
#define X86_GDT_CODE64 0x00af9b000000ffffull
#define X86_GDT_DATA   0x00cf93000000ffffull
#define X86_GDT_TSS    0x00008b0000000067ull
#define X86_BOOT_CS    0x10
#define X86_BOOT_DS    0x18
#define X86_BOOT_TR    0x20

#endif
