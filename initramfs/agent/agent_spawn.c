// SPDX-License-Identifier: MIT
/*
 * Starting a command: parse EXEC, open its pipes or pty, fork, and in the
 * child set up session, stdio, cgroup, oom_score_adj, root, cwd and ids
 * before execvp.  The child reports a failure as {errno, step} on a
 * CLOEXEC pipe (agent_proc.c turns it into ERROR); exec closes the pipe,
 * which is the success report.
 *
 * The child makes system calls and execvp, nothing that allocates: the
 * agent is single threaded, but its heap (a sanitizer's, in tests) is
 * best left alone after fork.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

enum child_step {
	STEP_SETSID,
	STEP_CTTY,
	STEP_DUP2,
	STEP_CGROUP,
	STEP_OOM,
	STEP_CHROOT,
	STEP_CHDIR,
	STEP_SETGROUPS,
	STEP_SETGID,
	STEP_SETUID,
	STEP_EXEC,
	STEP_COUNT
};

static const char *const step_names[STEP_COUNT] = {
    [STEP_SETSID] = "setsid",	  [STEP_CTTY] = "controlling tty",
    [STEP_DUP2] = "dup2",	  [STEP_CGROUP] = "cgroup",
    [STEP_OOM] = "oom_score_adj", [STEP_CHROOT] = "chroot",
    [STEP_CHDIR] = "chdir",	  [STEP_SETGROUPS] = "setgroups",
    [STEP_SETGID] = "setgid",	  [STEP_SETUID] = "setuid",
    [STEP_EXEC] = "execvp",
};

/* The child's ends, and the exec-status pipe's write end. */
struct child_fds {
	int in, out, err, status;
};

static char *default_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "TERM=xterm",
    NULL,
};

/* ---- the child, between fork and exec ---- */

static void __attribute__((noreturn)) child_fail(int fd, int step, int err)
{
	int32_t msg[2] = {err, step};
	/* Atomic (under PIPE_BUF); if it fails, the parent reports EIO. */
	ssize_t n = write(fd, msg, sizeof(msg));

	(void)n;
	_exit(127);
}

static void __attribute__((noreturn))
child_run(const struct agent_exec_req *req, const struct child_fds *cf,
	  bool pty)
{
	sigset_t none;
	int fd;

	/* Undo what the agent set for itself: blocked signals (signalfd)
	 * and SIGPIPE ignored survive exec otherwise. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (setsid() < 0)
		child_fail(cf->status, STEP_SETSID, errno);
	if (pty && ioctl(cf->in, TIOCSCTTY, 0) < 0)
		child_fail(cf->status, STEP_CTTY, errno);
	/* fds 0-2 are always taken in the agent, so these never overlap;
	 * the originals are CLOEXEC. */
	if (dup2(cf->in, 0) < 0 || dup2(cf->out, 1) < 0 || dup2(cf->err, 2) < 0)
		child_fail(cf->status, STEP_DUP2, errno);
	if (agent.cgroup_fd >= 0 && write(agent.cgroup_fd, "0", 1) < 0)
		child_fail(cf->status, STEP_CGROUP, errno);
	if (agent.reset_oom) {
		fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) < 0)
			child_fail(cf->status, STEP_OOM, errno);
		close(fd);
	}
	umask(022);
	if (agent.chroot_dir && chroot(agent.chroot_dir) < 0)
		child_fail(cf->status, STEP_CHROOT, errno);
	if (chdir(req->cwd[0] ? req->cwd : "/") < 0)
		child_fail(cf->status, STEP_CHDIR, errno);
	if (req->uid != geteuid() || req->gid != getegid()) {
		if (setgroups(0, NULL) < 0)
			child_fail(cf->status, STEP_SETGROUPS, errno);
		if (setgid(req->gid) < 0)
			child_fail(cf->status, STEP_SETGID, errno);
		if (setuid(req->uid) < 0)
			child_fail(cf->status, STEP_SETUID, errno);
	}
	/* execvp searches the PATH of environ: the command's, as intended. */
	environ = req->envc ? req->env : default_env;
	execvp(req->argv[0], req->argv);
	child_fail(cf->status, STEP_EXEC, errno);
}

/* ---- the parent ---- */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* A pipe whose parent end (index parent_end) is non-blocking. */
static int make_pipe(int fds[2], int parent_end)
{
	int err;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	err = set_nonblock(fds[parent_end]);
	if (err) {
		close(fds[0]);
		close(fds[1]);
	}
	return err;
}

static int open_pty(int *master, int *slave, uint16_t rows, uint16_t cols)
{
	struct winsize ws = {.ws_row = rows ? rows : 24,
			     .ws_col = cols ? cols : 80};
	int m, s, err;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return -errno;
	if (unlockpt(m) < 0 || ioctl(m, TIOCSWINSZ, &ws) < 0)
		goto err;
	s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		goto err;
	*master = m;
	*slave = s;
	return 0;
err:
	err = -errno;
	close(m);
	return err;
}

static void close_child_fds(struct child_fds *cf)
{
	int *fds[] = {&cf->in, &cf->out, &cf->err, &cf->status};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		/* In PTY mode in, out and err are one slave fd. */
		for (size_t j = i + 1; j < sizeof(fds) / sizeof(fds[0]); j++)
			if (*fds[j] == *fds[i])
				*fds[j] = -1;
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

static int setup_stdio(struct proc *p, const struct agent_exec_req *req,
		       struct child_fds *cf)
{
	int fds[2], err;

	if (p->pty) {
		err = open_pty(&p->out.fd, &cf->in, req->rows, req->cols);
		cf->out = cf->err = cf->in;
		return err;
	}
	err = make_pipe(fds, 1);
	if (err)
		return err;
	cf->in = fds[0];
	p->in.fd = fds[1];
	err = make_pipe(fds, 0);
	if (err)
		return err;
	p->out.fd = fds[0];
	cf->out = fds[1];
	err = make_pipe(fds, 0);
	if (err)
		return err;
	p->err.fd = fds[0];
	cf->err = fds[1];
	return 0;
}

static int setup_timer(struct proc *p, uint32_t timeout_ms)
{
	struct itimerspec its = {
	    .it_value.tv_sec = timeout_ms / 1000,
	    .it_value.tv_nsec = (long)(timeout_ms % 1000) * 1000000,
	};

	if (!timeout_ms)
		return 0;
	p->timer.fd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (p->timer.fd < 0)
		return -errno;
	if (timerfd_settime(p->timer.fd, 0, &its, NULL) < 0)
		return -errno;
	return ev_set(p->timer.fd, &p->timer.events, EPOLLIN, &p->timer.ev);
}

int proc_spawn(struct proc *p, const struct agent_exec_req *req)
{
	struct child_fds cf = {-1, -1, -1, -1};
	int fds[2], err;
	pid_t pid;

	err = setup_stdio(p, req, &cf);
	if (!err)
		err = make_pipe(fds, 0);
	if (err)
		goto out;
	p->exec.fd = fds[0];
	cf.status = fds[1];
	err = setup_timer(p, req->timeout_ms);
	if (!err)
		err = ev_set(p->exec.fd, &p->exec.events, EPOLLIN, &p->exec.ev);
	if (err)
		goto out;
	pid = fork();
	if (pid < 0) {
		err = -errno;
		goto out;
	}
	if (pid == 0)
		child_run(req, &cf, p->pty);
	p->pid = pid;
out:
	close_child_fds(&cf);
	return err;
}

const char *exec_step_name(int step)
{
	return step >= 0 && step < STEP_COUNT ? step_names[step] : "exec";
}
