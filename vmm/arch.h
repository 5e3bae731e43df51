/* SPDX-License-Identifier: MIT */
/*
 * What generic VM code needs from the architecture.  meson picks the
 * implementation by host CPU (vmm/x86/arch_x86.c today).
 */
#ifndef HUTCH_ARCH_H
#define HUTCH_ARCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/base/guest_mem.h"

struct vm;
struct vcpu;
struct snap_writer;
struct snap_reader;

/* Guest RAM layout for the requested size (holes for MMIO). */
unsigned arch_ram_regions(uint64_t mem_bytes,
			  struct guest_region out[GUEST_MEM_MAX_REGIONS]);

/* Per-VM KVM setup before memory: irqchip, PIT, special regions. */
int arch_vm_init(struct vm *vm);

/* Platform devices the architecture always has (x86: i8042 etc.). */
int arch_register_devices(struct vm *vm);

/* Load the kernel image (already in memory), initrd and command line. */
int arch_load_kernel(struct vm *vm, const uint8_t *kernel, size_t kernel_len,
		     int initrd_fd, uint64_t initrd_size, const char *cmdline);

/* Per-vCPU setup (x86: CPUID, MSRs; arm64: the vCPU's init), each vCPU
 * as it is created, before the devices and the kernel. */
int arch_vcpu_init(struct vm *vm, struct vcpu *vcpu);

/* Every vCPU exists (arm64: the GIC can be initialised now, and irqfds
 * work only after that). */
int arch_vcpus_created(struct vm *vm);

/* The boot vCPU's entry registers, once the kernel is loaded (not on
 * restore). */
int arch_set_entry(struct vm *vm, struct vcpu *boot);

/* Print the vCPU's registers (crash reports). */
void arch_dump_vcpu(struct vcpu *vcpu, FILE *out);

void arch_vm_free(struct vm *vm);

/* --stats: the arch devices' counters (one "hutch-stats:" line). */
void arch_print_stats(struct vm *vm, FILE *out);

/* Where virtio-mmio device number i lives: 0, or -ENOSPC past the last
 * slot. */
int arch_virtio_slot(unsigned i, uint64_t *mmio_base, unsigned *gsi);

/*
 * Snapshots (vmm/vm_snapshot.c).  A vCPU's state is read from KVM on its
 * own thread while it is parked (the KVM API wants vCPU ioctls from the
 * thread that runs it), kept arch-private in vcpu->arch_state, and
 * encoded by the main thread afterwards.  Restoring runs on the main
 * thread, which created the vCPUs, after arch_vcpu_init and before any
 * vCPU thread starts.  Readers treat the bytes as hostile: every length
 * and count is checked, and KVM refusing a value is an error, not a
 * crash.  0 or negative errno; errors are reported once, with context.
 */
int arch_vcpu_capture(struct vcpu *vcpu);
void arch_vcpu_save(const struct vcpu *vcpu, struct snap_writer *w);
int arch_vcpu_restore(struct vcpu *vcpu, struct snap_reader *r);
void arch_vcpu_free(struct vcpu *vcpu);
/* VM-wide state (x86: the in-kernel PIC, IOAPIC, PIT, kvmclock and the
 * platform ports' registers), every vCPU parked / none started yet.
 * Restore moves the guest's clock on by the wall-clock time that passed
 * since the save where KVM can (KVM_CLOCK_REALTIME). */
int arch_vm_save(struct vm *vm, struct snap_writer *w);
int arch_vm_restore(struct vm *vm, struct snap_reader *r);
/* The whole VM is restored (devices too), no vCPU runs yet: tell the
 * guest it is a new generation (x86: a new VM generation ID and its
 * ACPI event), so it reseeds its RNG. */
int arch_vm_restore_done(struct vm *vm);

/* The architecture's name in snapshots ("x86_64"). */
extern const char arch_name[];

/* Command line every guest gets before the user's (console, reboot). */
extern const char arch_default_cmdline[];

/* The default kernel's file name in guest/ beside hutch (x86: the
 * vmlinux, booted through PVH; arm64: the Image). */
extern const char arch_default_kernel[];

/* The console UART's interrupt (x86: ISA IRQ 4; arm64: a GIC SPI). */
extern const unsigned arch_serial_gsi;

/* What KVM_IRQ_LINE's irq field is for interrupt gsi (x86: the GSI
 * itself; arm64: an SPI with its type). */
uint32_t arch_irq_line(unsigned gsi);

/* Whether the guest learns of its virtio-mmio devices from the command
 * line (virtio_mmio.device=, x86) rather than from firmware tables
 * (arm64's device tree). */
extern const bool arch_virtio_cmdline;

#endif
