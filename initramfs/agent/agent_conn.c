// SPDX-License-Identifier: MIT
/*
 * Connections: the read buffer and its frame parser, the write queue, and
 * flow control.
 *
 * The socket's handler only reads bytes into rbuf.  conn_service, run once
 * per loop iteration for each connection that needs it, parses and
 * dispatches complete frames (while the queues allow), pumps GET files,
 * writes the queue with writev, and then sets the epoll interest: EPOLLIN
 * only while the host's frames may be parsed, EPOLLOUT while bytes wait.
 * Doing all writes there (not from the handlers that queue frames) means
 * a failed write can close the connection without pulling it out from
 * under a caller.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/reboot.h>
#include <sys/uio.h>
#include <unistd.h>

/* Frames dispatched per service round, so one busy host cannot starve
 * the others. */
#define FRAMES_PER_ROUND 64
#define SERVICE_ROUNDS	 4

/* ---- write queue ---- */

void conn_dirty(struct conn *c)
{
	if (!c->dead && list_empty(&c->dirty))
		list_add_tail(&agent.dirty, &c->dirty);
}

void conn_send(struct conn *c, uint16_t type, uint32_t id, const void *payload,
	       size_t len)
{
	struct agent_hdr h = {.len = (uint32_t)len, .type = type, .id = id};
	struct chunk *ch;

	if (c->dead)
		return;
	ch = malloc(sizeof(*ch) + AGENT_HDR_LEN + len);
	if (!ch) {
		/* A hole in the stream cannot be repaired: give up on it. */
		agent_log("out of memory; dropping a connection");
		c->closing = true;
		conn_dirty(c);
		return;
	}
	agent_hdr_encode(ch->data, &h);
	if (len)
		memcpy(ch->data + AGENT_HDR_LEN, payload, len);
	ch->len = AGENT_HDR_LEN + len;
	ch->off = 0;
	list_add_tail(&c->wq, &ch->link);
	c->wq_bytes += ch->len;
	conn_dirty(c);
}

void conn_send_msg(struct conn *c, uint16_t type, uint32_t id,
		   struct agent_wbuf *b)
{
	if (b->oom) {
		agent_log("out of memory; dropping a connection");
		c->closing = true;
		conn_dirty(c);
	} else {
		conn_send(c, type, id, b->p, b->len);
	}
	agent_wbuf_free(b);
}

void conn_send_error(struct conn *c, uint32_t id, int err, const char *fmt, ...)
{
	struct agent_wbuf b = {0};
	char msg[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(msg) - 1)
		n = sizeof(msg) - 1;
	agent_enc_error(&b, err, msg, (size_t)n);
	conn_send_msg(c, AGENT_ERROR, id, &b);
}

/* Write what the socket takes; 0 (maybe bytes left) or -errno. */
static int conn_flush(struct conn *c)
{
	while (c->wq_bytes) {
		struct iovec iov[64];
		struct list *pos;
		int n = 0;
		ssize_t w;

		for (pos = c->wq.next; pos != &c->wq && n < 64;
		     pos = pos->next, n++) {
			struct chunk *ch =
			    container_of(pos, struct chunk, link);

			iov[n].iov_base = ch->data + ch->off;
			iov[n].iov_len = ch->len - ch->off;
		}
		w = writev(c->fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		c->wq_bytes -= (size_t)w;
		while (w > 0) {
			struct chunk *ch =
			    container_of(c->wq.next, struct chunk, link);
			size_t left = ch->len - ch->off;

			if ((size_t)w < left) {
				ch->off += (size_t)w;
				break;
			}
			w -= (ssize_t)left;
			list_del(&ch->link);
			free(ch);
		}
	}
	return 0;
}

/* ---- flow control ---- */

static bool input_allowed(const struct conn *c)
{
	return !c->closing && !c->dead && c->wq_bytes < WQ_INPUT_MAX &&
	       c->stdin_bytes < STDIN_MAX;
}

void conn_update_flow(struct conn *c)
{
	bool pause = c->wq_bytes >= (c->out_paused ? WQ_RESUME : WQ_PAUSE);
	struct list *pos, *tmp;

	if (pause == c->out_paused || c->dead)
		return;
	c->out_paused = pause;
	list_for_each_safe(pos, tmp, &c->procs)
	{
		proc_sync_events(container_of(pos, struct proc, link));
	}
}

static void conn_update_events(struct conn *c)
{
	uint32_t want = 0;
	struct epoll_event ev = {.data.ptr = &c->ev};

	if (!c->eof && input_allowed(c) && c->rlen < c->rcap)
		want |= EPOLLIN;
	/* With GETs pending and an empty queue, EPOLLOUT brings us back at
	 * once to read more of the files. */
	if (c->wq_bytes || (!c->out_paused && xfer_get_pending(c)))
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	ev.events = want;
	/* MOD, never DEL: EPOLLHUP and EPOLLERR still report a dead peer. */
	if (epoll_ctl(agent.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = want;
}

/* ---- frames ---- */

bool conn_id_in_use(struct conn *c, uint32_t id)
{
	return proc_find(c, id) || xfer_find(c, id);
}

static void on_hello(struct conn *c, uint32_t id, const uint8_t *p, size_t len)
{
	struct agent_wbuf b = {0};
	uint32_t version;

	if (agent_dec_hello(p, len, &version)) {
		conn_send_error(c, id, EPROTO, "HELLO: payload is a u32");
		return;
	}
	/* Any version is answered with ours; the host decides. */
	agent_enc_hello_ok(&b, AGENT_PROTO_VERSION, AGENT_NAME);
	conn_send_msg(c, AGENT_HELLO_OK, id, &b);
}

static void on_shutdown(void)
{
	agent_log("SHUTDOWN from the host");
	if (agent.pid1)
		agent.shutdown = RB_POWER_OFF;
	else
		agent.stop = true;
}

static void conn_dispatch(struct conn *c, const struct agent_hdr *h,
			  const uint8_t *p)
{
	switch (h->type) {
	case AGENT_HELLO:
		on_hello(c, h->id, p, h->len);
		break;
	case AGENT_PING:
		conn_send(c, AGENT_PONG, h->id, p, h->len);
		break;
	case AGENT_EXEC:
		proc_exec(c, h->id, p, h->len);
		break;
	case AGENT_STDIN:
		proc_stdin(c, h->id, p, h->len);
		break;
	case AGENT_STDIN_EOF:
		proc_stdin_eof(c, h->id, h->len);
		break;
	case AGENT_SIGNAL:
		proc_signal(c, h->id, p, h->len);
		break;
	case AGENT_RESIZE:
		proc_resize(c, h->id, p, h->len);
		break;
	case AGENT_PUT:
		xfer_put(c, h->id, p, h->len);
		break;
	case AGENT_GET:
		xfer_get(c, h->id, p, h->len);
		break;
	case AGENT_DATA:
		xfer_data(c, h->id, p, h->len);
		break;
	case AGENT_DATA_END:
		xfer_data_end(c, h->id, h->len);
		break;
	case AGENT_SHUTDOWN:
		on_shutdown();
		break;
	default:
		conn_send_error(c, h->id, ENOSYS, "unknown message type %u",
				h->type);
		break;
	}
}

/* Ends the connection for good: commands die, transfers stop, input is
 * dropped; what is queued (an ERROR, say) is still written. */
static void conn_begin_close(struct conn *c)
{
	struct list *pos, *tmp;

	c->closing = true;
	c->rlen = 0;
	list_for_each_safe(pos, tmp, &c->procs)
	{
		proc_kill(container_of(pos, struct proc, link));
	}
	list_for_each_safe(pos, tmp, &c->xfers)
	{
		xfer_free(container_of(pos, struct xfer, link));
	}
}

/* Grow rbuf to hold a whole frame of len payload bytes. */
static int rbuf_reserve(struct conn *c, size_t need)
{
	uint8_t *b;

	if (need <= c->rcap)
		return 0;
	b = realloc(c->rbuf, need);
	if (!b)
		return -ENOMEM;
	c->rbuf = b;
	c->rcap = need;
	return 0;
}

/* After parsing: move the partial frame to the front, and give back a
 * big buffer once the big frame it held is gone. */
static void rbuf_compact(struct conn *c, size_t used)
{
	struct agent_hdr h;
	uint8_t *b;

	if (used) {
		memmove(c->rbuf, c->rbuf + used, c->rlen - used);
		c->rlen -= used;
	}
	if (c->rcap <= RBUF_MIN || c->rlen > RBUF_MIN)
		return;
	if (c->rlen >= AGENT_HDR_LEN) {
		agent_hdr_decode(&h, c->rbuf);
		if (AGENT_HDR_LEN + (size_t)h.len > RBUF_MIN)
			return; /* still waiting for the rest of a big one */
	}
	b = realloc(c->rbuf, RBUF_MIN);
	if (b) {
		c->rbuf = b;
		c->rcap = RBUF_MIN;
	}
}

static bool frame_complete(const struct conn *c)
{
	struct agent_hdr h;

	if (c->rlen < AGENT_HDR_LEN)
		return false;
	agent_hdr_decode(&h, c->rbuf);
	return h.len > AGENT_MAX_PAYLOAD || c->rlen - AGENT_HDR_LEN >= h.len;
}

/* Dispatch complete frames while allowed; true if any was. */
static bool conn_parse(struct conn *c)
{
	size_t off = 0;
	int n = 0;

	while (n < FRAMES_PER_ROUND && input_allowed(c) &&
	       c->rlen - off >= AGENT_HDR_LEN) {
		struct agent_hdr h;

		agent_hdr_decode(&h, c->rbuf + off);
		if (h.len > AGENT_MAX_PAYLOAD) {
			conn_send_error(c, h.id, EMSGSIZE,
					"frame of %u bytes (at most %u)", h.len,
					AGENT_MAX_PAYLOAD);
			conn_begin_close(c);
			return true;
		}
		if (c->rlen - off - AGENT_HDR_LEN < h.len) {
			/* Make room for the rest of this frame. */
			if (rbuf_reserve(c, AGENT_HDR_LEN + h.len) < 0) {
				agent_log("out of memory for a frame");
				conn_begin_close(c);
				return true;
			}
			break;
		}
		conn_dispatch(c, &h, c->rbuf + off + AGENT_HDR_LEN);
		off += AGENT_HDR_LEN + h.len;
		n++;
	}
	if (!c->closing)
		rbuf_compact(c, off);
	/* The host is gone: what is left is a truncated frame or nothing. */
	if (c->eof && !c->closing && !frame_complete(c))
		conn_begin_close(c);
	return n > 0;
}

static void conn_service(struct conn *c)
{
	/* Set where killing was not safe (conn_send out of memory). */
	if (c->closing && !c->dead)
		conn_begin_close(c);
	for (int round = 0; round < SERVICE_ROUNDS && !c->dead; round++) {
		bool more = false;
		int err;

		if (input_allowed(c))
			more |= conn_parse(c);
		if (!c->out_paused && !c->closing)
			more |= xfer_pump(c);
		err = conn_flush(c);
		if (err || (c->closing && !c->wq_bytes)) {
			conn_close(c);
			return;
		}
		conn_update_flow(c);
		if (!more)
			break;
	}
	if (c->dead)
		return;
	conn_update_events(c);
	/* Frames already buffered raise no epoll event: come back. */
	if (input_allowed(c) && (frame_complete(c) || c->eof))
		conn_dirty(c);
}

void conn_service_dirty(void)
{
	struct list todo;

	if (list_empty(&agent.dirty))
		return;
	/* Take this round's list; what gets dirty now waits for the next. */
	todo = agent.dirty;
	todo.next->prev = &todo;
	todo.prev->next = &todo;
	list_init(&agent.dirty);
	while (!list_empty(&todo)) {
		struct conn *c = container_of(todo.next, struct conn, dirty);

		list_del(&c->dirty);
		conn_service(c);
	}
}

/* ---- the socket ---- */

static void conn_read(struct conn *c)
{
	size_t room = c->rcap - c->rlen;
	ssize_t n;

	if (!room) {
		conn_dirty(c);
		return;
	}
	n = read(c->fd, c->rbuf + c->rlen, room);
	if (n > 0) {
		c->rlen += (size_t)n;
		conn_dirty(c);
	} else if (n == 0) {
		c->eof = true;
		conn_dirty(c);
	} else if (errno != EAGAIN && errno != EINTR) {
		conn_close(c);
	}
}

static void on_conn(struct ev_handler *h, uint32_t events)
{
	struct conn *c = container_of(h, struct conn, ev);

	if (c->dead)
		return;
	/*
	 * EPOLLERR: reset.  EPOLLHUP: the host closed both directions, so
	 * nobody reads our replies; still handle what it sent before (a
	 * SHUTDOWN, say) unless we have stopped taking input.
	 */
	if ((events & EPOLLERR) || ((events & EPOLLHUP) && !input_allowed(c))) {
		conn_close(c);
		return;
	}
	if ((events & EPOLLHUP) && c->eof) {
		conn_dirty(c); /* parsing what is left, then closing */
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP)) && !c->eof)
		conn_read(c);
	if (events & EPOLLOUT)
		conn_dirty(c);
}

void conn_new(int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = {.events = EPOLLIN};

	if (c)
		c->rbuf = malloc(RBUF_MIN);
	if (!c || !c->rbuf) {
		agent_log("out of memory for a connection");
		goto err;
	}
	c->ev.fn = on_conn;
	c->fd = fd;
	c->rcap = RBUF_MIN;
	list_init(&c->dirty);
	list_init(&c->wq);
	list_init(&c->procs);
	list_init(&c->xfers);
	ev.data.ptr = &c->ev;
	if (epoll_ctl(agent.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		agent_log_err(-errno, "epoll_ctl (connection)");
		goto err;
	}
	c->events = EPOLLIN;
	list_add_tail(&agent.conns, &c->link);
	agent.nconns++;
	return;
err:
	if (c)
		free(c->rbuf);
	free(c);
	close(fd);
}

void conn_close(struct conn *c)
{
	struct list *pos, *tmp;

	if (c->dead)
		return;
	conn_begin_close(c);
	c->dead = true;
	ev_close(&c->fd, &c->events);
	list_for_each_safe(pos, tmp, &c->wq)
	{
		list_del(pos);
		free(container_of(pos, struct chunk, link));
	}
	c->wq_bytes = 0;
	free(c->rbuf);
	c->rbuf = NULL;
	c->rlen = c->rcap = 0;
	list_del(&c->dirty);
	list_del(&c->link);
	list_add_tail(&agent.dead_conns, &c->link);
	agent.nconns--;
}

void conn_free(struct conn *c)
{
	free(c);
}
