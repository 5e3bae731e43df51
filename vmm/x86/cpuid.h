/* SPDX-License-Identifier: MIT */
/*
 * CPUID for a vCPU: what KVM supports (KVM_GET_SUPPORTED_CPUID), with the
 * hypervisor and TSC-deadline bits set, the performance-monitoring leaf
 * hidden, and one consistent topology (one socket, N cores, one thread
 * each) so that APIC IDs in CPUID, the LAPIC and the MP table agree.
 */
#ifndef HUTCH_X86_CPUID_H
#define HUTCH_X86_CPUID_H

#include <linux/kvm.h>

#define CPUID_HYPERVISOR_BIT   (1u << 31) /* leaf 1, ECX */
#define CPUID_TSC_DEADLINE_BIT (1u << 24) /* leaf 1, ECX */
#define CPUID_HTT_BIT	       (1u << 28) /* leaf 1, EDX */

/* Rewrite entries in place for vCPU vcpu_id of ncpus. */
void cpuid_filter(struct kvm_cpuid_entry2 *e, unsigned n, unsigned vcpu_id,
		  unsigned ncpus);

#endif
