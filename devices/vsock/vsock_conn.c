// SPDX-License-Identifier: MIT
/*
 * virtio-vsock, middle layer: the connections (API, states and lock
 * rules in vsock_conn.h).  Lookup, the work list, credit both ways, the
 * bounded buffer of guest bytes, closing and the timeouts.  Calls go
 * down only: every syscall on a socket or the timer through the
 * multiplexer (vsock_mux.h), which reports events through the callbacks
 * at the end of this file; the device is told only through cs->up.
 *
 * The multiplexer registers Unix connections edge-triggered;
 * readable/writable remember an edge until a read or write says EAGAIN.
 * So the loop never spins on a socket we cannot serve right now (no
 * guest credit, no rx buffers, nothing to write), and nothing is
 * re-registered as credit comes and goes.
 */
#include "devices/vsock/vsock_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/base/log.h"

/* Control packets a connection owes the guest. */
#define PEND_REQUEST  1u
#define PEND_RESPONSE 2u
#define PEND_CREDIT   4u
#define PEND_SHUTDOWN 8u
#define PEND_RST      16u

#define HASH_SIZE (2 * VSOCK_MAX_CONNS) /* as struct vsock_conns.hash */

/* The connection's id with the multiplexer. */
static unsigned conn_id(const struct vsock_conn *c)
{
	return (unsigned)(c - c->cs->slots);
}

static unsigned hash_key(uint32_t local, uint32_t peer)
{
	uint32_t h = local * 0x9e3779b1u ^ (peer + 0x7f4a7c15u) * 0x85ebca77u;

	return (h ^ (h >> 15)) % HASH_SIZE;
}

static struct vsock_conn *conn_find(struct vsock_conns *cs, uint32_t local,
				    uint32_t peer)
{
	struct vsock_conn *c = cs->hash[hash_key(local, peer)];

	while (c && (c->local_port != local || c->peer_port != peer))
		c = c->hnext;
	return c;
}

static void hash_add(struct vsock_conn *c)
{
	struct vsock_conn **b =
	    &c->cs->hash[hash_key(c->local_port, c->peer_port)];

	c->hnext = *b;
	*b = c;
	c->hashed = true;
}

static void hash_del(struct vsock_conn *c)
{
	struct vsock_conn **p =
	    &c->cs->hash[hash_key(c->local_port, c->peer_port)];

	if (!c->hashed)
		return;
	while (*p != c)
		p = &(*p)->hnext;
	*p = c->hnext;
	c->hashed = false;
}

/* Owe the guest these packets (0: just data) and get on the work list. */
static void conn_queue(struct vsock_conn *c, unsigned pend)
{
	struct vsock_conns *cs = c->cs;

	c->pending |= pend;
	if (c->queued)
		return;
	c->queued = true;
	c->wnext = NULL;
	c->wprev = cs->work_tail;
	if (cs->work_tail)
		cs->work_tail->wnext = c;
	else
		cs->work_head = c;
	cs->work_tail = c;
}

static void conn_unqueue(struct vsock_conn *c)
{
	struct vsock_conns *cs = c->cs;

	if (!c->queued)
		return;
	if (c->wprev)
		c->wprev->wnext = c->wnext;
	else
		cs->work_head = c->wnext;
	if (c->wnext)
		c->wnext->wprev = c->wprev;
	else
		cs->work_tail = c->wprev;
	c->wprev = c->wnext = NULL;
	c->queued = false;
}

/* Bytes the guest can take from us now. */
static uint32_t conn_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	/* A guest claiming to have forwarded more than we sent only makes
	 * in_flight wrap to a huge value: no credit, never too much. */
	return in_flight >= c->peer_buf_alloc ? 0
					      : c->peer_buf_alloc - in_flight;
}

static void close_unix(struct vsock_conn *c)
{
	vsock_mux_close(&c->cs->mux, conn_id(c));
	free(c->buf);
	c->buf = NULL;
	c->buf_cap = c->buf_off = c->buf_len = 0;
}

/* Forget the connection entirely (closes the Unix side). */
static void conn_free(struct vsock_conn *c)
{
	if (c->state == VS_FREE)
		return;
	conn_unqueue(c);
	hash_del(c);
	close_unix(c);
	c->state = VS_FREE;
	c->cs->nconns--;
}

/* Close the Unix side; owe the guest an RST. */
static void conn_kill(struct vsock_conn *c, const char *why)
{
	log_debug("vsock: %u <-> guest %u: reset (%s)", c->local_port,
		  c->peer_port, why);
	/* The guest never heard of it: nothing to reset there. */
	if (c->state == VS_LINE ||
	    (c->state == VS_CONNECTING && (c->pending & PEND_REQUEST))) {
		conn_free(c);
		return;
	}
	close_unix(c);
	c->state = VS_DEAD;
	c->pending = 0;
	conn_queue(c, PEND_RST);
}

void vsock_conns_drop_all(struct vsock_conns *cs)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		conn_free(&cs->slots[i]);
}

struct vsock_conn *vsock_conns_find(struct vsock_conns *cs, uint32_t local_port,
				    uint32_t peer_port)
{
	return conn_find(cs, local_port, peer_port);
}

bool vsock_conn_owes_rst(const struct vsock_conn *c)
{
	return c->pending & PEND_RST;
}

/* ---- timeouts: connections waiting for a CONNECT line, for the guest's
 * answer to a request, or for its RST after our SHUTDOWN ---- */

static void timer_arm(struct vsock_conns *cs, uint64_t at)
{
	if (cs->timer_at && cs->timer_at <= at)
		return;
	if (vsock_mux_timer(&cs->mux, at) == 0)
		cs->timer_at = at;
}

void vsock_conns_expire(struct vsock_conns *cs, uint64_t now_ns)
{
	uint64_t next = 0;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &cs->slots[i];

		if (c->state != VS_CLOSING && c->state != VS_LINE &&
		    c->state != VS_CONNECTING)
			continue;
		if (c->deadline <= now_ns)
			conn_kill(c, c->state == VS_LINE
					 ? "no CONNECT line in time"
				     : c->state == VS_CONNECTING
					 ? "the guest did not answer "
					   "the request in time"
					 : "no RST from the guest after "
					   "SHUTDOWN");
		else if (!next || c->deadline < next)
			next = c->deadline;
	}
	cs->timer_at = 0;
	if (next)
		timer_arm(cs, next);
}

/* Give up on c (see vsock_conns_expire) timeout_ns from now. */
static void set_deadline(struct vsock_conn *c, uint64_t timeout_ns)
{
	c->deadline = vsock_mux_now() + timeout_ns;
	timer_arm(c->cs, c->deadline);
}

/* ---- the Unix side of one connection ---- */

/* Has the Unix peer closed (or have both halves been shut down)? */
static bool unix_hung_up(const struct vsock_conn *c)
{
	return vsock_mux_hung_up(&c->cs->mux, conn_id(c));
}

/* Nothing can flow to or from the Unix side any more: tell the guest
 * both directions are shut, and wait for its RST. */
static void unix_gone(struct vsock_conn *c)
{
	if (c->buf_len || c->prefix_off < c->prefix_len) {
		conn_kill(c, "host side closed with guest data pending");
		return;
	}
	close_unix(c);
	c->state = VS_CLOSING;
	c->shut_flags = VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND;
	set_deadline(c, c->cs->close_timeout_ns);
	conn_queue(c, PEND_SHUTDOWN);
}

/* The Unix side reached EOF (a read returned 0). */
static void conn_eof(struct vsock_conn *c)
{
	c->local_eof = true;
	c->readable = false;
	if (unix_hung_up(c)) {
		unix_gone(c);
		return;
	}
	/* Half close: the host program may still read. */
	c->shut_flags |= VSOCK_SHUTDOWN_SEND;
	conn_queue(c, PEND_SHUTDOWN);
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
			conn_kill(c, "closed by the guest");
			return;
		}
		if ((c->peer_shut & VSOCK_SHUTDOWN_SEND) && !c->wr_shut) {
			vsock_mux_shut_wr(&c->cs->mux, conn_id(c));
			c->wr_shut = true;
		}
	}
	/* Tell the guest about the space before it runs out of credit. */
	if (c->fwd_cnt - c->fwd_reported >= VSOCK_CREDIT_THRESHOLD)
		conn_queue(c, PEND_CREDIT);
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
	conn_kill(c, n == -EPIPE ? "host side closed"
				 : "write to host side failed");
	return false;
}

/* Send len bytes at p to the Unix side. */
static ssize_t send_buf(struct vsock_conn *c, const void *p, size_t len)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = len};

	return vsock_mux_send(&c->cs->mux, conn_id(c), &iov, 1);
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

/* Copy len bytes of iov, from byte off on, to dst; the count copied. */
static uint32_t iov_copy(uint8_t *dst, const struct iovec *iov, unsigned niov,
			 uint64_t off, uint32_t len)
{
	uint32_t done = 0;

	for (unsigned i = 0; i < niov && done < len; i++) {
		size_t take;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		take = iov[i].iov_len - off;
		if (take > len - done)
			take = len - done;
		memcpy(dst + done, (const uint8_t *)iov[i].iov_base + off,
		       take);
		done += (uint32_t)take;
		off = 0;
	}
	return done;
}

/* ---- packets from the guest ---- */

/* RW: len bytes of payload in iov. */
static void conn_data(struct vsock_conn *c, const struct iovec *iov,
		      unsigned niov, uint32_t len)
{
	uint64_t off = 0;

	if (c->peer_shut & VSOCK_SHUTDOWN_SEND) {
		conn_kill(c, "guest sent data after its SHUTDOWN");
		return;
	}
	/* Bounded memory: a guest sending past the credit we advertised
	 * gets reset, not buffered. */
	if (len > VSOCK_BUF_ALLOC - c->buf_len) {
		conn_kill(c, "guest ignored our credit");
		return;
	}
	c->cs->stats->tx_bytes += len;
	if (!c->buf_len && c->prefix_off == c->prefix_len && c->writable &&
	    len) {
		/* Straight from guest memory to the socket. */
		ssize_t n = vsock_mux_send(&c->cs->mux, conn_id(c), iov, niov);

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
			conn_kill(c, "out of memory");
			return;
		}
		/* Cannot fall short: the device checked iov holds the
		 * packet's length. */
		if (iov_copy(c->buf + c->buf_off + c->buf_len, iov, niov, off,
			     len) != len) {
			conn_kill(c, "short payload");
			return;
		}
		c->buf_len += len;
	}
	after_drain(c);
}

static void conn_shutdown(struct vsock_conn *c, uint32_t flags)
{
	c->peer_shut |= flags & (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	after_drain(c);
	/* The guest will not read: the Unix side's EOF or hang-up is the
	 * only thing left to notice there. */
	if (c->state == VS_OPEN && (c->peer_shut & VSOCK_SHUTDOWN_RCV) &&
	    unix_hung_up(c))
		unix_gone(c);
}

static void conn_response(struct vsock_conn *c)
{
	c->state = VS_OPEN;
	c->cs->stats->conns_host++;
	c->prefix_len = (uint8_t)snprintf(c->prefix, sizeof(c->prefix),
					  "OK %u\n", c->local_port);
	c->prefix_off = 0;
	flush(c);
	if (c->state == VS_OPEN && c->readable)
		conn_queue(c, 0);
}

static struct vsock_conn *free_slot(struct vsock_conns *cs)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (cs->slots[i].state == VS_FREE)
			return &cs->slots[i];
	return NULL;
}

/* Slot c has a Unix connection now. */
static void conn_start(struct vsock_conn *c, enum vsock_state state)
{
	struct vsock_conns *cs = c->cs;

	memset(c, 0, sizeof(*c));
	c->cs = cs;
	c->readable = c->writable = true;
	c->state = state;
	cs->nconns++;
}

/* A REQUEST to a port with no connection: reach PATH_<port>.  True if
 * the guest should get an RST instead. */
static bool guest_request(struct vsock_conns *cs, const struct vsock_hdr *h)
{
	struct vsock_conn *c = free_slot(cs);

	if (!c) {
		log_debug("vsock: too many connections; refusing guest port "
			  "%u",
			  h->src_port);
		return true;
	}
	if (vsock_mux_connect(&cs->mux, conn_id(c), h->dst_port))
		return true;
	conn_start(c, VS_OPEN);
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	hash_add(c);
	cs->stats->conns_guest++;
	conn_queue(c, PEND_RESPONSE);
	return false;
}

static bool can_read(const struct vsock_conn *c)
{
	return c->state == VS_OPEN && c->readable && !c->local_eof &&
	       !(c->peer_shut & VSOCK_SHUTDOWN_RCV) && conn_credit(c) > 0;
}

bool vsock_conns_recv(struct vsock_conns *cs, const struct vsock_hdr *h,
		      const struct iovec *payload, unsigned niov)
{
	struct vsock_conn *c = conn_find(cs, h->dst_port, h->src_port);

	if (!c)
		return h->op == VSOCK_OP_REQUEST ? guest_request(cs, h) : true;
	if (c->state == VS_DEAD) {
		/* Our RST is on its way; theirs settles it sooner. */
		if (h->op == VSOCK_OP_RST)
			conn_free(c);
		return false;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		if (c->state == VS_CONNECTING && !(c->pending & PEND_REQUEST))
			conn_response(c);
		else
			conn_kill(c, "unexpected RESPONSE");
		break;
	case VSOCK_OP_RST:
		conn_free(c);
		break;
	case VSOCK_OP_SHUTDOWN:
		if (c->state == VS_OPEN)
			conn_shutdown(c, h->flags);
		else
			conn_kill(c, c->state == VS_CLOSING
					 ? "closed by both sides"
					 : "SHUTDOWN before RESPONSE");
		break;
	case VSOCK_OP_RW:
		if (c->state == VS_OPEN)
			conn_data(c, payload, niov, h->len);
		else if (c->state != VS_CLOSING) /* closing: dropped */
			conn_kill(c, "data before RESPONSE");
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break; /* the header said it all */
	case VSOCK_OP_CREDIT_REQUEST:
		conn_queue(c, PEND_CREDIT);
		break;
	default: /* REQUEST on a connection that exists, or unknown */
		conn_kill(c, "unexpected operation");
		break;
	}
	/* The guest's credit may have grown: waiting host data can go. */
	if (can_read(c))
		conn_queue(c, 0);
	return false;
}

/* ---- packets to the guest ---- */

static void conn_hdr(struct vsock_conn *c, uint16_t op, uint32_t len,
		     struct vsock_hdr *h)
{
	h->src_port = c->local_port;
	h->dst_port = c->peer_port;
	h->len = len;
	h->op = op;
	h->flags = op == VSOCK_OP_SHUTDOWN ? c->shut_flags : 0;
	h->buf_alloc = VSOCK_BUF_ALLOC;
	h->fwd_cnt = c->fwd_cnt;
	/* Every packet tells the guest our credit. */
	c->fwd_reported = c->fwd_cnt;
	c->pending &= ~PEND_CREDIT;
}

/* Keep at most len bytes of iov; the count of buffers left. */
static unsigned iov_trim(struct iovec *iov, unsigned niov, uint32_t len)
{
	unsigned n = 0;

	for (; n < niov && len; n++) {
		if (iov[n].iov_len > len)
			iov[n].iov_len = len;
		len -= (uint32_t)iov[n].iov_len;
	}
	return n;
}

/* Host bytes into one packet, no more than the guest's credit. */
static bool data_packet(struct vsock_conn *c, struct vsock_hdr *h,
			struct iovec *iov, unsigned niov)
{
	uint32_t want = conn_credit(c), room = 0;
	ssize_t n;

	for (unsigned i = 0; i < niov; i++)
		room += (uint32_t)iov[i].iov_len;
	if (want > room)
		want = room;
	if (want == 0) {
		/* A header-only buffer fits no data: spend it on telling
		 * the guest our credit. */
		conn_hdr(c, VSOCK_OP_CREDIT_UPDATE, 0, h);
		return true;
	}
	niov = iov_trim(iov, niov, want);
	n = vsock_mux_recv(&c->cs->mux, conn_id(c), iov, niov);
	if (n > 0) {
		conn_hdr(c, VSOCK_OP_RW, (uint32_t)n, h);
		c->tx_cnt += (uint32_t)n;
		return true;
	}
	if (n == 0)
		conn_eof(c);
	else if (n == -EAGAIN)
		c->readable = false;
	else if (n != -EINTR)
		conn_kill(c, "read from host side failed");
	return false;
}

bool vsock_conns_owed(struct vsock_conns *cs)
{
	struct vsock_conn *c;

	while ((c = cs->work_head)) {
		if (c->pending || can_read(c))
			return true;
		conn_unqueue(c); /* nothing more to say for now */
	}
	return false;
}

bool vsock_conns_fill(struct vsock_conns *cs, struct vsock_hdr *h,
		      struct iovec *iov, unsigned niov)
{
	static const struct {
		unsigned bit;
		uint16_t op;
	} order[] = {
	    /* Protocol order; data goes between RESPONSE and SHUTDOWN. */
	    {PEND_RST, VSOCK_OP_RST},
	    {PEND_REQUEST, VSOCK_OP_REQUEST},
	    {PEND_RESPONSE, VSOCK_OP_RESPONSE},
	    {0, VSOCK_OP_RW},
	    {PEND_SHUTDOWN, VSOCK_OP_SHUTDOWN},
	    {PEND_CREDIT, VSOCK_OP_CREDIT_UPDATE},
	};
	struct vsock_conn *c = cs->work_head;
	size_t i;

	if (!c)
		return false;
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (order[i].bit ? c->pending & order[i].bit : can_read(c))
			break;
	if (i == sizeof(order) / sizeof(order[0]))
		return false; /* vsock_conns_owed drops it off the list */
	if (!order[i].bit) {
		if (!data_packet(c, h, iov, niov))
			return false;
	} else {
		conn_hdr(c, order[i].op, 0, h);
		c->pending &= ~order[i].bit;
	}
	if (h->op == VSOCK_OP_RST) {
		conn_free(c); /* the guest hears of it: done */
	} else if (c->queued && c->wnext) {
		/* Round robin: one packet each in turn. */
		conn_unqueue(c);
		conn_queue(c, 0);
	}
	return true;
}

/* ---- host programs and the CONNECT line ---- */

static uint32_t alloc_local_port(struct vsock_conns *cs, uint32_t peer)
{
	for (;;) {
		uint32_t p = cs->next_local_port++;

		if (cs->next_local_port == UINT32_MAX)
			cs->next_local_port = VSOCK_FIRST_LOCAL_PORT;
		/* At most VSOCK_MAX_CONNS ports are taken: this ends. */
		if (!conn_find(cs, p, peer))
			return p;
	}
}

/* LINE state: take "CONNECT <port>\n" if it is all there. */
static void read_line(struct vsock_conn *c)
{
	struct vsock_conns *cs = c->cs;
	uint32_t port;
	int ret = vsock_mux_read_line(&cs->mux, conn_id(c), &port);

	if (ret == 0)
		return;
	if (ret < 0) {
		conn_free(c);
		return;
	}
	if (!cs->up->guest_ready(cs->ctx)) {
		log_debug("vsock: CONNECT %u before the guest driver is ready",
			  port);
		conn_free(c);
		return;
	}
	c->peer_port = port;
	c->local_port = alloc_local_port(cs, c->peer_port);
	c->state = VS_CONNECTING;
	set_deadline(c, cs->connect_timeout_ns);
	hash_add(c);
	conn_queue(c, PEND_REQUEST);
}

/* ---- what the multiplexer tells us; each ends a host event ---- */

static void on_incoming(void *ctx)
{
	struct vsock_conns *cs = ctx;

	for (;;) {
		struct vsock_conn *c = free_slot(cs);
		int ret = vsock_mux_accept(&cs->mux, c ? (int)conn_id(c) : -1);

		if (ret == 0)
			break;
		if (ret < 0)
			continue; /* refused or lost; the next one */
		conn_start(c, VS_LINE);
		set_deadline(c, cs->line_timeout_ns);
		read_line(c);
	}
	cs->up->kick(cs->ctx);
}

static void on_event(void *ctx, unsigned id, unsigned events)
{
	struct vsock_conns *cs = ctx;
	struct vsock_conn *c = &cs->slots[id];
	bool hup = events & VSOCK_MUX_HUP;

	/* The event may be older than the slot's occupant (a connection
	 * closed after epoll_wait returned): treat it as a hint only. */
	switch (c->state) {
	case VS_LINE:
		read_line(c);
		/* Half a line, then EOF: no more edges will come. */
		if (c->state == VS_LINE && hup && vsock_mux_rdhup(&cs->mux, id))
			conn_free(c);
		break;
	case VS_CONNECTING:
		if (hup && unix_hung_up(c))
			conn_kill(c, "host side closed before the guest "
				     "answered");
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
			conn_queue(c, 0);
		break;
	case VS_FREE:
	case VS_CLOSING:
	case VS_DEAD:
		break;
	}
	cs->up->kick(cs->ctx);
}

static void on_timer(void *ctx)
{
	struct vsock_conns *cs = ctx;

	vsock_conns_expire(cs, vsock_mux_now());
	cs->up->kick(cs->ctx);
}

static const struct vsock_mux_up mux_up = {
    .incoming = on_incoming,
    .event = on_event,
    .timer = on_timer,
};

int vsock_conns_init(struct vsock_conns *cs, const char *path, int ep,
		     pthread_mutex_t *lock, struct virtio_vsock_stats *stats,
		     const struct vsock_conn_up *up, void *ctx)
{
	cs->up = up;
	cs->ctx = ctx;
	cs->stats = stats;
	cs->close_timeout_ns = VSOCK_CLOSE_TIMEOUT_NS;
	cs->line_timeout_ns = VSOCK_LINE_TIMEOUT_NS;
	cs->connect_timeout_ns = VSOCK_CONNECT_TIMEOUT_NS;
	cs->next_local_port = VSOCK_FIRST_LOCAL_PORT;
	cs->slots = calloc(VSOCK_MAX_CONNS, sizeof(*cs->slots));
	if (!cs->slots) {
		log_err(-ENOMEM, "vsock");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		cs->slots[i].cs = cs;
	return vsock_mux_init(&cs->mux, path, ep, lock, &mux_up, cs);
}

void vsock_conns_fini(struct vsock_conns *cs)
{
	if (!cs->slots)
		return; /* vsock_conns_init never got that far */
	vsock_conns_drop_all(cs);
	vsock_mux_fini(&cs->mux);
	free(cs->slots);
	cs->slots = NULL;
}
