/* SPDX-License-Identifier: MIT */
/*
 * How devices tell the VM about the guest's fate (poweroff, reset, panic)
 * and milestones (init reached).  Devices see only this, not struct vm.
 */
#ifndef HUTCH_VM_CONTROL_H
#define HUTCH_VM_CONTROL_H

enum vm_exit_reason {
	VM_RUNNING = 0,
	VM_POWEROFF,   /* ACPI S5 or equivalent */
	VM_RESET,      /* i8042 reset, ACPI reset register */
	VM_PANIC,      /* guest kernel reported a panic (pvpanic) */
	VM_CRASH,      /* triple fault, internal error, failed entry */
	VM_HOST_ERROR, /* the VMM itself failed */
	VM_SIGNALLED,  /* SIGINT/SIGTERM/SIGHUP to the VMM */
};

/* Process exit codes, documented in --help and the README. */
enum hutch_exit_code {
	EXIT_GUEST_OFF = 0,   /* poweroff or reboot */
	EXIT_HUTCH_ERROR = 1, /* bad input, KVM unusable, host failure */
	EXIT_USAGE = 2,	      /* bad command line */
	EXIT_GUEST_PANIC = 3, /* guest kernel panic */
	EXIT_GUEST_CRASH = 4, /* triple fault / internal error / failed entry */
			      /* 128 + N: the VMM was stopped by signal N */
};

/* A device's own thread (a NIC's), by kind. */
enum vm_thread_kind {
	VM_THREAD_NET,
};

struct vm_control {
	void (*request_stop)(void *opaque, enum vm_exit_reason why);
	void (*boot_done)(void *opaque);
	/* Called by a device's own thread before its loop: installs that
	 * kind of thread's seccomp filter.  0, or negative errno after
	 * saying why (the thread then ends and asks the VM to stop). */
	int (*enter_thread)(void *opaque, enum vm_thread_kind kind);
	void *opaque;
};

static inline void vm_control_stop(const struct vm_control *c,
				   enum vm_exit_reason why)
{
	c->request_stop(c->opaque, why);
}

#endif
