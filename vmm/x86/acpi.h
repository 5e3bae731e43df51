/* SPDX-License-Identifier: MIT */
/*
 * Minimal ACPI (6.0): RSDP -> XSDT -> FADT (-> DSDT) and MADT.
 *
 * It exists for what a guest without firmware cannot otherwise do: power
 * off (PM1a control register plus \_S5 in the DSDT) and report a panic (a
 * pvpanic device, _HID QEMU0001, in the DSDT).  The MADT is needed as soon
 * as there is ACPI at all: Linux ignores the MP table when ACPI has no MADT
 * ("No APIC-table, disabling MPS") and boots one CPU.
 *
 * Not "hardware-reduced": on x86 that makes Linux drop the legacy PIC and
 * with it the ISA IRQ numbers, so the COM1 UART (IRQ 4) and virtio-mmio
 * devices given on the command line would get no interrupts.  Fixed
 * hardware costs two I/O blocks (PM1a event and control) and an SCI that
 * never fires.
 */
#ifndef HUTCH_X86_ACPI_H
#define HUTCH_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_RSDP_SIZE 36
#define ACPI_HDR_SIZE  36
#define ACPI_FADT_SIZE 276

/* FADT offsets and flags used by tests. */
#define FADT_FLAGS	      112
#define FADT_RESET_REG	      116
#define FADT_RESET_VALUE      128
#define FADT_X_DSDT	      140
#define FADT_SCI_INT	      46
#define FADT_SMI_CMD	      48
#define FADT_PM1A_EVT_BLK     56
#define FADT_PM1A_CNT_BLK     64
#define FADT_GPE0_BLK	      80
#define FADT_PM1_EVT_LEN      88
#define FADT_PM1_CNT_LEN      89
#define FADT_GPE0_BLK_LEN     92
#define FADT_IAPC_BOOT_ARCH   109
#define FADT_F_WBINVD	      (1u << 0)
#define FADT_F_PWR_BUTTON     (1u << 4) /* no fixed power button */
#define FADT_F_SLP_BUTTON     (1u << 5) /* no fixed sleep button */
#define FADT_F_RESET_REG_SUP  (1u << 10)
#define FADT_F_HW_REDUCED     (1u << 20)
#define ACPI_SCI_IRQ	      9
#define FADT_BOOT_NO_VGA      (1u << 2)
#define FADT_BOOT_NO_CMOS_RTC (1u << 5)

#define MADT_MAX_CPUS 254

struct acpi_layout {
	uint64_t rsdp, xsdt, fadt, dsdt, madt; /* guest addresses */
	size_t total;			       /* bytes used from the base */
};

/* Build the tables for ncpus into buf (len bytes), which the guest sees at
 * gpa.  The RSDP is first, 16-byte aligned, so a BIOS-area scan finds it.
 * 0, -EINVAL (ncpus) or -ENOSPC. */
int acpi_build(uint8_t *buf, size_t len, uint64_t gpa, unsigned ncpus,
	       struct acpi_layout *out);

#endif
