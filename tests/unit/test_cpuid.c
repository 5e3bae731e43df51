// SPDX-License-Identifier: MIT
/* CPUID filtering: hypervisor and TSC-deadline bits, topology, hidden PMU. */
#include <criterion/criterion.h>

#include "vmm/x86/cpuid.h"

static struct kvm_cpuid_entry2 e[8];

static void setup(void)
{
	memset(e, 0, sizeof(e));
	e[0] = (struct kvm_cpuid_entry2){
	    .function = 1, .ebx = 0xff0a0800, .ecx = 0x1, .edx = CPUID_HTT_BIT};
	e[1] = (struct kvm_cpuid_entry2){
	    .function = 0xa, .eax = 0x07300404, .ebx = 0xff};
	e[2] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 0};
	e[3] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 1};
	e[4] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 2};
	e[5] = (struct kvm_cpuid_entry2){
	    .function = 4, .index = 3, .eax = (3 << 5) | 0x1f | (7u << 26)};
	e[6] = (struct kvm_cpuid_entry2){.function = 0x80000008, .ecx = 0x7007};
	e[7] = (struct kvm_cpuid_entry2){.function = 0x40000000,
					 .ebx = 0x4b4d564b};
}

TestSuite(cpuid, .init = setup);

Test(cpuid, leaf1_hypervisor_bit_and_apic_id)
{
	cpuid_filter(e, 8, 3, 4);
	cr_assert(e[0].ecx & CPUID_HYPERVISOR_BIT);
	cr_assert(e[0].ecx & CPUID_TSC_DEADLINE_BIT,
		  "KVM's supported CPUID never has it; the LAPIC does");
	cr_assert(e[0].ecx & 1, "other feature bits kept");
	cr_assert_eq(e[0].ebx >> 24, 3, "initial APIC id");
	cr_assert_eq((e[0].ebx >> 16) & 0xff, 4, "logical count");
	cr_assert_eq(e[0].ebx & 0xffff, 0x0800, "clflush size kept");
	cr_assert(e[0].edx & CPUID_HTT_BIT);
}

Test(cpuid, single_cpu_clears_htt)
{
	cpuid_filter(e, 8, 0, 1);
	cr_assert_eq(e[0].edx & CPUID_HTT_BIT, 0);
	cr_assert_eq(e[0].ebx >> 24, 0);
}

Test(cpuid, pmu_hidden)
{
	cpuid_filter(e, 8, 0, 2);
	cr_assert_eq(e[1].eax, 0);
	cr_assert_eq(e[1].ebx, 0);
}

Test(cpuid, extended_topology_per_vcpu)
{
	cpuid_filter(e, 8, 5, 6);
	cr_assert_eq(e[2].edx, 5, "x2APIC id");
	cr_assert_eq(e[2].ebx, 1, "one thread per core");
	cr_assert_eq((e[2].ecx >> 8) & 0xff, 1, "SMT level");
	cr_assert_eq(e[3].eax, 3, "log2 of 6 rounded up");
	cr_assert_eq(e[3].ebx, 6);
	cr_assert_eq((e[3].ecx >> 8) & 0xff, 2, "core level");
	cr_assert_eq((e[4].ecx >> 8) & 0xff, 0, "no third level");
	cr_assert_eq(e[4].ecx & 0xff, 2);
}

Test(cpuid, cache_and_amd_core_counts)
{
	cpuid_filter(e, 8, 0, 8);
	cr_assert_eq(e[5].eax >> 26, 7, "cores per package - 1");
	cr_assert_eq((e[5].eax >> 14) & 0xfff, 7, "L3 shared by all");
	cr_assert_eq(e[6].ecx & 0xff, 7, "AMD NC");
	cr_assert_eq((e[6].ecx >> 12) & 0xf, 3);
	cr_assert_eq(e[7].ebx, 0x4b4d564b, "KVM signature untouched");
}
