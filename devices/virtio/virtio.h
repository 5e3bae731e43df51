/* SPDX-License-Identifier: MIT */
/*
 * A virtio device as the transport sees it, and the virtio-mmio transport
 * (virtio 1.x, 4.2, register layout version 2).
 *
 * Threads: vCPU threads access registers (virtio_mmio_read/write); the
 * main thread's event loop runs queue notifications and I/O completions.
 * Both hold dev->lock, so a device's state never changes under either.
 *
 * Notifications: a KVM ioeventfd per queue on the QueueNotify register
 * (datamatch = queue index) turns a guest kick into an eventfd the event
 * loop watches, without a trip through the VMM.  Interrupts: an eventfd
 * bound to the device's GSI with KVM_IRQFD.
 */
#ifndef HUTCH_VIRTIO_H
#define HUTCH_VIRTIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/base/bus.h"
#include "vmm/base/evloop.h"
#include "vmm/base/guest_mem.h"
#include "devices/virtio/virtq.h"

/* Feature bits of the transport (virtio 1.x, 6). */
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX     (1ull << 29)
#define VIRTIO_F_VERSION_1     (1ull << 32)

/* Device status (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER	  2u
#define VIRTIO_STATUS_DRIVER_OK	  4u
#define VIRTIO_STATUS_FEATURES_OK 8u
#define VIRTIO_STATUS_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED	  128u

/* InterruptStatus bits. */
#define VIRTIO_INT_VRING  1u
#define VIRTIO_INT_CONFIG 2u

/* virtio-mmio registers (4.2.2). */
#define VIRTIO_MMIO_MAGIC_VALUE		0x000
#define VIRTIO_MMIO_VERSION		0x004
#define VIRTIO_MMIO_DEVICE_ID		0x008
#define VIRTIO_MMIO_VENDOR_ID		0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES	0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES	0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL		0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX	0x034
#define VIRTIO_MMIO_QUEUE_NUM		0x038
#define VIRTIO_MMIO_QUEUE_READY		0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY	0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS	0x060
#define VIRTIO_MMIO_INTERRUPT_ACK	0x064
#define VIRTIO_MMIO_STATUS		0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW	0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH	0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW	0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH	0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW	0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH	0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION	0x0fc
#define VIRTIO_MMIO_CONFIG		0x100

#define VIRTIO_MMIO_MAGIC  0x74726976u /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x48545348u /* "HSTH" */
#define VIRTIO_MMIO_SIZE   0x1000u

#define VIRTIO_MAX_QUEUES 4

struct virtio_dev;

/* What a device implements; the transport does everything else. */
struct virtio_dev_ops {
	const char *name;
	uint32_t device_id;
	uint16_t num_queues;
	uint16_t queue_max; /* power of two, <= VIRTQ_MAX_SIZE */
	/* Device-specific config space, little endian, at most 256 bytes. */
	const uint8_t *(*config)(struct virtio_dev *dev, uint32_t *len);
	/* DRIVER_OK with these features acked; nonzero refuses it. */
	int (*activate)(struct virtio_dev *dev);
	/* The driver kicked queue q (event loop thread, lock held). */
	void (*queue_notify)(struct virtio_dev *dev, unsigned q);
	/* Back to the initial state: drop in-flight work's results. */
	void (*reset)(struct virtio_dev *dev);
};

/* What the transport needs from the VM; vm_fd < 0 and ep < 0 in unit
 * tests (no KVM, no event loop: tests drive virtio_dev_notify()). */
struct virtio_host {
	const struct guest_mem *mem;
	int vm_fd;
	int ep;
};

struct virtio_queue_notify {
	struct ev_handler ev;
	struct virtio_dev *dev;
	unsigned index;
	int fd;
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	struct virtio_host host;
	pthread_mutex_t lock;
	uint64_t mmio_base;
	unsigned gsi;
	uint64_t offered; /* device features + transport features */

	/* Transport registers. */
	uint32_t status;
	uint64_t acked;
	uint32_t dev_features_sel, drv_features_sel;
	uint32_t queue_sel;
	uint32_t config_generation;
	atomic_uint interrupt_status;
	struct virtq queues[VIRTIO_MAX_QUEUES];

	struct virtio_queue_notify notify[VIRTIO_MAX_QUEUES];
	int irq_fd;
	/* Times the driver broke the protocol.  Only the first is logged in
	 * the device's lifetime (resets included): a guest that breaks and
	 * resets its device in a loop must not flood hutch's log. */
	uint64_t breaks;
	/* Used-ring interrupts raised (--stats: completions per interrupt
	 * is what the driver's handler costs are spread over). */
	uint64_t vring_irqs;
};

/*
 * Set up the transport for a device at mmio_base with interrupt gsi:
 * eventfds, KVM ioeventfd/irqfd, event loop registration.  The device's
 * own state is initialised by its creator.  0 or negative errno, reported.
 */
int virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops,
		    uint64_t features, const struct virtio_host *host,
		    uint64_t mmio_base, unsigned gsi)
    __attribute__((warn_unused_result));
void virtio_dev_destroy(struct virtio_dev *dev);

/* Register accesses (bus_dev_ops shape; the opaque is the device). */
void virtio_mmio_read(void *opaque, uint64_t off, uint8_t *data, unsigned len);
void virtio_mmio_write(void *opaque, uint64_t off, const uint8_t *data,
		       unsigned len);

/* virtio_mmio_read/write as a bus device. */
extern const struct bus_dev_ops virtio_mmio_bus_ops;

/* Run queue q's notification as the event loop would (takes the lock). */
void virtio_dev_notify(struct virtio_dev *dev, unsigned q);

/*
 * A device handler took its budget of chains (at most the queue's size per
 * call) while the driver kept refilling the ring: run queue q's handler
 * again from the event loop, after whatever else is ready there.  This
 * keeps one guest from holding the VMM's only event-loop thread (and with
 * it stop requests, timers and other devices) inside one handler.
 */
void virtio_dev_defer(struct virtio_dev *dev, unsigned q);

/* Raise an interrupt (lock held or not). */
void virtio_dev_interrupt(struct virtio_dev *dev, unsigned bits);

/* Interrupt for queue q if its driver wants one now (lock held). */
void virtio_dev_queue_done(struct virtio_dev *dev, unsigned q);

/* The driver broke the protocol: DEVICE_NEEDS_RESET, stop its queues,
 * tell the driver.  The VMM and other devices carry on (lock held). */
void virtio_dev_broken(struct virtio_dev *dev, const char *why);

/* True while the driver may use the queues (DRIVER_OK, not broken). */
bool virtio_dev_live(const struct virtio_dev *dev);

/* The device changed its config space (lock held). */
void virtio_dev_config_changed(struct virtio_dev *dev);

/*
 * Snapshots (virtio_snap.c), every vCPU parked.  Save writes the
 * transport's registers and queues into the open section; held[q] (NULL:
 * none) chains the device took from queue q and still holds, which go
 * back to the ring.  Restore reads them into a freshly created device,
 * checked as hostile input and against the rings in the restored guest
 * memory: 0, or -EINVAL after one line saying why.  The device's own
 * fields follow in the same section: the device checks the section's end
 * (snap_reader_done).
 */
struct snap_writer;
struct snap_reader;
void virtio_dev_save(const struct virtio_dev *dev, struct snap_writer *w,
		     const uint16_t *held);
int virtio_dev_restore(struct virtio_dev *dev, struct snap_reader *r)
    __attribute__((warn_unused_result));

#endif
