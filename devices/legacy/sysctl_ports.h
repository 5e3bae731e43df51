/* SPDX-License-Identifier: MIT */
/*
 * The small port-I/O devices through which a guest ends the VM or reports
 * progress.  Each is a few registers; together they give the VMM the
 * guest's fate without ACPI firmware:
 *
 *   i8042     0x60, 0x64  command 0xfe on 0x64 resets the machine (reboot=k)
 *   pvpanic   0x505       bit 0 written: guest kernel panicked
 *   boot timer 0x3f0      byte 123 written by the guest's init: boot done
 *   acpi_pm   0x600-0x606 ACPI PM1a event and control blocks and the
 *                         reset register (the FADT points at them)
 */
#ifndef HUTCH_SYSCTL_PORTS_H
#define HUTCH_SYSCTL_PORTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "devices/legacy/boot_timer.h"
#include "vmm/base/bus.h"
#include "vmm/base/irq.h"
#include "vmm/base/vm_control.h"

#define I8042_DATA_PORT	   0x60
#define I8042_COMMAND_PORT 0x64
#define I8042_CMD_RESET	   0xfe

#define PVPANIC_PORT	     0x505
#define PVPANIC_PANICKED     0x01
#define PVPANIC_CRASH_LOADED 0x02

/* BOOT_TIMER_PORT and BOOT_TIMER_MAGIC: boot_timer.h. */

#define ACPI_PM_BASE	 0x600
#define ACPI_PM_LEN	 8
#define ACPI_PM1_STS_OFF 0 /* PM1a_EVT_BLK: status (2), enable (2) */
#define ACPI_PM1_EN_OFF	 2
#define ACPI_PM1_CNT_OFF 4 /* PM1a_CNT_BLK (2) */
#define ACPI_RESET_OFF	 6
#define ACPI_RESET_VALUE 0x42
/* PM1 control register (ACPI 6, 4.8.3.2.1): SCI_EN bit 0, SLP_TYPx bits
 * 10-12, SLP_EN bit 13.  Our DSDT's \_S5 says SLP_TYP 5 means soft-off. */
#define ACPI_PM1_SCI_EN	   0x0001
#define ACPI_SLP_TYP_SHIFT 10
#define ACPI_SLP_TYP_MASK  0x1c00
#define ACPI_SLP_EN	   0x2000
#define ACPI_S5_SLP_TYP	   5

/* The GPE0 block (ACPI 6, 4.8.4.1): a status byte (write 1 to clear),
 * then an enable byte.  The SCI (level) is raised while an enabled
 * event's status is set.  GPE 0 announces a new VM generation ID (a
 * restored snapshot): the DSDT's _E00 notifies the VMGENCTR device. */
#define ACPI_GPE0_BASE	 0x608
#define ACPI_GPE0_LEN	 2
#define ACPI_GPE_VMGENID 0x01
#define ACPI_SCI_GSI	 9

extern const struct bus_dev_ops i8042_ops;
extern const struct bus_dev_ops pvpanic_ops;
extern const struct bus_dev_ops boot_timer_ops;
extern const struct bus_dev_ops acpi_pm_ops;
extern const struct bus_dev_ops acpi_gpe_ops;

/* State of the ports; the only register that holds a value is PM1 enable
 * (ACPI checks that the GBL_EN bit it sets reads back). */
struct sysctl_ports {
	const struct vm_control *ctl;
	uint16_t pm1_enable;
	/* GPE0 status and enable under gpe_lock (vCPU threads; the main
	 * thread when a snapshot is restored); the SCI, set by the caller
	 * before sysctl_ports_register (none: no line). */
	pthread_mutex_t gpe_lock;
	uint8_t gpe_sts, gpe_en;
	struct irq_line sci;
	/* "Crash kernel loaded" reports: warned about once, then counted,
	 * so a guest writing the port in a loop cannot flood hutch's log. */
	atomic_ullong crash_loaded;
};

/* The ports' state, reset, for a VM driven by ctl: what each device
 * below needs, wherever it is registered (arm64 puts pvpanic and the
 * boot timer on MMIO). */
void sysctl_ports_init(struct sysctl_ports *ports,
		       const struct vm_control *ctl);
/* sysctl_ports_init, then every port above on the x86 port bus. */
int sysctl_ports_register(struct bus *pio, struct sysctl_ports *ports,
			  const struct vm_control *ctl)
    __attribute__((warn_unused_result));

/* Set GPE status bits (any thread): the SCI follows. */
void sysctl_ports_gpe_raise(struct sysctl_ports *p, uint8_t bits);
/* Snapshots: the GPE registers as saved, and back (SCI follows). */
void sysctl_ports_gpe_get(struct sysctl_ports *p, uint8_t *sts, uint8_t *en);
void sysctl_ports_gpe_set(struct sysctl_ports *p, uint8_t sts, uint8_t en);

#endif
