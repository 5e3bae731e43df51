// SPDX-License-Identifier: MIT
/*
 * virtio-vsock, top layer: the device (the three layers are drawn in
 * virtio_vsock.h).  Its queues and the packets on them; it knows no Unix
 * socket and no connection state: it calls the connection layer
 * (vsock_conn.h) and hears from it only through conn_up below.
 *
 * tx (guest to host): every chain is one packet, header first; it is
 * checked (header present, payload within the chain, our CIDs, stream
 * type), handed down with its payload as an iovec over guest memory, and
 * given back at once.  Packets the connection layer has no connection
 * for, and those to other CIDs or of other types, are answered with an
 * RST from a small bounded ring.
 *
 * rx (host to guest): the pump asks the connection layer for the next
 * packet while one is owed, offering the held rx chain's room as an
 * iovec, so host data is read straight into the guest's buffer.  A chain
 * taken from the ring but not filled (the host had nothing after all) is
 * kept for the next packet.
 *
 * Threads and locks: the transport calls in with the device lock held
 * (vCPU threads for registers, the event loop for notifications); the
 * layers below call conn_up with it held, from the event loop.
 */
#include "devices/vsock/virtio_vsock.h"

#include <string.h>
#include <time.h>

#include "vmm/base/le.h"
#include "vmm/base/log.h"

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

/* The guest's sockets are gone with its driver: so are ours, and every
 * packet we still meant to send it. */
static void drop_all(struct virtio_vsock *v)
{
	vsock_conns_drop_all(&v->conns);
	v->orphan_head = v->orphan_len = 0;
	v->rx_held = false;
}

static void broken(struct virtio_vsock *v, const char *why)
{
	virtio_dev_broken(&v->vdev, why);
	/* The host programs learn at once; the guest after its reset. */
	drop_all(v);
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
	if (h->op == VSOCK_OP_RW)
		v->stats.rx_bytes += h->len;
	if (h->op == VSOCK_OP_RST)
		v->stats.rst_sent++;
}

/* The held chain's room after the header (at most VSOCK_MAX_PKT) as
 * iovecs in v->iov; their count. */
static unsigned rx_iov(struct virtio_vsock *v)
{
	const struct virtq_chain *c = &v->rx_chain;
	uint32_t skip = VSOCK_HDR_LEN, len = VSOCK_MAX_PKT;
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

/* The oldest RST for a packet of no connection, if a chain is there. */
static bool orphan_send(struct virtio_vsock *v)
{
	const struct vsock_orphan *o = &v->orphans[v->orphan_head];
	struct vsock_hdr h = {
	    .src_cid = o->src_cid,
	    .dst_cid = v->guest_cid,
	    .src_port = o->src_port,
	    .dst_port = o->dst_port,
	    .type = VSOCK_TYPE_STREAM,
	    .op = VSOCK_OP_RST,
	};

	if (!rx_chain(v))
		return false;
	rx_send(v, &h);
	v->orphan_head = (v->orphan_head + 1) % VSOCK_ORPHAN_RING;
	v->orphan_len--;
	return true;
}

/* Send what is owed to the guest while rx buffers last. */
static void rx_pump(struct virtio_vsock *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_RXQ];
	unsigned budget = 2u * q->size; /* steps: a packet, or a read */
	bool used = false;

	if (!virtio_dev_live(&v->vdev) || !q->ready)
		return;
	for (;;) {
		struct vsock_hdr h = {0};

		if (budget-- == 0) {
			/* Host data keeps coming and the driver keeps
			 * posting buffers: yield to the event loop. */
			v->stats.deferred++;
			virtio_dev_defer(&v->vdev, VSOCK_RXQ);
			break;
		}
		if (v->orphan_len) {
			if (!orphan_send(v))
				break;
			used = true;
			continue;
		}
		if (!vsock_conns_owed(&v->conns) || !rx_chain(v))
			break;
		if (!vsock_conns_fill(&v->conns, &h, v->iov, rx_iov(v)))
			continue; /* nothing after all: the chain is kept */
		h.src_cid = VSOCK_HOST_CID;
		h.dst_cid = v->guest_cid;
		h.type = VSOCK_TYPE_STREAM;
		rx_send(v, &h);
		used = true;
	}
	if (used && virtio_dev_live(&v->vdev))
		virtio_dev_queue_done(&v->vdev, VSOCK_RXQ);
}

/* ---- guest to host (tx queue) ---- */

/* Answer a packet of no connection with RST (bounded; may drop). */
static void orphan_rst(struct virtio_vsock *v, const struct vsock_hdr *h)
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

/* iovecs in v->iov for the len payload bytes after the header; their
 * count (the caller checked the chain holds them). */
static unsigned payload_iov(struct virtio_vsock *v,
			    const struct virtq_chain *ch, uint32_t len)
{
	uint32_t off = VSOCK_HDR_LEN;
	unsigned n = 0;

	for (unsigned i = 0; i < ch->nreadable && len; i++) {
		const struct virtq_buf *b = &ch->bufs[i];
		uint32_t take;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		take = b->len - off;
		if (take > len)
			take = len;
		v->iov[n++] =
		    (struct iovec){.iov_base = b->hva + off, .iov_len = take};
		len -= take;
		off = 0;
	}
	return n;
}

/* One packet from the guest.  False if it broke the device. */
static bool guest_packet(struct virtio_vsock *v, const struct virtq_chain *ch)
{
	uint8_t raw[VSOCK_HDR_LEN];
	struct vsock_hdr h;
	unsigned niov;

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
		orphan_rst(v, &h);
		return true;
	}
	niov = payload_iov(v, ch, h.len);
	if (vsock_conns_recv(&v->conns, &h, v->iov, niov))
		orphan_rst(v, &h);
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

	if (q == VSOCK_EVQ) {
		/* Buffers wait there for the one event we send (a restored
		 * VM's transport reset); a refill means it was handled. */
		v->reset_pending = false;
		return;
	}
	if (q == VSOCK_TXQ)
		process_tx(v);
	/* rx: new buffers; tx: packets may owe the guest answers. */
	rx_pump(v);
}

static void vsock_reset(struct virtio_dev *d)
{
	drop_all(to_vsock(d));
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

/* What the connection layer tells us (lock held, from the event loop). */
static void conns_kick(void *ctx)
{
	rx_pump(ctx);
}

uint64_t virtio_vsock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool conns_guest_ready(void *ctx)
{
	struct virtio_vsock *v = ctx;

	if (v->reset_pending &&
	    virtio_vsock_now_ns() - v->reset_sent_ns >= VSOCK_RESET_WAIT_NS)
		v->reset_pending = false; /* it will not tell us */
	return virtio_dev_live(&v->vdev) && !v->reset_pending;
}

static const struct vsock_conn_up conn_up = {
    .kick = conns_kick,
    .guest_ready = conns_guest_ready,
};

int virtio_vsock_create(struct virtio_vsock *v, const char *path,
			uint64_t guest_cid, const struct virtio_host *host,
			uint64_t mmio_base, unsigned gsi)
{
	int ret;

	memset(v, 0, sizeof(*v));
	v->guest_cid = guest_cid;
	put_le64(v->config, guest_cid);
	ret = virtio_dev_init(&v->vdev, &vsock_ops,
			      VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC, host,
			      mmio_base, gsi);
	if (ret)
		return ret;
	ret = vsock_conns_init(&v->conns, path, host->ep, &v->vdev.lock,
			       &v->stats, &conn_up, v);
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
	vsock_conns_fini(&v->conns); /* closes every connection, the socket */
	if (v->vdev.ops) {
		pthread_mutex_unlock(&v->vdev.lock);
		virtio_dev_destroy(&v->vdev);
	}
}

void virtio_vsock_expire(struct virtio_vsock *v, uint64_t now_ns)
{
	vsock_conns_expire(&v->conns, now_ns);
}
