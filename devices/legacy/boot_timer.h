/* SPDX-License-Identifier: MIT */
/*
 * The boot timer as the guest sees it: its init writes one byte, 123,
 * once it is up (hutch's agent when it listens), and hutch notes the
 * boot done.  x86: port 0x3f0, the same port and value as Firecracker's,
 * so guest images prepared for it work unchanged; arm64, which has no
 * port I/O: MMIO at ARM64_BOOT_TIMER_BASE (vmm/arm64/layout.h).  Shared
 * by the VMM (sysctl_ports.c, arch_arm64.c) and the guest's programs
 * (the agent, boot-done), so the two cannot disagree.
 */
#ifndef HUTCH_BOOT_TIMER_H
#define HUTCH_BOOT_TIMER_H

#define BOOT_TIMER_PORT	 0x3f0
#define BOOT_TIMER_MAGIC 123

#endif
