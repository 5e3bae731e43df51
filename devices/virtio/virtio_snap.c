// SPDX-License-Identifier: MIT
/*
 * The virtio-mmio transport's part of a snapshot: registers, negotiated
 * features, and each queue's ring addresses and indexes.  Restoring
 * checks every value as the register writes that produced it would have
 * (status only along the initialisation sequence, features only those
 * offered, queue sizes and ring addresses as QueueReady checks them) and
 * the indexes against the rings in the restored guest memory.
 *
 * Called with every vCPU parked, on the event loop thread (save) or
 * before any vCPU runs (restore): nothing else touches the device.
 */
#include <errno.h>

#include "devices/virtio/virtio.h"
#include "vmm/base/log.h"
#include "vmm/base/snap.h"

#define VIRTIO_SNAP_LAYOUT 1

#define S_BASE                                                                 \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |                    \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)

void virtio_dev_save(const struct virtio_dev *dev, struct snap_writer *w,
		     const uint16_t *held)
{
	snap_put_u32(w, VIRTIO_SNAP_LAYOUT);
	snap_put_u32(w, dev->ops->device_id);
	snap_put_u64(w, dev->offered);
	snap_put_u32(w, dev->status);
	snap_put_u64(w, dev->acked);
	snap_put_u32(w, dev->dev_features_sel);
	snap_put_u32(w, dev->drv_features_sel);
	snap_put_u32(w, dev->queue_sel);
	snap_put_u32(w, dev->config_generation);
	snap_put_u32(w, atomic_load(&dev->interrupt_status));
	snap_put_u16(w, dev->ops->num_queues);
	for (unsigned i = 0; i < dev->ops->num_queues; i++) {
		const struct virtq *q = &dev->queues[i];

		snap_put_u16(w, q->size);
		snap_put_u64(w, q->desc_gpa);
		snap_put_u64(w, q->avail_gpa);
		snap_put_u64(w, q->used_gpa);
		snap_put_u8(w, q->ready);
		/* A chain the device took and still holds goes back to
		 * the ring: the restored device takes it again. */
		snap_put_u16(w,
			     (uint16_t)(q->last_avail - (held ? held[i] : 0)));
		snap_put_u16(w, q->used_idx);
		snap_put_u16(w, q->signalled);
		snap_put_u8(w, q->signalled_valid);
	}
}

/* The status values the initialisation sequence can reach, with FAILED
 * or NEEDS_RESET on top. */
static bool status_reachable(uint32_t s)
{
	uint32_t base =
	    s & ~(uint32_t)(VIRTIO_STATUS_FAILED | VIRTIO_STATUS_NEEDS_RESET);

	if (s & ~(S_BASE | VIRTIO_STATUS_FAILED | VIRTIO_STATUS_NEEDS_RESET))
		return false;
	return base == 0 || base == VIRTIO_STATUS_ACKNOWLEDGE ||
	       base == (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER) ||
	       base == (S_BASE & ~(uint32_t)VIRTIO_STATUS_DRIVER_OK) ||
	       base == S_BASE;
}

static int refuse(const struct virtio_dev *dev, const char *why)
{
	log_errx("snapshot: %s at 0x%llx: %s", dev->ops->name,
		 (unsigned long long)dev->mmio_base, why);
	return -EINVAL;
}

int virtio_dev_restore(struct virtio_dev *dev, struct snap_reader *r)
{
	uint32_t layout = snap_get_u32(r), id = snap_get_u32(r);
	uint64_t offered = snap_get_u64(r);
	uint32_t status = snap_get_u32(r), isr;
	uint64_t acked = snap_get_u64(r);
	uint16_t nq;

	dev->dev_features_sel = snap_get_u32(r);
	dev->drv_features_sel = snap_get_u32(r);
	dev->queue_sel = snap_get_u32(r);
	dev->config_generation = snap_get_u32(r);
	isr = snap_get_u32(r);
	nq = snap_get_u16(r);
	if (r->bad)
		return refuse(dev, "transport state cut short");
	if (layout != VIRTIO_SNAP_LAYOUT)
		return refuse(dev, "unknown transport state layout");
	if (id != dev->ops->device_id)
		return refuse(dev, "the snapshot has another device here");
	if (offered != dev->offered)
		return refuse(dev, "the snapshot's device offered other "
				   "features");
	if (!status_reachable(status))
		return refuse(dev, "impossible device status");
	if (acked & ~offered)
		return refuse(dev, "features acked that were never offered");
	if ((status & VIRTIO_STATUS_FEATURES_OK) &&
	    !(acked & VIRTIO_F_VERSION_1))
		return refuse(dev, "FEATURES_OK without VERSION_1");
	if (isr & ~(uint32_t)(VIRTIO_INT_VRING | VIRTIO_INT_CONFIG))
		return refuse(dev, "impossible interrupt status");
	if (nq != dev->ops->num_queues)
		return refuse(dev, "the snapshot's device has other queues");
	dev->status = status;
	dev->acked = acked;
	atomic_store(&dev->interrupt_status, isr);

	for (unsigned i = 0; i < nq; i++) {
		struct virtq *q = &dev->queues[i];
		bool ready;
		uint16_t last_avail, used_idx;
		int ret;

		virtq_reset(q);
		q->size = snap_get_u16(r);
		q->desc_gpa = snap_get_u64(r);
		q->avail_gpa = snap_get_u64(r);
		q->used_gpa = snap_get_u64(r);
		ready = snap_get_u8(r);
		last_avail = snap_get_u16(r);
		used_idx = snap_get_u16(r);
		q->signalled = snap_get_u16(r);
		q->signalled_valid = snap_get_u8(r);
		if (r->bad)
			return refuse(dev, "queue state cut short");
		if (q->size > dev->ops->queue_max)
			return refuse(dev, "queue larger than the device's");
		q->event_idx = acked & VIRTIO_F_EVENT_IDX;
		q->indirect = acked & VIRTIO_F_INDIRECT_DESC;
		/* Queues run only once FEATURES_OK was set, and stop for
		 * good on NEEDS_RESET (virtio_dev_broken). */
		if (!ready)
			continue;
		if (!(status & VIRTIO_STATUS_FEATURES_OK) ||
		    (status & VIRTIO_STATUS_NEEDS_RESET))
			return refuse(dev, "a queue runs in a status that "
					   "stops queues");
		if (virtq_start(q, dev->host.mem))
			return refuse(dev, "queue rings outside guest memory "
					   "or misaligned");
		ret = virtq_resume_at(q, last_avail, used_idx);
		if (ret)
			return refuse(dev, "queue indexes do not match guest "
					   "memory (another snapshot's memory "
					   "file?)");
	}
	/* An interrupt raised just before the snapshot may not have
	 * reached the saved interrupt controller yet (KVM injects irqfd
	 * edges from a work queue): raise it again.  The driver reads
	 * InterruptStatus, so one more is harmless.  The caller restores
	 * the interrupt controllers before the devices. */
	if (isr && dev->irq_fd >= 0)
		virtio_dev_interrupt(dev, isr);
	return 0;
}
