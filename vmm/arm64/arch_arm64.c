// SPDX-License-Identifier: MIT
/*
 * arm64 implementation of arch.h (issue 15): the in-kernel GICv3 and the
 * architected timer, vCPUs from KVM's preferred target with PSCI 0.2 (KVM
 * answers the guest's PSCI calls: secondary CPUs start through CPU_ON,
 * SYSTEM_OFF and SYSTEM_RESET come back as system events), an Image
 * booted per Documentation/arm64/booting.rst with x0 = the device tree,
 * a 16550 UART, pvpanic and the boot timer on MMIO.  Snapshots:
 * snap_arm64.c.
 */
#include "vmm/arch.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio/virtio.h"
#include "vmm/arm64/arch_arm64.h"
#include "vmm/arm64/dtb.h"
#include "vmm/arm64/image.h"
#include "vmm/arm64/layout.h"
#include "vmm/base/log.h"
#include "vmm/base/snap.h"
#include "vmm/kvm.h"
#include "vmm/vm.h"

/* The 16550 on the device tree is ttyS0 to Linux's 8250 driver; earlycon
 * finds it through stdout-path. */
const char arch_default_cmdline[] = "console=ttyS0 earlycon";
const char arch_name[] = "aarch64";
const char arch_default_kernel[] = "Image";

const struct kvm_cap_need arch_kvm_caps[] = {
    {KVM_CAP_ARM_PSCI_0_2, "KVM_CAP_ARM_PSCI_0_2",
     "secondary CPUs, power-off and reset"},
    {KVM_CAP_ONE_REG, "KVM_CAP_ONE_REG", "vCPU registers"},
    {KVM_CAP_DEVICE_CTRL, "KVM_CAP_DEVICE_CTRL", "the in-kernel GICv3"},
};
const unsigned arch_nr_kvm_caps =
    sizeof(arch_kvm_caps) / sizeof(arch_kvm_caps[0]);
const unsigned arch_serial_gsi = ARM64_UART_SPI;
/* The device tree lists the virtio devices (with their SPIs); the
 * command line's virtio_mmio.device= would take a GIC SPI for a Linux
 * IRQ number. */
const bool arch_virtio_cmdline = false;

uint32_t arch_irq_line(unsigned gsi)
{
	/* KVM_IRQ_LINE on arm64: the type in bits 24-27, the INTID below;
	 * SPI n is INTID 32 + n. */
	return (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (gsi + 32);
}

/* Each device registers VIRTIO_MMIO_SIZE bytes at its slot (vm.c). */
_Static_assert(ARM64_VIRTIO_SIZE >= VIRTIO_MMIO_SIZE,
	       "virtio-mmio slots overlap");

int arch_virtio_slot(unsigned i, uint64_t *mmio_base, unsigned *gsi)
{
	if (i >= ARM64_MAX_VIRTIO || ARM64_VIRTIO_SPI + i >= ARM64_MAX_SPI)
		return -ENOSPC;
	*mmio_base = ARM64_VIRTIO_BASE + (uint64_t)i * ARM64_VIRTIO_SIZE;
	/* irqfd's GSI n is SPI n under KVM's default arm64 routing. */
	*gsi = ARM64_VIRTIO_SPI + i;
	return 0;
}

unsigned arch_ram_regions(uint64_t mem_bytes,
			  struct guest_region out[GUEST_MEM_MAX_REGIONS])
{
	if (mem_bytes > (1ull << ARM64_IPA_BITS) - ARM64_RAM_BASE)
		return 0;
	out[0] =
	    (struct guest_region){.gpa = ARM64_RAM_BASE, .size = mem_bytes};
	return 1;
}

static int gic_attr(int fd, uint32_t group, uint64_t attr, void *val)
{
	struct kvm_device_attr a = {
	    .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)val};

	return ioctl(fd, KVM_SET_DEVICE_ATTR, &a) < 0 ? -errno : 0;
}

int arch_vm_init(struct vm *vm)
{
	struct kvm_create_device gic = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
	uint64_t dist = ARM64_GICD_BASE, redist = ARM64_GICR_BASE;
	uint32_t nr_irqs = 32 + ARM64_MAX_SPI;
	struct arm64_vm *a;
	int ret;

	if (vm->cfg->ncpus > ARM64_MAX_CPUS) {
		log_errx("--cpus %u: the arm64 guest has room for %u "
			 "(one GICv3 redistributor region)",
			 vm->cfg->ncpus, ARM64_MAX_CPUS);
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->gic_fd = -1;
	vm->arch = a;
	if (ioctl(vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &a->init) < 0) {
		ret = -errno;
		log_err(ret, "KVM_ARM_PREFERRED_TARGET");
		return ret;
	}
	/* The GIC's addresses before any vCPU exists; its initialisation
	 * after the last one (arch_vcpu_init). */
	if (ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &gic) < 0) {
		ret = -errno;
		log_err(ret, "cannot create the in-kernel GICv3");
		return ret;
	}
	a->gic_fd = (int)gic.fd;
	ret = gic_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR,
		       KVM_VGIC_V3_ADDR_TYPE_DIST, &dist);
	if (!ret)
		ret = gic_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR,
			       KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist);
	if (!ret)
		ret = gic_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0,
			       &nr_irqs);
	if (ret)
		log_err(ret, "cannot set up the GICv3");
	return ret;
}

int arch_register_devices(struct vm *vm)
{
	struct arm64_vm *a = vm->arch;
	int ret;

	sysctl_ports_init(&a->ports, &vm->ctl);
	ret = bus_register(&vm->mmio, ARM64_UART_BASE, SERIAL_NR_REGS,
			   &serial_bus_ops, &vm->serial, "serial");
	if (!ret)
		ret = bus_register(&vm->mmio, ARM64_PVPANIC_BASE,
				   ARM64_PVPANIC_SIZE, &pvpanic_ops, &a->ports,
				   "pvpanic");
	if (!ret)
		ret = bus_register(&vm->mmio, ARM64_BOOT_TIMER_BASE, 1,
				   &boot_timer_ops, &a->ports, "boot-timer");
	if (ret)
		log_err(ret, "cannot register platform devices");
	return ret;
}

int arch_load_kernel(struct vm *vm, const uint8_t *kernel, size_t kernel_len,
		     int initrd_fd, uint64_t initrd_size, const char *cmdline)
{
	struct arm64_vm *a = vm->arch;
	struct arm64_fdt_config fc = {0};
	struct arm64_placement p;
	const char *why = NULL;
	uint8_t *dst;
	int ret;

	ret = arm64_image_place(kernel, kernel_len,
				initrd_fd >= 0 ? initrd_size : 0,
				vm->cfg->mem_mib << 20, &p, &why);
	if (ret) {
		log_errx("kernel cannot be booted: %s", why);
		return ret;
	}
	dst = gpa_ptr(&vm->mem, p.kernel, kernel_len);
	if (!dst)
		return -EFAULT;
	memcpy(dst, kernel, kernel_len);
	if (p.initrd_size) {
		ret =
		    guest_read_fd(&vm->mem, p.initrd, initrd_fd, p.initrd_size);
		if (ret) {
			log_err(ret, "cannot read initrd");
			return ret;
		}
	}

	fc.ncpus = vm->cfg->ncpus;
	fc.mem_size = vm->cfg->mem_mib << 20;
	fc.bootargs = cmdline;
	fc.initrd_start = p.initrd;
	fc.initrd_size = p.initrd_size;
	for (unsigned i = 0; i < vm->ndevs; i++) {
		const struct device_instance *d = &vm->devs[i];
		const struct virtio_dev *v =
		    d->type->virtio ? d->type->virtio(d->dev) : NULL;

		if (!v)
			continue;
		fc.devices[fc.ndevices++] = (struct arm64_fdt_device){
		    .base = v->mmio_base, .spi = v->gsi};
	}
	dst = gpa_ptr(&vm->mem, p.dtb, p.dtb_max);
	if (!dst)
		return -EFAULT;
	ret = arm64_fdt_build(&fc, dst, p.dtb_max, &why);
	if (ret) {
		log_errx("cannot build the device tree: %s", why);
		return ret;
	}
	a->entry = p.kernel;
	a->dtb = p.dtb;
	return 0;
}

/* A 64-bit core register's one-reg id: its offset in struct kvm_regs,
 * in 32-bit words. */
static uint64_t core_reg_id(size_t offset)
{
	return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
	       (offset / sizeof(uint32_t));
}

static int set_core_reg(int fd, size_t offset, uint64_t val)
{
	struct kvm_one_reg r = {.id = core_reg_id(offset),
				.addr = (uint64_t)(uintptr_t)&val};

	return ioctl(fd, KVM_SET_ONE_REG, &r) < 0 ? -errno : 0;
}

int arch_vcpu_init(struct vm *vm, struct vcpu *vcpu)
{
	struct arm64_vm *a = vm->arch;
	struct kvm_vcpu_init init = a->init;
	int ret;

	init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	/* The others wait, powered off, for the guest's PSCI CPU_ON. */
	if (vcpu->id > 0)
		init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
	if (ioctl(vcpu->fd, KVM_ARM_VCPU_INIT, &init) < 0) {
		ret = -errno;
		log_err(ret, "vCPU %u: KVM_ARM_VCPU_INIT", vcpu->id);
		return ret;
	}
	return 0;
}

int arch_vcpus_created(struct vm *vm)
{
	struct arm64_vm *a = vm->arch;
	int ret = gic_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL,
			   KVM_DEV_ARM_VGIC_CTRL_INIT, NULL);

	if (ret)
		log_err(ret, "cannot initialise the GICv3");
	return ret;
}

/* booting.rst: x0 = the device tree, x1-x3 = 0, MMU off, EL1h with
 * interrupts masked (KVM's reset state). */
int arch_set_entry(struct vm *vm, struct vcpu *boot)
{
	struct arm64_vm *a = vm->arch;
	int ret = set_core_reg(boot->fd, offsetof(struct kvm_regs, regs.pc),
			       a->entry);

	if (!ret)
		ret = set_core_reg(
		    boot->fd, offsetof(struct kvm_regs, regs.regs[0]), a->dtb);
	if (ret)
		log_err(ret, "vCPU 0: entry registers");
	return ret;
}

void arch_dump_vcpu(struct vcpu *vcpu, FILE *out)
{
	static const struct {
		const char *name;
		size_t offset;
	} regs[] = {
	    {"pc", offsetof(struct kvm_regs, regs.pc)},
	    {"pstate", offsetof(struct kvm_regs, regs.pstate)},
	    {"sp_el1", offsetof(struct kvm_regs, sp_el1)},
	    {"elr_el1", offsetof(struct kvm_regs, elr_el1)},
	    {"x0", offsetof(struct kvm_regs, regs.regs[0])},
	    {"x30", offsetof(struct kvm_regs, regs.regs[30])},
	};

	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		uint64_t v = 0;
		struct kvm_one_reg r = {.id = core_reg_id(regs[i].offset),
					.addr = (uint64_t)(uintptr_t)&v};

		if (ioctl(vcpu->fd, KVM_GET_ONE_REG, &r) == 0)
			fprintf(out, "  %-8s %016llx\n", regs[i].name,
				(unsigned long long)v);
	}
}

void arch_vm_free(struct vm *vm)
{
	struct arm64_vm *a = vm->arch;

	if (a) {
		if (a->gic_fd >= 0)
			close(a->gic_fd);
		free(a);
	}
	vm->arch = NULL;
}

void arch_print_stats(struct vm *vm, FILE *out)
{
	(void)vm;
	(void)out;
}
