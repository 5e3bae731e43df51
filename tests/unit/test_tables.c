// SPDX-License-Identifier: MIT
/* MP table and ACPI tables: checksums, contents, limits. */
#include <criterion/criterion.h>
#include <errno.h>

#include "devices/legacy/sysctl_ports.h"
#include "vmm/base/le.h"
#include "vmm/x86/acpi.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/mptable.h"

static uint8_t buf[0x10000];

Test(mptable, checksums_and_cpu_entries)
{
	for (unsigned ncpus = 1; ncpus <= 64; ncpus *= 4) {
		uint8_t *mpc = buf + 16;
		unsigned cpus = 0, bsp = 0;

		cr_assert_eq(mptable_build(buf, sizeof(buf), 0xf0000, ncpus),
			     0);
		cr_assert_eq(memcmp(buf, "_MP_", 4), 0);
		cr_assert_eq(byte_sum(buf, 16), 0, "floating pointer checksum");
		cr_assert_eq(get_le32(buf + 4), 0xf0000 + 16);
		cr_assert_eq(memcmp(mpc, "PCMP", 4), 0);
		cr_assert_eq(byte_sum(mpc, get_le16(mpc + 4)), 0,
			     "config table checksum (%u cpus)", ncpus);
		cr_assert_eq(get_le32(mpc + 36), 0xfee00000);
		cr_assert_eq(16 + get_le16(mpc + 4), mptable_size(ncpus));
		for (uint8_t *p = mpc + 44; p < mpc + get_le16(mpc + 4);) {
			if (p[0] == 0) {
				cr_assert_eq(p[1], cpus, "APIC id == index");
				cpus++;
				bsp += !!(p[3] & 2);
				p += 20;
			} else {
				if (p[0] == 2)
					cr_assert_eq(p[1], ncpus, "IOAPIC id");
				p += 8;
			}
		}
		cr_assert_eq(cpus, ncpus);
		cr_assert_eq(bsp, 1, "exactly one boot processor");
	}
}

Test(mptable, limits)
{
	cr_assert_eq(mptable_build(buf, sizeof(buf), 0xf0000, 0), -EINVAL);
	cr_assert_eq(mptable_build(buf, sizeof(buf), 0xf0000, 255), -EINVAL);
	cr_assert_eq(mptable_build(buf, 100, 0xf0000, 4), -ENOSPC);
	cr_assert_eq(mptable_build(buf, sizeof(buf), 0xf0000, 254), 0);
}

Test(acpi, tables_chain_and_checksum)
{
	struct acpi_layout l;
	uint8_t *xsdt, *fadt, *dsdt;

	cr_assert_eq(acpi_build(buf, 64, X86_ACPI_ADDR, 1, &l), -ENOSPC);
	cr_assert_eq(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, 4, &l), 0);
	cr_assert_eq(l.rsdp, X86_ACPI_ADDR);
	cr_assert_eq(memcmp(buf, "RSD PTR ", 8), 0);
	cr_assert_eq(byte_sum(buf, 20), 0, "RSDP v1 checksum");
	cr_assert_eq(byte_sum(buf, 36), 0, "RSDP extended checksum");
	cr_assert_eq(get_le64(buf + 24), l.xsdt);

	xsdt = buf + (l.xsdt - X86_ACPI_ADDR);
	fadt = buf + (l.fadt - X86_ACPI_ADDR);
	dsdt = buf + (l.dsdt - X86_ACPI_ADDR);
	cr_assert_eq(memcmp(xsdt, "XSDT", 4), 0);
	cr_assert_eq(byte_sum(xsdt, get_le32(xsdt + 4)), 0);
	cr_assert_eq(get_le64(xsdt + 36), l.fadt);
	cr_assert_eq(get_le64(xsdt + 44), l.madt);
	cr_assert_eq(memcmp(fadt, "FACP", 4), 0);
	cr_assert_eq(get_le32(fadt + 4), ACPI_FADT_SIZE);
	cr_assert_eq(byte_sum(fadt, ACPI_FADT_SIZE), 0);
	cr_assert_eq(get_le64(fadt + FADT_X_DSDT), l.dsdt);
	/* Not hardware-reduced: Linux would drop the legacy PIC and ISA IRQs */
	cr_assert_eq(get_le32(fadt + FADT_FLAGS) & FADT_F_HW_REDUCED, 0);
	cr_assert(get_le32(fadt + FADT_FLAGS) & FADT_F_RESET_REG_SUP);
	cr_assert_eq(get_le32(fadt + FADT_PM1A_CNT_BLK),
		     ACPI_PM_BASE + ACPI_PM1_CNT_OFF);
	cr_assert_eq(fadt[FADT_PM1_CNT_LEN], 2);
	cr_assert_eq(get_le32(fadt + FADT_PM1A_EVT_BLK), ACPI_PM_BASE);
	cr_assert_eq(fadt[FADT_PM1_EVT_LEN], 4);
	cr_assert_eq(get_le32(fadt + FADT_SMI_CMD), 0, "always ACPI mode");
	cr_assert_eq(get_le16(fadt + FADT_SCI_INT), 9);
	cr_assert_eq(fadt[FADT_RESET_REG], 1, "system I/O space");
	cr_assert_eq(get_le64(fadt + FADT_RESET_REG + 4),
		     ACPI_PM_BASE + ACPI_RESET_OFF);
	cr_assert_eq(fadt[FADT_RESET_VALUE], ACPI_RESET_VALUE);
	cr_assert_eq(memcmp(dsdt, "DSDT", 4), 0);
	cr_assert_eq(byte_sum(dsdt, get_le32(dsdt + 4)), 0);
	cr_assert(l.total < X86_ACPI_MAX);
}

/* The DSDT's AML: \_S5 = {5,0,0,0} and a QEMU0001 device on port 0x505. */
Test(acpi, dsdt_declares_s5_and_pvpanic)
{
	static const uint8_t s5[] = {0x08, '_',	 'S',  '5',  '_',  0x12, 0x07,
				     0x04, 0x0a, 0x05, 0x00, 0x00, 0x00};
	static const uint8_t io[] = {0x47, 0x01, 0x05, 0x05, 0x05,
				     0x05, 0x01, 0x01, 0x79, 0x00};
	struct acpi_layout l;
	uint8_t *dsdt;
	uint32_t len;

	cr_assert_eq(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, 1, &l), 0);
	dsdt = buf + (l.dsdt - X86_ACPI_ADDR);
	len = get_le32(dsdt + 4);
	cr_assert(memmem(dsdt + 36, len - 36, s5, sizeof(s5)));
	cr_assert(memmem(dsdt + 36, len - 36, "QEMU0001", 9));
	cr_assert(memmem(dsdt + 36, len - 36, io, sizeof(io)));
	cr_assert(memmem(dsdt + 36, len - 36, "_SB_", 4));
}

/* The VM generation ID: a VMGENCTR device whose ADDR names the ID's
 * page, a GPE0 block in the FADT, and \_GPE._E00 to notify it. */
Test(acpi, dsdt_declares_the_vm_generation_id)
{
	struct acpi_layout l;
	const uint8_t *dsdt, *fadt, *addr;
	uint32_t len;
	const uint8_t want_addr[] = {'A',
				     'D',
				     'D',
				     'R',
				     0x12,
				     0x08,
				     0x02,
				     0x0c,
				     X86_VMGENID_ADDR & 0xff,
				     (X86_VMGENID_ADDR >> 8) & 0xff,
				     (X86_VMGENID_ADDR >> 16) & 0xff,
				     (X86_VMGENID_ADDR >> 24) & 0xff,
				     0x00};

	cr_assert_eq(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, 1, &l), 0);
	dsdt = buf + (l.dsdt - X86_ACPI_ADDR);
	fadt = buf + (l.fadt - X86_ACPI_ADDR);
	len = get_le32(dsdt + 4);
	cr_assert(memmem(dsdt + 36, len - 36, "VMGENCTR", 9));
	cr_assert(memmem(dsdt + 36, len - 36, "VM_GEN_COUNTER", 15));
	addr = memmem(dsdt + 36, len - 36, want_addr, sizeof(want_addr));
	cr_assert(addr, "no ADDR package naming the ID");
	cr_assert(memmem(dsdt + 36, len - 36, "_E00", 4));
	cr_assert(memmem(dsdt + 36, len - 36, "\x5c\x2e_SB_VGEN", 10));
	cr_assert_eq(get_le32(fadt + FADT_GPE0_BLK), ACPI_GPE0_BASE);
	cr_assert_eq(fadt[FADT_GPE0_BLK_LEN], ACPI_GPE0_LEN);
	cr_assert_lt(l.total, X86_VMGENID_ADDR - X86_ACPI_ADDR);
}

Test(acpi, madt_lists_every_cpu_and_the_ioapic)
{
	struct acpi_layout l;
	uint8_t *madt, *p, *end;
	unsigned cpus = 0, ioapics = 0, nmis = 0;

	cr_assert_eq(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, 0, &l),
		     -EINVAL);
	cr_assert_eq(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, 255, &l),
		     -EINVAL);
	cr_assert_eq(acpi_build(buf, sizeof(buf), X86_ACPI_ADDR, 32, &l), 0);
	madt = buf + (l.madt - X86_ACPI_ADDR);
	cr_assert_eq(memcmp(madt, "APIC", 4), 0);
	cr_assert_eq(byte_sum(madt, get_le32(madt + 4)), 0);
	cr_assert_eq(get_le32(madt + 36), 0xfee00000);
	end = madt + get_le32(madt + 4);
	for (p = madt + 44; p < end; p += p[1]) {
		cr_assert(p[1] >= 2 && p + p[1] <= end, "entry length");
		if (p[0] == 0) {
			cr_assert_eq(p[3], cpus, "APIC id == vCPU index");
			cr_assert_eq(get_le32(p + 4) & 1, 1, "enabled");
			cpus++;
		} else if (p[0] == 1) {
			cr_assert_eq(get_le32(p + 4), 0xfec00000);
			cr_assert_eq(get_le32(p + 8), 0, "GSI base");
			ioapics++;
		} else if (p[0] == 4) {
			cr_assert_eq(p[5], 1, "NMI on LINT1");
			nmis++;
		}
	}
	cr_assert_eq(cpus, 32);
	cr_assert_eq(ioapics, 1);
	cr_assert_eq(nmis, 1);
}
