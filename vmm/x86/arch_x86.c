// SPDX-License-Identifier: MIT
/* x86_64 implementation of arch.h. */
#include "vmm/arch.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "devices/legacy/sysctl_ports.h"
#include "vmm/base/log.h"
#include "vmm/base/snap.h"
#include "vmm/kvm.h"
#include "vmm/vm.h"
#include "vmm/x86/boot.h"
#include "vmm/x86/cpuid.h"
#include "vmm/x86/e820.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/regs.h"
#include "vmm/x86/vmgenid.h"
#include "vmm/x86/snap_x86.h"

#define CPUID_MAX_ENTRIES 256

struct x86_vm {
	struct x86_entry entry;
	struct sysctl_ports ports;    /* i8042, pvpanic, boot timer, ACPI PM */
	struct kvm_cpuid2 *supported; /* from KVM, filtered per vCPU */
	/* What a vCPU snapshot holds on this host: set up with vCPU 0, on
	 * the main thread before any vCPU thread runs; read-only after. */
	struct x86_snap_host snap;
};

/* reboot=k: reset through the i8042, which we emulate; the FADT reset
 * register would do too, but this works even with acpi=off.  pci=off: there
 * is no PCI bus, so a kernel with PCI support must not probe for one (each
 * config-space access would be an exit). */
const char arch_default_cmdline[] = "console=ttyS0 reboot=k pci=off";

const char arch_name[] = "x86_64";
const char arch_default_kernel[] = "vmlinux";

const struct kvm_cap_need arch_kvm_caps[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP", "in-kernel LAPIC/IOAPIC"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2", "in-kernel PIT"},
    {KVM_CAP_TSC_DEADLINE_TIMER, "KVM_CAP_TSC_DEADLINE_TIMER",
     "the LAPIC's TSC-deadline timer"},
    {KVM_CAP_HLT, "KVM_CAP_HLT", "idle vCPUs"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR", "TSS region"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR",
     "identity map"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID", "CPUID"},
};
const unsigned arch_nr_kvm_caps =
    sizeof(arch_kvm_caps) / sizeof(arch_kvm_caps[0]);
const unsigned arch_serial_gsi = SERIAL_COM1_IRQ;
const bool arch_virtio_cmdline = true;

uint32_t arch_irq_line(unsigned gsi)
{
	return gsi;
}

/* ISA interrupts nothing else uses (COM1 has 4, the ACPI SCI 9); an edge
 * on each comes from an irqfd. */
static const unsigned virtio_gsis[] = {5, 6, 7, 10, 11, 12, 14, 15, 3, 13};

int arch_virtio_slot(unsigned i, uint64_t *mmio_base, unsigned *gsi)
{
	if (i >= sizeof(virtio_gsis) / sizeof(virtio_gsis[0]))
		return -ENOSPC;
	*mmio_base = X86_VIRTIO_MMIO_BASE + (uint64_t)i * X86_VIRTIO_MMIO_SIZE;
	*gsi = virtio_gsis[i];
	return 0;
}

unsigned arch_ram_regions(uint64_t mem_bytes,
			  struct guest_region out[GUEST_MEM_MAX_REGIONS])
{
	return x86_ram_regions(mem_bytes, out);
}

int arch_vm_init(struct vm *vm)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	uint64_t identity = X86_IDENTITY_MAP_ADDR;
	struct x86_vm *x;

	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	vm->arch = x;
	/* Intel VMX needs these two regions for real-mode emulation; they sit
	 * in the MMIO hole, below the BIOS area at the top of 4 GiB. */
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)X86_TSS_ADDR) <
		0) {
		log_err(-errno, "cannot set TSS/identity map address");
		return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		log_err(-errno, "cannot create in-kernel irqchip");
		return -errno;
	}
	/* The speaker port (0x61) stays inside KVM: no exits for it. */
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		log_err(-errno, "cannot create in-kernel PIT");
		return -errno;
	}

	x->supported =
	    calloc(1, sizeof(*x->supported) +
			  CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (!x->supported)
		return -ENOMEM;
	x->supported->nent = CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, x->supported) < 0) {
		log_err(-errno, "KVM_GET_SUPPORTED_CPUID");
		return -errno;
	}
	return 0;
}

/* The ACPI SCI: a level on GSI 9 while a GPE is pending. */
static void sci_set_level(void *opaque, unsigned gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = gsi, .level = (uint32_t)level};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_err(-errno, "KVM_IRQ_LINE %u (SCI)", gsi);
}

int arch_register_devices(struct vm *vm)
{
	struct x86_vm *x = vm->arch;
	int ret;

	x->ports.sci = (struct irq_line){
	    .set_level = sci_set_level, .opaque = vm, .gsi = ACPI_SCI_GSI};

	ret = bus_register(&vm->pio, SERIAL_COM1_BASE, SERIAL_NR_REGS,
			   &serial_bus_ops, &vm->serial, "serial");
	if (!ret)
		ret = sysctl_ports_register(
		    &vm->pio, &((struct x86_vm *)vm->arch)->ports, &vm->ctl);
	if (ret)
		log_err(ret, "cannot register platform devices");
	return ret;
}

int arch_load_kernel(struct vm *vm, const uint8_t *kernel, size_t kernel_len,
		     int initrd_fd, uint64_t initrd_size, const char *cmdline)
{
	struct x86_vm *x = vm->arch;
	struct x86_boot_args a = {
	    .kernel = kernel,
	    .kernel_len = kernel_len,
	    .initrd_fd = initrd_fd,
	    .initrd_size = initrd_size,
	    .cmdline = cmdline,
	    .ncpus = vm->ncpus,
	};

	return x86_load_kernel(&vm->mem, &a, &x->entry);
}

int arch_vcpu_init(struct vm *vm, struct vcpu *vcpu)
{
	struct x86_vm *x = vm->arch;
	size_t size = sizeof(struct kvm_cpuid2) +
		      x->supported->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *cpuid;
	int ret = 0;

	cpuid = malloc(size);
	if (!cpuid)
		return -ENOMEM;
	memcpy(cpuid, x->supported, size);
	cpuid_filter(cpuid->entries, cpuid->nent, vcpu->id, vm->ncpus);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0) {
		ret = -errno;
		log_err(ret, "vCPU %u: KVM_SET_CPUID2", vcpu->id);
		goto out;
	}
	ret = x86_setup_vcpu_common(vcpu->fd);
	if (ret) {
		log_err(ret, "vCPU %u: MSR/FPU/LAPIC setup", vcpu->id);
		goto out;
	}
	/* The MSRs a snapshot saves: probed on a vCPU with its CPUID,
	 * before threads that capture concurrently. */
	if (vcpu->id == 0)
		ret = x86_snap_host_init(&x->snap, vm->kvm_fd, vm->vm_fd,
					 vcpu->fd);
out:
	free(cpuid);
	return ret;
}

int arch_vcpus_created(struct vm *vm)
{
	(void)vm;
	return 0;
}

/* Application processors wait for INIT/SIPI from the boot CPU. */
int arch_set_entry(struct vm *vm, struct vcpu *boot)
{
	struct x86_vm *x = vm->arch;
	int ret = x86_setup_boot_regs(boot->fd, &x->entry);

	if (ret)
		log_err(ret, "vCPU 0: entry registers");
	return ret;
}

void arch_dump_vcpu(struct vcpu *vcpu, FILE *out)
{
	x86_dump_regs(vcpu->fd, out);
}

void arch_vm_free(struct vm *vm)
{
	struct x86_vm *x = vm->arch;

	if (x) {
		free(x->supported);
		x86_snap_host_free(&x->snap);
		free(x);
	}
	vm->arch = NULL;
}

void arch_print_stats(struct vm *vm, FILE *out)
{
	struct x86_vm *x = vm->arch;

	if (!x)
		return;
	fprintf(out, "hutch-stats: pvpanic crash_loaded=%llu\n",
		(unsigned long long)atomic_load(&x->ports.crash_loaded));
}

int arch_vcpu_capture(struct vcpu *vcpu)
{
	struct x86_vm *x = vcpu->vm->arch;
	struct x86_vcpu_state *s = vcpu->arch_state;
	int ret;

	/* A later snapshot reuses the earlier one's buffers. */
	if (!s) {
		s = x86_vcpu_state_new(x->snap.xsave_len);
		if (!s) {
			log_err(-ENOMEM, "vCPU %u: snapshot state", vcpu->id);
			return -ENOMEM;
		}
		vcpu->arch_state = s;
	}
	ret = x86_vcpu_state_get(&x->snap, vcpu->fd, vcpu->id, s);
	if (ret)
		arch_vcpu_free(vcpu);
	return ret;
}

void arch_vcpu_save(const struct vcpu *vcpu, struct snap_writer *w)
{
	/* Saving without a capture is the caller's bug; failing the whole
	 * write beats a state file that cannot be restored. */
	if (!vcpu->arch_state) {
		log_errx("vCPU %u: no captured state to save", vcpu->id);
		w->oom = true;
		return;
	}
	x86_vcpu_state_encode(vcpu->arch_state, w);
}

int arch_vcpu_restore(struct vcpu *vcpu, struct snap_reader *r)
{
	struct x86_vm *x = vcpu->vm->arch;
	struct x86_vcpu_state *s;
	int ret;

	s = x86_vcpu_state_new(x->snap.xsave_len);
	if (!s) {
		log_err(-ENOMEM, "vCPU %u: snapshot state", vcpu->id);
		return -ENOMEM;
	}
	ret = x86_vcpu_state_decode(r, vcpu->id, s);
	if (!ret)
		ret = x86_vcpu_state_set(vcpu->fd, vcpu->id, s);
	x86_vcpu_state_free(s);
	return ret;
}

void arch_vcpu_free(struct vcpu *vcpu)
{
	x86_vcpu_state_free(vcpu->arch_state);
	vcpu->arch_state = NULL;
}

int arch_vm_save(struct vm *vm, struct snap_writer *w)
{
	struct x86_vm *x = vm->arch;
	struct x86_vm_state s;
	int ret;

	memset(&s, 0, sizeof(s));
	ret = x86_vm_state_get(vm->vm_fd, &s);
	if (ret)
		return ret;
	/* Written by vCPU threads, all parked now. */
	s.pm1_enable = x->ports.pm1_enable;
	sysctl_ports_gpe_get(&x->ports, &s.gpe_sts, &s.gpe_en);
	x86_vm_state_encode(&s, w);
	return 0;
}

int arch_vm_restore(struct vm *vm, struct snap_reader *r)
{
	struct x86_vm *x = vm->arch;
	struct x86_vm_state s;
	int ret;

	ret = x86_vm_state_decode(r, &s);
	if (!ret)
		ret = x86_vm_state_set(vm->vm_fd, &s);
	if (!ret) {
		x->ports.pm1_enable = s.pm1_enable;
		sysctl_ports_gpe_set(&x->ports, s.gpe_sts, s.gpe_en);
	}
	return ret;
}

int arch_vm_restore_done(struct vm *vm)
{
	struct x86_vm *x = vm->arch;
	int ret = x86_vmgenid_new(&vm->mem);

	/* A new generation: the guest's vmgenid driver reads the new ID on
	 * GPE 0's notification and reseeds the kernel's RNG, so no two VMs
	 * restored from one snapshot share random numbers. */
	if (ret) {
		log_err(ret, "snapshot: a new VM generation ID");
		return ret;
	}
	sysctl_ports_gpe_raise(&x->ports, ACPI_GPE_VMGENID);
	return 0;
}
