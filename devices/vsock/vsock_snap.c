// SPDX-License-Identifier: MIT
/*
 * virtio-vsock in a snapshot: the transport's state and the guest's CID,
 * nothing of the connections.  The host ends of every connection belong
 * to the VMM that took the snapshot, so a restored guest is told that
 * the transport was reset (virtio 1.x, 5.10.6.6: the event queue's
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET): its driver resets every
 * connected socket and keeps its listening ones, so the agent answers
 * the restored VM's first `hutch exec` at once.
 */
#include <errno.h>
#include <string.h>

#include "devices/vsock/virtio_vsock.h"
#include "vmm/base/le.h"
#include "vmm/base/log.h"
#include "vmm/base/snap.h"

#define VSOCK_SNAP_LAYOUT		   1
#define VIRTIO_VSOCK_EVENT_TRANSPORT_RESET 0

int virtio_vsock_save(struct virtio_vsock *v, struct snap_writer *w)
{
	/* An rx buffer taken and not filled goes back to the ring. */
	uint16_t held[3] = {v->rx_held ? 1 : 0, 0, 0};

	pthread_mutex_lock(&v->vdev.lock);
	virtio_dev_save(&v->vdev, w, held);
	snap_put_u32(w, VSOCK_SNAP_LAYOUT);
	snap_put_u64(w, v->guest_cid);
	pthread_mutex_unlock(&v->vdev.lock);
	return 0;
}

/* Tell the driver its transport was reset, if it left us a buffer. */
static void send_reset(struct virtio_vsock *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_EVQ];
	struct virtq_chain *c = &v->tx_chain; /* free scratch here */
	uint8_t ev[4];
	int ret;

	if (!virtio_dev_live(&v->vdev) || !q->ready)
		return;
	ret = virtq_pop(q, c);
	if (ret <= 0) {
		if (ret < 0)
			virtio_dev_broken(&v->vdev, q->error);
		else
			log_warnx("vsock: the guest left no event buffer; "
				  "its old connections stay until they time "
				  "out");
		return;
	}
	if (c->nreadable || c->bufs[0].len < sizeof(ev)) {
		virtio_dev_broken(&v->vdev, "event buffer too small");
		return;
	}
	put_le32(ev, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
	memcpy(c->bufs[0].hva, ev, sizeof(ev));
	virtq_push(q, c->head, sizeof(ev));
	/* The driver refills the queue after handling the event: that
	 * notification says it is done. */
	virtq_notify_on_next(q);
	v->reset_pending = true;
	v->reset_sent_ns = virtio_vsock_now_ns();
	virtio_dev_queue_done(&v->vdev, VSOCK_EVQ);
}

int virtio_vsock_restore(struct virtio_vsock *v, struct snap_reader *r)
{
	uint32_t layout;
	uint64_t cid;
	int ret;

	pthread_mutex_lock(&v->vdev.lock);
	ret = virtio_dev_restore(&v->vdev, r);
	if (ret)
		goto out;
	layout = snap_get_u32(r);
	cid = snap_get_u64(r);
	ret = -EINVAL;
	if (snap_reader_done(r) || layout != VSOCK_SNAP_LAYOUT) {
		log_errx("snapshot: bad vsock state");
		goto out;
	}
	if (cid != v->guest_cid) {
		log_errx("snapshot: the guest's vsock CID was %llu, not %llu",
			 (unsigned long long)cid,
			 (unsigned long long)v->guest_cid);
		goto out;
	}
	send_reset(v);
	ret = 0;
out:
	pthread_mutex_unlock(&v->vdev.lock);
	return ret;
}
