// SPDX-License-Identifier: MIT
/*
 * virtio-vsock: the device, its queues, and the packets on them.
 *
 * tx (guest to host): every chain is one packet, header first; it is
 * checked (header present, payload within the chain, our CIDs, stream
 * type), handed to its connection, and given back at once; guest data the
 * Unix side cannot take right now is copied into the connection's
 * bounded buffer.
 *
 * rx (host to guest): the pump walks the work list and turns what each
 * connection owes into packets, reading host data straight into the
 * guest's buffer, never more than the guest's credit.  A chain taken
 * from the ring but not filled (the host had nothing after all) is kept
 * for the next packet.
 */
#include "devices/vsock/virtio_vsock.h"

#include <errno.h>
#include <string.h>

#include "vmm/base/le.h"
#include "vmm/base/log.h"
#include "devices/vsock/vsock_conn.h"

enum step { STEP_SENT, STEP_AGAIN, STEP_IDLE, STEP_STALL };

uint64_t vsock_now_ns(void)
{
	return vsock_mux_now();
}

static struct virtio_vsock *to_vsock(struct virtio_dev *d)
{
	return container_of(d, struct virtio_vsock, vdev);
}

void vsock_hdr_decode(const uint8_t *raw, struct vsock_hdr *h)
{
	h->src_cid = get_le64(raw + 0);
	h->dst_cid = get_le64(raw + 8);
	h->src_port = get_le32(raw + 16);
	h->dst_port = get_le32(raw + 20);
	h->len = get_le32(raw + 24);
	h->type = get_le16(raw + 28);
	h->op = get_le16(raw + 30);
	h->flags = get_le32(raw + 32);
	h->buf_alloc = get_le32(raw + 36);
	h->fwd_cnt = get_le32(raw + 40);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *raw)
{
	put_le64(raw + 0, h->src_cid);
	put_le64(raw + 8, h->dst_cid);
	put_le32(raw + 16, h->src_port);
	put_le32(raw + 20, h->dst_port);
	put_le32(raw + 24, h->len);
	put_le16(raw + 28, h->type);
	put_le16(raw + 30, h->op);
	put_le32(raw + 32, h->flags);
	put_le32(raw + 36, h->buf_alloc);
	put_le32(raw + 40, h->fwd_cnt);
}

static const uint8_t *vsock_config(struct virtio_dev *d, uint32_t *len)
{
	*len = VSOCK_CONFIG_LEN;
	return to_vsock(d)->config;
}

static void broken(struct virtio_vsock *v, const char *why)
{
	virtio_dev_broken(&v->vdev, why);
	/* The host programs learn at once; the guest after its reset. */
	vsock_drop_all(v);
}

/* ---- host to guest (rx queue) ---- */

/* Make sure we hold an rx chain; false if the guest gave us none (or
 * broke the ring). */
static bool rx_chain(struct virtio_vsock *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_RXQ];
	int ret;

	if (v->rx_held)
		return true;
	ret = virtq_pop(q, &v->rx_chain);
	if (ret == 0)
		return false;
	if (ret < 0) {
		broken(v, q->error);
		return false;
	}
	if (v->rx_chain.nreadable || v->rx_chain.writable_len < VSOCK_HDR_LEN) {
		broken(v, "rx buffer without room for a packet header");
		return false;
	}
	v->rx_held = true;
	return true;
}

/* Fill in the header of the held chain and give it to the guest. */
static void rx_send(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	const struct virtq_chain *c = &v->rx_chain;
	uint8_t raw[VSOCK_HDR_LEN];
	uint32_t done = 0;

	vsock_hdr_encode(h, raw);
	for (unsigned i = 0; i < c->nbufs && done < VSOCK_HDR_LEN; i++) {
		uint32_t n = c->bufs[i].len;

		if (n > VSOCK_HDR_LEN - done)
			n = VSOCK_HDR_LEN - done;
		memcpy(c->bufs[i].hva, raw + done, n);
		done += n;
	}
	virtq_push(&v->vdev.queues[VSOCK_RXQ], c->head, VSOCK_HDR_LEN + h->len);
	v->rx_held = false;
}

static void conn_hdr(struct vsock_conn *c, uint16_t op, uint32_t len,
		     struct vsock_hdr *h)
{
	*h = (struct vsock_hdr){
	    .src_cid = VSOCK_HOST_CID,
	    .dst_cid = c->v->guest_cid,
	    .src_port = c->local_port,
	    .dst_port = c->peer_port,
	    .len = len,
	    .type = VSOCK_TYPE_STREAM,
	    .op = op,
	    .buf_alloc = VSOCK_BUF_ALLOC,
	    .fwd_cnt = c->fwd_cnt,
	};
	/* Every packet tells the guest our credit. */
	c->fwd_reported = c->fwd_cnt;
	c->pending &= ~PEND_CREDIT;
}

/* iovecs for up to len bytes of the held chain after the header. */
static unsigned rx_iov(struct virtio_vsock *v, uint32_t len)
{
	const struct virtq_chain *c = &v->rx_chain;
	uint32_t skip = VSOCK_HDR_LEN;
	unsigned n = 0;

	for (unsigned i = 0; i < c->nbufs && len; i++) {
		uint32_t take = c->bufs[i].len;

		if (skip >= take) {
			skip -= take;
			continue;
		}
		take -= skip;
		if (take > len)
			take = len;
		v->iov[n++] = (struct iovec){.iov_base = c->bufs[i].hva + skip,
					     .iov_len = take};
		len -= take;
		skip = 0;
	}
	return n;
}

static bool can_read(const struct vsock_conn *c)
{
	return c->state == VS_OPEN && c->readable && !c->local_eof &&
	       !(c->peer_shut & VSOCK_SHUTDOWN_RCV) && vsock_conn_credit(c) > 0;
}

/* Host bytes into one packet, no more than the guest's credit. */
static enum step conn_data(struct virtio_vsock *v, struct vsock_conn *c)
{
	uint32_t want = vsock_conn_credit(c);
	struct vsock_hdr h;
	ssize_t n;

	if (!rx_chain(v))
		return STEP_STALL;
	if (want > v->rx_chain.writable_len - VSOCK_HDR_LEN)
		want = (uint32_t)(v->rx_chain.writable_len - VSOCK_HDR_LEN);
	if (want > VSOCK_MAX_PKT)
		want = VSOCK_MAX_PKT;
	if (want == 0) {
		/* A header-only buffer fits no data: spend it on telling
		 * the guest our credit. */
		conn_hdr(c, VSOCK_OP_CREDIT_UPDATE, 0, &h);
		rx_send(v, &h);
		return STEP_SENT;
	}
	n = vsock_mux_recv(&v->mux, vsock_conn_id(c), v->iov, rx_iov(v, want));
	if (n > 0) {
		conn_hdr(c, VSOCK_OP_RW, (uint32_t)n, &h);
		c->tx_cnt += (uint32_t)n;
		v->stats.rx_bytes += (uint64_t)n;
		rx_send(v, &h);
		return STEP_SENT;
	}
	if (n == 0)
		vsock_conn_eof(c);
	else if (n == -EAGAIN)
		c->readable = false;
	else if (n != -EINTR)
		vsock_conn_kill(c, "read from host side failed");
	return STEP_AGAIN;
}

/* The next packet connection c owes the guest, in protocol order. */
static enum step conn_step(struct virtio_vsock *v, struct vsock_conn *c)
{
	struct vsock_hdr h;
	uint16_t op;
	unsigned bit;

	if (c->pending & PEND_RST) {
		op = VSOCK_OP_RST;
		bit = PEND_RST;
	} else if (c->pending & PEND_REQUEST) {
		op = VSOCK_OP_REQUEST;
		bit = PEND_REQUEST;
	} else if (c->pending & PEND_RESPONSE) {
		op = VSOCK_OP_RESPONSE;
		bit = PEND_RESPONSE;
	} else if (can_read(c)) {
		return conn_data(v, c);
	} else if (c->pending & PEND_SHUTDOWN) {
		op = VSOCK_OP_SHUTDOWN;
		bit = PEND_SHUTDOWN;
	} else if (c->pending & PEND_CREDIT) {
		op = VSOCK_OP_CREDIT_UPDATE;
		bit = PEND_CREDIT;
	} else {
		vsock_conn_unqueue(c);
		return STEP_IDLE;
	}
	if (!rx_chain(v))
		return STEP_STALL;
	conn_hdr(c, op, 0, &h);
	if (op == VSOCK_OP_SHUTDOWN)
		h.flags = c->shut_flags;
	c->pending &= ~bit;
	rx_send(v, &h);
	if (op == VSOCK_OP_RST) {
		v->stats.rst_sent++;
		vsock_conn_free(c);
	}
	return STEP_SENT;
}

void vsock_rx_pump(struct virtio_vsock *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_RXQ];
	unsigned budget = 2u * q->size; /* steps: a packet, or a read */
	bool used = false;

	if (!virtio_dev_live(&v->vdev) || !q->ready)
		return;
	for (;;) {
		struct vsock_conn *c;
		enum step s;

		if (budget-- == 0) {
			/* Host data keeps coming and the driver keeps
			 * posting buffers: yield to the event loop. */
			v->stats.deferred++;
			virtio_dev_defer(&v->vdev, VSOCK_RXQ);
			break;
		}

		if (v->orphan_len) {
			const struct vsock_orphan *o =
			    &v->orphans[v->orphan_head];
			struct vsock_hdr h = {
			    .src_cid = o->src_cid,
			    .dst_cid = v->guest_cid,
			    .src_port = o->src_port,
			    .dst_port = o->dst_port,
			    .type = VSOCK_TYPE_STREAM,
			    .op = VSOCK_OP_RST,
			};

			if (!rx_chain(v))
				break;
			rx_send(v, &h);
			v->orphan_head =
			    (v->orphan_head + 1) % VSOCK_ORPHAN_RING;
			v->orphan_len--;
			v->stats.rst_sent++;
			used = true;
			continue;
		}
		c = v->work_head;
		if (!c)
			break;
		s = conn_step(v, c);
		if (s == STEP_STALL)
			break;
		if (s == STEP_SENT) {
			used = true;
			/* Round robin: one packet each in turn. */
			if (c->queued && c->wnext) {
				vsock_conn_unqueue(c);
				vsock_conn_queue(c, 0);
			}
		}
	}
	if (used && virtio_dev_live(&v->vdev))
		virtio_dev_queue_done(&v->vdev, VSOCK_RXQ);
}

/* ---- guest to host (tx queue) ---- */

void vsock_orphan_rst(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	struct vsock_orphan *o;

	if (h->op == VSOCK_OP_RST)
		return; /* never answer an RST */
	if (v->orphan_len == VSOCK_ORPHAN_RING) {
		v->stats.orphans_dropped++;
		return;
	}
	o = &v->orphans[(v->orphan_head + v->orphan_len) % VSOCK_ORPHAN_RING];
	o->src_cid = h->dst_cid;
	o->src_port = h->dst_port;
	o->dst_port = h->src_port;
	v->orphan_len++;
}

/* One packet from the guest.  False if it broke the device. */
static bool guest_packet(struct virtio_vsock *v, const struct virtq_chain *ch)
{
	uint8_t raw[VSOCK_HDR_LEN];
	struct vsock_conn *c;
	struct vsock_hdr h;

	if (ch->readable_len < VSOCK_HDR_LEN ||
	    virtq_chain_read(ch, 0, raw, VSOCK_HDR_LEN)) {
		broken(v, "tx packet shorter than its header");
		return false;
	}
	vsock_hdr_decode(raw, &h);
	if (h.len > ch->readable_len - VSOCK_HDR_LEN) {
		broken(v, "tx packet length beyond its buffers");
		return false;
	}
	if (h.src_cid != v->guest_cid) {
		/* Not from our guest's address: nobody to answer. */
		v->stats.bad_packets++;
		log_debug("vsock: dropped packet from CID %llu",
			  (unsigned long long)h.src_cid);
		return true;
	}
	if (h.dst_cid != VSOCK_HOST_CID || h.type != VSOCK_TYPE_STREAM) {
		v->stats.bad_packets++;
		vsock_orphan_rst(v, &h);
		return true;
	}
	c = vsock_conn_find(v, h.dst_port, h.src_port);
	if (!c) {
		if (h.op == VSOCK_OP_REQUEST)
			vsock_guest_request(v, &h);
		else
			vsock_orphan_rst(v, &h);
		return true;
	}
	if (c->state == VS_DEAD) {
		/* Our RST is on its way; theirs settles it sooner. */
		if (h.op == VSOCK_OP_RST)
			vsock_conn_free(c);
		return true;
	}
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case VSOCK_OP_RESPONSE:
		if (c->state == VS_CONNECTING && !(c->pending & PEND_REQUEST))
			vsock_conn_response(c);
		else
			vsock_conn_kill(c, "unexpected RESPONSE");
		break;
	case VSOCK_OP_RST:
		vsock_conn_free(c);
		break;
	case VSOCK_OP_SHUTDOWN:
		if (c->state == VS_OPEN)
			vsock_conn_shutdown(c, h.flags);
		else
			vsock_conn_kill(c, c->state == VS_CLOSING
					       ? "closed by both sides"
					       : "SHUTDOWN before RESPONSE");
		break;
	case VSOCK_OP_RW:
		if (c->state == VS_OPEN)
			vsock_conn_data(c, ch, h.len);
		else if (c->state != VS_CLOSING) /* closing: dropped */
			vsock_conn_kill(c, "data before RESPONSE");
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break; /* the header said it all */
	case VSOCK_OP_CREDIT_REQUEST:
		vsock_conn_queue(c, PEND_CREDIT);
		break;
	default: /* REQUEST on a connection that exists, or unknown */
		vsock_conn_kill(c, "unexpected operation");
		break;
	}
	/* The guest's credit may have grown: waiting host data can go. */
	if (can_read(c))
		vsock_conn_queue(c, 0);
	return true;
}

static void process_tx(struct virtio_vsock *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_TXQ];
	unsigned budget = q->size;
	bool used = false;

	for (;;) {
		int ret;

		if (budget-- == 0) {
			v->stats.deferred++;
			virtio_dev_defer(&v->vdev, VSOCK_TXQ);
			break;
		}
		ret = virtq_pop(q, &v->tx_chain);
		if (ret == 0)
			break;
		if (ret < 0) {
			broken(v, q->error);
			return;
		}
		if (!guest_packet(v, &v->tx_chain))
			return;
		virtq_push(q, v->tx_chain.head, 0);
		used = true;
	}
	if (used)
		virtio_dev_queue_done(&v->vdev, VSOCK_TXQ);
}

static void vsock_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_vsock *v = to_vsock(d);

	if (q == VSOCK_EVQ)
		return; /* buffers wait there for events we never send */
	if (q == VSOCK_TXQ)
		process_tx(v);
	/* rx: new buffers; tx: packets may owe the guest answers. */
	vsock_rx_pump(v);
}

static void vsock_reset(struct virtio_dev *d)
{
	/* The guest's sockets are gone with its driver: so are ours. */
	vsock_drop_all(to_vsock(d));
}

static const struct virtio_dev_ops vsock_ops = {
    .name = "virtio-vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .num_queues = 3,
    .queue_max = VSOCK_QUEUE_SIZE,
    .config = vsock_config,
    .queue_notify = vsock_queue_notify,
    .reset = vsock_reset,
};

int virtio_vsock_create(struct virtio_vsock *v, const char *path,
			uint64_t guest_cid, const struct virtio_host *host,
			uint64_t mmio_base, unsigned gsi)
{
	int ret;

	memset(v, 0, sizeof(*v));
	v->guest_cid = guest_cid;
	v->close_timeout_ns = VSOCK_CLOSE_TIMEOUT_NS;
	v->line_timeout_ns = VSOCK_LINE_TIMEOUT_NS;
	v->connect_timeout_ns = VSOCK_CONNECT_TIMEOUT_NS;
	v->next_local_port = VSOCK_FIRST_LOCAL_PORT;
	put_le64(v->config, guest_cid);
	ret = virtio_dev_init(&v->vdev, &vsock_ops,
			      VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC, host,
			      mmio_base, gsi);
	if (ret)
		return ret;
	ret = vsock_conn_init(v, path);
	if (ret)
		return ret;
	log_debug("vsock: guest CID %llu, host socket %s",
		  (unsigned long long)guest_cid, path);
	return 0;
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	if (v->vdev.ops)
		pthread_mutex_lock(&v->vdev.lock);
	vsock_conn_fini(v); /* closes every connection and the socket */
	if (v->vdev.ops) {
		pthread_mutex_unlock(&v->vdev.lock);
		virtio_dev_destroy(&v->vdev);
	}
}
