// SPDX-License-Identifier: MIT
/*
 * virtio-vsock connections: lookup, the work list, closing, the close
 * timer, and the bytes between a Unix socket and the guest.
 *
 * Unix connections are registered edge-triggered for input and output
 * once; readable/writable remember an edge until a read or write says
 * EAGAIN.  So the loop never spins on a socket we cannot serve right now
 * (no guest credit, no rx buffers, nothing to write), and nothing is
 * re-registered as credit comes and goes.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "vmm/base/log.h"
#include "devices/vsock/vsock_conn.h"

#define HASH_SIZE (2 * VSOCK_MAX_CONNS)

static unsigned hash_key(uint32_t local, uint32_t peer)
{
	uint32_t h = local * 0x9e3779b1u ^ (peer + 0x7f4a7c15u) * 0x85ebca77u;

	return (h ^ (h >> 15)) % HASH_SIZE;
}

struct vsock_conn *vsock_conn_find(struct virtio_vsock *v, uint32_t local,
				   uint32_t peer)
{
	struct vsock_conn *c = v->hash[hash_key(local, peer)];

	while (c && (c->local_port != local || c->peer_port != peer))
		c = c->hnext;
	return c;
}

void vsock_conn_hash_add(struct vsock_conn *c)
{
	struct vsock_conn **b =
	    &c->v->hash[hash_key(c->local_port, c->peer_port)];

	c->hnext = *b;
	*b = c;
	c->hashed = true;
}

static void hash_del(struct vsock_conn *c)
{
	struct vsock_conn **p =
	    &c->v->hash[hash_key(c->local_port, c->peer_port)];

	if (!c->hashed)
		return;
	while (*p != c)
		p = &(*p)->hnext;
	*p = c->hnext;
	c->hashed = false;
}

void vsock_conn_queue(struct vsock_conn *c, unsigned pend)
{
	struct virtio_vsock *v = c->v;

	c->pending |= pend;
	if (c->queued)
		return;
	c->queued = true;
	c->wnext = NULL;
	c->wprev = v->work_tail;
	if (v->work_tail)
		v->work_tail->wnext = c;
	else
		v->work_head = c;
	v->work_tail = c;
}

void vsock_conn_unqueue(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;

	if (!c->queued)
		return;
	if (c->wprev)
		c->wprev->wnext = c->wnext;
	else
		v->work_head = c->wnext;
	if (c->wnext)
		c->wnext->wprev = c->wprev;
	else
		v->work_tail = c->wprev;
	c->wprev = c->wnext = NULL;
	c->queued = false;
}

uint32_t vsock_conn_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	/* A guest claiming to have forwarded more than we sent only makes
	 * in_flight wrap to a huge value: no credit, never too much. */
	return in_flight >= c->peer_buf_alloc ? 0
					      : c->peer_buf_alloc - in_flight;
}

static void close_unix(struct vsock_conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->buf_cap = c->buf_off = c->buf_len = 0;
}

void vsock_conn_free(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;

	if (c->state == VS_FREE)
		return;
	vsock_conn_unqueue(c);
	hash_del(c);
	close_unix(c);
	c->state = VS_FREE;
	v->nconns--;
	vsock_listen_resume(v);
}

void vsock_conn_kill(struct vsock_conn *c, const char *why)
{
	log_debug("vsock: %u <-> guest %u: reset (%s)", c->local_port,
		  c->peer_port, why);
	/* The guest never heard of it: nothing to reset there. */
	if (c->state == VS_LINE ||
	    (c->state == VS_CONNECTING && (c->pending & PEND_REQUEST))) {
		vsock_conn_free(c);
		return;
	}
	close_unix(c);
	c->state = VS_DEAD;
	c->pending = 0;
	vsock_conn_queue(c, PEND_RST);
}

void vsock_drop_all(struct virtio_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		vsock_conn_free(&v->slots[i]);
	v->orphan_head = v->orphan_len = 0;
	v->rx_held = false;
}

/* ---- timer: connections waiting for a CONNECT line, for the guest's
 * answer to a request, or for its RST after our SHUTDOWN ---- */

static void timer_arm(struct virtio_vsock *v, uint64_t at)
{
	struct itimerspec t = {
	    .it_value.tv_sec = (time_t)(at / 1000000000),
	    .it_value.tv_nsec = (long)(at % 1000000000),
	};

	if (v->timer_fd < 0 || (v->timer_at && v->timer_at <= at))
		return;
	if (timerfd_settime(v->timer_fd, TFD_TIMER_ABSTIME, &t, NULL) == 0)
		v->timer_at = at;
}

void virtio_vsock_expire(struct virtio_vsock *v, uint64_t now_ns)
{
	uint64_t next = 0;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->slots[i];

		if (c->state != VS_CLOSING && c->state != VS_LINE &&
		    c->state != VS_CONNECTING)
			continue;
		if (c->deadline <= now_ns)
			vsock_conn_kill(c, c->state == VS_LINE
					       ? "no CONNECT line in time"
					   : c->state == VS_CONNECTING
					       ? "the guest did not answer "
						 "the request in time"
					       : "no RST from the guest after "
						 "SHUTDOWN");
		else if (!next || c->deadline < next)
			next = c->deadline;
	}
	v->timer_at = 0;
	if (next)
		timer_arm(v, next);
}

void vsock_conn_set_deadline(struct vsock_conn *c, uint64_t timeout_ns)
{
	c->deadline = vsock_now_ns() + timeout_ns;
	timer_arm(c->v, c->deadline);
}

void vsock_timer_event(struct ev_handler *h, uint32_t events)
{
	struct virtio_vsock *v = container_of(h, struct virtio_vsock, timer_ev);
	uint64_t n;

	(void)events;
	pthread_mutex_lock(&v->vdev.lock);
	if (read(v->timer_fd, &n, sizeof(n)) == sizeof(n)) {
		virtio_vsock_expire(v, vsock_now_ns());
		vsock_rx_pump(v);
	}
	pthread_mutex_unlock(&v->vdev.lock);
}

/* ---- the Unix side of one connection ---- */

/* Has the Unix peer closed (or have both halves been shut down)? */
static bool unix_hung_up(const struct vsock_conn *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLOUT};

	return c->fd >= 0 && poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLHUP | POLLERR));
}

/* Has the Unix peer stopped sending (EOF queued)? */
static bool unix_rdhup(const struct vsock_conn *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};

	return c->fd >= 0 && poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Nothing can flow to or from the Unix side any more: tell the guest
 * both directions are shut, and wait for its RST. */
static void unix_gone(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;

	if (c->buf_len || c->prefix_off < c->prefix_len) {
		vsock_conn_kill(c, "host side closed with guest data pending");
		return;
	}
	close_unix(c);
	c->state = VS_CLOSING;
	c->shut_flags = VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND;
	vsock_conn_set_deadline(c, v->close_timeout_ns);
	vsock_conn_queue(c, PEND_SHUTDOWN);
}

void vsock_conn_eof(struct vsock_conn *c)
{
	c->local_eof = true;
	c->readable = false;
	if (unix_hung_up(c)) {
		unix_gone(c);
		return;
	}
	/* Half close: the host program may still read. */
	c->shut_flags |= VSOCK_SHUTDOWN_SEND;
	vsock_conn_queue(c, PEND_SHUTDOWN);
}

/* The guest's buffered bytes are all with the Unix side now. */
static void after_drain(struct vsock_conn *c)
{
	if (c->state != VS_OPEN)
		return;
	if (!c->buf_len && c->prefix_off == c->prefix_len) {
		if (c->peer_shut ==
		    (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)) {
			/* The guest closed and everything is delivered:
			 * complete its close with our RST. */
			vsock_conn_kill(c, "closed by the guest");
			return;
		}
		if ((c->peer_shut & VSOCK_SHUTDOWN_SEND) && !c->wr_shut) {
			shutdown(c->fd, SHUT_WR);
			c->wr_shut = true;
		}
	}
	/* Tell the guest about the space before it runs out of credit. */
	if (c->fwd_cnt - c->fwd_reported >= VSOCK_CREDIT_THRESHOLD)
		vsock_conn_queue(c, PEND_CREDIT);
}

/* n bytes went out, or -1 and errno: false if the connection died. */
static bool wrote(struct vsock_conn *c, ssize_t n)
{
	if (n >= 0)
		return true;
	if (errno == EAGAIN || errno == EINTR) {
		c->writable = errno == EINTR;
		return true;
	}
	vsock_conn_kill(c, errno == EPIPE ? "host side closed"
					  : "write to host side failed");
	return false;
}

/* Write what we hold for the Unix side as far as it takes it. */
static void flush(struct vsock_conn *c)
{
	while (c->state == VS_OPEN && c->writable) {
		ssize_t n;

		if (c->prefix_off < c->prefix_len) {
			n = send(c->fd, c->prefix + c->prefix_off,
				 c->prefix_len - c->prefix_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (!wrote(c, n))
				return;
			if (n > 0)
				c->prefix_off += (uint8_t)n;
			continue;
		}
		if (!c->buf_len)
			break;
		n = send(c->fd, c->buf + c->buf_off, c->buf_len,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (!wrote(c, n))
			return;
		if (n == 0)
			break;
		if (n > 0) {
			c->buf_off += (uint32_t)n;
			c->buf_len -= (uint32_t)n;
			c->fwd_cnt += (uint32_t)n;
			if (!c->buf_len)
				c->buf_off = 0;
		}
	}
	after_drain(c);
}

/* Room for len more bytes at the end of the buffer (len plus what it
 * holds never exceeds VSOCK_BUF_ALLOC: the caller checked). */
static bool buf_reserve(struct vsock_conn *c, uint32_t len)
{
	uint32_t need = c->buf_len + len, cap;
	uint8_t *p;

	if (c->buf_off + need <= c->buf_cap)
		return true;
	if (c->buf_off) {
		memmove(c->buf, c->buf + c->buf_off, c->buf_len);
		c->buf_off = 0;
	}
	if (need <= c->buf_cap)
		return true;
	for (cap = c->buf_cap ? c->buf_cap : 16384; cap < need; cap *= 2)
		;
	if (cap > VSOCK_BUF_ALLOC)
		cap = VSOCK_BUF_ALLOC;
	p = realloc(c->buf, cap);
	if (!p)
		return false;
	c->buf = p;
	c->buf_cap = cap;
	return true;
}

/* iovecs for len readable bytes of chain from byte off; their count. */
static unsigned chain_iov(const struct virtq_chain *chain, uint64_t off,
			  uint32_t len, struct iovec *iov)
{
	unsigned n = 0;

	for (unsigned i = 0; i < chain->nreadable && len; i++) {
		const struct virtq_buf *b = &chain->bufs[i];
		uint32_t take;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		take = b->len - (uint32_t)off;
		if (take > len)
			take = len;
		iov[n++] =
		    (struct iovec){.iov_base = b->hva + off, .iov_len = take};
		len -= take;
		off = 0;
	}
	return n;
}

void vsock_conn_data(struct vsock_conn *c, const struct virtq_chain *chain,
		     uint32_t len)
{
	uint64_t off = VSOCK_HDR_LEN;

	if (c->peer_shut & VSOCK_SHUTDOWN_SEND) {
		vsock_conn_kill(c, "guest sent data after its SHUTDOWN");
		return;
	}
	/* Bounded memory: a guest sending past the credit we advertised
	 * gets reset, not buffered. */
	if (len > VSOCK_BUF_ALLOC - c->buf_len) {
		vsock_conn_kill(c, "guest ignored our credit");
		return;
	}
	c->v->stats.tx_bytes += len;
	if (!c->buf_len && c->prefix_off == c->prefix_len && c->writable &&
	    len) {
		/* Straight from guest memory to the socket. */
		struct msghdr m = {.msg_iov = c->v->iov};
		ssize_t n;

		m.msg_iovlen = chain_iov(chain, off, len, c->v->iov);
		n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (!wrote(c, n))
			return;
		if (n > 0) {
			c->fwd_cnt += (uint32_t)n;
			off += (uint64_t)n;
			len -= (uint32_t)n;
		}
	}
	if (len) {
		if (!buf_reserve(c, len)) {
			vsock_conn_kill(c, "out of memory");
			return;
		}
		/* Cannot fail: the caller checked the chain holds len
		 * bytes after the header. */
		if (virtq_chain_read(chain, off,
				     c->buf + c->buf_off + c->buf_len, len)) {
			vsock_conn_kill(c, "short chain");
			return;
		}
		c->buf_len += len;
	}
	after_drain(c);
}

void vsock_conn_shutdown(struct vsock_conn *c, uint32_t flags)
{
	c->peer_shut |= flags & (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	after_drain(c);
	/* The guest will not read: the Unix side's EOF or hang-up is the
	 * only thing left to notice there. */
	if (c->state == VS_OPEN && (c->peer_shut & VSOCK_SHUTDOWN_RCV) &&
	    unix_hung_up(c))
		unix_gone(c);
}

void vsock_conn_response(struct vsock_conn *c)
{
	c->state = VS_OPEN;
	c->v->stats.conns_host++;
	c->prefix_len = (uint8_t)snprintf(c->prefix, sizeof(c->prefix),
					  "OK %u\n", c->local_port);
	c->prefix_off = 0;
	flush(c);
	if (c->state == VS_OPEN && c->readable)
		vsock_conn_queue(c, 0);
}

/* ---- events on a connection's Unix socket ---- */

void vsock_conn_event(struct ev_handler *h, uint32_t events)
{
	struct vsock_conn *c = container_of(h, struct vsock_conn, ev);
	struct virtio_vsock *v = c->v;
	bool hup = events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP);

	pthread_mutex_lock(&v->vdev.lock);
	/* The event may be older than the slot's occupant (a connection
	 * closed after epoll_wait returned): treat it as a hint only. */
	switch (c->state) {
	case VS_LINE:
		vsock_read_line(c);
		/* Half a line, then EOF: no more edges will come. */
		if (c->state == VS_LINE && hup && unix_rdhup(c))
			vsock_conn_free(c);
		break;
	case VS_CONNECTING:
		if (hup && unix_hung_up(c))
			vsock_conn_kill(c, "host side closed before the "
					   "guest answered");
		break;
	case VS_OPEN:
		if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			c->writable = true;
		if ((events & EPOLLIN) || hup)
			c->readable = !c->local_eof;
		flush(c);
		if (c->state != VS_OPEN)
			break;
		if (hup &&
		    (c->local_eof || (c->peer_shut & VSOCK_SHUTDOWN_RCV)) &&
		    unix_hung_up(c))
			unix_gone(c);
		else if (c->readable)
			vsock_conn_queue(c, 0);
		break;
	case VS_FREE:
	case VS_CLOSING:
	case VS_DEAD:
		break;
	}
	vsock_rx_pump(v);
	pthread_mutex_unlock(&v->vdev.lock);
}
