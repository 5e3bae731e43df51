// SPDX-License-Identifier: MIT
/*
 * Restoring a VM from a snapshot (snapshot.h), in vm_create: the VM was
 * built from the snapshot's configuration (the same vCPUs, memory and
 * devices, guest RAM mapped from the memory file), and no vCPU has run.
 *
 * The state file was checked whole already (size, magic, version, CRC);
 * here each section is matched to what it is loaded into before any of
 * it is used: the configuration against the VM, every expected section
 * present exactly once, each device section naming the device at its
 * place.  Then the state is loaded in the order the pieces depend on
 * each other: the interrupt controllers, timers and clock first, then
 * the vCPUs (their local APICs take interrupts the controllers route),
 * the UART, and the devices last, since restoring a device may raise an
 * interrupt or hand the guest an event.  Sections of a later minor
 * version that this hutch does not know are skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/arch.h"
#include "vmm/base/log.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

struct sections {
	struct snap_reader arch, serial;
	struct snap_reader *vcpu; /* ncpus */
	struct snap_reader dev[VM_MAX_DEVICES];
	bool have_arch, have_serial;
	bool *have_vcpu;
	bool have_dev[VM_MAX_DEVICES];
};

static int check_config(const struct vm *vm, const struct snapshot_config *c)
{
	if (strcmp(c->arch, arch_name)) {
		log_errx("snapshot: taken on %s, this is %s", c->arch,
			 arch_name);
		return -EINVAL;
	}
	if (c->ncpus != vm->ncpus || c->mem_mib != vm->cfg->mem_mib) {
		log_errx("snapshot: it has %u vCPUs and %llu MiB; this VM %u "
			 "and %llu MiB",
			 c->ncpus, (unsigned long long)c->mem_mib, vm->ncpus,
			 (unsigned long long)vm->cfg->mem_mib);
		return -EINVAL;
	}
	if (c->ndevices != vm->ndevs) {
		log_errx("snapshot: it has %u devices; this VM %u", c->ndevices,
			 vm->ndevs);
		return -EINVAL;
	}
	for (unsigned i = 0; i < vm->ndevs; i++)
		if (strcmp(c->devices[i].type, vm->devs[i].type->name)) {
			log_errx("snapshot: device %u is a %s there, a %s here",
				 i, c->devices[i].type, vm->devs[i].type->name);
			return -EINVAL;
		}
	return 0;
}

/* Sort the sections after CONF by kind; each once. */
static int collect(const struct vm *vm, struct snap_reader body,
		   struct sections *s)
{
	struct snap_reader sec;
	uint32_t tag, inst;
	int ret;

	ret = snap_next_section(&body, &tag, &inst, &sec); /* CONF */
	while (ret == 1) {
		ret = snap_next_section(&body, &tag, &inst, &sec);
		if (ret != 1)
			break;
		switch (tag) {
		case SNAP_SEC_ARCH:
			if (inst != 0 || s->have_arch)
				return -EINVAL;
			s->arch = sec;
			s->have_arch = true;
			break;
		case SNAP_SEC_SERIAL:
			if (inst != 0 || s->have_serial)
				return -EINVAL;
			s->serial = sec;
			s->have_serial = true;
			break;
		case SNAP_SEC_VCPU:
			if (inst >= vm->ncpus || s->have_vcpu[inst])
				return -EINVAL;
			s->vcpu[inst] = sec;
			s->have_vcpu[inst] = true;
			break;
		case SNAP_SEC_DEVICE:
			if (inst >= vm->ndevs || s->have_dev[inst])
				return -EINVAL;
			s->dev[inst] = sec;
			s->have_dev[inst] = true;
			break;
		case SNAP_SEC_CONFIG:
			return -EINVAL;
		default:
			break; /* a newer minor version's addition */
		}
	}
	if (ret < 0 || !s->have_arch || !s->have_serial)
		return -EINVAL;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (!s->have_vcpu[i])
			return -EINVAL;
	for (unsigned i = 0; i < vm->ndevs; i++)
		if (!s->have_dev[i])
			return -EINVAL;
	return 0;
}

static int restore_device(struct vm *vm, unsigned i, struct snap_reader *r)
{
	struct device_instance *d = &vm->devs[i];
	char name[32];
	uint32_t index;

	snap_get_str(r, name, sizeof(name));
	index = snap_get_u32(r);
	if (r->bad || strcmp(name, d->type->name) || index != d->index) {
		log_errx("snapshot: device section %u is not this VM's %s %u",
			 i, d->type->name, d->index);
		return -EINVAL;
	}
	if (!d->type->restore) {
		log_errx("snapshot: %s devices cannot be restored",
			 d->type->name);
		return -EINVAL;
	}
	return d->type->restore(d->dev, r);
}

int vm_restore_state(struct vm *vm, const struct snapshot *snap)
{
	struct sections s = {0};
	int ret;

	ret = check_config(vm, &snap->conf);
	if (ret)
		return ret;
	s.vcpu = calloc(vm->ncpus, sizeof(*s.vcpu));
	s.have_vcpu = calloc(vm->ncpus, sizeof(*s.have_vcpu));
	if (!s.vcpu || !s.have_vcpu) {
		ret = -ENOMEM;
		goto out;
	}
	ret = collect(vm, snap->body, &s);
	if (ret) {
		log_errx("snapshot: its sections are missing, repeated or "
			 "misnumbered");
		goto out;
	}
	ret = arch_vm_restore(vm, &s.arch);
	for (unsigned i = 0; i < vm->ncpus && !ret; i++)
		ret = arch_vcpu_restore(&vm->vcpus[i], &s.vcpu[i]);
	if (!ret) {
		ret = serial_restore(&vm->serial, &s.serial);
		if (ret)
			log_errx("snapshot: bad UART state");
	}
	for (unsigned i = 0; i < vm->ndevs && !ret; i++)
		ret = restore_device(vm, i, &s.dev[i]);
	if (!ret)
		ret = arch_vm_restore_done(vm);
out:
	free(s.vcpu);
	free(s.have_vcpu);
	return ret;
}
