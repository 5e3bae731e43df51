// SPDX-License-Identifier: MIT
/*
 * The vCPU threads' seccomp allowlist: what a vCPU thread calls once it
 * has started (vcpu.c installs it before its first KVM_RUN).  One entry
 * per syscall or ioctl number, each with the reason it is here.  Found by
 * tracing (tools/seccomp-trace; README.md, "seccomp"), checked by reading
 * what the exits it handles call.  Data only; no threads of its own.
 */
#include <linux/kvm.h>
#include <seccomp.h>
#include <sys/mman.h>

#include "vmm/seccomp_filter.h"

const struct seccomp_rule seccomp_vcpu_rules[] = {
    /* Running the guest: KVM_RUN on its own vCPU fd. */
    SC_ARG_EQ(ioctl, 1, KVM_RUN),
    /* The UART raises and lowers its interrupt from register accesses. */
    SC_ARG_EQ(ioctl, 1, KVM_IRQ_LINE),
    /* A snapshot: the parked vCPU reads its own state
     * (arch_vcpu_capture; the architecture's registers are in
     * seccomp_vcpu_arch_rules). */
    SC_ARG_EQ(ioctl, 1, KVM_GET_MP_STATE),
    /* Console output (stdout or the console file), hutch's messages on
     * stderr, eventfd writes (stop request, UART room), the --ready-fd
     * byte. */
    SC_ALLOW(write),
    /* --ready-fd is closed once its byte is written. */
    SC_ALLOW(close),
    /* A console file past its limit is emptied and rewound. */
    SC_ALLOW(ftruncate),
    SC_ALLOW(lseek),
    /* Device locks (virtio registers, the UART, crash report). */
    SC_ALLOW(futex),
    /* The kick signal's empty handler returns (vcpu_kick). */
    SC_ALLOW(rt_sigreturn),
    /* Boot-done time and the UART's timing, where the vDSO falls back to
     * the syscall (nested hosts without a stable TSC). */
    SC_ALLOW(clock_gettime),
    /* glibc's malloc from this thread (a per-thread arena is mapped,
     * grown with mprotect and trimmed with madvise or munmap; freeing a
     * main-arena chunk may trim it with brk).  Never executable. */
    SC_ARG_MASK(mmap, 2, PROT_EXEC, 0),
    SC_ARG_MASK(mprotect, 2, PROT_EXEC, 0),
    SC_ALLOW(munmap),
    SC_ALLOW(madvise),
    SC_ALLOW(brk),
    /* glibc's thread exit: signals blocked, the stack advised away, the
     * thread ends. */
    SC_ALLOW(rt_sigprocmask),
    SC_ALLOW(exit),
};

const unsigned seccomp_vcpu_nrules =
    sizeof(seccomp_vcpu_rules) / sizeof(seccomp_vcpu_rules[0]);
