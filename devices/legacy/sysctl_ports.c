// SPDX-License-Identifier: MIT
#include "devices/legacy/sysctl_ports.h"

#include <string.h>

#include "vmm/base/log.h"

static void i8042_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	(void)opaque;
	(void)off;
	/* Status 0: output buffer empty, input buffer empty, so the guest's
	 * kb_wait() before the reset command returns at once. */
	memset(data, 0, len);
}

static void i8042_write(void *opaque, uint64_t off, const uint8_t *data,
			unsigned len)
{
	(void)len;
	struct sysctl_ports *p = opaque;

	if (off == I8042_COMMAND_PORT - I8042_DATA_PORT &&
	    data[0] == I8042_CMD_RESET)
		vm_control_stop(p->ctl, VM_RESET);
}

const struct bus_dev_ops i8042_ops = {.read = i8042_read, .write = i8042_write};

static void pvpanic_read(void *opaque, uint64_t off, uint8_t *data,
			 unsigned len)
{
	(void)opaque;
	(void)off;
	/* The capability byte: which events the guest may report. */
	memset(data, 0, len);
	data[0] = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
}

static void pvpanic_write(void *opaque, uint64_t off, const uint8_t *data,
			  unsigned len)
{
	struct sysctl_ports *p = opaque;

	(void)off;
	(void)len;
	if (data[0] & PVPANIC_PANICKED)
		vm_control_stop(p->ctl, VM_PANIC);
	else if ((data[0] & PVPANIC_CRASH_LOADED) &&
		 atomic_fetch_add(&p->crash_loaded, 1) == 0)
		log_warnx("guest reports a crash kernel took over after panic");
}

const struct bus_dev_ops pvpanic_ops = {.read = pvpanic_read,
					.write = pvpanic_write};

static void boot_timer_write(void *opaque, uint64_t off, const uint8_t *data,
			     unsigned len)
{
	const struct vm_control *ctl = ((struct sysctl_ports *)opaque)->ctl;

	(void)off;
	(void)len;
	if (data[0] == BOOT_TIMER_MAGIC && ctl->boot_done)
		ctl->boot_done(ctl->opaque);
}

const struct bus_dev_ops boot_timer_ops = {.write = boot_timer_write};

static void acpi_pm_read(void *opaque, uint64_t off, uint8_t *data,
			 unsigned len)
{
	struct sysctl_ports *p = opaque;
	uint16_t v = 0;

	/* Status reads zero: no event ever happens.  Enable holds what the
	 * guest wrote.  Control reports SCI_EN: the machine is always in ACPI
	 * mode (there is no SMI_CMD to switch). */
	if (off == ACPI_PM1_EN_OFF)
		v = p->pm1_enable;
	else if (off == ACPI_PM1_CNT_OFF)
		v = ACPI_PM1_SCI_EN;
	memset(data, 0, len);
	data[0] = (uint8_t)v;
	if (len >= 2)
		data[1] = (uint8_t)(v >> 8);
}

static void acpi_pm_write(void *opaque, uint64_t off, const uint8_t *data,
			  unsigned len)
{
	uint16_t v = data[0];

	if (len >= 2)
		v |= (uint16_t)(data[1] << 8);
	struct sysctl_ports *p = opaque;

	switch (off) {
	case ACPI_PM1_EN_OFF:
		p->pm1_enable =
		    len >= 2 ? v : (uint16_t)((p->pm1_enable & 0xff00) | v);
		break;
	case ACPI_PM1_CNT_OFF:
		if (len >= 2 && (v & ACPI_SLP_EN) &&
		    ((v & ACPI_SLP_TYP_MASK) >> ACPI_SLP_TYP_SHIFT) ==
			ACPI_S5_SLP_TYP)
			vm_control_stop(p->ctl, VM_POWEROFF);
		break;
	case ACPI_RESET_OFF:
		if (data[0] == ACPI_RESET_VALUE)
			vm_control_stop(p->ctl, VM_RESET);
		break;
	}
}

const struct bus_dev_ops acpi_pm_ops = {.read = acpi_pm_read,
					.write = acpi_pm_write};

/* Lock held: the SCI is a level, high while an enabled event is set. */
static void gpe_update(struct sysctl_ports *p)
{
	irq_line_set(&p->sci, (p->gpe_sts & p->gpe_en) != 0);
}

static void gpe_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct sysctl_ports *p = opaque;

	memset(data, 0, len);
	pthread_mutex_lock(&p->gpe_lock);
	for (unsigned i = 0; i < len && off + i < ACPI_GPE0_LEN; i++)
		data[i] = off + i == 0 ? p->gpe_sts : p->gpe_en;
	pthread_mutex_unlock(&p->gpe_lock);
}

static void gpe_write(void *opaque, uint64_t off, const uint8_t *data,
		      unsigned len)
{
	struct sysctl_ports *p = opaque;

	pthread_mutex_lock(&p->gpe_lock);
	for (unsigned i = 0; i < len && off + i < ACPI_GPE0_LEN; i++) {
		if (off + i == 0)
			p->gpe_sts &= (uint8_t)~data[i]; /* write 1 to clear */
		else
			p->gpe_en = data[i] & ACPI_GPE_VMGENID;
	}
	gpe_update(p);
	pthread_mutex_unlock(&p->gpe_lock);
}

const struct bus_dev_ops acpi_gpe_ops = {.read = gpe_read, .write = gpe_write};

void sysctl_ports_gpe_raise(struct sysctl_ports *p, uint8_t bits)
{
	pthread_mutex_lock(&p->gpe_lock);
	p->gpe_sts |= bits;
	gpe_update(p);
	pthread_mutex_unlock(&p->gpe_lock);
}

void sysctl_ports_gpe_get(struct sysctl_ports *p, uint8_t *sts, uint8_t *en)
{
	pthread_mutex_lock(&p->gpe_lock);
	*sts = p->gpe_sts;
	*en = p->gpe_en;
	pthread_mutex_unlock(&p->gpe_lock);
}

void sysctl_ports_gpe_set(struct sysctl_ports *p, uint8_t sts, uint8_t en)
{
	pthread_mutex_lock(&p->gpe_lock);
	p->gpe_sts = sts & ACPI_GPE_VMGENID;
	p->gpe_en = en & ACPI_GPE_VMGENID;
	gpe_update(p);
	pthread_mutex_unlock(&p->gpe_lock);
}

void sysctl_ports_init(struct sysctl_ports *p, const struct vm_control *ctl)
{
	p->ctl = ctl;
	p->pm1_enable = 0;
	p->gpe_sts = p->gpe_en = 0;
	pthread_mutex_init(&p->gpe_lock, NULL);
	atomic_store(&p->crash_loaded, 0);
}

int sysctl_ports_register(struct bus *pio, struct sysctl_ports *p,
			  const struct vm_control *ctl)
{
	int ret;

	sysctl_ports_init(p, ctl);
	/* 0x60..0x64 as one window; 0x61 (PC speaker) is handled inside
	 * KVM (KVM_PIT_SPEAKER_DUMMY) and never reaches us. */
	ret = bus_register(pio, I8042_DATA_PORT,
			   I8042_COMMAND_PORT - I8042_DATA_PORT + 1, &i8042_ops,
			   p, "i8042");
	if (!ret)
		ret = bus_register(pio, PVPANIC_PORT, 1, &pvpanic_ops, p,
				   "pvpanic");
	if (!ret)
		ret = bus_register(pio, BOOT_TIMER_PORT, 1, &boot_timer_ops, p,
				   "boot-timer");
	if (!ret)
		ret = bus_register(pio, ACPI_PM_BASE, ACPI_PM_LEN, &acpi_pm_ops,
				   p, "acpi-pm");
	if (!ret)
		ret = bus_register(pio, ACPI_GPE0_BASE, ACPI_GPE0_LEN,
				   &acpi_gpe_ops, p, "acpi-gpe");
	return ret;
}
