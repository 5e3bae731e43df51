// SPDX-License-Identifier: MIT
#include "agent_client.h"

#include <errno.h>
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

/* A payload under construction. */
struct msg {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static void msg_put(struct msg *m, const void *data, size_t n)
{
	if (m->oom)
		return;
	if (m->len + n > m->cap) {
		size_t cap = (m->cap ? m->cap * 2 : 256) + n;
		uint8_t *p = realloc(m->p, cap);

		if (!p) {
			m->oom = true;
			return;
		}
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, data, n);
	m->len += n;
}

static void msg_u16(struct msg *m, uint16_t v)
{
	uint8_t b[2];

	agent_put_le16(b, v);
	msg_put(m, b, 2);
}

static void msg_u32(struct msg *m, uint32_t v)
{
	uint8_t b[4];

	agent_put_le32(b, v);
	msg_put(m, b, 4);
}

static void msg_str(struct msg *m, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	msg_u32(m, (uint32_t)n);
	msg_put(m, s, n);
}

static void msg_strs(struct msg *m, const char *const *v)
{
	uint32_t n = 0;

	while (v && v[n])
		n++;
	msg_u32(m, n);
	for (uint32_t i = 0; i < n; i++)
		msg_str(m, v[i]);
}

static int write_all(int fd, const void *buf, size_t len)
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

/* Send a built payload as one frame and free it. */
static int msg_send(struct agent_conn *c, uint16_t type, uint32_t id,
		    struct msg *m)
{
	int ret =
	    m->oom ? -ENOMEM : agent_send(c, type, id, m->p, (uint32_t)m->len);

	free(m->p);
	return ret;
}

/* 1: all read; 0: EOF before the first byte; negative errno otherwise. */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
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
	char line[64];
	size_t n = 0;
	int fd = unix_connect(uds_path), ret;

	if (fd < 0)
		return fd;
	n = (size_t)snprintf(line, sizeof(line), "CONNECT %u\n", port);
	ret = write_all(fd, line, n);
	/* Byte by byte: what follows the reply line is the agent's. */
	for (n = 0; !ret && n < sizeof(line) - 1; n++) {
		ret = read_full(fd, line + n, 1);
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

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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
	ret = write_all(c->fd, hdr, sizeof(hdr));
	if (!ret && len)
		ret = write_all(c->fd, payload, len);
	return ret;
}

int agent_recv(struct agent_conn *c, struct agent_hdr *h,
	       const uint8_t **payload)
{
	uint8_t hdr[AGENT_HDR_LEN];
	int ret = read_full(c->fd, hdr, sizeof(hdr));

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
		ret = read_full(c->fd, c->buf, h->len);
		if (ret <= 0)
			return ret ? ret : -EPIPE;
	}
	*payload = c->buf;
	return 1;
}

/* An ERROR frame: remember the message, return its errno (negative). */
static int agent_error(struct agent_conn *c, const uint8_t *p, uint32_t len)
{
	int32_t err;
	uint32_t n;

	if (len < 8)
		return -EPROTO;
	err = (int32_t)agent_get_le32(p);
	n = agent_get_le32(p + 4);
	if (n > len - 8)
		n = len - 8;
	if (n >= sizeof(c->error))
		n = sizeof(c->error) - 1;
	memcpy(c->error, p + 8, n);
	c->error[n] = 0;
	return err > 0 ? -err : -EIO;
}

/* Wait for the next frame about id (others are dropped). */
static int recv_for(struct agent_conn *c, uint32_t id, struct agent_hdr *h,
		    const uint8_t **p)
{
	for (;;) {
		int ret = agent_recv(c, h, p);

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
	uint8_t v[4];
	struct agent_hdr h;
	const uint8_t *p;
	uint32_t n;
	int ret;

	agent_put_le32(v, AGENT_PROTO_VERSION);
	ret = agent_send(c, AGENT_HELLO, 0, v, 4);
	if (!ret)
		ret = recv_for(c, 0, &h, &p);
	if (ret)
		return ret;
	if (h.type == AGENT_ERROR)
		return agent_error(c, p, h.len);
	if (h.type != AGENT_HELLO_OK || h.len < 8)
		return -EPROTO;
	*version = agent_get_le32(p);
	n = agent_get_le32(p + 4);
	if (n > h.len - 8)
		return -EPROTO;
	if (name_len) {
		if (n >= name_len)
			n = (uint32_t)name_len - 1;
		memcpy(name, p + 8, n);
		name[n] = 0;
	}
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
	struct msg m = {0};
	struct agent_hdr h;
	const uint8_t *p;
	int ret;

	*id = new_id(c);
	msg_u32(&m, e->pty ? AGENT_EXEC_PTY : 0);
	msg_u32(&m, e->timeout_ms);
	msg_u32(&m, e->uid);
	msg_u32(&m, e->gid);
	msg_u16(&m, e->rows);
	msg_u16(&m, e->cols);
	msg_strs(&m, e->argv);
	msg_strs(&m, e->env);
	msg_str(&m, e->cwd);
	ret = msg_send(c, AGENT_EXEC, *id, &m);
	if (!ret)
		ret = recv_for(c, *id, &h, &p);
	if (ret)
		return ret;
	if (h.type == AGENT_ERROR)
		return agent_error(c, p, h.len);
	return h.type == AGENT_STARTED ? 0 : -EPROTO;
}

/*
 * Frames waiting to go to the agent while a process runs.  Sending never
 * blocks there: a process that echoes its stdin (cat) fills both
 * directions, and a client stuck in write() while the agent is stuck
 * writing output to it would deadlock, so output is read whenever it comes
 * and stdin is read only when the queue has room for a whole frame.
 */
struct outq {
	uint8_t buf[4 * (AGENT_HDR_LEN + AGENT_MAX_CHUNK)];
	size_t head, len;
};

static size_t outq_room(const struct outq *q)
{
	return sizeof(q->buf) - q->head - q->len;
}

static void outq_put(struct outq *q, uint16_t type, uint32_t id,
		     const void *payload, uint32_t len)
{
	struct agent_hdr h = {.len = len, .type = type, .id = id};
	uint8_t *p;

	if (q->head && q->len + AGENT_HDR_LEN + len > outq_room(q)) {
		memmove(q->buf, q->buf + q->head, q->len);
		q->head = 0;
	}
	p = q->buf + q->head + q->len;
	agent_hdr_encode(p, &h);
	if (len)
		memcpy(p + AGENT_HDR_LEN, payload, len);
	q->len += AGENT_HDR_LEN + len;
}

/* Room for one more frame of up to `len` payload bytes, after compaction. */
static bool outq_fits(const struct outq *q, size_t len)
{
	return sizeof(q->buf) - q->len >= AGENT_HDR_LEN + len;
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

static void queue_winsize(struct outq *q, uint32_t id, int tty_fd)
{
	struct winsize ws;
	uint8_t b[4];

	if (tty_fd < 0 || ioctl(tty_fd, TIOCGWINSZ, &ws) < 0)
		return;
	agent_put_le16(b, ws.ws_row);
	agent_put_le16(b + 2, ws.ws_col);
	outq_put(q, AGENT_RESIZE, id, b, 4);
}

static void handle_signal(struct outq *q, uint32_t id, int sig_fd, int tty_fd)
{
	struct signalfd_siginfo si;
	uint8_t b[4];

	if (read(sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGWINCH) {
		queue_winsize(q, id, tty_fd);
		return;
	}
	agent_put_le32(b, si.ssi_signo);
	outq_put(q, AGENT_SIGNAL, id, b, 4);
}

/* One frame from the agent about our process; 1 when it has exited. */
static int handle_frame(struct agent_conn *c, uint32_t id, int out_fd,
			int err_fd, struct agent_exit *ex)
{
	struct agent_hdr h;
	const uint8_t *p;
	int ret = agent_recv(c, &h, &p);

	if (ret == 0)
		return -ECONNRESET;
	if (ret < 0)
		return ret;
	if (h.id != id)
		return 0;
	switch (h.type) {
	case AGENT_STDOUT:
		return write_all(out_fd, p, h.len);
	case AGENT_STDERR:
		return write_all(err_fd, p, h.len);
	case AGENT_EXIT:
		if (h.len < AGENT_EXIT_LEN)
			return -EPROTO;
		ex->code = (int32_t)agent_get_le32(p);
		ex->signal = (int32_t)agent_get_le32(p + 4);
		ex->timed_out = p[8] != 0;
		return 1;
	case AGENT_ERROR:
		return agent_error(c, p, h.len);
	default:
		return 0;
	}
}

int agent_exec_wait(struct agent_conn *c, uint32_t id, int in_fd, int out_fd,
		    int err_fd, int sig_fd, struct agent_exit *ex)
{
	int tty_fd = in_fd >= 0 && isatty(in_fd) ? in_fd : -1;
	struct outq *q = malloc(sizeof(*q));
	int ret = 0;

	if (!q)
		return -ENOMEM;
	q->head = q->len = 0;
	if (in_fd < 0)
		outq_put(q, AGENT_STDIN_EOF, id, NULL, 0);
	queue_winsize(q, id, tty_fd);
	while (!ret) {
		struct pollfd pfd[3] = {{.fd = c->fd, .events = POLLIN},
					{.fd = -1, .events = POLLIN},
					{.fd = -1, .events = POLLIN}};

		ret = outq_flush(q, c->fd);
		if (ret)
			break;
		if (q->len)
			pfd[0].events |= POLLOUT;
		if (outq_fits(q, AGENT_MAX_CHUNK))
			pfd[1].fd = in_fd;
		if (outq_fits(q, 16))
			pfd[2].fd = sig_fd;
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (pfd[2].revents & POLLIN)
			handle_signal(q, id, sig_fd, tty_fd);
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			uint8_t buf[AGENT_MAX_CHUNK];
			ssize_t n = read(in_fd, buf, sizeof(buf));

			if (n > 0) {
				outq_put(q, AGENT_STDIN, id, buf, (uint32_t)n);
			} else if (n == 0 || errno != EINTR) {
				outq_put(q, AGENT_STDIN_EOF, id, NULL, 0);
				in_fd = -1; /* poll ignores it from now */
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ret = handle_frame(c, id, out_fd, err_fd, ex);
			if (ret == 1) {
				ret = 0;
				break;
			}
		}
	}
	free(q);
	return ret;
}

int agent_put_file(struct agent_conn *c, int fd, uint32_t mode,
		   const char *path)
{
	uint32_t id = new_id(c);
	struct msg m = {0};
	struct agent_hdr h;
	const uint8_t *p;
	uint8_t buf[AGENT_MAX_CHUNK];
	int ret;

	msg_u32(&m, mode);
	msg_str(&m, path);
	ret = msg_send(c, AGENT_PUT, id, &m);
	while (!ret) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		ret = agent_send(c, AGENT_DATA, id, buf, (uint32_t)n);
	}
	if (!ret)
		ret = agent_send(c, AGENT_DATA_END, id, NULL, 0);
	if (!ret)
		ret = recv_for(c, id, &h, &p);
	if (ret)
		return ret;
	if (h.type == AGENT_ERROR)
		return agent_error(c, p, h.len);
	return h.type == AGENT_FILE_OK ? 0 : -EPROTO;
}

int agent_get_file(struct agent_conn *c, const char *path, int fd,
		   uint32_t *mode)
{
	uint32_t id = new_id(c);
	struct msg m = {0};
	struct agent_hdr h;
	const uint8_t *p;
	int ret;

	msg_str(&m, path);
	ret = msg_send(c, AGENT_GET, id, &m);
	while (!ret) {
		ret = recv_for(c, id, &h, &p);
		if (ret)
			break;
		switch (h.type) {
		case AGENT_FILE_OK:
			if (h.len < 12)
				return -EPROTO;
			*mode = agent_get_le32(p);
			break;
		case AGENT_DATA:
			ret = write_all(fd, p, h.len);
			break;
		case AGENT_DATA_END:
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
	if (ex->signal)
		return 128 + ex->signal;
	return ex->code & 0xff;
}
