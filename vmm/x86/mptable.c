// SPDX-License-Identifier: MIT
#include "vmm/x86/mptable.h"

#include <errno.h>
#include <string.h>

#include "vmm/base/le.h"
#include "vmm/x86/layout.h"

#define MPF_SIZE      16
#define MPC_HDR_SIZE  44
#define MP_PROC_SIZE  20
#define MP_ENTRY_SIZE 8
#define MP_SPEC_REV   4	   /* MP spec 1.4 */
#define MP_APIC_VER   0x14 /* integrated local APIC */
#define MP_IOAPIC_VER 0x11
#define MP_ISA_IRQS   16

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_INT_INT = 0, MP_INT_NMI = 1, MP_INT_EXTINT = 3 };
#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP     0x02

static unsigned nr_entries(unsigned ncpus)
{
	/* cpus, one ISA bus, one IOAPIC, ISA IRQs, LINT0 and LINT1 */
	return ncpus + 1 + 1 + MP_ISA_IRQS + 2;
}

size_t mptable_size(unsigned ncpus)
{
	return MPF_SIZE + MPC_HDR_SIZE + (size_t)ncpus * MP_PROC_SIZE +
	       (nr_entries(ncpus) - ncpus) * MP_ENTRY_SIZE;
}

static uint8_t *put_entry8(uint8_t *p, uint8_t a, uint8_t b, uint16_t c,
			   uint8_t d, uint8_t e, uint8_t f, uint8_t g)
{
	p[0] = a;
	p[1] = b;
	put_le16(p + 2, c);
	p[4] = d;
	p[5] = e;
	p[6] = f;
	p[7] = g;
	return p + MP_ENTRY_SIZE;
}

int mptable_build(uint8_t *buf, size_t len, uint64_t gpa, unsigned ncpus)
{
	uint8_t *mpf = buf, *mpc = buf + MPF_SIZE, *p;
	uint8_t ioapic_id = (uint8_t)ncpus;
	size_t size = mptable_size(ncpus);

	if (ncpus == 0 || ncpus > MPTABLE_MAX_CPUS)
		return -EINVAL;
	if (len < size || gpa + MPF_SIZE > UINT32_MAX)
		return -ENOSPC;
	memset(buf, 0, size);

	/* Floating pointer structure: found by the guest's scan. */
	memcpy(mpf, "_MP_", 4);
	put_le32(mpf + 4, (uint32_t)(gpa + MPF_SIZE));
	mpf[8] = 1; /* length in 16-byte units */
	mpf[9] = MP_SPEC_REV;
	mpf[10] = (uint8_t)-byte_sum(mpf, MPF_SIZE);

	p = mpc + MPC_HDR_SIZE;
	for (unsigned i = 0; i < ncpus; i++) {
		p[0] = MP_PROCESSOR;
		p[1] = (uint8_t)i; /* APIC ID == vCPU index, as CPUID says */
		p[2] = MP_APIC_VER;
		p[3] = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0);
		put_le32(p + 4, 0x600); /* family 6 signature */
		put_le32(p + 8, 0x201); /* FPU, APIC */
		p += MP_PROC_SIZE;
	}
	p[0] = MP_BUS;
	p[1] = 0;
	memcpy(p + 2, "ISA   ", 6);
	p += MP_ENTRY_SIZE;

	p[0] = MP_IOAPIC;
	p[1] = ioapic_id;
	p[2] = MP_IOAPIC_VER;
	p[3] = 1; /* enabled */
	put_le32(p + 4, (uint32_t)X86_IOAPIC_ADDR);
	p += MP_ENTRY_SIZE;

	/* ISA IRQ n is IOAPIC pin n: KVM's default GSI routing. */
	for (unsigned irq = 0; irq < MP_ISA_IRQS; irq++)
		p = put_entry8(p, MP_INTSRC, MP_INT_INT, 0, 0, (uint8_t)irq,
			       ioapic_id, (uint8_t)irq);
	/* LINT0 is ExtINT (the PIC), LINT1 is NMI, on every CPU. */
	p = put_entry8(p, MP_LINTSRC, MP_INT_EXTINT, 0, 0, 0, 0xff, 0);
	p = put_entry8(p, MP_LINTSRC, MP_INT_NMI, 0, 0, 0, 0xff, 1);

	memcpy(mpc, "PCMP", 4);
	put_le16(mpc + 4, (uint16_t)(p - mpc)); /* base table length */
	mpc[6] = MP_SPEC_REV;
	memcpy(mpc + 8, "HUTCH   ", 8);	      /* OEM ID */
	memcpy(mpc + 16, "MICROVM     ", 12); /* product ID */
	put_le16(mpc + 34, (uint16_t)nr_entries(ncpus));
	put_le32(mpc + 36, (uint32_t)X86_LAPIC_ADDR);
	mpc[7] = (uint8_t)-byte_sum(mpc, (size_t)(p - mpc));
	return 0;
}
