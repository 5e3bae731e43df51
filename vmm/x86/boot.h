/* SPDX-License-Identifier: MIT */
/*
 * Put a Linux kernel, its initrd and command line, and the firmware tables
 * (MP, ACPI, e820) into guest memory, and say how to enter it.  The image
 * format decides the path: ELF vmlinux -> PVH, bzImage -> 64-bit protocol.
 */
#ifndef HUTCH_X86_BOOT_H
#define HUTCH_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/base/guest_mem.h"
#include "vmm/x86/regs.h"

struct x86_boot_args {
	const uint8_t *kernel;
	size_t kernel_len;
	int initrd_fd; /* -1: none */
	uint64_t initrd_size;
	const char *cmdline;
	unsigned ncpus;
};

/* 0 or a negative errno; reports the reason itself (one line). */
int x86_load_kernel(const struct guest_mem *m, const struct x86_boot_args *a,
		    struct x86_entry *entry);

/* Longest command line (excluding NUL) any path accepts. */
#define X86_CMDLINE_LEN_MAX   (X86_CMDLINE_MAX_BYTES - 1)
#define X86_CMDLINE_MAX_BYTES 2048

#endif
