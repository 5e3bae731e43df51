// SPDX-License-Identifier: MIT
#include "vmm/x86/acpi.h"

#include <errno.h>
#include <string.h>

#include "devices/legacy/sysctl_ports.h"
#include "vmm/base/le.h"
#include "vmm/x86/layout.h"

#define ACPI_OEM_ID	  "HUTCH "
#define ACPI_OEM_TABLE_ID "HUTCHVM "
#define GAS_SYSTEM_IO	  1
#define GAS_ACCESS_BYTE	  1

/* AML opcodes (ACPI 6.0, 20.2) */
#define AML_ZERO	 0x00
#define AML_NAME	 0x08
#define AML_BYTE_PREFIX	 0x0a
#define AML_STRING	 0x0d
#define AML_SCOPE	 0x10
#define AML_BUFFER	 0x11
#define AML_PACKAGE	 0x12
#define AML_DWORD_PREFIX 0x0c
#define AML_METHOD	 0x14
#define AML_ROOT_CHAR	 0x5c
#define AML_DUAL_NAME	 0x2e
#define AML_EXT_PREFIX	 0x5b
#define AML_DEVICE	 0x82
#define AML_NOTIFY	 0x86

/* A tiny AML writer: enough for names, packages, buffers, devices. */
struct aml {
	uint8_t *buf;
	size_t len, cap;
	int overflow;
};

static void aml_put(struct aml *a, const void *p, size_t n)
{
	if (a->len + n > a->cap) {
		a->overflow = 1;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_put(a, &b, 1);
}

/* PkgLength counts itself; 1 byte below 64, else 2-4 bytes. */
static size_t pkglen_size(size_t body)
{
	if (body + 1 < 0x40)
		return 1;
	if (body + 2 < 0x1000)
		return 2;
	if (body + 3 < 0x100000)
		return 3;
	return 4;
}

static void aml_pkglen(struct aml *a, size_t body)
{
	size_t n = pkglen_size(body), total = body + n;

	if (n == 1) {
		aml_byte(a, (uint8_t)total);
		return;
	}
	aml_byte(a, (uint8_t)(((n - 1) << 6) | (total & 0x0f)));
	for (size_t i = 1; i < n; i++)
		aml_byte(a, (uint8_t)(total >> (4 + 8 * (i - 1))));
}

/*
 * Objects with a PkgLength are written body-first into a scratch buffer,
 * then wrapped: simpler than back-patching and fine for tables this small.
 */
static void aml_wrap(struct aml *a, const uint8_t *op, size_t oplen,
		     const struct aml *body)
{
	aml_put(a, op, oplen);
	aml_pkglen(a, body->len);
	aml_put(a, body->buf, body->len);
	a->overflow |= body->overflow;
}

static void aml_name_string(struct aml *a, const char *name, const char *s)
{
	aml_byte(a, AML_NAME);
	aml_put(a, name, 4);
	aml_byte(a, AML_STRING);
	aml_put(a, s, strlen(s) + 1);
}

static size_t build_dsdt_aml(uint8_t *out, size_t cap)
{
	static const uint8_t io_port[] = {
	    /* IO(Decode16, 0x505, 0x505, 1, 1), EndTag */
	    0x47,
	    0x01,
	    PVPANIC_PORT & 0xff,
	    PVPANIC_PORT >> 8,
	    PVPANIC_PORT & 0xff,
	    PVPANIC_PORT >> 8,
	    0x01,
	    0x01,
	    0x79,
	    0x00,
	};
	uint8_t s_body[64], dev_body[128], crs_body[32], sb_body[320];
	uint8_t gen_body[128], addr_body[16], e00_body[32], gpe_body[48];
	struct aml a = {.buf = out, .cap = cap};
	struct aml s5 = {.buf = s_body, .cap = sizeof(s_body)};
	struct aml crs = {.buf = crs_body, .cap = sizeof(crs_body)};
	struct aml dev = {.buf = dev_body, .cap = sizeof(dev_body)};
	struct aml sb = {.buf = sb_body, .cap = sizeof(sb_body)};
	struct aml gen = {.buf = gen_body, .cap = sizeof(gen_body)};
	struct aml addr = {.buf = addr_body, .cap = sizeof(addr_body)};
	struct aml e00 = {.buf = e00_body, .cap = sizeof(e00_body)};
	struct aml gpe = {.buf = gpe_body, .cap = sizeof(gpe_body)};
	const uint8_t method_op = AML_METHOD;
	const uint8_t pkg_op = AML_PACKAGE, buf_op = AML_BUFFER;
	const uint8_t dev_op[] = {AML_EXT_PREFIX, AML_DEVICE};
	const uint8_t scope_op = AML_SCOPE;

	/* Name (_S5, Package () { 5, 0, 0, 0 }): soft-off is SLP_TYP 5. */
	aml_byte(&s5, 4);
	aml_byte(&s5, AML_BYTE_PREFIX);
	aml_byte(&s5, ACPI_S5_SLP_TYP);
	aml_byte(&s5, AML_ZERO);
	aml_byte(&s5, AML_ZERO);
	aml_byte(&s5, AML_ZERO);
	aml_byte(&a, AML_NAME);
	aml_put(&a, "_S5_", 4);
	aml_wrap(&a, &pkg_op, 1, &s5);

	/* Scope (\_SB) { Device (PEVT) { _HID "QEMU0001", _CRS IO 0x505 } }:
	 * the ACPI id Linux's pvpanic driver binds to. */
	aml_put(&dev, "PEVT", 4);
	aml_name_string(&dev, "_HID", "QEMU0001");
	aml_byte(&crs, AML_BYTE_PREFIX);
	aml_byte(&crs, sizeof(io_port));
	aml_put(&crs, io_port, sizeof(io_port));
	aml_byte(&dev, AML_NAME);
	aml_put(&dev, "_CRS", 4);
	aml_wrap(&dev, &buf_op, 1, &crs);
	aml_put(&sb, "_SB_", 4);
	aml_wrap(&sb, dev_op, sizeof(dev_op), &dev);

	/* Device (VGEN) { _HID "VMGENCTR", _CID "VM_GEN_COUNTER",
	 * Name (ADDR, Package () { low, high }) }: where the VM generation
	 * ID lives (vmgenid.h), as Linux's vmgenid driver reads it. */
	aml_put(&gen, "VGEN", 4);
	aml_name_string(&gen, "_HID", "VMGENCTR");
	aml_name_string(&gen, "_CID", "VM_GEN_COUNTER");
	aml_name_string(&gen, "_DDN", "VM_Gen_Counter");
	aml_byte(&addr, 2);
	aml_byte(&addr, AML_DWORD_PREFIX);
	aml_put(&addr,
		(uint8_t[]){X86_VMGENID_ADDR & 0xff,
			    (X86_VMGENID_ADDR >> 8) & 0xff,
			    (X86_VMGENID_ADDR >> 16) & 0xff,
			    (X86_VMGENID_ADDR >> 24) & 0xff},
		4);
	aml_byte(&addr, AML_ZERO);
	aml_byte(&gen, AML_NAME);
	aml_put(&gen, "ADDR", 4);
	aml_wrap(&gen, &pkg_op, 1, &addr);
	aml_wrap(&sb, dev_op, sizeof(dev_op), &gen);
	aml_wrap(&a, &scope_op, 1, &sb);

	/* Scope (\_GPE) { Method (_E00) { Notify (\_SB.VGEN, 0x80) } }:
	 * GPE 0 (a restored snapshot, sysctl_ports.h) tells the driver to
	 * read the new ID. */
	aml_put(&e00, "_E00", 4);
	aml_byte(&e00, 0); /* no arguments, not serialized */
	aml_byte(&e00, AML_NOTIFY);
	aml_put(&e00,
		(uint8_t[]){AML_ROOT_CHAR, AML_DUAL_NAME, '_', 'S', 'B', '_',
			    'V', 'G', 'E', 'N'},
		10);
	aml_byte(&e00, AML_BYTE_PREFIX);
	aml_byte(&e00, 0x80);
	aml_put(&gpe, (uint8_t[]){AML_ROOT_CHAR, '_', 'G', 'P', 'E'}, 5);
	aml_wrap(&gpe, &method_op, 1, &e00);
	aml_wrap(&a, &scope_op, 1, &gpe);

	return a.overflow ? 0 : a.len;
}

static void acpi_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put_le32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
	put_le32(t + 24, 1);	   /* OEM revision */
	memcpy(t + 28, "HTCH", 4); /* creator */
	put_le32(t + 32, 1);
}

static void acpi_checksum(uint8_t *t, size_t len)
{
	t[9] = 0;
	t[9] = (uint8_t)-byte_sum(t, len);
}

/* Generic Address Structure for a byte-wide I/O port. */
static void gas_io(uint8_t *g, uint16_t port)
{
	g[0] = GAS_SYSTEM_IO;
	g[1] = 8; /* bit width */
	g[2] = 0;
	g[3] = GAS_ACCESS_BYTE;
	put_le64(g + 4, port);
}

static void build_fadt(uint8_t *t, uint64_t dsdt)
{
	acpi_header(t, "FACP", ACPI_FADT_SIZE, 6);
	put_le32(t + 40, (uint32_t)dsdt);
	/* SCI on IRQ 9 as on PCs; only GPE 0 raises it (no fixed events
	 * are enabled).  SMI_CMD 0: always in ACPI mode, nothing to switch. */
	put_le16(t + FADT_SCI_INT, ACPI_SCI_IRQ);
	put_le32(t + FADT_SMI_CMD, 0);
	put_le32(t + FADT_PM1A_EVT_BLK, ACPI_PM_BASE + ACPI_PM1_STS_OFF);
	put_le32(t + FADT_PM1A_CNT_BLK, ACPI_PM_BASE + ACPI_PM1_CNT_OFF);
	t[FADT_PM1_EVT_LEN] = 4;
	t[FADT_PM1_CNT_LEN] = 2;
	/* GPE0: one status and one enable byte (the VM generation ID's
	 * event); no PM timer, no GPE1. */
	put_le32(t + FADT_GPE0_BLK, ACPI_GPE0_BASE);
	t[FADT_GPE0_BLK_LEN] = ACPI_GPE0_LEN;
	put_le16(t + FADT_IAPC_BOOT_ARCH,
		 FADT_BOOT_NO_VGA | FADT_BOOT_NO_CMOS_RTC);
	put_le32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PWR_BUTTON |
				     FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP);
	gas_io(t + FADT_RESET_REG, ACPI_PM_BASE + ACPI_RESET_OFF);
	t[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
	t[131] = 0; /* FADT minor version: 6.0 */
	put_le64(t + FADT_X_DSDT, dsdt);
	memcpy(t + 268, "HUTCHKVM", 8); /* hypervisor vendor identity */
	acpi_checksum(t, ACPI_FADT_SIZE);
}

/* MADT (ACPI 6.0, 5.2.12): one enabled local APIC per vCPU with APIC ID ==
 * vCPU index, the IOAPIC with GSIs from 0 (KVM's default routing: ISA IRQ
 * n is GSI n, so no source overrides), LINT1 as NMI on every CPU. */
static size_t madt_size(unsigned ncpus)
{
	return ACPI_HDR_SIZE + 8 + ncpus * 8 + 12 + 6;
}

static void build_madt(uint8_t *t, unsigned ncpus)
{
	uint8_t *p = t + ACPI_HDR_SIZE + 8;

	acpi_header(t, "APIC", (uint32_t)madt_size(ncpus), 4);
	put_le32(t + ACPI_HDR_SIZE, (uint32_t)X86_LAPIC_ADDR);
	put_le32(t + ACPI_HDR_SIZE + 4, 1); /* PCAT_COMPAT: 8259s present */
	for (unsigned i = 0; i < ncpus; i++, p += 8) {
		p[0] = 0; /* processor local APIC */
		p[1] = 8;
		p[2] = (uint8_t)i;  /* ACPI processor UID */
		p[3] = (uint8_t)i;  /* APIC ID */
		put_le32(p + 4, 1); /* enabled */
	}
	p[0] = 1; /* I/O APIC */
	p[1] = 12;
	p[2] =
	    (uint8_t)ncpus; /* IOAPIC ID after the CPUs, as in the MP table */
	put_le32(p + 4, (uint32_t)X86_IOAPIC_ADDR);
	put_le32(p + 8, 0); /* GSI base */
	p += 12;
	p[0] = 4; /* local APIC NMI */
	p[1] = 6;
	p[2] = 0xff; /* all processors */
	put_le16(p + 3, 0);
	p[5] = 1; /* LINT1 */
	acpi_checksum(t, madt_size(ncpus));
}

int acpi_build(uint8_t *buf, size_t len, uint64_t gpa, unsigned ncpus,
	       struct acpi_layout *out)
{
	uint8_t aml[512];
	size_t aml_len = build_dsdt_aml(aml, sizeof(aml));
	size_t off_xsdt = 48, off_fadt = off_xsdt + 64;
	size_t off_dsdt = off_fadt + ACPI_FADT_SIZE + 4 /* align */;
	size_t dsdt_len = ACPI_HDR_SIZE + aml_len;
	size_t off_madt = (off_dsdt + dsdt_len + 15) & ~(size_t)15;
	size_t total = off_madt + madt_size(ncpus);
	uint8_t *rsdp = buf, *xsdt = buf + off_xsdt;

	if (ncpus == 0 || ncpus > MADT_MAX_CPUS)
		return -EINVAL;
	if (!aml_len || len < total || gpa + total > UINT32_MAX)
		return -ENOSPC;
	memset(buf, 0, total);
	out->rsdp = gpa;
	out->xsdt = gpa + off_xsdt;
	out->fadt = gpa + off_fadt;
	out->dsdt = gpa + off_dsdt;
	out->madt = gpa + off_madt;
	out->total = total;

	acpi_header(buf + off_dsdt, "DSDT", (uint32_t)dsdt_len, 2);
	memcpy(buf + off_dsdt + ACPI_HDR_SIZE, aml, aml_len);
	acpi_checksum(buf + off_dsdt, dsdt_len);

	build_fadt(buf + off_fadt, out->dsdt);
	build_madt(buf + off_madt, ncpus);

	acpi_header(xsdt, "XSDT", ACPI_HDR_SIZE + 16, 1);
	put_le64(xsdt + ACPI_HDR_SIZE, out->fadt);
	put_le64(xsdt + ACPI_HDR_SIZE + 8, out->madt);
	acpi_checksum(xsdt, ACPI_HDR_SIZE + 16);

	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, ACPI_OEM_ID, 6);
	rsdp[15] = 2; /* ACPI 2.0+: XSDT */
	put_le32(rsdp + 20, ACPI_RSDP_SIZE);
	put_le64(rsdp + 24, out->xsdt);
	rsdp[8] = (uint8_t)-byte_sum(rsdp, 20);
	rsdp[32] = (uint8_t)-byte_sum(rsdp, ACPI_RSDP_SIZE);
	return 0;
}
