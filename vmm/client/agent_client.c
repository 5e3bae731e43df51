// SPDX-License-Identifier: MIT
#include "vmm/client/agent_client.h"

#include "agent_codec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The deadline timeout_ms from now; 0 (none) for a timeout of 0. */
static uint64_t deadline_in(unsigned timeout_ms)
{
	return timeout_ms ? mono_ms() + timeout_ms : 0;
}

/*
 * Wait until fd is ready for events, at most until deadline (0: forever).
 * 0, -ETIMEDOUT, or negative errno.  Every blocking read and write of
 * the client goes through here, so an agent (or a VMM) that stops
 * answering, or trickles bytes, costs a bounded wait, never a hang.
 */
static int io_wait(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		uint64_t now = mono_ms();
		int left = !deadline		    ? -1
			   : now >= deadline	    ? 0
			   : deadline - now > 60000 ? 60000
						    : (int)(deadline - now);
		int n = poll(&p, 1, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 0;
		if (deadline && mono_ms() >= deadline)
			return -ETIMEDOUT;
	}
}

static int write_all(int fd, const void *buf, size_t len, unsigned timeout_ms)
{
	uint64_t deadline = deadline_in(timeout_ms);
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		int ret;

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ret = io_wait(fd, POLLOUT, deadline);
			if (ret)
				return ret;
			continue;
		}
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Plain blocking write for local descriptors (the user's stdout, a file):
 * those are the user's to keep flowing. */
static int write_local(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send a payload built with the codec as one frame and free it. */
static int msg_send(struct agent_conn *c, uint16_t type, uint32_t id,
		    struct agent_wbuf *b)
{
	int ret =
	    b->oom ? -ENOMEM : agent_send(c, type, id, b->p, (uint32_t)b->len);

	agent_wbuf_free(b);
	return ret;
}

/* 1: all read; 0: EOF before the first byte; negative errno otherwise
 * (-ETIMEDOUT when not all of it came by deadline, 0: none). */
static int read_full(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, p + got, len - got, MSG_DONTWAIT);
		int ret;

		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, p + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ret = io_wait(fd, POLLIN, deadline);
			if (ret)
				return ret;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return got ? -EPIPE : 0;
		got += (size_t)n;
	}
	return 1;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

static void conn_init(struct agent_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->io_timeout_ms = AGENT_IO_TIMEOUT_MS;
}

int agent_connect_unix(struct agent_conn *c, const char *path)
{
	int fd = unix_connect(path);

	if (fd < 0)
		return fd;
	conn_init(c, fd);
	return 0;
}

int agent_connect_vsock(struct agent_conn *c, const char *uds_path,
			unsigned port)
{
	return agent_connect_vsock_timeout(c, uds_path, port,
					   AGENT_IO_TIMEOUT_MS);
}

int agent_connect_vsock_timeout(struct agent_conn *c, const char *uds_path,
				unsigned port, unsigned timeout_ms)
{
	uint64_t deadline = deadline_in(timeout_ms);
	char line[64];
	size_t n = 0;
	int fd = unix_connect(uds_path), ret;

	if (fd < 0)
		return fd;
	n = (size_t)snprintf(line, sizeof(line), "CONNECT %u\n", port);
	ret = write_all(fd, line, n, timeout_ms);
	/* Byte by byte: what follows the reply line is the agent's.  A VMM
	 * that never answers (hung, or not a VMM at all) costs at most
	 * timeout_ms. */
	for (n = 0; !ret && n < sizeof(line) - 1; n++) {
		ret = read_full(fd, line + n, 1, deadline);
		if (ret == 0)
			ret = -ECONNRESET; /* nobody listening in the guest */
		if (ret < 0)
			break;
		ret = 0;
		if (line[n] == '\n')
			break;
	}
	if (!ret && (n >= sizeof(line) - 1 || strncmp(line, "OK ", 3)))
		ret = -EPROTO;
	if (ret) {
		close(fd);
		return ret;
	}
	conn_init(c, fd);
	return 0;
}

int agent_connect_cid(struct agent_conn *c, unsigned cid, unsigned port,
		      unsigned timeout_ms)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
	struct timeval tv = {.tv_sec = timeout_ms / 1000,
			     .tv_usec = (timeout_ms % 1000) * 1000};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0), ret;

	if (fd < 0)
		return -errno;
	if (timeout_ms &&
	    setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv,
		       sizeof(tv)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	conn_init(c, fd);
	return 0;
}

int agent_wait_ready(struct agent_conn *c, const char *uds_path, unsigned port,
		     unsigned timeout_ms)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	int ret;

	for (;;) {
		struct timespec pause = {0, 5 * 1000 * 1000};

		ret = agent_connect_vsock(c, uds_path, port);
		if (ret == 0 || mono_ms() >= deadline)
			return ret;
		if (ret != -ENOENT && ret != -ECONNREFUSED &&
		    ret != -ECONNRESET && ret != -EPIPE)
			return ret;
		nanosleep(&pause, NULL);
	}
}

void agent_close(struct agent_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->cap = 0;
}

int agent_send(struct agent_conn *c, uint16_t type, uint32_t id,
	       const void *payload, uint32_t len)
{
	struct agent_hdr h = {.len = len, .type = type, .id = id};
	uint8_t hdr[AGENT_HDR_LEN];
	int ret;

	if (len > AGENT_MAX_PAYLOAD)
		return -EMSGSIZE;
	agent_hdr_encode(hdr, &h);
	ret = write_all(c->fd, hdr, sizeof(hdr), c->io_timeout_ms);
	if (!ret && len)
		ret = write_all(c->fd, payload, len, c->io_timeout_ms);
	return ret;
}

/* One whole frame by deadline (0: none). */
static int recv_frame(struct agent_conn *c, struct agent_hdr *h,
		      const uint8_t **payload, uint64_t deadline)
{
	uint8_t hdr[AGENT_HDR_LEN];
	int ret = read_full(c->fd, hdr, sizeof(hdr), deadline);

	if (ret <= 0)
		return ret;
	agent_hdr_decode(h, hdr);
	if (h->len > AGENT_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (h->len > c->cap) {
		uint8_t *p = realloc(c->buf, h->len);

		if (!p)
			return -ENOMEM;
		c->buf = p;
		c->cap = h->len;
	}
	if (h->len) {
		ret = read_full(c->fd, c->buf, h->len, deadline);
		if (ret <= 0)
			return ret ? ret : -EPIPE;
	}
	*payload = c->buf;
	return 1;
}

int agent_recv(struct agent_conn *c, struct agent_hdr *h,
	       const uint8_t **payload)
{
	return recv_frame(c, h, payload, deadline_in(c->io_timeout_ms));
}

/* An ERROR frame: remember the message, return its errno (negative). */
static int agent_error(struct agent_conn *c, const uint8_t *p, uint32_t len)
{
	struct agent_str msg;
	int32_t err;

	if (agent_dec_error(p, len, &err, &msg))
		return -EPROTO;
	/* The guest's words reach a terminal: no escapes, valid UTF-8. */
	agent_text_clean(c->error, sizeof(c->error), msg.p, msg.len);
	return err > 0 && err < 4096 ? -err : -EIO;
}

/* Wait for the next frame about id (others are dropped), all within the
 * I/O timeout: frames about other ids do not extend it. */
static int recv_for(struct agent_conn *c, uint32_t id, struct agent_hdr *h,
		    const uint8_t **p)
{
	uint64_t deadline = deadline_in(c->io_timeout_ms);

	for (;;) {
		int ret = recv_frame(c, h, p, deadline);

		if (ret == 0)
			return -ECONNRESET;
		if (ret < 0)
			return ret;
		if (h->id == id)
			return 0;
	}
}

int agent_hello(struct agent_conn *c, uint32_t *version, char *name,
		size_t name_len)
{
	struct agent_wbuf b = {0};
	struct agent_str agent_name;
	struct agent_hdr h;
	const uint8_t *p;
	int ret;

	agent_enc_hello(&b, AGENT_PROTO_VERSION);
	ret = msg_send(c, AGENT_HELLO, 0, &b);
	if (!ret)
		ret = recv_for(c, 0, &h, &p);
	if (ret)
		return ret;
	if (h.type == AGENT_ERROR)
		return agent_error(c, p, h.len);
	if (h.type != AGENT_HELLO_OK ||
	    agent_dec_hello_ok(p, h.len, version, &agent_name))
		return -EPROTO;
	if (name_len)
		agent_text_clean(name, name_len, agent_name.p, agent_name.len);
	return 0;
}

static uint32_t new_id(struct agent_conn *c)
{
	if (++c->next_id == 0)
		c->next_id = 1;
	return c->next_id;
}

int agent_exec_start(struct agent_conn *c, const struct agent_exec *e,
		     uint32_t *id)
{
	struct agent_exec_args a = {
	    .flags = e->pty ? AGENT_EXEC_PTY : 0,
	    .timeout_ms = e->timeout_ms,
	    .uid = e->uid,
	    .gid = e->gid,
	    .rows = e->rows,
	    .cols = e->cols,
	    .argv = e->argv,
	    .env = e->env,
	    .cwd = e->cwd,
	};
	struct agent_wbuf b = {0};
	struct agent_hdr h;
	const uint8_t *p;
	uint32_t pid;
	int ret;

	*id = new_id(c);
	agent_enc_exec(&b, &a);
	ret = msg_send(c, AGENT_EXEC, *id, &b);
	if (!ret)
		ret = recv_for(c, *id, &h, &p);
	if (ret)
		return ret;
	if (h.type == AGENT_ERROR)
		return agent_error(c, p, h.len);
	return h.type == AGENT_STARTED && !agent_dec_started(p, h.len, &pid)
		   ? 0
		   : -EPROTO;
}

/*
 * Frames waiting to go to the agent while a process runs.  Sending never
 * blocks there: a process that echoes its stdin (cat) fills both
 * directions, and a client stuck in write() while the agent is stuck
 * writing output to it would deadlock, so output is read whenever it comes
 * and stdin or a signal is read only when the queue has room for the
 * whole frame it becomes.  outq_put refuses what does not fit, so a guest
 * that stops reading can fill the queue but never overrun it.
 */
struct outq {
	uint8_t buf[4 * (AGENT_HDR_LEN + AGENT_MAX_CHUNK)];
	size_t head, len;
};

/* Room for one more frame of up to `len` payload bytes, after compaction. */
static bool outq_fits(const struct outq *q, size_t len)
{
	return sizeof(q->buf) - q->len >= AGENT_HDR_LEN + len;
}

static bool outq_put(struct outq *q, uint16_t type, uint32_t id,
		     const void *payload, uint32_t len)
{
	struct agent_hdr h = {.len = len, .type = type, .id = id};
	uint8_t *p;

	if (!outq_fits(q, len))
		return false;
	if (q->head + q->len + AGENT_HDR_LEN + len > sizeof(q->buf)) {
		memmove(q->buf, q->buf + q->head, q->len);
		q->head = 0;
	}
	p = q->buf + q->head + q->len;
	agent_hdr_encode(p, &h);
	if (len)
		memcpy(p + AGENT_HDR_LEN, payload, len);
	q->len += AGENT_HDR_LEN + len;
	return true;
}

/* A codec-built payload into the queue (freed either way). */
static bool outq_put_msg(struct outq *q, uint16_t type, uint32_t id,
			 struct agent_wbuf *b)
{
	bool ok = !b->oom && outq_put(q, type, id, b->p, (uint32_t)b->len);

	agent_wbuf_free(b);
	return ok;
}

static int outq_flush(struct outq *q, int fd)
{
	while (q->len) {
		ssize_t n = send(fd, q->buf + q->head, q->len,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -errno;
		q->head += (size_t)n;
		q->len -= (size_t)n;
	}
	q->head = 0;
	return 0;
}

#define WINSIZE_LEN 4
#define SIGNAL_LEN  4

static void queue_winsize(struct outq *q, uint32_t id, int tty_fd)
{
	struct agent_wbuf b = {0};
	struct winsize ws;

	if (tty_fd < 0 || ioctl(tty_fd, TIOCGWINSZ, &ws) < 0)
		return;
	agent_enc_resize(&b, ws.ws_row, ws.ws_col);
	outq_put_msg(q, AGENT_RESIZE, id, &b);
}

/* State of one agent_exec_wait. */
struct exec_wait {
	struct agent_conn *c;
	uint32_t id;
	struct agent_stream *s;
	struct agent_exit *ex;
	int tty_fd;
	struct outq *q;
	uint64_t deadline;   /* 0: none */
	uint64_t give_up_at; /* after a forwarded signal; 0: none */
};

static bool terminating(int sig)
{
	return sig == SIGINT || sig == SIGTERM || sig == SIGHUP ||
	       sig == SIGQUIT;
}

/* One signal from sig_fd.  -EINTR: give up waiting (the caller's
 * policy: a second terminating signal). */
static int handle_signal(struct exec_wait *w)
{
	struct signalfd_siginfo si;
	struct agent_wbuf b = {0};
	int sig;

	if (read(w->s->sig_fd, &si, sizeof(si)) != sizeof(si))
		return 0;
	sig = (int)si.ssi_signo;
	if (sig == SIGWINCH) {
		queue_winsize(w->q, w->id, w->tty_fd);
		return 0;
	}
	if (terminating(sig) && w->s->signal_grace_ms) {
		if (w->s->last_signal && terminating(w->s->last_signal)) {
			w->s->last_signal = sig;
			return -EINTR;
		}
		w->give_up_at = mono_ms() + w->s->signal_grace_ms;
	}
	w->s->last_signal = sig;
	agent_enc_signal(&b, (uint32_t)sig);
	outq_put_msg(w->q, AGENT_SIGNAL, w->id, &b);
	return 0;
}

/* One frame from the agent about our process; 1 when it has exited. */
static int handle_frame(struct exec_wait *w)
{
	struct agent_conn *c = w->c;
	struct agent_hdr h;
	const uint8_t *p;
	int ret = agent_recv(c, &h, &p);

	if (ret == 0)
		return -ECONNRESET;
	if (ret < 0)
		return ret;
	if (h.id != w->id)
		return 0;
	switch (h.type) {
	case AGENT_STDOUT:
		return write_local(w->s->out_fd, p, h.len);
	case AGENT_STDERR:
		return write_local(w->s->err_fd, p, h.len);
	case AGENT_EXIT: {
		struct agent_exit_msg m;

		if (agent_dec_exit(p, h.len, &m))
			return -EPROTO;
		w->ex->code = m.code;
		w->ex->signal = m.signal;
		w->ex->timed_out = m.timed_out;
		return 1;
	}
	case AGENT_ERROR:
		return agent_error(c, p, h.len);
	default:
		return 0;
	}
}

/*
 * What poll found ready on the local side: a signal first, then stdin,
 * each only if its whole frame still fits in the queue (the signal may
 * have taken the room stdin was polled for).  0 or -EINTR (give up).
 */
static int take_inputs(struct exec_wait *w, bool sig_ready, bool in_ready,
		       int *in_fd)
{
	if (sig_ready &&
	    outq_fits(w->q,
		      SIGNAL_LEN > WINSIZE_LEN ? SIGNAL_LEN : WINSIZE_LEN)) {
		int ret = handle_signal(w);

		if (ret)
			return ret;
	}
	if (in_ready && outq_fits(w->q, AGENT_MAX_CHUNK)) {
		uint8_t buf[AGENT_MAX_CHUNK];
		ssize_t n = read(*in_fd, buf, sizeof(buf));

		if (n > 0) {
			outq_put(w->q, AGENT_STDIN, w->id, buf, (uint32_t)n);
		} else if (n == 0 || errno != EINTR) {
			outq_put(w->q, AGENT_STDIN_EOF, w->id, NULL, 0);
			*in_fd = -1; /* poll ignores it from now */
		}
	}
	return 0;
}

/* Milliseconds poll may sleep before the next deadline; -1: none. */
static int wait_left(const struct exec_wait *w)
{
	uint64_t now = mono_ms(), next = 0;
	int left = -1;

	if (w->deadline)
		next = w->deadline;
	if (w->give_up_at && (!next || w->give_up_at < next))
		next = w->give_up_at;
	if (next)
		left = next <= now	    ? 0
		       : next - now > 60000 ? 60000
					    : (int)(next - now);
	return left;
}

int agent_exec_wait(struct agent_conn *c, uint32_t id, struct agent_stream *s,
		    struct agent_exit *ex)
{
	struct exec_wait w = {.c = c, .id = id, .s = s, .ex = ex};
	int in_fd = s->in_fd;
	int ret = 0;

	w.tty_fd = in_fd >= 0 && isatty(in_fd) ? in_fd : -1;
	w.q = malloc(sizeof(*w.q));
	if (!w.q)
		return -ENOMEM;
	w.q->head = w.q->len = 0;
	if (s->timeout_ms)
		w.deadline = mono_ms() + s->timeout_ms;
	s->last_signal = 0;
	if (in_fd < 0)
		outq_put(w.q, AGENT_STDIN_EOF, id, NULL, 0);
	queue_winsize(w.q, id, w.tty_fd);
	while (!ret) {
		struct pollfd pfd[3] = {{.fd = c->fd, .events = POLLIN},
					{.fd = -1, .events = POLLIN},
					{.fd = -1, .events = POLLIN}};
		uint64_t now;

		ret = outq_flush(w.q, c->fd);
		if (ret)
			break;
		if (w.q->len)
			pfd[0].events |= POLLOUT;
		if (outq_fits(w.q, AGENT_MAX_CHUNK))
			pfd[1].fd = in_fd;
		if (s->sig_fd >= 0 &&
		    outq_fits(w.q, SIGNAL_LEN > WINSIZE_LEN ? SIGNAL_LEN
							    : WINSIZE_LEN))
			pfd[2].fd = s->sig_fd;
		if (poll(pfd, 3, wait_left(&w)) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		now = mono_ms();
		if (w.deadline && now >= w.deadline) {
			ret = -ETIMEDOUT;
			break;
		}
		if (w.give_up_at && now >= w.give_up_at) {
			ret = -EINTR;
			break;
		}
		ret = take_inputs(&w, pfd[2].revents & POLLIN,
				  pfd[1].revents & (POLLIN | POLLHUP | POLLERR),
				  &in_fd);
		if (ret)
			break;
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ret = handle_frame(&w);
			if (ret == 1) {
				ret = 0;
				break;
			}
		}
	}
	free(w.q);
	return ret;
}

int agent_put_file(struct agent_conn *c, int fd, uint32_t mode,
		   const char *path)
{
	uint32_t id = new_id(c);
	struct agent_wbuf b = {0};
	struct agent_hdr h;
	const uint8_t *p;
	uint8_t buf[AGENT_MAX_CHUNK];
	uint64_t written, sent = 0;
	int ret;

	agent_enc_put(&b, mode, path);
	ret = msg_send(c, AGENT_PUT, id, &b);
	while (!ret) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		ret = agent_send(c, AGENT_DATA, id, buf, (uint32_t)n);
		sent += (uint64_t)n;
	}
	if (!ret)
		ret = agent_send(c, AGENT_DATA_END, id, NULL, 0);
	if (!ret)
		ret = recv_for(c, id, &h, &p);
	if (ret)
		return ret;
	if (h.type == AGENT_ERROR)
		return agent_error(c, p, h.len);
	if (h.type != AGENT_FILE_OK || agent_dec_put_ok(p, h.len, &written))
		return -EPROTO;
	if (written != sent) {
		snprintf(c->error, sizeof(c->error),
			 "the guest wrote %llu of %llu bytes",
			 (unsigned long long)written, (unsigned long long)sent);
		return -EIO;
	}
	return 0;
}

int agent_get_file(struct agent_conn *c, const char *path, int fd,
		   uint32_t *mode)
{
	uint32_t id = new_id(c);
	uint64_t size = 0, got = 0;
	bool announced = false;
	struct agent_wbuf b = {0};
	struct agent_hdr h;
	const uint8_t *p;
	int ret;

	agent_enc_get(&b, path);
	ret = msg_send(c, AGENT_GET, id, &b);
	while (!ret) {
		ret = recv_for(c, id, &h, &p);
		if (ret)
			break;
		switch (h.type) {
		case AGENT_FILE_OK:
			if (announced ||
			    agent_dec_get_ok(p, h.len, mode, &size))
				return -EPROTO;
			announced = true;
			break;
		case AGENT_DATA:
			/* The guest said how big the file is: not a byte
			 * more lands on the host. */
			if (!announced)
				return -EPROTO;
			if (h.len > size - got) {
				snprintf(c->error, sizeof(c->error),
					 "the guest sent more than the %llu "
					 "bytes it announced",
					 (unsigned long long)size);
				return -EFBIG;
			}
			got += h.len;
			ret = write_local(fd, p, h.len);
			break;
		case AGENT_DATA_END:
			if (!announced)
				return -EPROTO;
			if (got != size) {
				snprintf(c->error, sizeof(c->error),
					 "got %llu of the %llu bytes announced "
					 "(the file changed while it was "
					 "copied?)",
					 (unsigned long long)got,
					 (unsigned long long)size);
				return -EIO;
			}
			return 0;
		case AGENT_ERROR:
			return agent_error(c, p, h.len);
		default:
			return -EPROTO;
		}
	}
	return ret;
}

int agent_shutdown(struct agent_conn *c)
{
	return agent_send(c, AGENT_SHUTDOWN, 0, NULL, 0);
}

int agent_exit_status(const struct agent_exit *ex)
{
	if (ex->timed_out)
		return 124;
	/* Numbers come from the guest: only a real signal maps to 128+N. */
	if (ex->signal > 0 && ex->signal < 128)
		return 128 + ex->signal;
	if (ex->signal)
		return 255;
	return ex->code & 0xff;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid;
 * *cp gets the code point. */
static size_t utf8_seq(const uint8_t *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t v, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, v = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, v = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, v = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Code points a terminal acts on or that disguise text: C0 and C1
 * controls, DEL, and the bidirectional overrides and isolates. */
static bool unsafe_cp(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0) ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t agent_text_clean(char *dst, size_t dst_len, const void *src, size_t n)
{
	const uint8_t *s = src;
	size_t out = 0;

	if (!dst_len)
		return 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp = 0;
		size_t k = utf8_seq(s + i, n - i, &cp);

		if (k == 0 || unsafe_cp(cp)) {
			if (out + 1 >= dst_len)
				break;
			dst[out++] = '?';
			i += k ? k : 1;
			continue;
		}
		if (out + k >= dst_len)
			break;
		memcpy(dst + out, s + i, k);
		out += k;
		i += k;
	}
	dst[out] = 0;
	return out;
}
