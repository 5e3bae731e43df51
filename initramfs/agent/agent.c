// SPDX-License-Identifier: MIT
/*
 * hutch-agent: the guest end of hutch's agent protocol (PROTOCOL.md).
 *
 * As PID 1 of the initramfs (rdinit=/bin/hutch-agent) it sets the guest up
 * (agent_init.c), listens on vsock port 1024 and tells the VMM it is ready
 * through the boot timer port.  Anywhere else (tests on a host) it listens
 * on a Unix socket (--listen-unix PATH) and skips all of that.
 *
 * Everything runs in one epoll loop on one thread: the listener, a
 * signalfd (SIGCHLD for the reaper, and the power signals), connections,
 * and each command's pipes or pty, timeout timer and exec-status pipe.
 * Handlers only read and queue; each connection's writes, frame parsing
 * and flow control happen once per loop iteration in conn_service_dirty.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

struct agent agent;

static struct ev_handler listen_ev, signal_ev;
static int listen_fd = -1, signal_fd = -1;
static uint32_t listen_events;

static void vlog(int err, const char *fmt, va_list ap)
{
	char msg[512];
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	if (err)
		n += snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s",
			      strerror(-err));
	if ((size_t)n >= sizeof(msg) - 1)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	/* One write per line: the console is shared with the kernel. */
	if (write(STDERR_FILENO, "hutch-agent: ", 13) < 0 ||
	    write(STDERR_FILENO, msg, (size_t)n) < 0)
		return;
}

void agent_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(0, fmt, ap);
	va_end(ap);
}

void agent_log_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(err, fmt, ap);
	va_end(ap);
}

int ev_set(int fd, uint32_t *cur, uint32_t want, struct ev_handler *h)
{
	struct epoll_event ev = {.events = want, .data.ptr = h};
	int op;

	if (want == *cur)
		return 0;
	if (!want)
		op = EPOLL_CTL_DEL;
	else if (!*cur)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;
	if (epoll_ctl(agent.ep, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev) < 0)
		return -errno;
	*cur = want;
	return 0;
}

void ev_close(int *fd, uint32_t *cur)
{
	if (*fd < 0)
		return;
	/*
	 * Always unregister explicitly: a child between fork and exec may
	 * still hold a copy of the fd, and epoll forgets an fd only when its
	 * last copy closes, so it could report events for a freed owner.
	 */
	epoll_ctl(agent.ep, EPOLL_CTL_DEL, *fd, NULL);
	close(*fd);
	*fd = -1;
	if (cur)
		*cur = 0;
}

/* Out of fds or memory in accept: stop listening until something closes,
 * instead of spinning on a listener that stays readable. */
static void listen_pause(int err)
{
	agent_log_err(err, "accept (pausing the listener)");
	if (ev_set(listen_fd, &listen_events, 0, &listen_ev) == 0)
		agent.listen_paused = true;
}

void agent_listen_resume(void)
{
	if (!agent.listen_paused || listen_fd < 0)
		return;
	if (ev_set(listen_fd, &listen_events, EPOLLIN, &listen_ev) == 0)
		agent.listen_paused = false;
}

static void on_listen(struct ev_handler *h, uint32_t events)
{
	(void)h;
	(void)events;
	/* A bounded batch, so a connection storm cannot starve the rest. */
	for (int i = 0; i < 16; i++) {
		int fd = accept4(listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			switch (errno) {
			case EAGAIN:
			case EINTR:
				return;
			case ECONNABORTED:
			case EPROTO:
				continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				listen_pause(-errno);
				return;
			default:
				agent_log_err(-errno, "accept");
				return;
			}
		}
		if (agent.nconns >= MAX_CONNS) {
			close(fd);
			continue;
		}
		conn_new(fd);
	}
}

static void reap_children(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			return;
		proc_reaped(pid, status);
	}
}

static void on_power_signal(int signo)
{
	if (!agent.pid1) {
		agent.stop = true;
		return;
	}
	/* busybox reboot sends SIGTERM; halt SIGUSR1; poweroff SIGUSR2. */
	agent_log("signal %d: %s", signo,
		  signo == SIGTERM || signo == SIGINT ? "rebooting"
						      : "powering off");
	agent.shutdown =
	    signo == SIGTERM || signo == SIGINT ? RB_AUTOBOOT : RB_POWER_OFF;
}

static void on_signal(struct ev_handler *h, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)h;
	(void)events;
	while (read(signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			reap_children();
		else if (si.ssi_signo != SIGHUP)
			on_power_signal((int)si.ssi_signo);
	}
}

static int setup_signals(void)
{
	sigset_t set;

	/* Writes to a closed connection or pipe fail with EPIPE instead. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGPWR);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (signal_fd < 0)
		return -errno;
	signal_ev.fn = on_signal;
	{
		uint32_t cur = 0;

		return ev_set(signal_fd, &cur, EPOLLIN, &signal_ev);
	}
}

static int listen_on(int fd, const struct sockaddr *sa, socklen_t salen)
{
	int err;

	if (fd < 0)
		return -errno;
	if (bind(fd, sa, salen) < 0 || listen(fd, 128) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int listen_vsock(void)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK,
	    .svm_cid = VMADDR_CID_ANY,
	    .svm_port = AGENT_VSOCK_PORT,
	};

	return listen_on(
	    socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
	    (const struct sockaddr *)&sa, sizeof(sa));
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	/* A stale socket from an earlier run would make bind fail. */
	unlink(path);
	return listen_on(
	    socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
	    (const struct sockaddr *)&sa, sizeof(sa));
}

/* The listener; failing is not fatal as PID 1 (the VM may have no vsock
 * device), so the agent keeps reaping and answering power signals. */
static int setup_listener(const char *unix_path)
{
	int fd = unix_path ? listen_unix(unix_path) : listen_vsock();

	if (fd < 0) {
		if (unix_path)
			agent_log_err(fd, "cannot listen on %s", unix_path);
		else
			agent_log_err(fd,
				      "cannot listen on vsock port %u (no "
				      "virtio-vsock device?); running without "
				      "a listener",
				      AGENT_VSOCK_PORT);
		return fd;
	}
	listen_fd = fd;
	listen_ev.fn = on_listen;
	fd = ev_set(listen_fd, &listen_events, EPOLLIN, &listen_ev);
	if (fd < 0)
		return fd;
	if (unix_path)
		agent_log("listening on unix:%s", unix_path);
	else
		agent_log("listening on vsock port %u", AGENT_VSOCK_PORT);
	return 0;
}

static void bury_dead(void)
{
	struct list *pos, *tmp;
	bool any = false;

	list_for_each_safe(pos, tmp, &agent.dead_procs)
	{
		list_del(pos);
		proc_free(container_of(pos, struct proc, link));
		any = true;
	}
	list_for_each_safe(pos, tmp, &agent.dead_conns)
	{
		list_del(pos);
		conn_free(container_of(pos, struct conn, link));
		any = true;
	}
	if (any)
		agent_listen_resume();
}

static int run_loop(void)
{
	struct epoll_event evs[64];

	while (!agent.stop && !agent.shutdown) {
		/* Connections with work left from the last round: poll only. */
		int timeout = list_empty(&agent.dirty) ? -1 : 0;
		int n = epoll_wait(agent.ep, evs, 64, timeout);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct ev_handler *h = evs[i].data.ptr;

			h->fn(h, evs[i].events);
		}
		conn_service_dirty();
		bury_dead();
	}
	return 0;
}

void kill_all_commands(void)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &agent.conns)
	{
		conn_close(container_of(pos, struct conn, link));
	}
	bury_dead();
}

/* Commands may open many pipes and files; the default 1024 is low. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (agent.pid1 && rl.rlim_max < 65536)
		rl.rlim_max = 65536;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		agent_log_err(-errno, "setrlimit NOFILE");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hutch-agent --listen-unix PATH [--cgroup DIR]\n"
		"  (as PID 1 of a hutch guest it takes no arguments and "
		"listens on vsock port %u)\n",
		AGENT_VSOCK_PORT);
}

/* 0, or 2 for a usage error (reported). */
static int parse_args(int argc, char **argv, const char **unix_path,
		      const char **cgroup)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--listen-unix") && i + 1 < argc) {
			*unix_path = argv[++i];
		} else if (!strcmp(argv[i], "--cgroup") && i + 1 < argc) {
			*cgroup = argv[++i];
		} else if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			exit(0);
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!*unix_path) {
		usage(stderr);
		return 2;
	}
	return 0;
}

static void init_state(void)
{
	agent.ep = -1;
	agent.root_fd = -1;
	agent.cgroup_fd = -1;
	list_init(&agent.conns);
	list_init(&agent.procs);
	list_init(&agent.dirty);
	list_init(&agent.dead_conns);
	list_init(&agent.dead_procs);
	agent.pid1 = getpid() == 1;
}

static int setup(const char *unix_path, const char *cgroup)
{
	int err;

	if (agent.pid1) {
		err = pid1_setup();
		if (err)
			return err;
	} else {
		/* Orphans of our commands come back to us, as to PID 1. */
		prctl(PR_SET_CHILD_SUBREAPER, 1);
		if (cgroup) {
			err = cgroup_setup(cgroup, -1, 4096);
			if (err)
				return err;
		}
	}
	raise_nofile();
	agent.root_fd = open(agent.chroot_dir ? agent.chroot_dir : "/",
			     O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (agent.root_fd < 0)
		return -errno;
	agent.ep = epoll_create1(EPOLL_CLOEXEC);
	if (agent.ep < 0)
		return -errno;
	err = setup_signals();
	if (err)
		return err;
	err = setup_listener(unix_path);
	if (err && unix_path)
		return err;
	if (agent.pid1)
		boot_done();
	return 0;
}

static void teardown(void)
{
	kill_all_commands();
	if (listen_fd >= 0)
		close(listen_fd);
	if (signal_fd >= 0)
		close(signal_fd);
	if (agent.ep >= 0)
		close(agent.ep);
	if (agent.root_fd >= 0)
		close(agent.root_fd);
	if (agent.cgroup_fd >= 0)
		close(agent.cgroup_fd);
	listen_fd = signal_fd = agent.ep = agent.root_fd = agent.cgroup_fd = -1;
}

int main(int argc, char **argv)
{
	const char *unix_path = NULL, *cgroup = NULL;
	int err;

	init_state();
	/* As PID 1, argv holds the kernel's leftovers: ignore them. */
	if (!agent.pid1 && parse_args(argc, argv, &unix_path, &cgroup))
		return 2;
	err = setup(unix_path, cgroup);
	if (err) {
		agent_log_err(err, "set-up failed");
		/* As PID 1 this panics the guest: the host sees why. */
		return 1;
	}
	err = run_loop();
	if (err)
		agent_log_err(err, "epoll_wait");
	teardown();
	if (agent.pid1)
		pid1_finish(agent.shutdown ? agent.shutdown : RB_POWER_OFF);
	if (unix_path)
		unlink(unix_path);
	return err ? 1 : 0;
}
