// SPDX-License-Identifier: MIT
/*
 * The x86 entries of each thread's seccomp allowlist (seccomp_filter.h):
 * KVM's x86 ioctls, and the syscalls glibc uses on x86 where arm64 has
 * only their newer forms.  Data only.
 */
#include <linux/kvm.h>
#include <seccomp.h>

#include "vmm/seccomp_filter.h"

const struct seccomp_rule seccomp_vcpu_arch_rules[] = {
    /* A crashed guest's registers for the report (triple fault, failed
     * entry); a snapshot's too. */
    SC_ARG_EQ(ioctl, 1, KVM_GET_REGS),
    SC_ARG_EQ(ioctl, 1, KVM_GET_SREGS),
    /* A snapshot: the parked vCPU reads its own state
     * (arch_vcpu_capture). */
    SC_ARG_EQ(ioctl, 1, KVM_GET_XSAVE),
    SC_ARG_EQ(ioctl, 1, KVM_GET_XSAVE2),
    SC_ARG_EQ(ioctl, 1, KVM_GET_XCRS),
    SC_ARG_EQ(ioctl, 1, KVM_GET_DEBUGREGS),
    SC_ARG_EQ(ioctl, 1, KVM_GET_LAPIC),
    SC_ARG_EQ(ioctl, 1, KVM_GET_VCPU_EVENTS),
    SC_ARG_EQ(ioctl, 1, KVM_GET_MSRS),
};
const unsigned seccomp_vcpu_arch_nrules =
    sizeof(seccomp_vcpu_arch_rules) / sizeof(seccomp_vcpu_arch_rules[0]);

const struct seccomp_rule seccomp_loop_arch_rules[] = {
    /* The loop itself. */
    SC_ALLOW(epoll_wait),
    /* vsock: whether a peer hung up. */
    SC_ALLOW(poll),
    /* The vsock socket is removed at the end, if it is still the one
     * hutch bound. */
    SC_ALLOW(unlink),
    /* A snapshot: the in-kernel PICs and IOAPIC, PIT and kvmclock
     * (arch_vm_save, every vCPU parked). */
    SC_ARG_EQ(ioctl, 1, KVM_GET_IRQCHIP),
    SC_ARG_EQ(ioctl, 1, KVM_GET_PIT2),
    SC_ARG_EQ(ioctl, 1, KVM_GET_CLOCK),
};
const unsigned seccomp_loop_arch_nrules =
    sizeof(seccomp_loop_arch_rules) / sizeof(seccomp_loop_arch_rules[0]);

const struct seccomp_rule seccomp_net_arch_rules[] = {
    /* The NIC's loop (seccomp_net.c). */
    SC_ALLOW(poll),
    SC_ALLOW(epoll_wait),
};
const unsigned seccomp_net_arch_nrules =
    sizeof(seccomp_net_arch_rules) / sizeof(seccomp_net_arch_rules[0]);
