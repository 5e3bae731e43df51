/* SPDX-License-Identifier: MIT */
/* What arch_arm64.c keeps per VM (vm->arch), shared with snap_arm64.c. */
#ifndef HUTCH_ARCH_ARM64_H
#define HUTCH_ARCH_ARM64_H

#include <linux/kvm.h>
#include <stdint.h>

#include "devices/legacy/sysctl_ports.h"

struct arm64_vm {
	struct sysctl_ports ports; /* its pvpanic and boot timer, on MMIO */
	int gic_fd;
	struct kvm_vcpu_init init; /* the preferred target */
	uint64_t entry;		   /* the Image's first byte */
	uint64_t dtb;
	/* Restoring: virtual-counter ticks to add to each vCPU's saved
	 * KVM_REG_ARM_TIMER_CNT (the wall-clock time since the save). */
	uint64_t cnt_advance;
};

#endif
