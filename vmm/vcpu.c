// SPDX-License-Identifier: MIT
/*
 * vCPU threads.  Each runs KVM_RUN in a loop and dispatches the exits that
 * reach userspace (port I/O, MMIO) to the buses.  A stop is requested by
 * setting immediate_exit and sending SIGUSR1 (a no-op handler): whether the
 * signal lands before or during KVM_RUN, the thread returns to userspace
 * and sees the VM is stopping.  Each thread installs the vCPU seccomp
 * filter (seccomp_vcpu.c) before its first KVM_RUN.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/arch.h"
#include "vmm/seccomp_filter.h"
#include "vmm/base/log.h"
#include "vmm/vm.h"

#define VCPU_KICK_SIGNAL SIGUSR1

int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned id)
{
	int ret;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0) {
		ret = -errno;
		log_err(ret, "cannot create vCPU %u", id);
		return ret;
	}
	vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		ret = -errno;
		vcpu->run = NULL;
		log_err(ret, "cannot map vCPU %u run area", id);
		return ret;
	}
	return arch_vcpu_init(vm, vcpu);
}

static void handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned size = run->io.size;

	/* data_offset and the count come from KVM, not the guest, but keep
	 * the walk inside the shared page anyway. */
	if (run->io.data_offset + (uint64_t)size * run->io.count >
	    vcpu->vm->run_size)
		return;
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			bus_write(&vcpu->vm->pio, run->io.port, data, size);
		else
			bus_read(&vcpu->vm->pio, run->io.port, data, size);
	}
}

static void handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	unsigned len = run->mmio.len;

	if (len == 0 || len > sizeof(run->mmio.data))
		return;
	if (run->mmio.is_write)
		bus_write(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data,
			  len);
	else
		bus_read(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data,
			 len);
}

static void report_crash(struct vcpu *vcpu, const char *what)
{
	/* One report even if several vCPUs fail at once. */
	static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&report_lock);
	fprintf(stderr, "hutch: guest crashed: vCPU %u: %s\n", vcpu->id, what);
	arch_dump_vcpu(vcpu, stderr);
	pthread_mutex_unlock(&report_lock);
}

/* Returns false when the vCPU must stop. */
static bool handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	char what[128];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu->stats.io++;
		handle_io(vcpu);
		return true;
	case KVM_EXIT_MMIO:
		vcpu->stats.mmio++;
		handle_mmio(vcpu);
		return true;
	case KVM_EXIT_INTR:
		vcpu->stats.other++;
		return true;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; treat as idle. */
		vcpu->stats.other++;
		return true;
	case KVM_EXIT_SHUTDOWN:
		report_crash(vcpu, "triple fault (KVM_EXIT_SHUTDOWN)");
		vm_request_stop(vcpu->vm, VM_CRASH);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), "KVM internal error, suberror %u",
			 run->internal.suberror);
		report_crash(vcpu, what);
		vm_request_stop(vcpu->vm, VM_CRASH);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what),
			 "VM entry failed, hardware reason %#llx",
			 (unsigned long long)
			     run->fail_entry.hardware_entry_failure_reason);
		report_crash(vcpu, what);
		vm_request_stop(vcpu->vm, VM_CRASH);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_request_stop(vcpu->vm, VM_POWEROFF);
			break;
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_stop(vcpu->vm, VM_RESET);
			break;
		default:
			snprintf(what, sizeof(what), "system event %u",
				 run->system_event.type);
			report_crash(vcpu, what);
			vm_request_stop(vcpu->vm, VM_CRASH);
		}
		return false;
	default:
		snprintf(what, sizeof(what), "unexpected exit reason %u",
			 run->exit_reason);
		report_crash(vcpu, what);
		vm_request_stop(vcpu->vm, VM_CRASH);
		return false;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	sigset_t set;
	char name[16];
	bool settled = true; /* no exit awaits completion by KVM_RUN */

	snprintf(name, sizeof(name), "vcpu%u", vcpu->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/* Set-up is over: from here on only the vCPU list (seccomp_vcpu.c). */
	if (seccomp_thread_apply(SECCOMP_VCPU, vm->cfg->seccomp)) {
		vm_request_stop(vm, VM_HOST_ERROR);
		vcpu_thread_done(vcpu);
		return NULL;
	}
	vm_test_violate(vm, "vcpu");
	if (vcpu->id == 0) {
		unsigned long long zero = 0;

		atomic_compare_exchange_strong(&vm->t_first_run_ns, &zero,
					       now_ns());
	}

	while (atomic_load(&vm->exit_reason) == VM_RUNNING) {
		int ret;

		/* Park only after a KVM_RUN that returned without an exit
		 * to finish: with immediate_exit set, KVM completes a
		 * pending port or MMIO read into the registers first, so
		 * the state a snapshot captures is between instructions. */
		if (settled && atomic_load(&vm->pausing)) {
			vcpu_park(vcpu);
			continue;
		}
		ret = ioctl(vcpu->fd, KVM_RUN, 0);
		if (ret < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				settled = true;
				continue; /* kicked: the loop test decides */
			}
			log_err(-errno, "vCPU %u: KVM_RUN", vcpu->id);
			vm_request_stop(vm, VM_HOST_ERROR);
			break;
		}
		settled = false;
		vcpu->stats.exits++;
		if (!handle_exit(vcpu))
			break;
	}
	vcpu_thread_done(vcpu);
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig;
}

/* Process-wide: the kick signal's (empty) handler, installed once. */
static void install_kick_handler(void)
{
	struct sigaction sa = {.sa_handler = kick_handler};

	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

int vcpu_start(struct vcpu *vcpu)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int ret;

	pthread_once(&once, install_kick_handler);
	ret = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	if (ret) {
		log_err(-ret, "cannot start vCPU %u thread", vcpu->id);
		return -ret;
	}
	vcpu->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->started)
		pthread_join(vcpu->thread, NULL);
	if (vcpu->run)
		munmap(vcpu->run, vcpu->vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->fd = -1;
	arch_vcpu_free(vcpu);
}
