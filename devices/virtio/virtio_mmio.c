// SPDX-License-Identifier: MIT
/*
 * virtio-mmio transport: registers, the device-status state machine,
 * feature negotiation, queue set-up, config space, and the eventfds that
 * carry notifications and interrupts.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/base/le.h"
#include "vmm/base/log.h"
#include "devices/virtio/virtio.h"

#define S_ACK  VIRTIO_STATUS_ACKNOWLEDGE
#define S_DRV  VIRTIO_STATUS_DRIVER
#define S_FOK  VIRTIO_STATUS_FEATURES_OK
#define S_DOK  VIRTIO_STATUS_DRIVER_OK
#define S_FAIL VIRTIO_STATUS_FAILED
#define S_NR   VIRTIO_STATUS_NEEDS_RESET

/*
 * The initialisation sequence of 3.1.1, one bit at a time.  Writing 0
 * (reset) and adding FAILED are always allowed; anything else is ignored
 * and the status reads back unchanged.
 */
static const struct {
	uint32_t from, to;
} status_steps[] = {
    {0, S_ACK},
    {S_ACK, S_ACK | S_DRV},
    {S_ACK | S_DRV, S_ACK | S_DRV | S_FOK},
    {S_ACK | S_DRV | S_FOK, S_ACK | S_DRV | S_FOK | S_DOK},
};

bool virtio_dev_live(const struct virtio_dev *dev)
{
	return (dev->status & S_DOK) && !(dev->status & (S_NR | S_FAIL));
}

void virtio_dev_interrupt(struct virtio_dev *dev, unsigned bits)
{
	uint64_t one = 1;

	atomic_fetch_or(&dev->interrupt_status, bits);
	if (write(dev->irq_fd, &one, sizeof(one)) < 0)
		log_debug("%s: irq eventfd: %s", dev->ops->name,
			  strerror(errno));
}

void virtio_dev_defer(struct virtio_dev *dev, unsigned q)
{
	uint64_t one = 1;

	if (q < dev->ops->num_queues && dev->notify[q].fd >= 0 &&
	    write(dev->notify[q].fd, &one, sizeof(one)) < 0)
		log_debug("%s: notify eventfd: %s", dev->ops->name,
			  strerror(errno));
}

void virtio_dev_queue_done(struct virtio_dev *dev, unsigned q)
{
	if (virtq_should_notify(&dev->queues[q])) {
		dev->vring_irqs++;
		virtio_dev_interrupt(dev, VIRTIO_INT_VRING);
	}
}

void virtio_dev_config_changed(struct virtio_dev *dev)
{
	dev->config_generation++;
	if (dev->status & S_DOK)
		virtio_dev_interrupt(dev, VIRTIO_INT_CONFIG);
}

void virtio_dev_broken(struct virtio_dev *dev, const char *why)
{
	if (dev->breaks++ == 0)
		log_warnx("%s at 0x%llx: guest driver error (%s); device "
			  "needs reset",
			  dev->ops->name, (unsigned long long)dev->mmio_base,
			  why);
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		dev->queues[i].ready = false;
	if (dev->status & S_NR)
		return;
	dev->status |= S_NR;
	if (dev->status & S_DOK)
		virtio_dev_interrupt(dev, VIRTIO_INT_CONFIG);
}

static void device_reset(struct virtio_dev *dev)
{
	if (dev->ops->reset)
		dev->ops->reset(dev);
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq_reset(&dev->queues[i]);
	dev->status = 0;
	dev->acked = 0;
	dev->dev_features_sel = dev->drv_features_sel = 0;
	dev->queue_sel = 0;
	atomic_store(&dev->interrupt_status, 0);
}

/* Can the driver accept these features?  It must speak virtio 1.x. */
static bool features_acceptable(const struct virtio_dev *dev)
{
	return dev->acked & VIRTIO_F_VERSION_1;
}

static void set_status(struct virtio_dev *dev, uint32_t val)
{
	uint32_t cur = dev->status & ~S_NR, want = val & ~S_NR;

	if (val == 0) {
		device_reset(dev);
		return;
	}
	if (want == cur)
		return;
	if (want == (cur | S_FAIL)) {
		dev->status |= S_FAIL;
		return;
	}
	for (size_t i = 0; i < sizeof(status_steps) / sizeof(status_steps[0]);
	     i++) {
		if (status_steps[i].from != cur || status_steps[i].to != want)
			continue;
		if ((want & S_FOK) && !(cur & S_FOK) &&
		    !features_acceptable(dev)) {
			log_debug("%s: FEATURES_OK refused (no VERSION_1)",
				  dev->ops->name);
			return; /* the driver sees FEATURES_OK clear */
		}
		if ((want & S_DOK) && !(cur & S_DOK)) {
			for (unsigned q = 0; q < dev->ops->num_queues; q++) {
				dev->queues[q].event_idx =
				    dev->acked & VIRTIO_F_EVENT_IDX;
				dev->queues[q].indirect =
				    dev->acked & VIRTIO_F_INDIRECT_DESC;
			}
			dev->status = val & ~S_NR;
			if (dev->ops->activate && dev->ops->activate(dev))
				virtio_dev_broken(dev, "activation failed");
			return;
		}
		dev->status = (dev->status & S_NR) | want;
		return;
	}
	log_debug("%s: ignored status 0x%x -> 0x%x", dev->ops->name, cur, want);
}

/* Queue registers may change only between FEATURES_OK and DRIVER_OK, on
 * a queue that exists and is not running. */
static struct virtq *queue_for_setup(struct virtio_dev *dev)
{
	struct virtq *q;

	if ((dev->status & (S_FOK | S_DOK | S_FAIL)) != S_FOK)
		return NULL;
	if (dev->queue_sel >= dev->ops->num_queues)
		return NULL;
	q = &dev->queues[dev->queue_sel];
	return q->ready ? NULL : q;
}

static void set_queue_ready(struct virtio_dev *dev, uint32_t val)
{
	struct virtq *q;

	if ((dev->status & (S_FOK | S_DOK | S_FAIL)) != S_FOK ||
	    dev->queue_sel >= dev->ops->num_queues)
		return;
	q = &dev->queues[dev->queue_sel];
	if (!val) {
		q->ready = false;
		return;
	}
	if (q->ready)
		return;
	if (q->size > dev->ops->queue_max ||
	    virtq_start(q, dev->host.mem) != 0) {
		/* QueueReady reads back 0: the driver sees the failure. */
		log_debug("%s: queue %u refused (size %u, bad ring address?)",
			  dev->ops->name, dev->queue_sel, q->size);
		q->ready = false;
	}
}

static void set_addr_half(uint64_t *addr, uint32_t val, bool high)
{
	if (high)
		*addr = (*addr & 0xffffffffull) | ((uint64_t)val << 32);
	else
		*addr = (*addr & ~0xffffffffull) | val;
}

static uint32_t reg_read(struct virtio_dev *dev, uint64_t off)
{
	const struct virtio_dev_ops *ops = dev->ops;

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (dev->dev_features_sel > 1)
			return 0;
		return (uint32_t)(dev->offered >> (32 * dev->dev_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return dev->queue_sel < ops->num_queues ? ops->queue_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return dev->queue_sel < ops->num_queues &&
		       dev->queues[dev->queue_sel].ready;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return atomic_load(&dev->interrupt_status);
	case VIRTIO_MMIO_STATUS:
		return dev->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return dev->config_generation;
	default:
		return 0; /* write-only or reserved */
	}
}

static void reg_write(struct virtio_dev *dev, uint64_t off, uint32_t val)
{
	struct virtq *q;
	uint64_t one = 1;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		dev->dev_features_sel = val;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		dev->drv_features_sel = val;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		/* Only while negotiating, only bits we offered. */
		if ((dev->status & (S_FOK | S_DOK | S_FAIL)) != 0 ||
		    !(dev->status & S_DRV) || dev->drv_features_sel > 1)
			return;
		set_addr_half(&dev->acked, val, dev->drv_features_sel == 1);
		dev->acked &= dev->offered;
		return;
	case VIRTIO_MMIO_QUEUE_SEL:
		dev->queue_sel = val;
		return;
	case VIRTIO_MMIO_QUEUE_NUM:
		if ((q = queue_for_setup(dev)))
			q->size = val <= UINT16_MAX ? (uint16_t)val : 0;
		return;
	case VIRTIO_MMIO_QUEUE_READY:
		set_queue_ready(dev, val);
		return;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Reached only where no ioeventfd matched (unit tests, or a
		 * bogus index): hand it to the event loop all the same. */
		if (val < dev->ops->num_queues &&
		    write(dev->notify[val].fd, &one, sizeof(one)) < 0)
			log_debug("%s: notify eventfd: %s", dev->ops->name,
				  strerror(errno));
		return;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		atomic_fetch_and(&dev->interrupt_status, ~val);
		return;
	case VIRTIO_MMIO_STATUS:
		set_status(dev, val);
		return;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if ((q = queue_for_setup(dev)))
			set_addr_half(&q->desc_gpa, val,
				      off == VIRTIO_MMIO_QUEUE_DESC_HIGH);
		return;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		if ((q = queue_for_setup(dev)))
			set_addr_half(&q->avail_gpa, val,
				      off == VIRTIO_MMIO_QUEUE_DRIVER_HIGH);
		return;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		if ((q = queue_for_setup(dev)))
			set_addr_half(&q->used_gpa, val,
				      off == VIRTIO_MMIO_QUEUE_DEVICE_HIGH);
		return;
	default:
		return; /* read-only or reserved: ignored */
	}
}

/* Config space: one bounds-checked copy; outside it reads as zeros. */
static void config_read(struct virtio_dev *dev, uint64_t off, uint8_t *data,
			unsigned len)
{
	uint32_t cfg_len = 0;
	const uint8_t *cfg =
	    dev->ops->config ? dev->ops->config(dev, &cfg_len) : NULL;

	memset(data, 0, len);
	if (cfg && off <= cfg_len && len <= cfg_len - off)
		memcpy(data, cfg + off, len);
}

void virtio_mmio_read(void *opaque, uint64_t off, uint8_t *data, unsigned len)
{
	struct virtio_dev *dev = opaque;

	/* The interrupt handler's read must not wait behind the event loop
	 * (which holds the lock while it submits I/O): it is atomic. */
	if (off == VIRTIO_MMIO_INTERRUPT_STATUS && len == 4) {
		put_le32(data, atomic_load(&dev->interrupt_status));
		return;
	}
	pthread_mutex_lock(&dev->lock);
	if (off >= VIRTIO_MMIO_CONFIG)
		config_read(dev, off - VIRTIO_MMIO_CONFIG, data, len);
	else if (len == 4 && !(off & 3))
		put_le32(data, reg_read(dev, off));
	else
		memset(data, 0, len); /* registers are 32-bit only */
	pthread_mutex_unlock(&dev->lock);
}

void virtio_mmio_write(void *opaque, uint64_t off, const uint8_t *data,
		       unsigned len)
{
	struct virtio_dev *dev = opaque;

	/* Config space is read-only for our devices; registers 32-bit. */
	if (off >= VIRTIO_MMIO_CONFIG || len != 4 || (off & 3))
		return;
	if (off == VIRTIO_MMIO_INTERRUPT_ACK) { /* lock-free, as above */
		atomic_fetch_and(&dev->interrupt_status, ~get_le32(data));
		return;
	}
	pthread_mutex_lock(&dev->lock);
	reg_write(dev, off, get_le32(data));
	pthread_mutex_unlock(&dev->lock);
}

const struct bus_dev_ops virtio_mmio_bus_ops = {
    .read = virtio_mmio_read,
    .write = virtio_mmio_write,
};

void virtio_dev_notify(struct virtio_dev *dev, unsigned q)
{
	pthread_mutex_lock(&dev->lock);
	if (q < dev->ops->num_queues && virtio_dev_live(dev) &&
	    dev->queues[q].ready)
		dev->ops->queue_notify(dev, q);
	pthread_mutex_unlock(&dev->lock);
}

static void on_notify(struct ev_handler *h, uint32_t events)
{
	struct virtio_queue_notify *n =
	    container_of(h, struct virtio_queue_notify, ev);
	uint64_t v;

	(void)events;
	if (read(n->fd, &v, sizeof(v)) < 0)
		return;
	virtio_dev_notify(n->dev, n->index);
}

int virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops,
		    uint64_t features, const struct virtio_host *host,
		    uint64_t mmio_base, unsigned gsi)
{
	int ret;

	dev->ops = ops;
	dev->host = *host;
	dev->mmio_base = mmio_base;
	dev->gsi = gsi;
	dev->offered = features | VIRTIO_F_VERSION_1;
	dev->irq_fd = -1;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		dev->notify[i].fd = -1;
	pthread_mutex_init(&dev->lock, NULL);

	dev->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dev->irq_fd < 0)
		goto err_errno;
	if (host->vm_fd >= 0) {
		struct kvm_irqfd irqfd = {.fd = (uint32_t)dev->irq_fd,
					  .gsi = gsi};

		if (ioctl(host->vm_fd, KVM_IRQFD, &irqfd) < 0)
			goto err_errno;
	}
	for (unsigned i = 0; i < ops->num_queues; i++) {
		struct virtio_queue_notify *n = &dev->notify[i];

		n->ev.fn = on_notify;
		n->dev = dev;
		n->index = i;
		n->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (n->fd < 0)
			goto err_errno;
		if (host->vm_fd >= 0) {
			struct kvm_ioeventfd io = {
			    .datamatch = i,
			    .addr = mmio_base + VIRTIO_MMIO_QUEUE_NOTIFY,
			    .len = 4,
			    .fd = n->fd,
			    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
			};

			if (ioctl(host->vm_fd, KVM_IOEVENTFD, &io) < 0)
				goto err_errno;
		}
		if (host->ep >= 0) {
			ret = evloop_add(host->ep, n->fd, EPOLLIN, &n->ev);
			if (ret)
				goto err;
		}
	}
	return 0;

err_errno:
	ret = -errno;
err:
	log_err(ret, "%s: cannot set up virtio-mmio notifications", ops->name);
	return ret;
}

void virtio_dev_destroy(struct virtio_dev *dev)
{
	if (!dev->ops)
		return;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (dev->notify[i].fd >= 0) {
			if (dev->host.ep >= 0)
				evloop_del(dev->host.ep, dev->notify[i].fd);
			close(dev->notify[i].fd);
			dev->notify[i].fd = -1;
		}
	if (dev->irq_fd >= 0)
		close(dev->irq_fd);
	dev->irq_fd = -1;
	pthread_mutex_destroy(&dev->lock);
	dev->ops = NULL;
}
