// SPDX-License-Identifier: MIT
/*
 * Pausing a running VM: every vCPU leaves KVM_RUN and waits, so the event
 * loop (the only other thread that touches the guest) can read or write
 * the whole VM's state consistently.
 *
 * The kick is the one vm_request_stop uses: immediate_exit set, then the
 * kick signal.  Whether it lands before, during or after KVM_RUN, the
 * thread comes back to its loop and sees `pausing` (vcpu.c parks only
 * once KVM_RUN returned without a pending exit, so no port or MMIO access
 * is left half done).  Each pause has a generation: a vCPU still asleep
 * in the previous one when a new one starts parks again, captures again
 * and is counted again, so back-to-back snapshots never see stale
 * state.  A vCPU whose loop has ended (the guest stopped) counts as
 * parked: there is nothing left for it to do.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <time.h>

#include "vmm/arch.h"
#include "vmm/base/log.h"
#include "vmm/vm.h"

/* A vCPU that has not parked by then is stuck in the kernel. */
#define PAUSE_TIMEOUT_S 10

void vcpu_park(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	unsigned gen;
	bool capture;
	int err = 0;

	pthread_mutex_lock(&vm->pause_lock);
	gen = vm->pause_gen;
	capture = vm->pause_capture;
	pthread_mutex_unlock(&vm->pause_lock);
	if (capture)
		err = arch_vcpu_capture(vcpu);

	pthread_mutex_lock(&vm->pause_lock);
	if (err && !vm->pause_err)
		vm->pause_err = err;
	vcpu->parked_gen = gen;
	pthread_cond_broadcast(&vm->pause_cond);
	while (atomic_load(&vm->pausing) && vm->pause_gen == gen)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	/* Run again.  A stop kicked meanwhile set exit_reason before its
	 * kick, and the loop tests exit_reason after this store. */
	__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

void vcpu_thread_done(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	pthread_mutex_lock(&vm->pause_lock);
	vcpu->thread_done = true;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

static bool all_parked(const struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		const struct vcpu *v = &vm->vcpus[i];

		if (v->started && !v->thread_done &&
		    v->parked_gen != vm->pause_gen)
			return false;
	}
	return true;
}

int vm_pause(struct vm *vm, bool capture)
{
	struct timespec deadline;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += PAUSE_TIMEOUT_S;

	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_gen++;
	vm->pause_capture = capture;
	vm->pause_err = 0;
	atomic_store(&vm->pausing, true);
	pthread_mutex_unlock(&vm->pause_lock);
	/* Sleepers of the previous generation wake and park again. */
	pthread_cond_broadcast(&vm->pause_cond);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);

	pthread_mutex_lock(&vm->pause_lock);
	while (!all_parked(vm) && ret == 0)
		ret = -pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock,
					      &deadline);
	if (ret == 0 && vm->pause_err)
		ret = vm->pause_err;
	pthread_mutex_unlock(&vm->pause_lock);
	if (ret == -ETIMEDOUT)
		log_errx("pause: a vCPU did not stop within %d s",
			 PAUSE_TIMEOUT_S);
	else if (ret)
		log_err(ret, "pause: reading a vCPU's state");
	if (ret)
		vm_resume(vm);
	return ret;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pausing, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}
