// SPDX-License-Identifier: MIT
/* The ports through which a guest ends the VM or reports progress. */
#include <criterion/criterion.h>
#include <errno.h>

#include <stdlib.h>

#include "devices/legacy/sysctl_ports.h"
#include "tests/support/capture.h"

static enum vm_exit_reason stopped;
static int stops, boot_done;

static void on_stop(void *opaque, enum vm_exit_reason why)
{
	(void)opaque;
	stopped = why;
	stops++;
}

static void on_boot_done(void *opaque)
{
	(void)opaque;
	boot_done++;
}

static struct vm_control ctl = {.request_stop = on_stop,
				.boot_done = on_boot_done};
static struct sysctl_ports ports;
static struct bus pio;

static void setup(void)
{
	stopped = VM_RUNNING;
	stops = boot_done = 0;
	bus_init(&pio, "port");
	cr_assert_eq(sysctl_ports_register(&pio, &ports, &ctl), 0);
}

static void out8(uint16_t port, uint8_t v)
{
	bus_write(&pio, port, &v, 1);
}

static void out16(uint16_t port, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	bus_write(&pio, port, b, 2);
}

static uint8_t in8(uint16_t port)
{
	uint8_t v;

	bus_read(&pio, port, &v, 1);
	return v;
}

TestSuite(ports, .init = setup);

Test(ports, acpi_s5_powers_off_only_with_slp_en)
{
	uint16_t cnt = ACPI_PM_BASE + ACPI_PM1_CNT_OFF;

	out16(cnt, ACPI_S5_SLP_TYP << ACPI_SLP_TYP_SHIFT); /* type, no EN */
	cr_assert_eq(stops, 0);
	out16(cnt, (3 << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN); /* S3: ignored */
	cr_assert_eq(stops, 0);
	out16(cnt, (ACPI_S5_SLP_TYP << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN);
	cr_assert_eq(stops, 1);
	cr_assert_eq(stopped, VM_POWEROFF);
	cr_assert_eq(in8(cnt) & ACPI_PM1_SCI_EN, ACPI_PM1_SCI_EN,
		     "always in ACPI mode");
}

Test(ports, pm1_enable_reads_back)
{
	uint8_t v[2];

	/* ACPI sets GBL_EN (bit 5) and checks it stuck. */
	out16(ACPI_PM_BASE + ACPI_PM1_EN_OFF, 0x0020);
	bus_read(&pio, ACPI_PM_BASE + ACPI_PM1_EN_OFF, v, 2);
	cr_assert_eq(v[0], 0x20);
	cr_assert_eq(v[1], 0);
	bus_read(&pio, ACPI_PM_BASE + ACPI_PM1_STS_OFF, v, 2);
	cr_assert_eq(v[0] | v[1], 0, "no events pending");
	cr_assert_eq(stops, 0);
}

Test(ports, reset_paths)
{
	out8(ACPI_PM_BASE + ACPI_RESET_OFF, 1);
	cr_assert_eq(stops, 0, "wrong reset value");
	out8(ACPI_PM_BASE + ACPI_RESET_OFF, ACPI_RESET_VALUE);
	cr_assert_eq(stopped, VM_RESET);
	stops = 0;
	cr_assert_eq(in8(I8042_COMMAND_PORT), 0, "controller idle");
	out8(I8042_COMMAND_PORT, 0xad); /* disable keyboard: not a reset */
	out8(I8042_DATA_PORT, I8042_CMD_RESET); /* 0xfe on the data port */
	cr_assert_eq(stops, 0);
	out8(I8042_COMMAND_PORT, I8042_CMD_RESET);
	cr_assert_eq(stops, 1);
	cr_assert_eq(stopped, VM_RESET);
}

Test(ports, pvpanic)
{
	cr_assert_eq(in8(PVPANIC_PORT),
		     PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
	out8(PVPANIC_PORT, PVPANIC_CRASH_LOADED);
	cr_assert_eq(stops, 0);
	out8(PVPANIC_PORT, PVPANIC_PANICKED);
	cr_assert_eq(stopped, VM_PANIC);
}

/* A guest writing "crash kernel loaded" in a loop: one warning in
 * hutch's log, the rest counted (--stats). */
Test(ports, crash_loaded_is_warned_once_and_counted)
{
	char *log;

	capture_stderr_begin();
	for (int i = 0; i < 1000; i++)
		out8(PVPANIC_PORT, PVPANIC_CRASH_LOADED);
	log = capture_stderr_end();
	cr_assert_eq(count_occurrences(log, "crash kernel"), 1, "%s", log);
	cr_assert_eq(atomic_load(&ports.crash_loaded), 1000);
	cr_assert_eq(stops, 0);
	free(log);
}

Test(ports, boot_timer)
{
	out8(BOOT_TIMER_PORT, 1);
	cr_assert_eq(boot_done, 0);
	out8(BOOT_TIMER_PORT, BOOT_TIMER_MAGIC);
	cr_assert_eq(boot_done, 1);
}

Test(ports, unclaimed_ports_are_counted_not_fatal)
{
	uint8_t v[4];

	cr_assert_eq(bus_read(&pio, 0xcf8, v, 4), 0);
	cr_assert_eq(v[0], 0xff);
	cr_assert_eq(v[3], 0xff);
	cr_assert_eq(bus_write(&pio, 0x80, v, 1), 0);
	cr_assert_eq(atomic_load(&pio.unclaimed_reads), 1);
	cr_assert_eq(atomic_load(&pio.unclaimed_writes), 1);
	/* An access straddling a device's end is not the device's. */
	cr_assert_eq(bus_read(&pio, ACPI_PM_BASE + ACPI_PM_LEN - 1, v, 2), 0);
	cr_assert_eq(stops, 0);
}

Test(ports, overlapping_registration_is_refused)
{
	static const struct bus_dev_ops none = {0};

	cr_assert_eq(bus_register(&pio, 0x3f9, 2, &none, NULL, "x"), 0);
	cr_assert_eq(bus_register(&pio, 0x3fa, 1, &none, NULL, "y"), -EBUSY);
	cr_assert_eq(bus_register(&pio, 0x600, 1, &none, NULL, "z"), -EBUSY);
	cr_assert_eq(bus_register(&pio, UINT64_MAX, 2, &none, NULL, "w"),
		     -EINVAL);
}

static int sci_level = -1, sci_changes;

static void sci_set(void *opaque, unsigned gsi, int level)
{
	(void)opaque;
	cr_assert_eq(gsi, ACPI_SCI_GSI);
	sci_level = level;
	sci_changes++;
}

/* GPE0: the SCI is high exactly while an enabled event is pending; the
 * guest clears status by writing 1s; only GPE 0 exists. */
Test(ports, gpe0_status_enable_and_the_sci)
{
	ports.sci =
	    (struct irq_line){.set_level = sci_set, .gsi = ACPI_SCI_GSI};
	sysctl_ports_gpe_raise(&ports, ACPI_GPE_VMGENID);
	cr_assert_eq(sci_level, 0, "raised while disabled");
	cr_assert_eq(in8(ACPI_GPE0_BASE), ACPI_GPE_VMGENID);
	out8(ACPI_GPE0_BASE + 1, 0xff);
	cr_assert_eq(in8(ACPI_GPE0_BASE + 1), ACPI_GPE_VMGENID);
	cr_assert_eq(sci_level, 1, "enabled and pending: SCI high");
	out8(ACPI_GPE0_BASE, 0); /* writing 0 clears nothing */
	cr_assert_eq(sci_level, 1);
	out8(ACPI_GPE0_BASE, ACPI_GPE_VMGENID);
	cr_assert_eq(in8(ACPI_GPE0_BASE), 0);
	cr_assert_eq(sci_level, 0, "cleared: SCI low");
	/* Both registers in one 16-bit access, as ACPICA may do. */
	sysctl_ports_gpe_raise(&ports, ACPI_GPE_VMGENID);
	cr_assert_eq(sci_level, 1);
	out16(ACPI_GPE0_BASE, 0x0001);
	cr_assert_eq(sci_level, 0);
	ports.sci = (struct irq_line){0};
}
