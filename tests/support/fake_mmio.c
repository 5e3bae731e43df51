// SPDX-License-Identifier: MIT
#include "fake_mmio.h"

#include "vmm/base/le.h"

static void mmio_wr(struct virtio_dev *d, uint64_t off, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	virtio_mmio_write(d, off, b, 4);
}

bool fake_ring_attach(struct virtio_dev *d, unsigned q,
		      const struct fake_ring *r)
{
	uint8_t b[4];

	mmio_wr(d, VIRTIO_MMIO_QUEUE_SEL, q);
	mmio_wr(d, VIRTIO_MMIO_QUEUE_NUM, r->size);
	mmio_wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)r->desc_gpa);
	mmio_wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(r->desc_gpa >> 32));
	mmio_wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)r->avail_gpa);
	mmio_wr(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
		(uint32_t)(r->avail_gpa >> 32));
	mmio_wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)r->used_gpa);
	mmio_wr(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
		(uint32_t)(r->used_gpa >> 32));
	mmio_wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	virtio_mmio_read(d, VIRTIO_MMIO_QUEUE_READY, b, 4);
	return get_le32(b) == 1;
}
