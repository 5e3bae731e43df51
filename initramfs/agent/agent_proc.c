// SPDX-License-Identifier: MIT
/*
 * Commands: EXEC, their stdio, signals, timeouts and exit.
 *
 * A command's life: fork, the child sets itself up and execs (failures
 * come back through a CLOEXEC pipe as errno + step, so the host gets
 * ERROR instead of STARTED); the pipe's EOF means exec succeeded: STARTED,
 * and only then its output is read (so no STDOUT precedes STARTED).  EXIT
 * goes out once the reaper has its status AND stdout/stderr are at EOF,
 * so every byte it wrote is queued before EXIT.
 *
 * Output is read one chunk per event, only while the connection's write
 * queue is short (conn->out_paused): a process writing faster than the
 * host reads blocks on its full pipe, in the guest, at no cost to us.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* ---- lookup and teardown ---- */

struct proc *proc_find(struct conn *c, uint32_t id)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->procs)
	{
		struct proc *p = container_of(pos, struct proc, link);

		if (p->id == id)
			return p;
	}
	return NULL;
}

static void stdin_drop(struct proc *p)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &p->stdin_q)
	{
		list_del(pos);
		free(container_of(pos, struct chunk, link));
	}
	p->conn->stdin_bytes -= p->stdin_bytes;
	p->stdin_bytes = 0;
	/* Input may have been held back for this backlog. */
	conn_dirty(p->conn);
}

/* Unlink from everything and close every fd; freed after the batch. */
static void proc_bury(struct proc *p)
{
	p->dead = true;
	stdin_drop(p);
	ev_close(&p->in.fd, &p->in.events);
	ev_close(&p->out.fd, &p->out.events);
	ev_close(&p->err.fd, &p->err.events);
	ev_close(&p->timer.fd, &p->timer.events);
	ev_close(&p->exec.fd, &p->exec.events);
	list_del(&p->link);
	list_del(&p->all);
	list_add_tail(&agent.dead_procs, &p->link);
	agent.nprocs--;
}

/* Its group, and itself in case it has not called setsid yet.  Once
 * reaped, its pid may be reused: only the group (which pins the number
 * while it has members) is safe to name. */
static int proc_kill_group(struct proc *p, int signo)
{
	/* Never kill(0) or kill(-1): that would be us, or everyone. */
	if (p->pid <= 1)
		return -ESRCH;
	if (kill(-p->pid, signo) == 0)
		return 0;
	if (errno == ESRCH && !p->reaped && kill(p->pid, signo) == 0)
		return 0;
	return -errno;
}

void proc_kill(struct proc *p)
{
	if (p->dead)
		return;
	proc_kill_group(p, SIGKILL);
	proc_bury(p);
}

void proc_free(struct proc *p)
{
	free(p);
}

static void proc_maybe_finish(struct proc *p)
{
	struct agent_exit_msg m = {.code = -1};
	struct agent_wbuf b = {0};

	if (p->dead || !p->started || !p->reaped ||
	    (p->out.fd >= 0 && !p->pty_eof) || p->err.fd >= 0)
		return;
	if (WIFEXITED(p->wstatus))
		m.code = WEXITSTATUS(p->wstatus);
	else if (WIFSIGNALED(p->wstatus))
		m.signal = WTERMSIG(p->wstatus);
	m.timed_out = p->timed_out;
	agent_enc_exit(&b, &m);
	conn_send_msg(p->conn, AGENT_EXIT, p->id, &b);
	proc_bury(p);
}

/* ---- events ---- */

void proc_sync_events(struct proc *p)
{
	bool out_ok = p->started && !p->conn->out_paused && !p->pty_eof;
	bool in_ok = !list_empty(&p->stdin_q);
	int err = 0;

	if (p->dead)
		return;
	if (p->out.fd >= 0)
		err = ev_set(p->out.fd, &p->out.events,
			     (out_ok ? EPOLLIN : 0) |
				 (p->pty && in_ok ? EPOLLOUT : 0),
			     &p->out.ev);
	if (!err && p->err.fd >= 0)
		err = ev_set(p->err.fd, &p->err.events, out_ok ? EPOLLIN : 0,
			     &p->err.ev);
	if (!err && p->in.fd >= 0)
		err = ev_set(p->in.fd, &p->in.events, in_ok ? EPOLLOUT : 0,
			     &p->in.ev);
	if (err)
		agent_log_err(err, "epoll_ctl (process %d)", p->pid);
}

static void stdin_close(struct proc *p)
{
	stdin_drop(p);
	ev_close(&p->in.fd, &p->in.events);
}

/* Write queued stdin until the pipe or pty is full. */
static void stdin_write(struct proc *p)
{
	int fd = p->pty ? p->out.fd : p->in.fd;

	while (!list_empty(&p->stdin_q) && fd >= 0) {
		struct chunk *ch =
		    container_of(p->stdin_q.next, struct chunk, link);
		ssize_t n = write(fd, ch->data + ch->off, ch->len - ch->off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EPIPE (it closed stdin), EIO (pty hung up). */
			stdin_close(p);
			return;
		}
		ch->off += (size_t)n;
		p->stdin_bytes -= (size_t)n;
		p->conn->stdin_bytes -= (size_t)n;
		conn_dirty(p->conn);
		if (ch->off == ch->len) {
			list_del(&ch->link);
			free(ch);
		}
	}
	if (p->stdin_eof && list_empty(&p->stdin_q))
		ev_close(&p->in.fd, &p->in.events);
}

static void output_read(struct proc *p, struct pfd *f)
{
	static uint8_t buf[AGENT_MAX_CHUNK];
	struct conn *c = p->conn;
	ssize_t n = read(f->fd, buf, sizeof(buf));

	if (n > 0) {
		conn_send(c, f == &p->err ? AGENT_STDERR : AGENT_STDOUT, p->id,
			  buf, (size_t)n);
		/* Stop the other sources in this same batch already. */
		conn_update_flow(c);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EOF; or EIO: a pty master once every slave fd is closed. */
	if (p->pty) {
		/*
		 * Keep the master open until the command is reaped: closing
		 * it hangs the terminal up, and a SIGHUP that reaches the
		 * session leader while it exits replaces its exit status.
		 */
		stdin_drop(p);
		p->pty_eof = true;
		ev_set(f->fd, &f->events, 0, &f->ev);
	} else {
		ev_close(&f->fd, &f->events);
	}
	proc_maybe_finish(p);
}

static void on_output(struct ev_handler *h, uint32_t events)
{
	struct pfd *f = container_of(h, struct pfd, ev);
	struct proc *p = f->proc;

	if (p->dead || f->fd < 0 || p->pty_eof)
		return;
	if (p->pty && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
	    !list_empty(&p->stdin_q))
		stdin_write(p);
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
	    (f->events & EPOLLIN) && !p->conn->out_paused)
		output_read(p, f);
	proc_sync_events(p);
}

static void on_stdin(struct ev_handler *h, uint32_t events)
{
	struct proc *p = container_of(h, struct proc, in.ev);

	(void)events;
	if (p->dead)
		return;
	stdin_write(p);
	proc_sync_events(p);
}

static void on_timeout(struct ev_handler *h, uint32_t events)
{
	struct proc *p = container_of(h, struct proc, timer.ev);

	(void)events;
	if (p->dead)
		return;
	ev_close(&p->timer.fd, &p->timer.events);
	/* After its exit the timer still ends stragglers that hold its
	 * output open, but the command itself was not late. */
	if (!p->reaped)
		p->timed_out = true;
	proc_kill_group(p, SIGKILL);
}

static void on_exec_status(struct ev_handler *h, uint32_t events)
{
	struct proc *p = container_of(h, struct proc, exec.ev);
	int32_t msg[2];
	ssize_t n;
	struct agent_wbuf b = {0};

	(void)events;
	if (p->dead)
		return;
	n = read(p->exec.fd, msg, sizeof(msg));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	ev_close(&p->exec.fd, &p->exec.events);
	if (n != 0) {
		/* {errno, step}; anything else is a child gone wrong. */
		bool ok = n == sizeof(msg) && msg[0] > 0 && msg[0] < 4096;
		int err = ok ? msg[0] : EIO;

		conn_send_error(p->conn, p->id, err, "%s: %s",
				exec_step_name(ok ? msg[1] : -1),
				strerror(err));
		/* The child _exits; the reaper collects it unannounced. */
		proc_kill(p);
		return;
	}
	p->started = true;
	agent_enc_started(&b, (uint32_t)p->pid);
	conn_send_msg(p->conn, AGENT_STARTED, p->id, &b);
	proc_sync_events(p);
	proc_maybe_finish(p);
}

void proc_reaped(pid_t pid, int wstatus)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &agent.procs)
	{
		struct proc *p = container_of(pos, struct proc, all);

		if (p->pid != pid || p->reaped)
			continue;
		p->reaped = true;
		p->wstatus = wstatus;
		if (!p->pty)
			stdin_close(p);
		proc_sync_events(p);
		proc_maybe_finish(p);
		return;
	}
	/* An orphan, or a command whose connection is gone. */
}

static struct proc *proc_alloc(struct conn *c, uint32_t id, bool pty)
{
	struct proc *p = calloc(1, sizeof(*p));
	struct pfd *fds[5];

	if (!p)
		return NULL;
	fds[0] = &p->in;
	fds[1] = &p->out;
	fds[2] = &p->err;
	fds[3] = &p->timer;
	fds[4] = &p->exec;
	for (int i = 0; i < 5; i++) {
		fds[i]->fd = -1;
		fds[i]->proc = p;
		fds[i]->ev.fn = on_output;
	}
	p->in.ev.fn = on_stdin;
	p->timer.ev.fn = on_timeout;
	p->exec.ev.fn = on_exec_status;
	p->conn = c;
	p->id = id;
	p->pty = pty;
	list_init(&p->stdin_q);
	list_init(&p->link);
	list_init(&p->all);
	return p;
}

/* Fork and exec; the outcome arrives on the exec-status pipe. */
void proc_exec(struct conn *c, uint32_t id, const uint8_t *payload, size_t len)
{
	struct agent_exec_req req;
	struct proc *p;
	int err;

	if (agent_dec_exec(payload, len, &req) < 0) {
		conn_send_error(c, id, EPROTO, "EXEC: malformed payload");
		return;
	}
	if (!id)
		conn_send_error(c, id, EINVAL, "EXEC: id 0 is reserved");
	else if (conn_id_in_use(c, id))
		conn_send_error(c, id, EEXIST, "EXEC: id %u in use", id);
	else if (!req.argc)
		conn_send_error(c, id, EINVAL, "EXEC: empty argv");
	else if (req.flags & ~AGENT_EXEC_FLAGS)
		conn_send_error(c, id, EINVAL, "EXEC: unknown flags %#x",
				req.flags);
	else if (agent.nprocs >= MAX_PROCS)
		conn_send_error(c, id, EAGAIN, "EXEC: %u commands running",
				agent.nprocs);
	else
		goto spawn;
	agent_exec_req_free(&req);
	return;
spawn:
	p = proc_alloc(c, id, req.flags & AGENT_EXEC_PTY);
	err = p ? proc_spawn(p, &req) : -ENOMEM;
	if (err) {
		conn_send_error(c, id, -err, "EXEC: %s", strerror(-err));
		if (p) {
			/* Not linked yet: bury it like any other. */
			list_add_tail(&agent.procs, &p->all);
			list_add_tail(&c->procs, &p->link);
			agent.nprocs++;
			proc_bury(p);
		}
	} else {
		list_add_tail(&agent.procs, &p->all);
		list_add_tail(&c->procs, &p->link);
		agent.nprocs++;
	}
	agent_exec_req_free(&req);
}

/* ---- host requests for a running command ---- */

static struct proc *find_or_err(struct conn *c, uint32_t id, const char *what)
{
	struct proc *p = proc_find(c, id);

	if (!p)
		conn_send_error(c, id, ESRCH, "%s: no process %u", what, id);
	return p;
}

void proc_stdin(struct conn *c, uint32_t id, const uint8_t *data, size_t len)
{
	struct proc *p = find_or_err(c, id, "STDIN");
	struct chunk *ch;

	if (!p || !len)
		return;
	/* Its stdin is closed (STDIN_EOF, exit, or it closed it): like a
	 * pipe without reader, the bytes go nowhere. */
	if ((p->pty ? p->out.fd : p->in.fd) < 0 || p->pty_eof ||
	    (p->stdin_eof && !p->pty))
		return;
	ch = malloc(sizeof(*ch) + len);
	if (!ch) {
		conn_send_error(c, id, ENOMEM, "STDIN: out of memory");
		return;
	}
	memcpy(ch->data, data, len);
	ch->len = len;
	ch->off = 0;
	list_add_tail(&p->stdin_q, &ch->link);
	p->stdin_bytes += len;
	c->stdin_bytes += len;
	stdin_write(p);
	proc_sync_events(p);
}

void proc_stdin_eof(struct conn *c, uint32_t id, size_t len)
{
	struct proc *p = find_or_err(c, id, "STDIN_EOF");
	struct termios t;
	uint8_t veof = 4; /* ^D */

	if (!p)
		return;
	if (len) {
		conn_send_error(c, id, EPROTO, "STDIN_EOF: payload not empty");
		return;
	}
	if (!p->pty) {
		p->stdin_eof = true;
		if (list_empty(&p->stdin_q))
			ev_close(&p->in.fd, &p->in.events);
		return;
	}
	/* A terminal has no half-close: type its end-of-file character,
	 * which ends input for a reader at the start of a line. */
	if (p->out.fd >= 0 && tcgetattr(p->out.fd, &t) == 0)
		veof = t.c_cc[VEOF];
	proc_stdin(c, id, &veof, 1);
}

void proc_signal(struct conn *c, uint32_t id, const uint8_t *data, size_t len)
{
	struct proc *p;
	uint32_t signo;
	int err;

	if (agent_dec_signal(data, len, &signo)) {
		conn_send_error(c, id, EPROTO, "SIGNAL: payload is a u32");
		return;
	}
	p = find_or_err(c, id, "SIGNAL");
	if (!p)
		return;
	if (signo < 1 || signo >= (uint32_t)NSIG) {
		conn_send_error(c, id, EINVAL, "SIGNAL: bad signal %u", signo);
		return;
	}
	err = proc_kill_group(p, (int)signo);
	if (err)
		conn_send_error(c, id, -err, "SIGNAL: %s", strerror(-err));
}

void proc_resize(struct conn *c, uint32_t id, const uint8_t *data, size_t len)
{
	struct winsize ws = {0};
	struct proc *p;

	uint16_t rows, cols;

	if (agent_dec_resize(data, len, &rows, &cols)) {
		conn_send_error(c, id, EPROTO, "RESIZE: payload is 2 u16");
		return;
	}
	p = find_or_err(c, id, "RESIZE");
	if (!p)
		return;
	if (!p->pty) {
		conn_send_error(c, id, ENOTTY, "RESIZE: not a PTY process");
		return;
	}
	ws.ws_row = rows;
	ws.ws_col = cols;
	/* After the pty closed there is nothing left to resize. */
	if (p->out.fd >= 0 && ioctl(p->out.fd, TIOCSWINSZ, &ws) < 0)
		conn_send_error(c, id, errno, "RESIZE: %s", strerror(errno));
}
