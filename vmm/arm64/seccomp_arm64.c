// SPDX-License-Identifier: MIT
/*
 * The arm64 entries of each thread's seccomp allowlist
 * (seccomp_filter.h): KVM's arm64 ioctls, and the syscalls glibc uses on
 * arm64 for poll, epoll_wait and unlink, which arm64 lacks.  Data only.
 */
#include <linux/kvm.h>
#include <seccomp.h>

#include "vmm/seccomp_filter.h"

const struct seccomp_rule seccomp_vcpu_arch_rules[] = {
    /* A crashed guest's registers for the report (arch_dump_vcpu); a
     * snapshot: the parked vCPU reads every register KVM lists
     * (snap_arm64.c). */
    SC_ARG_EQ(ioctl, 1, KVM_GET_ONE_REG),
    SC_ARG_EQ(ioctl, 1, KVM_GET_REG_LIST),
};
const unsigned seccomp_vcpu_arch_nrules =
    sizeof(seccomp_vcpu_arch_rules) / sizeof(seccomp_vcpu_arch_rules[0]);

const struct seccomp_rule seccomp_loop_arch_rules[] = {
    /* The loop itself (epoll_wait). */
    SC_ALLOW(epoll_pwait),
    /* vsock: whether a peer hung up (poll). */
    SC_ALLOW(ppoll),
    /* The vsock socket is removed at the end (unlink). */
    SC_ALLOW(unlinkat),
    /* A snapshot: the GICv3's registers (snap_arm64.c). */
    SC_ARG_EQ(ioctl, 1, KVM_GET_DEVICE_ATTR),
};
const unsigned seccomp_loop_arch_nrules =
    sizeof(seccomp_loop_arch_rules) / sizeof(seccomp_loop_arch_rules[0]);

const struct seccomp_rule seccomp_net_arch_rules[] = {
    /* The NIC's loop (poll, epoll_wait). */
    SC_ALLOW(ppoll),
    SC_ALLOW(epoll_pwait),
};
const unsigned seccomp_net_arch_nrules =
    sizeof(seccomp_net_arch_rules) / sizeof(seccomp_net_arch_rules[0]);
