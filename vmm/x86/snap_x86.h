/* SPDX-License-Identifier: MIT */
/*
 * x86 snapshot state: what KVM holds for a vCPU and for the VM's in-kernel
 * devices, as plain structs, and their encoding into a snapshot section.
 *
 * The codec half (snap_x86.c) never touches KVM, so it is tested without
 * it; every field is written on its own in little endian, except the
 * XSAVE area and the LAPIC register page, which are register images by
 * nature.  Each payload starts with a u32 layout version.  Decoding
 * treats the bytes as hostile: counts are bounded, enumerations and
 * booleans checked, and anything wrong is -EINVAL with one line naming
 * the field.
 *
 * The KVM half (snap_kvm_x86.c) fills the structs from KVM and puts them
 * back.
 */
#ifndef HUTCH_X86_SNAP_X86_H
#define HUTCH_X86_SNAP_X86_H

#include <linux/kvm.h>
#include <stdint.h>

struct snap_writer;
struct snap_reader;

#define X86_SNAP_VCPU_VERSION 1
#define X86_SNAP_VM_VERSION   1

/* More MSRs than any KVM lists as saveable; a count above it is a lie. */
#define X86_SNAP_MAX_MSRS 512
/* KVM_GET_XSAVE's fixed area; KVM_CAP_XSAVE2 may ask for more. */
#define X86_XSAVE_LEGACY_LEN ((uint32_t)sizeof(struct kvm_xsave))
/* Where KVM's IOAPIC lives; it cannot be moved. */
#define X86_IOAPIC_BASE 0xfec00000ull

struct x86_vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct kvm_mp_state mp_state;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[X86_SNAP_MAX_MSRS];
	uint32_t xsave_len;	 /* bytes at xsave: this host's size */
	struct kvm_xsave *xsave; /* xsave_len bytes */
};

struct x86_vm_state {
	struct kvm_pic_state pic[2]; /* master (chip 0), slave (chip 1) */
	struct kvm_ioapic_state ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	uint16_t pm1_enable; /* the ACPI PM1 enable register */
	uint8_t gpe_sts, gpe_en; /* the ACPI GPE0 block */
};

/* A zeroed state with an XSAVE area of xsave_len bytes (at least
 * X86_XSAVE_LEGACY_LEN); NULL if out of memory. */
struct x86_vcpu_state *x86_vcpu_state_new(uint32_t xsave_len)
    __attribute__((warn_unused_result));
void x86_vcpu_state_free(struct x86_vcpu_state *s);

void x86_vcpu_state_encode(const struct x86_vcpu_state *s,
			   struct snap_writer *w);
/*
 * Read one vCPU's payload into s (from x86_vcpu_state_new with this
 * host's XSAVE size, which the saved one must equal).  vcpu_id only
 * names the vCPU in the error message.  0, or -EINVAL, reported.
 */
int x86_vcpu_state_decode(struct snap_reader *r, unsigned vcpu_id,
			  struct x86_vcpu_state *s);

void x86_vm_state_encode(const struct x86_vm_state *s, struct snap_writer *w);
/* 0, or -EINVAL, reported. */
int x86_vm_state_decode(struct snap_reader *r, struct x86_vm_state *s);

/*
 * The KVM half.  What this host's KVM saves for a vCPU, found once on
 * the main thread before any vCPU thread starts (vCPU threads only read
 * it, concurrently).
 */
struct x86_snap_host {
	uint32_t xsave_len; /* X86_XSAVE_LEGACY_LEN, or KVM_CAP_XSAVE2's */
	uint32_t nmsrs;
	uint32_t *msrs; /* saveable MSRs that a vCPU of this VM can read */
};

/* From KVM's saveable MSR list, keep those vcpu_fd (CPUID already set)
 * can read.  0 or negative errno, reported. */
int x86_snap_host_init(struct x86_snap_host *h, int kvm_fd, int vm_fd,
		       int vcpu_fd);
void x86_snap_host_free(struct x86_snap_host *h);

/* Read a parked vCPU's state on its own thread.  0 or negative errno,
 * reported. */
int x86_vcpu_state_get(const struct x86_snap_host *h, int vcpu_fd,
		       unsigned vcpu_id, struct x86_vcpu_state *s);
/* Load a decoded state into a vCPU that has its CPUID and has never run.
 * 0 or negative errno, reported. */
int x86_vcpu_state_set(int vcpu_fd, unsigned vcpu_id,
		       const struct x86_vcpu_state *s);

/* The in-kernel PICs, IOAPIC, PIT and kvmclock (pm1_enable is the
 * caller's).  0 or negative errno, reported. */
int x86_vm_state_get(int vm_fd, struct x86_vm_state *s);
int x86_vm_state_set(int vm_fd, const struct x86_vm_state *s);

#endif
