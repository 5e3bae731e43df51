/* SPDX-License-Identifier: MIT */
/*
 * The small port-I/O devices through which a guest ends the VM or reports
 * progress.  Each is a few registers; together they give the VMM the
 * guest's fate without ACPI firmware:
 *
 *   i8042     0x60, 0x64  command 0xfe on 0x64 resets the machine (reboot=k)
 *   pvpanic   0x505       bit 0 written: guest kernel panicked
 *   boot timer 0x3f0      byte 123 written by the guest's init: boot done
 *   acpi_pm   0x600-0x602 hardware-reduced ACPI sleep control / status /
 *                         reset registers (the FADT points at them)
 */
#ifndef HUTCH_SYSCTL_PORTS_H
#define HUTCH_SYSCTL_PORTS_H

#include "../vmm/bus.h"
#include "../vmm/vm_control.h"

#define I8042_DATA_PORT     0x60
#define I8042_COMMAND_PORT  0x64
#define I8042_CMD_RESET     0xfe

#define PVPANIC_PORT        0x505
#define PVPANIC_PANICKED    0x01
#define PVPANIC_CRASH_LOADED 0x02

/* Same port and value as Firecracker's boot timer, so guest images
 * prepared for it work unchanged. */
#define BOOT_TIMER_PORT     0x3f0
#define BOOT_TIMER_MAGIC    123

#define ACPI_PM_BASE        0x600
#define ACPI_PM_LEN         3
#define ACPI_SLEEP_CTL_OFF  0
#define ACPI_SLEEP_STS_OFF  1
#define ACPI_RESET_OFF      2
#define ACPI_RESET_VALUE    0x42
/* Sleep control register (ACPI 6, 4.8.3.7): SLP_TYPx in bits 2-4, SLP_EN
 * bit 5.  Our DSDT's \_S5 says SLP_TYP 5 means soft-off. */
#define ACPI_SLP_TYP_SHIFT  2
#define ACPI_SLP_TYP_MASK   0x1c
#define ACPI_SLP_EN         0x20
#define ACPI_S5_SLP_TYP     5

extern const struct bus_dev_ops i8042_ops;
extern const struct bus_dev_ops pvpanic_ops;
extern const struct bus_dev_ops boot_timer_ops;
extern const struct bus_dev_ops acpi_pm_ops;

/* All four take a struct vm_control * as their opaque pointer. */
int sysctl_ports_register(struct bus *pio, struct vm_control *ctl)
	__attribute__((warn_unused_result));

#endif
