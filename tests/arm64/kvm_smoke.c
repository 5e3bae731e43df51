/* SPDX-License-Identifier: MIT */
/*
 * arm64 KVM smoke test (issue 15), run on real arm64 KVM through
 * tools/l1/kvm-run --arch arm64.  It checks, on the KVM the arm64 port of
 * hutch will use, each piece that port builds on: the API version and
 * capabilities, guest RAM at hutch's arm64 base, a vCPU inited from the
 * preferred target with PSCI 0.2, the in-kernel GICv3 at hutch's
 * addresses, the entry PC set through KVM_SET_ONE_REG, an MMIO exit from
 * a byte stored to hutch's UART address, and PSCI SYSTEM_OFF reaching the
 * VMM as a shutdown system event.
 *
 * Built static with the cross compiler (no libraries needed in the L1);
 * prints one line per check, and exits 1 if any failed.  The early
 * returns are for what the later checks cannot go on without.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/arm64/layout.h"

static unsigned failed, passed;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (cond) {                                                    \
			passed++;                                              \
			printf("ok   ");                                       \
		} else {                                                       \
			failed++;                                              \
			printf("FAIL ");                                       \
		}                                                              \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
	} while (0)

/* The guest: store 'h' to the UART's data register, then PSCI
 * SYSTEM_OFF (function 0x84000008) over HVC, then spin. */
static const uint32_t guest_code[] = {
    0xd2a12000, /* movz x0, #0x0900, lsl #16  (ARM64_UART_BASE) */
    0xd2800d01, /* movz x1, #'h' */
    0x39000001, /* strb w1, [x0] */
    0x52800100, /* movz w0, #0x0008 */
    0x72b08000, /* movk w0, #0x8400, lsl #16 */
    0xd4000002, /* hvc #0 */
    0x14000000, /* b . */
};

static uint64_t core_reg(size_t offset)
{
	return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
	       (offset / sizeof(uint32_t));
}

static int vgic_attr(int fd, unsigned cmd, uint32_t group, uint64_t attr,
		     void *addr)
{
	struct kvm_device_attr a = {
	    .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)addr};

	return ioctl(fd, cmd, &a);
}

int main(void)
{
	const size_t ram_size = 2 << 20;
	struct kvm_vcpu_init init;
	struct kvm_run *run;
	int kvm, vm, vcpu, run_size, r;
	uint8_t *ram;

	setvbuf(stdout, NULL, _IOLBF, 0);
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	CHECK(kvm >= 0, "/dev/kvm opens (%s)", kvm < 0 ? strerror(errno) : "");
	if (kvm < 0)
		return 1;
	r = ioctl(kvm, KVM_GET_API_VERSION, 0);
	CHECK(r == KVM_API_VERSION, "KVM API version %d", r);
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PSCI_0_2) > 0,
	      "KVM_CAP_ARM_PSCI_0_2");
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_ONE_REG) > 0,
	      "KVM_CAP_ONE_REG");
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) > 0,
	      "KVM_CAP_IRQFD");
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) > 0,
	      "KVM_CAP_IOEVENTFD");
	r = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_ARM_VM_IPA_SIZE);
	CHECK(r == 0 || r >= ARM64_IPA_BITS,
	      "IPA size %d bits covers hutch's %d (0: the fixed 40)", r,
	      ARM64_IPA_BITS);

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	CHECK(vm >= 0, "KVM_CREATE_VM (%s)", vm < 0 ? strerror(errno) : "");
	if (vm < 0)
		return 1;

	ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		return 1;
	memcpy(ram, guest_code, sizeof(guest_code));
	struct kvm_userspace_memory_region slot = {
	    .slot = 0,
	    .guest_phys_addr = ARM64_RAM_BASE,
	    .memory_size = ram_size,
	    .userspace_addr = (uint64_t)(uintptr_t)ram,
	};
	r = ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot);
	CHECK(r == 0, "RAM at %#llx", (unsigned long long)ARM64_RAM_BASE);

	/* The GIC before the vCPU (its addresses), initialised after it. */
	struct kvm_create_device gic = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
	r = ioctl(vm, KVM_CREATE_DEVICE, &gic);
	CHECK(r == 0, "in-kernel GICv3 (%s)", r ? strerror(errno) : "");
	uint64_t gicd = ARM64_GICD_BASE, gicr = ARM64_GICR_BASE;
	CHECK(vgic_attr(gic.fd, KVM_SET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_ADDR,
			KVM_VGIC_V3_ADDR_TYPE_DIST, &gicd) == 0,
	      "GICv3 distributor at %#llx", (unsigned long long)gicd);
	CHECK(vgic_attr(gic.fd, KVM_SET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_ADDR,
			KVM_VGIC_V3_ADDR_TYPE_REDIST, &gicr) == 0,
	      "GICv3 redistributors at %#llx", (unsigned long long)gicr);

	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	CHECK(vcpu >= 0, "KVM_CREATE_VCPU");
	if (vcpu < 0)
		return 1;
	memset(&init, 0, sizeof(init));
	r = ioctl(vm, KVM_ARM_PREFERRED_TARGET, &init);
	CHECK(r == 0, "KVM_ARM_PREFERRED_TARGET: target %u", init.target);
	init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
	r = ioctl(vcpu, KVM_ARM_VCPU_INIT, &init);
	CHECK(r == 0, "KVM_ARM_VCPU_INIT with PSCI 0.2 (%s)",
	      r ? strerror(errno) : "");
	uint32_t nr_irqs = 32 + ARM64_MAX_SPI;
	CHECK(vgic_attr(gic.fd, KVM_SET_DEVICE_ATTR,
			KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs) == 0,
	      "GIC with %u interrupts", nr_irqs);
	CHECK(vgic_attr(gic.fd, KVM_SET_DEVICE_ATTR, KVM_DEV_ARM_VGIC_GRP_CTRL,
			KVM_DEV_ARM_VGIC_CTRL_INIT, NULL) == 0,
	      "GIC initialised");

	uint64_t pc = ARM64_RAM_BASE, got = 0;
	struct kvm_one_reg reg = {
	    .id = core_reg(offsetof(struct kvm_regs, regs.pc)),
	    .addr = (uint64_t)(uintptr_t)&pc};
	CHECK(ioctl(vcpu, KVM_SET_ONE_REG, &reg) == 0, "PC set");
	reg.addr = (uint64_t)(uintptr_t)&got;
	CHECK(ioctl(vcpu, KVM_GET_ONE_REG, &reg) == 0 && got == pc,
	      "PC reads back %#llx", (unsigned long long)got);

	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vcpu, 0);
	if (run == MAP_FAILED)
		return 1;

	r = ioctl(vcpu, KVM_RUN, 0);
	CHECK(r == 0 && run->exit_reason == KVM_EXIT_MMIO,
	      "first exit is MMIO (ret %d, reason %u)", r, run->exit_reason);
	if (run->exit_reason == KVM_EXIT_MMIO)
		CHECK(run->mmio.phys_addr == ARM64_UART_BASE &&
			  run->mmio.is_write && run->mmio.len == 1 &&
			  run->mmio.data[0] == 'h',
		      "a 1-byte write of 'h' to the UART at %#llx "
		      "(got %#llx, len %u, write %u, %#x)",
		      (unsigned long long)ARM64_UART_BASE,
		      (unsigned long long)run->mmio.phys_addr, run->mmio.len,
		      run->mmio.is_write, run->mmio.data[0]);
	r = ioctl(vcpu, KVM_RUN, 0);
	CHECK(r == 0 && run->exit_reason == KVM_EXIT_SYSTEM_EVENT &&
		  run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN,
	      "PSCI SYSTEM_OFF exits as a shutdown event (ret %d, reason %u, "
	      "type %u)",
	      r, run->exit_reason, run->system_event.type);

	printf("arm64 KVM smoke: %u checks passed, %u failed\n", passed,
	       failed);
	/* One test, in the summary line tools/check adds up (Criterion's). */
	printf("[====] Synthesis: Tested: 1 | Passing: %d | Failing: %d | "
	       "Crashing: 0\n",
	       !failed, !!failed);
	return failed ? 1 : 0;
}
