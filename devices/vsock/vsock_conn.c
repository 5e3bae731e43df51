// SPDX-License-Identifier: MIT
/*
 * virtio-vsock connections: lookup, the work list, closing, the
 * timeouts, and the bytes between a Unix socket and the guest.  Every
 * syscall on a socket or the timer goes through the multiplexer
 * (vsock_mux.h), which tells us of events through the callbacks at the
 * end of this file.
 *
 * The multiplexer registers Unix connections edge-triggered;
 * readable/writable remember an edge until a read or write says EAGAIN.
 * So the loop never spins on a socket we cannot serve right now (no
 * guest credit, no rx buffers, nothing to write), and nothing is
 * re-registered as credit comes and goes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/base/log.h"
#include "devices/vsock/vsock_conn.h"

#define HASH_SIZE (2 * VSOCK_MAX_CONNS)

unsigned vsock_conn_id(const struct vsock_conn *c)
{
	return (unsigned)(c - c->v->slots);
}

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

static void hash_add(struct vsock_conn *c)
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
	vsock_mux_close(&c->v->mux, vsock_conn_id(c));
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
	if (v->timer_at && v->timer_at <= at)
		return;
	if (vsock_mux_timer(&v->mux, at) == 0)
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

/* Give up on c (see virtio_vsock_expire) timeout_ns from now. */
static void set_deadline(struct vsock_conn *c, uint64_t timeout_ns)
{
	c->deadline = vsock_mux_now() + timeout_ns;
	timer_arm(c->v, c->deadline);
}

/* ---- the Unix side of one connection ---- */

/* Has the Unix peer closed (or have both halves been shut down)? */
static bool unix_hung_up(const struct vsock_conn *c)
{
	return vsock_mux_hung_up(&c->v->mux, vsock_conn_id(c));
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
	set_deadline(c, v->close_timeout_ns);
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
			vsock_mux_shut_wr(&c->v->mux, vsock_conn_id(c));
			c->wr_shut = true;
		}
	}
	/* Tell the guest about the space before it runs out of credit. */
	if (c->fwd_cnt - c->fwd_reported >= VSOCK_CREDIT_THRESHOLD)
		vsock_conn_queue(c, PEND_CREDIT);
}

/* n bytes went out, or negative errno: false if the connection died. */
static bool wrote(struct vsock_conn *c, ssize_t n)
{
	if (n >= 0)
		return true;
	if (n == -EAGAIN || n == -EINTR) {
		c->writable = n == -EINTR;
		return true;
	}
	vsock_conn_kill(c, n == -EPIPE ? "host side closed"
				       : "write to host side failed");
	return false;
}

/* Send len bytes at p to the Unix side. */
static ssize_t send_buf(struct vsock_conn *c, const void *p, size_t len)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = len};

	return vsock_mux_send(&c->v->mux, vsock_conn_id(c), &iov, 1);
}

/* Write what we hold for the Unix side as far as it takes it. */
static void flush(struct vsock_conn *c)
{
	while (c->state == VS_OPEN && c->writable) {
		ssize_t n;

		if (c->prefix_off < c->prefix_len) {
			n = send_buf(c, c->prefix + c->prefix_off,
				     c->prefix_len - c->prefix_off);
			if (!wrote(c, n))
				return;
			if (n > 0)
				c->prefix_off += (uint8_t)n;
			continue;
		}
		if (!c->buf_len)
			break;
		n = send_buf(c, c->buf + c->buf_off, c->buf_len);
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
		unsigned niov = chain_iov(chain, off, len, c->v->iov);
		ssize_t n = vsock_mux_send(&c->v->mux, vsock_conn_id(c),
					   c->v->iov, niov);

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

/* ---- where connections come from ---- */

static struct vsock_conn *free_slot(struct virtio_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (v->slots[i].state == VS_FREE)
			return &v->slots[i];
	return NULL;
}

/* Slot c has a Unix connection now. */
static void conn_start(struct vsock_conn *c, enum vsock_state state)
{
	struct virtio_vsock *v = c->v;

	memset(c, 0, sizeof(*c));
	c->v = v;
	c->readable = c->writable = true;
	c->state = state;
	v->nconns++;
}

static uint32_t alloc_local_port(struct virtio_vsock *v, uint32_t peer)
{
	for (;;) {
		uint32_t p = v->next_local_port++;

		if (v->next_local_port == UINT32_MAX)
			v->next_local_port = VSOCK_FIRST_LOCAL_PORT;
		/* At most VSOCK_MAX_CONNS ports are taken: this ends. */
		if (!vsock_conn_find(v, p, peer))
			return p;
	}
}

/* LINE state: take "CONNECT <port>\n" if it is all there. */
static void read_line(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;
	uint32_t port;
	int ret = vsock_mux_read_line(&v->mux, vsock_conn_id(c), &port);

	if (ret == 0)
		return;
	if (ret < 0) {
		vsock_conn_free(c);
		return;
	}
	if (!virtio_dev_live(&v->vdev)) {
		log_debug("vsock: CONNECT %u before the guest driver is ready",
			  port);
		vsock_conn_free(c);
		return;
	}
	c->peer_port = port;
	c->local_port = alloc_local_port(v, c->peer_port);
	c->state = VS_CONNECTING;
	set_deadline(c, v->connect_timeout_ns);
	hash_add(c);
	vsock_conn_queue(c, PEND_REQUEST);
}

void vsock_guest_request(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	struct vsock_conn *c = free_slot(v);

	if (!c) {
		log_debug("vsock: too many connections; refusing guest port "
			  "%u",
			  h->src_port);
		vsock_orphan_rst(v, h);
		return;
	}
	if (vsock_mux_connect(&v->mux, vsock_conn_id(c), h->dst_port)) {
		vsock_orphan_rst(v, h);
		return;
	}
	conn_start(c, VS_OPEN);
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	hash_add(c);
	v->stats.conns_guest++;
	vsock_conn_queue(c, PEND_RESPONSE);
}

/* ---- what the multiplexer tells us ---- */

/* Host programs connected to PATH. */
static void on_incoming(void *ctx)
{
	struct virtio_vsock *v = ctx;

	for (;;) {
		struct vsock_conn *c = free_slot(v);
		int ret =
		    vsock_mux_accept(&v->mux, c ? (int)vsock_conn_id(c) : -1);

		if (ret == 0)
			break;
		if (ret < 0)
			continue; /* refused or lost; the next one */
		conn_start(c, VS_LINE);
		set_deadline(c, v->line_timeout_ns);
		read_line(c);
	}
	vsock_rx_pump(v);
}

static void on_event(void *ctx, unsigned id, unsigned events)
{
	struct virtio_vsock *v = ctx;
	struct vsock_conn *c = &v->slots[id];
	bool hup = events & VSOCK_MUX_HUP;

	/* The event may be older than the slot's occupant (a connection
	 * closed after epoll_wait returned): treat it as a hint only. */
	switch (c->state) {
	case VS_LINE:
		read_line(c);
		/* Half a line, then EOF: no more edges will come. */
		if (c->state == VS_LINE && hup && vsock_mux_rdhup(&v->mux, id))
			vsock_conn_free(c);
		break;
	case VS_CONNECTING:
		if (hup && unix_hung_up(c))
			vsock_conn_kill(c, "host side closed before the "
					   "guest answered");
		break;
	case VS_OPEN:
		if (events & VSOCK_MUX_OUT)
			c->writable = true;
		if ((events & VSOCK_MUX_IN) || hup)
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
}

static void on_timer(void *ctx)
{
	struct virtio_vsock *v = ctx;

	virtio_vsock_expire(v, vsock_mux_now());
	vsock_rx_pump(v);
}

static const struct vsock_mux_up mux_up = {
    .incoming = on_incoming,
    .event = on_event,
    .timer = on_timer,
};

int vsock_conn_init(struct virtio_vsock *v, const char *path)
{
	v->slots = calloc(VSOCK_MAX_CONNS, sizeof(*v->slots));
	if (!v->slots) {
		log_err(-ENOMEM, "vsock");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		v->slots[i].v = v;
	return vsock_mux_init(&v->mux, path, v->vdev.host.ep, &v->vdev.lock,
			      &mux_up, v);
}

void vsock_conn_fini(struct virtio_vsock *v)
{
	if (!v->slots)
		return;
	vsock_drop_all(v);
	vsock_mux_fini(&v->mux);
	free(v->slots);
	v->slots = NULL;
}
