/* SPDX-License-Identifier: MIT */
/*
 * Guest-physical memory map of an x86_64 hutch VM.
 *
 *   0x0000_0500  GDT used at entry (PVH and 64-bit boot)
 *   0x0000_6000  PVH hvm_start_info, then its memory map
 *   0x0000_7000  Linux zero page (struct boot_params)
 *   0x0000_9000  identity-mapping page tables for the 64-bit entry
 *   0x0002_0000  kernel command line
 *   0x0009_fc00  EBDA .. 1 MiB: reserved (MP table, ACPI tables live here)
 *   0x0010_0000  kernel load address (bzImage protected-mode code)
 *   ...          RAM up to min(mem, 3 GiB)
 *   3 GiB..4 GiB MMIO hole: virtio-mmio devices, IOAPIC, LAPIC, TSS
 *   4 GiB..      rest of RAM
 */
#ifndef HUTCH_X86_LAYOUT_H
#define HUTCH_X86_LAYOUT_H

#define X86_GDT_ADDR	    0x500ull
#define X86_START_INFO_ADDR 0x6000ull
#define X86_ZERO_PAGE_ADDR  0x7000ull
#define X86_PML4_ADDR	    0x9000ull
#define X86_PDPT_ADDR	    0xa000ull
#define X86_PD_ADDR	    0xb000ull /* 4 pages: identity map of 4 GiB */
#define X86_BOOT_STACK	    0x8ff0ull
#define X86_CMDLINE_ADDR    0x20000ull

#define X86_EBDA_START	 0x9fc00ull
#define X86_MPTABLE_ADDR 0xf0000ull /* in the BIOS area Linux scans */
#define X86_MPTABLE_MAX	 0x10000ull
#define X86_ACPI_ADDR	 0xe0000ull /* RSDP: the BIOS area is scanned */
#define X86_ACPI_MAX	 0x10000ull
/* The VM generation ID (16 bytes, vmgenid.c) in the ACPI area's last page;
 * the tables stay below it. */
#define X86_VMGENID_ADDR (X86_ACPI_ADDR + X86_ACPI_MAX - 0x1000ull)
#define X86_VMGENID_LEN	 16
#define X86_HIMEM_START	 0x100000ull
#define X86_KERNEL_LOAD	 0x100000ull

#define X86_MMIO_HOLE_START   0xc0000000ull
#define X86_MMIO_HOLE_END     0x100000000ull
#define X86_VIRTIO_MMIO_BASE  0xd0000000ull /* 4 KiB per device */
#define X86_VIRTIO_MMIO_SIZE  0x1000ull
#define X86_IOAPIC_ADDR	      0xfec00000ull
#define X86_LAPIC_ADDR	      0xfee00000ull
#define X86_IDENTITY_MAP_ADDR 0xfffbc000ull
#define X86_TSS_ADDR	      0xfffbd000ull /* 3 pages, Intel VMX needs it */

#define X86_IOAPIC_PINS 24

#endif
