// SPDX-License-Identifier: MIT
#include "vmm/x86/cpuid.h"

#include <string.h>

/* Bits needed to number ncpus cores: ceil(log2(ncpus)). */
static unsigned id_bits(unsigned ncpus)
{
	unsigned b = 0;

	while ((1u << b) < ncpus)
		b++;
	return b;
}

static void topology_leaf(struct kvm_cpuid_entry2 *e, unsigned vcpu_id,
			  unsigned ncpus)
{
	unsigned level = e->index;

	e->edx = vcpu_id; /* x2APIC ID */
	switch (level) {
	case 0: /* SMT level: one thread per core */
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (1u << 8) | level;
		break;
	case 1: /* core level: every vCPU is a core of one package */
		e->eax = id_bits(ncpus);
		e->ebx = ncpus;
		e->ecx = (2u << 8) | level;
		break;
	default: /* no further levels */
		e->eax = 0;
		e->ebx = 0;
		e->ecx = level;
		break;
	}
}

void cpuid_filter(struct kvm_cpuid_entry2 *e, unsigned n, unsigned vcpu_id,
		  unsigned ncpus)
{
	for (unsigned i = 0; i < n; i++) {
		switch (e[i].function) {
		case 0x1:
			/* APIC ID and logical processor count in EBX. */
			e[i].ebx = (e[i].ebx & 0x0000ffff) | (vcpu_id << 24) |
				   ((ncpus & 0xff) << 16);
			e[i].ecx |= CPUID_HYPERVISOR_BIT;
			/* KVM_GET_SUPPORTED_CPUID never reports the
			 * TSC-deadline timer: the in-kernel LAPIC emulates
			 * it (KVM_CAP_TSC_DEADLINE_TIMER, checked at open)
			 * and the VMM is to offer it, as QEMU does.  Without
			 * it Linux calibrates the LAPIC timer against the
			 * PIT and busy-waits for timer interrupts to verify
			 * it; nested under emulation that check mostly
			 * failed (every tick then came from the PIT) and now
			 * and then never ended (the boot hung). */
			e[i].ecx |= CPUID_TSC_DEADLINE_BIT;
			if (ncpus > 1)
				e[i].edx |= CPUID_HTT_BIT;
			else
				e[i].edx &= ~CPUID_HTT_BIT;
			break;
		case 0x4: {
			/* Intel caches: cores per package; L3 shared by all. */
			unsigned cache_level = (e[i].eax >> 5) & 7;
			unsigned sharing = cache_level >= 3 ? ncpus - 1 : 0;

			e[i].eax = (e[i].eax & 0x3fff) | (sharing << 14) |
				   ((ncpus - 1) << 26);
			break;
		}
		case 0xa:
			/* No vPMU: perf MSR accesses would only cost exits. */
			e[i].eax = e[i].ebx = e[i].ecx = e[i].edx = 0;
			break;
		case 0xb:
		case 0x1f:
			topology_leaf(&e[i], vcpu_id, ncpus);
			break;
		case 0x80000008:
			/* AMD: NC = cores - 1, ApicIdCoreIdSize. */
			e[i].ecx = (e[i].ecx & ~0xf0ffu) | (ncpus - 1) |
				   (id_bits(ncpus) << 12);
			break;
		case 0x8000001e:
			/* AMD extended APIC ID; one thread per core. */
			e[i].eax = vcpu_id;
			e[i].ebx = vcpu_id & 0xff;
			e[i].ecx = 0;
			break;
		}
	}
}
