// SPDX-License-Identifier: MIT
/* virtio-net: the device (virtio_net.h). */
#include "devices/net/virtio_net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/net/net_backend.h"
#include "devices/net/net_craft.h"
#include "vmm/base/le.h"
#include "vmm/base/log.h"
#include "vmm/base/mono_time.h"

static struct virtio_net *to_net(struct virtio_dev *d)
{
	return container_of(d, struct virtio_net, vdev);
}

static const uint8_t *net_config(struct virtio_dev *d, uint32_t *len)
{
	struct virtio_net *n = to_net(d);

	*len = sizeof(n->config);
	return n->config;
}

static void crafted_to_guest(void *opaque, const uint8_t *frame, size_t len)
{
	virtio_net_receive(opaque, frame, len);
}

static void crafted_to_peer(void *opaque, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = opaque;

	n->be->ops->send(n->be, NULL, frame, len);
}

/* May a frame of len bytes pass one direction's buckets now?  If so its
 * tokens are taken (take: at once; else the caller takes them once the
 * frame went); if not, the thread is told when to come back. */
static bool rate_allows(struct virtio_net *n, struct token_bucket *bytes,
			struct token_bucket *frames, size_t len, bool take)
{
	uint64_t now, wait, w;

	if (!bytes->rate && !frames->rate)
		return true;
	now = mono_ns();
	wait = tb_wait(bytes, len, now);
	w = tb_wait(frames, 1, now);
	if (w > wait)
		wait = w;
	if (wait == 0) {
		if (take) {
			tb_take(bytes, len);
			tb_take(frames, 1);
		}
		return true;
	}
	if (!n->throttle_until || now + wait < n->throttle_until)
		__atomic_store_n(&n->throttle_until, now + wait,
				 __ATOMIC_RELAXED);
	return false;
}

/* One guest frame, whole in n->tx_buf (header + frame), len bytes. */
static void tx_frame(struct virtio_net *n, size_t len)
{
	const struct net_filter_io io = {crafted_to_guest, crafted_to_peer, n};
	uint8_t *hdr = n->tx_buf, *frame = n->tx_buf + VIRTIO_NET_HDR_LEN;
	size_t flen = len - VIRTIO_NET_HDR_LEN;

	bool gso_ok =
	    n->vdev.acked & (VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_HOST_TSO6);

	if (!net_tx_hdr_apply(hdr, frame, flen, gso_ok)) {
		n->stats.tx_bad++;
		return;
	}
	switch (net_filter_tx(&n->policy, frame, flen, mono_ns(), &io)) {
	case NET_MALFORMED:
		n->stats.tx_bad++;
		return;
	case NET_DROP:
		n->stats.tx_denied++;
		return;
	case NET_PASS:
		break;
	}
	if (n->be->ops->new_flow_ok && !n->be->ops->new_flow_ok(n->be)) {
		struct net_flow f;

		if (net_frame_parse(frame, flen, &f) == NET_FRAME_IP &&
		    (f.proto == NET_PROTO_UDP ||
		     (f.proto == NET_PROTO_TCP && f.tcp_syn))) {
			n->stats.tx_flow_full++;
			return;
		}
	}
	if (n->be->ops->send(n->be, hdr, frame, flen) < 0) {
		n->stats.tx_backend_err++;
		return;
	}
	n->stats.tx_gso += hdr[1] != 0;
	n->stats.tx_frames++;
	n->stats.tx_bytes += flen;
}

static void tx_notify(struct virtio_net *n)
{
	struct virtio_dev *d = &n->vdev;
	struct virtq *vq = &d->queues[NET_TXQ];
	struct virtq_chain *c = &n->chains[0];
	unsigned budget = vq->size;
	bool used = false;
	/* Frames up to the MTU, or segmentation frames where offered. */
	size_t tx_max =
	    d->acked & (VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_HOST_TSO6)
		? sizeof(n->tx_buf)
		: VIRTIO_NET_HDR_LEN + NET_FRAME_MAX;

	for (;;) {
		int ret;

		if (budget-- == 0) {
			n->stats.deferred++;
			virtio_dev_defer(d, NET_TXQ);
			break;
		}
		ret = virtq_pop(vq, c);
		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_dev_broken(d, vq->error);
			return;
		}
		if (c->nreadable != c->nbufs) {
			virtio_dev_broken(d, "net tx buffer the device must "
					     "write");
			return;
		}
		/* Over the limits: the chain stays in the guest's ring (its
		 * queue fills and it stops sending) until the thread comes
		 * back for it. */
		if (!rate_allows(n, &n->tx_bytes, &n->tx_frames,
				 c->readable_len > VIRTIO_NET_HDR_LEN
				     ? c->readable_len - VIRTIO_NET_HDR_LEN
				     : 0,
				 true)) {
			virtq_unpop(vq, 1);
			n->stats.tx_throttled++;
			break;
		}
		/* Copied out whole before anything looks at it: the guest
		 * can change its buffers at any time. */
		if (c->readable_len < VIRTIO_NET_HDR_LEN + 14 ||
		    c->readable_len > tx_max ||
		    virtq_chain_read(c, 0, n->tx_buf, c->readable_len))
			n->stats.tx_bad++;
		else
			tx_frame(n, c->readable_len);
		virtq_push(vq, c->head, 0);
		used = true;
	}
	if (used)
		virtio_dev_queue_done(d, NET_TXQ);
	/* The backend may have answered at once (ARP, DHCP). */
	virtio_net_rx_pump(n);
}

/* The ring's next free slot, and the next free big slot. */
static struct net_rx_slot *rx_tail(struct virtio_net *n)
{
	return &n->rx[(n->rx_head + n->rx_count) % NET_RX_SLOTS];
}

static uint8_t *rx_big_tail(struct virtio_net *n)
{
	unsigned i = (n->rx_big_head + n->rx_big_count) % NET_RX_BIG_SLOTS;

	return n->rx_big + (size_t)i * NET_GSO_FRAME_MAX;
}

void virtio_net_receive(struct virtio_net *n, const uint8_t *frame, size_t len)
{
	struct net_rx_slot *s;

	if (len > NET_FRAME_MAX || len < 14 || n->rx_count == NET_RX_SLOTS) {
		n->stats.rx_dropped++;
		return;
	}
	s = rx_tail(n);
	s->len = (uint32_t)len;
	s->seen = false;
	s->has_hdr = false;
	s->big = NULL;
	memcpy(s->data, frame, len);
	n->rx_count++;
}

bool virtio_net_rx_place(struct virtio_net *n, struct iovec iov[2])
{
	if (!n->rx_big || n->rx_count == NET_RX_SLOTS ||
	    n->rx_big_count == NET_RX_BIG_SLOTS)
		return false;
	iov[0] = (struct iovec){rx_tail(n)->hdr, VIRTIO_NET_HDR_LEN};
	iov[1] = (struct iovec){rx_big_tail(n), NET_GSO_FRAME_MAX};
	return true;
}

void virtio_net_rx_commit(struct virtio_net *n, size_t len)
{
	struct net_rx_slot *s = rx_tail(n);
	uint8_t *big = rx_big_tail(n);
	size_t flen = len - VIRTIO_NET_HDR_LEN;

	/* Only a segmentation frame (its header says so; checked in full
	 * at delivery) may be big. */
	if (len < VIRTIO_NET_HDR_LEN + 14 ||
	    (flen > NET_FRAME_MAX && s->hdr[1] == 0)) {
		n->stats.rx_dropped++;
		return;
	}
	s->big = NULL;
	if (flen > NET_FRAME_MAX) {
		s->big = big;
		n->rx_big_count++;
	} else {
		memcpy(s->data, big, flen); /* the big slot stays free */
	}
	s->len = (uint32_t)flen;
	s->seen = false;
	s->has_hdr = true;
	n->rx_count++;
}

/* The slot at rx_head is done with (delivered or dropped). */
static void rx_slot_free(struct virtio_net *n)
{
	if (n->rx[n->rx_head].big) {
		n->rx_big_head = (n->rx_big_head + 1) % NET_RX_BIG_SLOTS;
		n->rx_big_count--;
	}
	n->rx_head = (n->rx_head + 1) % NET_RX_SLOTS;
	n->rx_count--;
}

/* One queued frame into the guest's buffers.  1: delivered, 0: not
 * enough buffers yet, -1: the driver broke the protocol. */
static int rx_one(struct virtio_net *n, const struct net_rx_slot *s)
{
	struct virtio_dev *d = &n->vdev;
	struct virtq *vq = &d->queues[NET_RXQ];
	bool mrg = d->acked & VIRTIO_NET_F_MRG_RXBUF;
	const uint8_t *data = s->big ? s->big : s->data;
	uint8_t hdr[VIRTIO_NET_HDR_LEN] = {0};
	uint32_t written[NET_RX_MAX_CHAINS_GSO];
	size_t need = VIRTIO_NET_HDR_LEN + s->len, done = 0;
	unsigned k = 0;

	if (s->has_hdr) {
		/* The backend's (a TAP's), if what it asks of the driver was
		 * acked: frames read before a reset may ask more. */
		if (!net_rx_hdr_check(s->hdr, s->len,
				      d->acked & VIRTIO_NET_F_GUEST_CSUM,
				      d->acked & VIRTIO_NET_F_GUEST_TSO4,
				      d->acked & VIRTIO_NET_F_GUEST_TSO6))
			return -2;
		memcpy(hdr, s->hdr, 10);
	} else if (d->acked & VIRTIO_NET_F_GUEST_CSUM) {
		hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
	}
	if (s->len > NET_FRAME_MAX && hdr[1] == 0)
		return -2; /* only segmentation frames are that big */
	while (done < need) {
		struct virtq_chain *c = &n->chains[k];
		size_t take;
		int ret;

		if (k == n->max_chains || (k && !mrg)) {
			/* Buffers too small for the frame. */
			virtq_unpop(vq, (uint16_t)k);
			return -2;
		}
		ret = virtq_pop(vq, c);
		if (ret < 0) {
			virtio_dev_broken(d, vq->error);
			return -1;
		}
		if (ret == 0) {
			virtq_unpop(vq, (uint16_t)k);
			return 0;
		}
		if (c->nreadable) {
			virtio_dev_broken(d, "net rx buffer the device cannot "
					     "write");
			return -1;
		}
		if (k == 0 && c->writable_len < VIRTIO_NET_HDR_LEN) {
			/* 5.1.6.3.1: every buffer holds at least a header. */
			virtio_dev_broken(d, "net rx buffer shorter than its "
					     "header");
			return -1;
		}
		take = c->writable_len < need - done ? c->writable_len
						     : need - done;
		/* The header, then the frame, across the chains in order;
		 * the first header's num_buffers is set once all are known. */
		for (size_t o = 0; o < take;) {
			size_t pos = done + o, len;
			const uint8_t *src;

			if (pos < VIRTIO_NET_HDR_LEN) {
				src = hdr + pos;
				len = VIRTIO_NET_HDR_LEN - pos;
			} else {
				src = data + (pos - VIRTIO_NET_HDR_LEN);
				len = need - pos;
			}
			if (len > take - o)
				len = take - o;
			if (virtq_chain_write(c, o, src, len))
				break; /* cannot happen: take fits */
			o += len;
		}
		written[k++] = (uint32_t)take;
		done += take;
	}
	/* num_buffers (le16 at offset 10), now that it is known; the first
	 * chain holds the whole header (checked when it was taken). */
	{
		uint8_t nb[2] = {(uint8_t)k, 0};

		if (virtq_chain_write(&n->chains[0], 10, nb, 2))
			return -1;
	}
	for (unsigned i = 0; i < k; i++)
		virtq_push(vq, n->chains[i].head, written[i]);
	return 1;
}

void virtio_net_rx_pump(struct virtio_net *n)
{
	struct virtio_dev *d = &n->vdev;
	bool used = false;

	if (!virtio_dev_live(d) || !d->queues[NET_RXQ].ready) {
		/* No driver to take them: frames would only age. */
		n->stats.rx_dropped += n->rx_count;
		while (n->rx_count)
			rx_slot_free(n);
		return;
	}
	while (n->rx_count) {
		struct net_rx_slot *s = &n->rx[n->rx_head];
		int ret;

		/* Before the guest can act on it: an answer's addresses are
		 * pinned, a forwarded connection remembered. */
		if (!s->seen) {
			net_filter_rx(&n->policy, s->big ? s->big : s->data,
				      s->len, mono_ns());
			s->seen = true;
		}
		/* Over the limits: it waits in the ring (which then fills:
		 * libslirp's TCP holds no more than its window unacked). */
		if (!rate_allows(n, &n->rx_bytes, &n->rx_frames, s->len,
				 false)) {
			n->stats.rx_throttled++;
			break;
		}
		ret = rx_one(n, s);

		if (ret == 0 || ret == -1)
			break;
		if (ret == 1) {
			tb_take(&n->rx_bytes, s->len);
			tb_take(&n->rx_frames, 1);
			n->stats.rx_frames++;
			n->stats.rx_bytes += s->len;
			n->stats.rx_gso += s->has_hdr && s->hdr[1] != 0;
			used = true;
		} else {
			n->stats.rx_dropped++;
		}
		rx_slot_free(n);
	}
	if (used)
		virtio_dev_queue_done(d, NET_RXQ);
}

void virtio_net_resume(struct virtio_net *n)
{
	__atomic_store_n(&n->throttle_until, 0, __ATOMIC_RELAXED);
	if (!virtio_dev_live(&n->vdev))
		return;
	if (n->vdev.queues[NET_TXQ].ready)
		tx_notify(n); /* and the receive pump */
	else
		virtio_net_rx_pump(n);
}

void virtio_net_set_limits(struct virtio_net *n, const struct net_limits *l)
{
	uint64_t now = mono_ns();

	n->limits = *l;
	tb_set(&n->tx_bytes, l->tx.bps, l->tx.bps_burst, now);
	tb_set(&n->tx_frames, l->tx.pps, l->tx.pps_burst, now);
	tb_set(&n->rx_bytes, l->rx.bps, l->rx.bps_burst, now);
	tb_set(&n->rx_frames, l->rx.pps, l->rx.pps_burst, now);
	/* Whatever waited under the old limits is tried at once. */
	if (n->throttle_until) {
		__atomic_store_n(&n->throttle_until, now, __ATOMIC_RELAXED);
		net_thread_wake(n);
	}
}

void virtio_net_sync_offloads(struct virtio_net *n)
{
	const uint64_t bits = VIRTIO_NET_F_GUEST_CSUM |
			      VIRTIO_NET_F_GUEST_TSO4 | VIRTIO_NET_F_GUEST_TSO6;
	uint64_t want = 0;

	if (!n->be->ops->set_offloads)
		return;
	pthread_mutex_lock(&n->vdev.lock);
	if (virtio_dev_live(&n->vdev))
		want = n->vdev.acked & bits;
	pthread_mutex_unlock(&n->vdev.lock);
	if (want == n->rx_offloads)
		return;
	/* If it fails, frames stay as they were; the headers are checked
	 * at delivery either way. */
	if (n->be->ops->set_offloads(n->be, want) == 0)
		n->rx_offloads = want;
}

static void net_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_net *n = to_net(d);

	if (q == NET_TXQ)
		tx_notify(n);
	else
		virtio_net_rx_pump(n);
}

static void net_reset(struct virtio_dev *d)
{
	(void)d; /* queued frames are dropped by the next pump */
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .num_queues = 2,
    .queue_max = NET_QUEUE_SIZE,
    .config = net_config,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
};

int virtio_net_create(struct virtio_net *n, const struct virtio_host *host,
		      const struct vm_control *ctl, uint64_t mmio_base,
		      unsigned gsi, const uint8_t mac[6],
		      struct net_backend *be, const struct net_policy *policy)
{
	struct virtio_host own = *host;
	int ret;

	memset(n, 0, sizeof(*n));
	n->ep = -1;
	n->wake_efd = -1;
	n->be = be;
	n->ctl = ctl;
	be->nic = n;
	n->policy = *policy; /* and what it holds */
	memcpy(n->config, mac, 6);
	put_le16(n->config + 8, 1); /* max_virtqueue_pairs */
	n->max_chains =
	    be->ops->takes_gso ? NET_RX_MAX_CHAINS_GSO : NET_RX_MAX_CHAINS;
	n->chains = calloc(n->max_chains, sizeof(*n->chains));
	n->rx = calloc(NET_RX_SLOTS, sizeof(*n->rx));
	if (be->ops->takes_gso)
		n->rx_big =
		    malloc((size_t)NET_RX_BIG_SLOTS * NET_GSO_FRAME_MAX);
	n->ep = epoll_create1(EPOLL_CLOEXEC);
	n->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!n->rx || !n->chains || (be->ops->takes_gso && !n->rx_big) ||
	    n->ep < 0 || n->wake_efd < 0) {
		ret = n->ep < 0 || n->wake_efd < 0 ? -errno : -ENOMEM;
		log_err(ret, "virtio-net: set-up");
		return ret;
	}
	/* The queue notifications go to this NIC's thread, not the VMM's
	 * event loop. */
	if (host->ep >= 0)
		own.ep = n->ep;
	return virtio_dev_init(
	    &n->vdev, &net_ops,
	    VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | VIRTIO_NET_F_MAC |
		VIRTIO_NET_F_MRG_RXBUF | VIRTIO_NET_F_CSUM |
		VIRTIO_NET_F_GUEST_CSUM |
		(be->ops->takes_gso
		     ? VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_HOST_TSO6 |
			   VIRTIO_NET_F_GUEST_TSO4 | VIRTIO_NET_F_GUEST_TSO6
		     : 0),
	    &own, mmio_base, gsi);
}

void virtio_net_destroy(struct virtio_net *n)
{
	net_thread_stop(n);
	virtio_dev_destroy(&n->vdev);
	if (n->be)
		n->be->ops->destroy(n->be);
	n->be = NULL;
	if (n->policy.log_fd >= 0)
		close(n->policy.log_fd);
	n->policy.log_fd = -1;
	net_policy_free(&n->policy);
	if (n->ep >= 0)
		close(n->ep);
	if (n->wake_efd >= 0)
		close(n->wake_efd);
	free(n->rx);
	n->rx = NULL;
	free(n->rx_big);
	n->rx_big = NULL;
	free(n->chains);
	n->chains = NULL;
}
