/* SPDX-License-Identifier: MIT */
/*
 * The arm64 guest's physical address map (the same shape as QEMU's virt
 * machine, so guests and tools that know it find things where they
 * expect them):
 *
 *   0x0800_0000  GICv3 distributor (64 KiB)
 *   0x080a_0000  GICv3 redistributors, 128 KiB per vCPU (up to 123)
 *   0x0900_0000  16550 UART (4 KiB window)
 *   0x0901_0000  pvpanic (QEMU's pvpanic-mmio: one byte, 2-byte window)
 *   0x0902_0000  boot timer: the guest's init writes 123 (as to x86's port
 *                0x3f0) once it is up; hutch's agent does, through /dev/mem
 *   0x0a00_0000  virtio-mmio devices, 4 KiB each (the window every
 *                hutch device registers, VIRTIO_MMIO_SIZE)
 *   0x4000_0000  RAM (ARM64_RAM_BASE), up to the 40-bit IPA limit
 */
#ifndef HUTCH_ARM64_LAYOUT_H
#define HUTCH_ARM64_LAYOUT_H

#include <stdint.h>

#define ARM64_GICD_BASE		0x08000000ull
#define ARM64_GICD_SIZE		0x00010000ull
#define ARM64_GICR_BASE		0x080a0000ull
#define ARM64_GICR_SIZE_PER_CPU 0x20000ull /* RD_base + SGI_base frames */
#define ARM64_GICR_END		0x09000000ull
#define ARM64_UART_BASE		0x09000000ull
#define ARM64_UART_SIZE		0x1000ull
#define ARM64_UART_SPI		1
#define ARM64_PVPANIC_BASE	0x09010000ull
#define ARM64_PVPANIC_SIZE	0x2ull
#define ARM64_BOOT_TIMER_BASE	0x09020000ull
#define ARM64_VIRTIO_BASE	0x0a000000ull
#define ARM64_VIRTIO_SIZE	0x1000ull
#define ARM64_VIRTIO_END	0x0a020000ull /* 32 devices */
#define ARM64_MAX_VIRTIO	32
#define ARM64_VIRTIO_SPI	16 /* the first device's; one SPI each */
#define ARM64_RAM_BASE		0x40000000ull
#define ARM64_IPA_BITS		40   /* what every arm64 KVM host offers */
#define ARM64_CMDLINE_MAX	2048 /* the kernel's COMMAND_LINE_SIZE */
/* One redistributor region up to the UART: 123 vCPUs. */
#define ARM64_MAX_CPUS                                                         \
	((unsigned)((ARM64_GICR_END - ARM64_GICR_BASE) /                       \
		    ARM64_GICR_SIZE_PER_CPU))
/* The GIC's SPIs the guest's devices may use (KVM's default: 32..1019
 * are INTIDs, i.e. SPIs 0..987; hutch keeps to the first 64). */
#define ARM64_MAX_SPI 64

/* KVM's reset MPIDR affinity for vCPU i (Aff0: 16 per cluster, then
 * Aff1), which the device tree's cpu nodes name and the GIC's attributes
 * take. */
static inline uint32_t arm64_vcpu_mpidr(unsigned i)
{
	return ((i >> 4) << 8) | (i & 0xf);
}

#endif
