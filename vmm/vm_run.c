// SPDX-License-Identifier: MIT
/*
 * The main thread while the guest runs: one epoll loop (vm->ep) over the
 * stop eventfd, signals (signalfd), console input, the serial device's
 * "room in the RX FIFO" eventfd, and whatever devices registered there
 * (virtio queue notifications, disk I/O completions).  No polling.
 * Once every vCPU thread runs, the main thread installs its seccomp
 * filter (seccomp_loop.c); teardown runs under it too.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "vmm/arch.h"
#include "vmm/console.h"
#include "vmm/base/evloop.h"
#include "vmm/base/log.h"
#include "vmm/seccomp_filter.h"
#include "vmm/vm.h"

#define ESCAPE_CHAR 0x01 /* Ctrl-A, then 'x' quits, as in QEMU */

struct input {
	int fd;	      /* -1 once at EOF */
	int retry_fd; /* timerfd: retry held-back input */
	bool polling; /* registered for EPOLLIN */
	bool tty;
	bool escape; /* saw Ctrl-A */
	uint8_t buf[256];
	size_t head, len;
};

/* The main loop's own event sources. */
struct run_loop {
	struct vm *vm;
	int sfd;
	struct input in;
	struct ev_handler stop, signal, stdin_ready, serial_space, retry;
	struct ev_handler keeper;
};

/* Feed buffered input to the UART; stop reading stdin while it is full. */
static void input_flush(struct run_loop *l)
{
	struct vm *vm = l->vm;
	struct input *in = &l->in;
	bool want;

	if (in->len) {
		size_t n =
		    serial_receive(&vm->serial, in->buf + in->head, in->len);

		in->head += n;
		in->len -= n;
	}
	/* Input the UART would not take yet because its driver is still
	 * settling: retry when it will.  (Not listening at all: the serial
	 * device wakes us through rx_space when the guest starts to.) */
	if (in->len && in->retry_fd >= 0) {
		uint64_t wait = serial_rx_wait_ns(&vm->serial);

		if (wait && wait != UINT64_MAX) {
			struct itimerspec t = {
			    .it_value.tv_sec = (time_t)(wait / 1000000000),
			    .it_value.tv_nsec = (long)(wait % 1000000000),
			};

			timerfd_settime(in->retry_fd, 0, &t, NULL);
		}
	}
	want = in->fd >= 0 && in->len == 0;
	if (want != in->polling && in->fd >= 0) {
		evloop_mod(vm->ep, in->fd, want ? EPOLLIN : 0, &l->stdin_ready);
		in->polling = want;
	}
}

static void input_read(struct run_loop *l)
{
	struct vm *vm = l->vm;
	struct input *in = &l->in;
	uint8_t raw[sizeof(in->buf)];
	ssize_t n = read(in->fd, raw, sizeof(raw));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		evloop_del(vm->ep, in->fd);
		in->fd = -1;
		in->polling = false;
		return;
	}
	in->head = in->len = 0;
	for (ssize_t i = 0; i < n; i++) {
		uint8_t c = raw[i];

		if (in->tty && in->escape) {
			in->escape = false;
			if (c == 'x') {
				vm->stop_signal = SIGINT;
				vm_request_stop(vm, VM_SIGNALLED);
				return;
			}
			if (c != ESCAPE_CHAR)
				in->buf[in->len++] = ESCAPE_CHAR;
		} else if (in->tty && c == ESCAPE_CHAR) {
			in->escape = true;
			continue;
		}
		in->buf[in->len++] = c;
	}
	input_flush(l);
}

/* A whole small file from its start, NUL-terminated; bytes or -1. */
static ssize_t read_at0(int fd, char *buf, size_t len)
{
	ssize_t n = fd >= 0 ? pread(fd, buf, len - 1, 0) : -1;

	/* KVM's debugfs statistics are opened non-seekable (pread: ESPIPE,
	 * so they always read "na"); this is their one read, from where
	 * they were opened: the start. */
	if (n < 0 && fd >= 0 && errno == ESPIPE)
		n = read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = 0;
	return n;
}

static void print_stats(struct vm *vm, uint64_t t_end)
{
	struct vcpu_stats sum = {0};
	uint64_t boot = atomic_load(&vm->t_boot_done_ns);
	uint64_t first = atomic_load(&vm->t_first_run_ns);
	char kvm_exits[32] = "na", status[4096];
	long rss_kib = -1, guest_kib = 0;

	for (unsigned i = 0; i < vm->ncpus; i++) {
		sum.exits += vm->vcpus[i].stats.exits;
		sum.io += vm->vcpus[i].stats.io;
		sum.mmio += vm->vcpus[i].stats.mmio;
		sum.other += vm->vcpus[i].stats.other;
	}
	/* All exits, including those KVM handled itself (debugfs), and the
	 * resident set: both opened at set-up (vm_create). */
	if (read_at0(vm->kvm_exits_fd, kvm_exits, sizeof(kvm_exits)) <= 0)
		strcpy(kvm_exits, "na");
	kvm_exits[strcspn(kvm_exits, "\n")] = 0;
	/* VMM overhead: resident set minus resident guest pages. */
	if (read_at0(vm->status_fd, status, sizeof(status)) > 0) {
		const char *p = strstr(status, "\nVmRSS:");

		if (p)
			sscanf(p + 1, "VmRSS: %ld kB", &rss_kib);
	}
	if (vm->mem.host) {
		size_t pages = vm->mem.host_len / 4096;
		unsigned char *vec = malloc(pages);

		if (vec && mincore(vm->mem.host, vm->mem.host_len, vec) == 0) {
			for (size_t i = 0; i < pages; i++)
				guest_kib += (vec[i] & 1) ? 4 : 0;
		}
		free(vec);
	}
	for (unsigned i = 0; i < vm->ndevs; i++) {
		struct device_instance *d = &vm->devs[i];

		if (d->type->print_stats)
			d->type->print_stats(d->dev, d->index, stderr);
	}
	arch_print_stats(vm, stderr);
	if (vm->jail_enter_ns)
		fprintf(stderr,
			"hutch-stats: jail spawn_ms=%.2f enter_ms=%.2f "
			"(unshare_ms=%.2f root_ms=%.2f)\n",
			(double)vm->jail_spawn_ns / 1e6,
			(double)vm->jail_enter_ns / 1e6,
			(double)vm->jail_unshare_ns / 1e6,
			(double)vm->jail_root_ns / 1e6);
	if (vm->console.restarts)
		fprintf(stderr, "hutch-stats: console restarts=%" PRIu64 "\n",
			vm->console.restarts);
	fprintf(stderr,
		"hutch-stats: setup_ms=%.2f boot_done_ms=%.2f exit_ms=%.2f "
		"vmm_exits=%" PRIu64 " io_exits=%" PRIu64 " mmio_exits=%" PRIu64
		" other_exits=%" PRIu64 " kvm_exits=%s unclaimed=%lu"
		" rss_kib=%ld guest_rss_kib=%ld vmm_rss_kib=%ld\n",
		first ? (double)(first - vm->t_start_ns) / 1e6 : -1.0,
		boot ? (double)(boot - vm->t_start_ns) / 1e6 : -1.0,
		(double)(t_end - vm->t_start_ns) / 1e6, sum.exits, sum.io,
		sum.mmio, sum.other, kvm_exits,
		atomic_load(&vm->pio.unclaimed_reads) +
		    atomic_load(&vm->pio.unclaimed_writes) +
		    atomic_load(&vm->mmio.unclaimed_reads) +
		    atomic_load(&vm->mmio.unclaimed_writes),
		rss_kib, guest_kib, rss_kib - guest_kib);
}

static int exit_code(struct vm *vm)
{
	switch ((enum vm_exit_reason)atomic_load(&vm->exit_reason)) {
	case VM_POWEROFF:
	case VM_RESET:
		return EXIT_GUEST_OFF;
	case VM_PANIC:
		log_errx("guest kernel panicked");
		return EXIT_GUEST_PANIC;
	case VM_CRASH:
		return EXIT_GUEST_CRASH;
	case VM_SIGNALLED:
		return 128 + vm->stop_signal;
	case VM_RUNNING:
	case VM_HOST_ERROR:
		break;
	}
	return EXIT_HUTCH_ERROR;
}

static void on_stop(struct ev_handler *h, uint32_t events)
{
	(void)h;
	(void)events; /* the loop condition notices */
}

static void on_signal(struct ev_handler *h, uint32_t events)
{
	struct run_loop *l = container_of(h, struct run_loop, signal);
	struct signalfd_siginfo si;

	(void)events;
	if (read(l->sfd, &si, sizeof(si)) == sizeof(si)) {
		l->vm->stop_signal = (int)si.ssi_signo;
		vm_request_stop(l->vm, VM_SIGNALLED);
	}
}

static void on_stdin(struct ev_handler *h, uint32_t events)
{
	(void)events;
	input_read(container_of(h, struct run_loop, stdin_ready));
}

static void on_serial_space(struct ev_handler *h, uint32_t events)
{
	struct run_loop *l = container_of(h, struct run_loop, serial_space);
	uint64_t v;

	(void)events;
	if (read(l->vm->serial_space_efd, &v, sizeof(v)) >= 0)
		input_flush(l);
}

static void on_retry(struct ev_handler *h, uint32_t events)
{
	struct run_loop *l = container_of(h, struct run_loop, retry);
	uint64_t v;

	(void)events;
	if (read(l->in.retry_fd, &v, sizeof(v)) >= 0)
		input_flush(l);
}

static void on_keeper(struct ev_handler *h, uint32_t events)
{
	struct run_loop *l = container_of(h, struct run_loop, keeper);

	if (!(events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
		return;
	log_errx("jail: the keeper is gone; stopping");
	l->vm->stop_signal = SIGKILL;
	vm_request_stop(l->vm, VM_SIGNALLED);
}

static int event_loop(struct vm *vm)
{
	while (atomic_load(&vm->exit_reason) == VM_RUNNING) {
		struct epoll_event evs[16];
		int n = epoll_wait(vm->ep, evs, 16, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		/* A stop (signal, poweroff, host error) is acted on between
		 * any two handlers, not after the whole batch. */
		for (int i = 0;
		     i < n && atomic_load(&vm->exit_reason) == VM_RUNNING;
		     i++) {
			struct ev_handler *h = evs[i].data.ptr;

			h->fn(h, evs[i].events);
		}
	}
	return 0;
}

int vm_run(struct vm *vm)
{
	struct run_loop l = {
	    .vm = vm,
	    .sfd = -1,
	    .in = {.fd = STDIN_FILENO, .retry_fd = -1},
	    .stop = {on_stop},
	    .signal = {on_signal},
	    .stdin_ready = {on_stdin},
	    .serial_space = {on_serial_space},
	    .retry = {on_retry},
	    .keeper = {on_keeper},
	};
	sigset_t sigs;
	int ret;

	/* Block the stop signals in every thread (vCPU threads inherit the
	 * mask) and take them through signalfd in the loop instead. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sigdelset(&sigs, SIGUSR1);
	signal(SIGPIPE, SIG_IGN);

	l.sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	l.in.retry_fd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (l.sfd < 0 || l.in.retry_fd < 0) {
		ret = -errno;
		log_err(ret, "cannot set up event loop");
		vm_request_stop(vm, VM_HOST_ERROR);
		goto out;
	}
	ret = evloop_add(vm->ep, vm->stop_efd, EPOLLIN, &l.stop);
	if (!ret)
		ret = evloop_add(vm->ep, l.sfd, EPOLLIN, &l.signal);
	if (!ret)
		ret = evloop_add(vm->ep, vm->serial_space_efd, EPOLLIN,
				 &l.serial_space);
	if (!ret)
		ret = evloop_add(vm->ep, l.in.retry_fd, EPOLLIN, &l.retry);
	if (!ret && vm->cfg->keeper_fd >= 0)
		ret = evloop_add(vm->ep, vm->cfg->keeper_fd, EPOLLRDHUP,
				 &l.keeper);
	if (ret) {
		log_err(ret, "epoll");
		vm_request_stop(vm, VM_HOST_ERROR);
		goto out;
	}
	/* stdin may be a file or /dev/null, which epoll refuses: then the
	 * guest simply gets no input. */
	if (evloop_add(vm->ep, STDIN_FILENO, EPOLLIN, &l.stdin_ready) == 0) {
		l.in.polling = true;
		l.in.tty = isatty(STDIN_FILENO);
		if (l.in.tty)
			console_raw_stdin();
	} else {
		l.in.fd = -1;
	}

	/* A restored guest is past its boot: its agent listens already. */
	if (vm->restored)
		vm->ctl.boot_done(vm->ctl.opaque);
	/* Devices' own threads (a NIC's), jailed like the rest. */
	for (unsigned i = 0; i < vm->ndevs; i++) {
		struct device_instance *d = &vm->devs[i];

		if (d->type->start && (ret = d->type->start(d->dev))) {
			vm_request_stop(vm, VM_HOST_ERROR);
			goto out;
		}
	}
	for (unsigned i = 0; i < vm->ncpus; i++) {
		ret = vcpu_start(&vm->vcpus[i]);
		if (ret) {
			vm_request_stop(vm, VM_HOST_ERROR);
			break;
		}
	}
	/* Every vCPU runs: from here on only the event loop's list
	 * (seccomp_loop.c), teardown included. */
	if (!ret) {
		ret = seccomp_thread_apply(SECCOMP_LOOP, vm->cfg->seccomp);
		if (ret)
			vm_request_stop(vm, VM_HOST_ERROR);
		else
			vm_test_violate(vm, "loop");
	}
	if (!ret) {
		ret = event_loop(vm);
		if (ret) {
			log_err(ret, "event loop");
			vm_request_stop(vm, VM_HOST_ERROR);
		}
	}
out:
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].started = false;
		}
	for (unsigned i = 0; i < vm->ndevs; i++)
		if (vm->devs[i].type->stop)
			vm->devs[i].type->stop(vm->devs[i].dev);
	console_restore_tty();
	if (vm->cfg->stats)
		print_stats(vm, now_ns());
	/* Our handlers live on this stack: take them out of the loop. */
	if (l.in.fd >= 0)
		evloop_del(vm->ep, l.in.fd);
	evloop_del(vm->ep, vm->stop_efd);
	evloop_del(vm->ep, vm->serial_space_efd);
	if (vm->cfg->keeper_fd >= 0)
		evloop_del(vm->ep, vm->cfg->keeper_fd);
	if (l.sfd >= 0) {
		evloop_del(vm->ep, l.sfd);
		close(l.sfd);
	}
	if (l.in.retry_fd >= 0) {
		evloop_del(vm->ep, l.in.retry_fd);
		close(l.in.retry_fd);
	}
	return exit_code(vm);
}

void vm_destroy(struct vm *vm)
{
	control_close(&vm->control);
	/* Devices before guest memory: in-flight disk I/O still writes into
	 * guest RAM until they are gone. */
	for (unsigned i = vm->ndevs; i-- > 0;)
		vm->devs[i].type->destroy(vm->devs[i].dev);
	vm->ndevs = 0;
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->ncpus; i++)
			vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
	}
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	guest_mem_destroy(&vm->mem);
	arch_vm_free(vm);
	serial_destroy(&vm->serial);
	console_close(&vm->console);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	if (vm->serial_space_efd >= 0)
		close(vm->serial_space_efd);
	if (vm->ep >= 0)
		close(vm->ep);
	if (vm->status_fd >= 0)
		close(vm->status_fd);
	if (vm->kvm_exits_fd >= 0)
		close(vm->kvm_exits_fd);
	if (vm->pagemap_fd >= 0)
		close(vm->pagemap_fd);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
}
