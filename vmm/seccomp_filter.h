/* SPDX-License-Identifier: MIT */
/*
 * Per-thread seccomp-bpf allowlists (libseccomp).  Each kind of thread
 * gets its own filter, installed by the thread itself once its set-up is
 * done: a vCPU thread before its first KVM_RUN, the main thread (event
 * loop and devices) once every vCPU thread runs, just before the loop, a
 * NIC's thread before its loop.  The lists, one entry and one comment
 * per syscall (and per ioctl number), are in seccomp_vcpu.c,
 * seccomp_loop.c and seccomp_net.c; README.md says how
 * to regenerate them from a traced run (tools/seccomp-trace).
 *
 * No other thread exists: no list allows clone or clone3, so none can
 * be made once the filters are in (a thread made before inherits its
 * creator's filter, if any; NIC threads are made before the main
 * thread's, and install their own).
 *
 * Threads: seccomp_thread_apply runs on the thread it filters; the rest
 * is called from the main thread during set-up.
 */
#ifndef HUTCH_SECCOMP_FILTER_H
#define HUTCH_SECCOMP_FILTER_H

#include <stdbool.h>
#include <stdint.h>

enum seccomp_mode {
	SECCOMP_KILL, /* a syscall off the list kills the process (SIGSYS) */
	SECCOMP_LOG,  /* it is allowed and the kernel logs it (dmesg, audit
			 type=1326): to find a missing entry */
	SECCOMP_OFF,  /* no filter */
};

enum seccomp_thread {
	SECCOMP_VCPU, /* a vCPU thread: KVM_RUN and its exits */
	SECCOMP_LOOP, /* the main thread: event loop, devices, teardown */
	SECCOMP_NET,  /* a NIC's thread: its queues, libslirp's sockets */
};

/* One allowed syscall, optionally only with up to two argument values
 * (ioctl request numbers, socket domains, flags under a mask). */
struct seccomp_arg {
	unsigned arg; /* 0..5 */
	bool masked;  /* compare (arg & mask) == value */
	uint64_t mask;
	uint64_t value;
};

struct seccomp_rule {
	int nr; /* SCMP_SYS(name); only where it exists on this arch */
	unsigned nargs;
	struct seccomp_arg args[2];
};

/* An entry: the syscall, and optionally argument checks. */
#define SC_ALLOW(name)                                                         \
	{                                                                      \
		.nr = SCMP_SYS(name)                                           \
	}
#define SC_ARG_EQ(name, i, v)                                                  \
	{                                                                      \
		.nr = SCMP_SYS(name), .nargs = 1, .args = {                    \
			{.arg = (i), .value = (uint64_t)(v)}                   \
		}                                                              \
	}
#define SC_ARG_MASK(name, i, m, v)                                             \
	{                                                                      \
		.nr = SCMP_SYS(name), .nargs = 1, .args = {                    \
			{.arg = (i),                                           \
			 .masked = true,                                       \
			 .mask = (uint64_t)(m),                                \
			 .value = (uint64_t)(v)}                               \
		}                                                              \
	}

extern const struct seccomp_rule seccomp_vcpu_rules[];
extern const unsigned seccomp_vcpu_nrules;
extern const struct seccomp_rule seccomp_loop_rules[];
extern const unsigned seccomp_loop_nrules;
extern const struct seccomp_rule seccomp_net_rules[];
extern const unsigned seccomp_net_nrules;
/* Each thread kind's entries that differ by architecture (KVM's arch
 * ioctls; x86's poll/epoll_wait/unlink are ppoll/epoll_pwait/unlinkat on
 * arm64): vmm/<arch>/seccomp_<arch>.c. */
extern const struct seccomp_rule seccomp_vcpu_arch_rules[];
extern const unsigned seccomp_vcpu_arch_nrules;
extern const struct seccomp_rule seccomp_loop_arch_rules[];
extern const unsigned seccomp_loop_arch_nrules;
extern const struct seccomp_rule seccomp_net_arch_rules[];
extern const unsigned seccomp_net_arch_nrules;

/* "kill", "log" or "off" into *mode.  0 or -EINVAL. */
int seccomp_parse_mode(const char *s, enum seccomp_mode *mode);
const char *seccomp_mode_name(enum seccomp_mode mode);

/* The default: kill, except in AddressSanitizer builds (whose runtime
 * makes syscalls of its own when it reports), where it is off. */
enum seccomp_mode seccomp_default_mode(void);

/* Install the filter of this kind on the calling thread.  0 or negative
 * errno, reported. */
int seccomp_thread_apply(enum seccomp_thread kind, enum seccomp_mode mode);

/* The same from an explicit list (tests). */
int seccomp_apply_rules(const struct seccomp_rule *rules, unsigned n,
			enum seccomp_mode mode);

#endif
