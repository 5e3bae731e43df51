/* SPDX-License-Identifier: MIT */
/*
 * A running virtual machine: KVM handles, guest memory, buses, devices and
 * vCPU threads.  The main thread runs the event loop (console input,
 * signals, stop requests); each vCPU runs on its own thread.
 */
#ifndef HUTCH_VM_H
#define HUTCH_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/legacy/serial.h"
#include "vmm/base/bus.h"
#include "vmm/console.h"
#include "vmm/control.h"
#include "vmm/device_table.h"
#include "vmm/base/guest_mem.h"
#include "vmm/base/vm_control.h"
#include "vmm/seccomp_filter.h"

struct snapshot;

struct vm_config {
	const char *kernel_path;
	const char *initrd_path; /* NULL: none */
	const char *cmdline;
	const char *console_path; /* NULL: stdout */
	const char *control_path; /* the control channel; NULL: none */
	uint64_t console_limit;	  /* bytes a console file may hold; 0: any */
	const char *kvm_path;
	unsigned ncpus;
	uint64_t mem_mib;
	bool stats; /* print timing and exit counts at the end */
	/* The devices, in virtio slot order (the table's order). */
	struct device_config devices[VM_MAX_DEVICES];
	unsigned ndevices;
	/* With has_ready_fd: one byte is written to ready_fd, which is then
	 * closed, when the guest reports boot done (the hutch agent does
	 * once it listens), so a launcher waits without polling. */
	bool has_ready_fd;
	int ready_fd;
	/* Jailed: the keeper's socket (jail.h).  Its hangup means the
	 * keeper died (a PID namespace's init gets no parent-death
	 * signal): the VM stops as if killed.  -1: none. */
	int keeper_fd;
	/* Each thread's seccomp filter (seccomp_filter.h). */
	enum seccomp_mode seccomp;
	/* Restore this snapshot instead of booting (snapshot.h; ncpus,
	 * mem_mib and the devices must be the snapshot's).  NULL: boot. */
	const struct snapshot *restore;
};

struct vcpu_stats {
	uint64_t exits; /* KVM_RUN returns to the VMM */
	uint64_t io;
	uint64_t mmio;
	uint64_t other;
};

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	struct vcpu_stats stats;
	void *arch_state; /* captured for a snapshot (arch.h) */
	/* Pausing (vm_pause.c), under vm->pause_lock: the pause generation
	 * this thread last parked in; its loop has ended. */
	unsigned parked_gen;
	bool thread_done;
};

struct vm {
	const struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;

	unsigned ncpus;
	struct vcpu *vcpus;

	int ep; /* the main thread's event loop (epoll) */

	struct serial serial;
	/* The devices created from cfg->devices, in the same order. */
	struct device_instance {
		const struct device_type *type;
		const void *cfg;
		unsigned index; /* among its type's instances */
		void *dev;
	} devs[VM_MAX_DEVICES];
	unsigned ndevs;
	struct console console;
	struct control control;
	int serial_space_efd; /* guest drained the RX FIFO */

	struct vm_control ctl;
	atomic_int exit_reason; /* enum vm_exit_reason; first one wins */
	int stop_signal;	/* for VM_SIGNALLED */
	int stop_efd;		/* wakes the event loop on stop */

	/* --stats' sources, opened at set-up (no file is opened once the
	 * filters are in): /proc/self/status and KVM's debugfs exit count;
	 * -1 where missing. */
	int status_fd;
	int kvm_exits_fd;
	/* /proc/self/pagemap, opened at set-up where snapshots can be
	 * asked for: which guest pages were never touched (vm_snapshot.c);
	 * -1: none. */
	int pagemap_fd;

	/* Jailed (jail.h): time to fork into the jail, and to enter it. */
	uint64_t jail_spawn_ns, jail_enter_ns, jail_unshare_ns, jail_root_ns;

	uint64_t t_start_ns;
	/* vCPU 0's first KVM_RUN: the VMM's own set-up ends there. */
	atomic_ullong t_first_run_ns;
	atomic_ullong t_boot_done_ns;

	void *arch; /* arch-private state (entry point) */

	/* Pausing (vm_pause.c): the event loop raises `pausing` under
	 * pause_lock with a new pause_gen and kicks every vCPU; each parks
	 * (capturing its state first if asked) and waits for resume. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	atomic_bool pausing;
	bool pause_capture;
	unsigned pause_gen;
	int pause_err; /* the first capture that failed */

	/* Restored from a snapshot rather than booted (vm_restore.c). */
	bool restored;

	/* Test builds only (HUTCH_TEST_HOOKS): "vcpu" or "loop" from
	 * $HUTCH_TEST_SECCOMP_VIOLATE, read at set-up; that thread makes one
	 * forbidden syscall once its filter is in. */
	char test_violate[8];
};

/* Test builds: the forbidden syscall of the thread kind named (a no-op
 * in normal builds). */
void vm_test_violate(const struct vm *vm, const char *kind);

uint64_t now_ns(void);

/* Build the VM (does not start vCPUs).  0 or negative errno, reported. */
int vm_create(struct vm *vm, const struct vm_config *cfg);

/* Run until the guest's fate is known; returns the process exit code. */
int vm_run(struct vm *vm);

void vm_destroy(struct vm *vm);

/* Stop the VM for the given reason (any thread).  The first reason is
 * kept. */
void vm_request_stop(struct vm *vm, enum vm_exit_reason why);

/* vm_snapshot.c: write the VM's snapshot (snapshot.h) into state_fd
 * and mem_fd, each drive's overlay into the next of files; the VM runs
 * on afterwards.  Event loop thread.  0, or negative errno with *why
 * for the control channel's answer (details in the log). */
int vm_snapshot(struct vm *vm, int state_fd, int mem_fd, const int *files,
		unsigned nfiles, const char **why);

/* vm_restore.c: load the snapshot's state into the VM vm_create built
 * from its configuration.  0, or negative errno after one line. */
int vm_restore_state(struct vm *vm, const struct snapshot *s);

/* vm_pause.c: park every vCPU (with capture, each reads its state out
 * of KVM first) / let them run again.  Event loop thread.  0, or
 * negative errno after saying why (then the vCPUs run again). */
int vm_pause(struct vm *vm, bool capture);
void vm_resume(struct vm *vm);
/* vCPU threads: park until resumed (a pause is pending). */
void vcpu_park(struct vcpu *vcpu);
/* vCPU threads: the loop ended. */
void vcpu_thread_done(struct vcpu *vcpu);

/* vcpu.c */
int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned id);
int vcpu_start(struct vcpu *vcpu);
void vcpu_kick(struct vcpu *vcpu);
void vcpu_destroy(struct vcpu *vcpu);

#endif
