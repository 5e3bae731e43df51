// SPDX-License-Identifier: MIT
#include "devices/blk/virtio_blk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/base/le.h"
#include "vmm/base/log.h"

#define DISCARD_MAX_SECTORS 0x3fffffu /* 2 GiB per request */
#define DISCARD_ALIGN	    8u	      /* sectors: 4 KiB */

static struct virtio_blk *to_blk(struct virtio_dev *d)
{
	return container_of(d, struct virtio_blk, vdev);
}

static const uint8_t *blk_config(struct virtio_dev *d, uint32_t *len)
{
	*len = VIRTIO_BLK_CONFIG_LEN;
	return to_blk(d)->config;
}

/* Config space layout: virtio 1.x, 5.2.4. */
static void fill_config(struct virtio_blk *b)
{
	uint8_t *c = b->config;

	memset(c, 0, sizeof(b->config));
	put_le64(c + 0, b->disk.size / BLK_SECTOR);  /* capacity */
	put_le32(c + 12, VIRTIO_BLK_QUEUE_SIZE - 2); /* seg_max */
	put_le32(c + 20, BLK_SECTOR);		     /* blk_size */
	put_le32(c + 36, DISCARD_MAX_SECTORS);	     /* max_discard_sectors */
	put_le32(c + 40, 1);			     /* max_discard_seg */
	put_le32(c + 44, DISCARD_ALIGN);	     /* discard alignment */
	put_le32(c + 48, DISCARD_MAX_SECTORS);	     /* max_write_zeroes */
	put_le32(c + 52, 1);			     /* ..._seg */
	c[56] = 1; /* write_zeroes_may_unmap */
}

static void finish(struct virtio_blk *b, struct blk_aio_req *r, uint8_t status)
{
	uint32_t written = 1;

	r->in_use = false;
	if (r->generation != b->generation)
		return; /* the device was reset meanwhile */
	if (status == VIRTIO_BLK_S_OK && (r->req.type == VIRTIO_BLK_T_IN ||
					  r->req.type == VIRTIO_BLK_T_GET_ID))
		written += (uint32_t)r->req.len;
	*r->req.status = status;
	virtq_push(&b->vdev.queues[0], r->head, written);
}

static int sync_io(struct virtio_blk *b, struct blk_aio_req *r)
{
	struct blk_req *q = &r->req;
	struct disk *d = &b->disk;
	int ret = 0;

	switch (q->type) {
	case VIRTIO_BLK_T_IN:
		ret = disk_read_sync(d, q->iov, q->niov, q->offset, q->len);
		break;
	case VIRTIO_BLK_T_OUT:
		ret = disk_write_sync(d, q->iov, q->niov, q->offset);
		break;
	case VIRTIO_BLK_T_FLUSH:
		ret = disk_flush(d);
		break;
	case VIRTIO_BLK_T_GET_ID: {
		size_t n = strlen(d->serial), done = 0;

		/* NUL-padded to 20 bytes; no terminator if it fills them. */
		for (unsigned i = 0; i < q->niov; i++) {
			uint8_t *p = q->iov[i].iov_base;

			for (size_t k = 0; k < q->iov[i].iov_len; k++, done++)
				p[k] = done < n ? (uint8_t)d->serial[done] : 0;
		}
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
		ret = disk_discard(d, q->offset, q->len);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		ret = disk_write_zeroes(d, q->offset, q->len);
		break;
	}
	return ret;
}

static uint8_t do_sync(struct virtio_blk *b, struct blk_aio_req *r)
{
	struct blk_req *q = &r->req;
	struct disk *d = &b->disk;
	int ret;

	b->stats.sync++;
	ret = sync_io(b, r);
	if (ret == -EBUSY) {
		/* The write would copy the base into a cluster that an AIO
		 * write in flight may have filled already (disk_write_begin
		 * did nothing): let those complete, then do it.  Not reached
		 * from aio_done's redo: a failed AIO write's partly covered
		 * clusters were copied up when it began. */
		blk_aio_drain(&b->aio);
		ret = sync_io(b, r);
	}
	if (ret) {
		log_debug("%s: request type %u at %llu: %s", d->path, q->type,
			  (unsigned long long)q->offset, strerror(-ret));
		return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

static void aio_done(void *opaque, struct blk_aio_req *r)
{
	struct virtio_blk *b = opaque;
	uint8_t status = VIRTIO_BLK_S_OK;

	/* A failed O_DIRECT attempt (alignment the file system wanted but
	 * did not announce, a short transfer) is redone the plain way. */
	if (r->error && r->generation == b->generation)
		status = do_sync(b, r);
	finish(b, r, status);
}

static struct blk_aio_req *free_slot(struct virtio_blk *b)
{
	for (unsigned i = 0; i < VIRTIO_BLK_QUEUE_SIZE; i++)
		if (!b->reqs[i].in_use)
			return &b->reqs[i];
	return NULL;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* May r go now under the rate limits?  If so its tokens are taken;
 * if not, the timer is set for when it may. */
static bool rate_allows(struct virtio_blk *b, const struct blk_aio_req *r)
{
	uint64_t now, len = 0, wait, w;
	struct itimerspec t = {0};

	if (!b->bytes.rate && !b->ops.rate)
		return true;
	if (r->req.type == VIRTIO_BLK_T_IN || r->req.type == VIRTIO_BLK_T_OUT)
		len = r->req.len;
	now = mono_ns();
	wait = tb_wait(&b->bytes, len, now);
	w = tb_wait(&b->ops, 1, now);
	if (w > wait)
		wait = w;
	if (!wait) {
		tb_take(&b->bytes, len);
		tb_take(&b->ops, 1);
		return true;
	}
	t.it_value.tv_sec = (time_t)(wait / 1000000000ull);
	t.it_value.tv_nsec = (long)(wait % 1000000000ull);
	if (b->throttle_fd >= 0)
		timerfd_settime(b->throttle_fd, 0, &t, NULL);
	return false;
}

/* A parsed request with no verdict yet: counted and started. */
static void start_request(struct virtio_blk *b, struct blk_aio_req *r)
{
	int ret;

	if (r->req.type == VIRTIO_BLK_T_IN)
		b->stats.reads++;
	else if (r->req.type == VIRTIO_BLK_T_OUT)
		b->stats.writes++;
	else if (r->req.type == VIRTIO_BLK_T_FLUSH)
		b->stats.flushes++;
	if (r->req.type == VIRTIO_BLK_T_IN || r->req.type == VIRTIO_BLK_T_OUT) {
		ret = blk_aio_submit(&b->aio, &b->disk, r);
		if (ret == 1) {
			b->stats.aio++;
			return;
		}
		if (ret < 0) {
			finish(b, r, VIRTIO_BLK_S_IOERR);
			return;
		}
	}
	finish(b, r, do_sync(b, r));
}

static void process_queue(struct virtio_blk *b)
{
	struct virtq *q = &b->vdev.queues[0];
	unsigned budget = q->size;

	/* One held back by the limits goes first, or nothing does. */
	if (b->held) {
		if (!rate_allows(b, b->held))
			return;
		start_request(b, b->held);
		b->held = NULL;
	}
	for (;;) {
		struct blk_aio_req *r = free_slot(b);
		int ret;

		if (!r)
			break; /* all slots busy: completions resume us */
		if (budget-- == 0) {
			/* A driver refilling as fast as we serve it:
			 * yield, and come back from the event loop. */
			b->stats.deferred++;
			virtio_dev_defer(&b->vdev, 0);
			break;
		}
		ret = virtq_pop(q, &b->chain);
		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_dev_broken(&b->vdev, q->error);
			break;
		}
		if (blk_req_parse(&b->chain, b->disk.size, b->disk.read_only,
				  &r->req)) {
			virtio_dev_broken(&b->vdev,
					  "request without header or status");
			break;
		}
		r->head = b->chain.head;
		r->generation = b->generation;
		r->in_use = true;
		if (r->req.verdict != BLK_NO_STATUS_YET) {
			finish(b, r, r->req.verdict);
			continue;
		}
		if (!rate_allows(b, r)) {
			/* Over the limit: it waits for the timer, and the
			 * queue behind it with it. */
			b->stats.throttled++;
			b->held = r;
			break;
		}
		start_request(b, r);
	}
	blk_aio_kick(&b->aio);
	/* Submitting takes a while; requests that finished meanwhile share
	 * this run's interrupt instead of costing the guest another. */
	if (virtio_dev_live(&b->vdev))
		blk_aio_poll(&b->aio);
	/* A broken device has told its driver already (config interrupt). */
	if (virtio_dev_live(&b->vdev))
		virtio_dev_queue_done(&b->vdev, 0);
}

static void blk_queue_notify(struct virtio_dev *d, unsigned q)
{
	(void)q;
	to_blk(d)->stats.kicks++;
	process_queue(to_blk(d));
}

static void blk_reset(struct virtio_dev *d)
{
	struct virtio_blk *b = to_blk(d);

	/* In-flight requests finish into guest memory but are not
	 * reported: the rings they belonged to are gone. */
	b->generation++;
	if (b->held)
		b->held->in_use = false;
	b->held = NULL;
}

static void on_throttle(struct ev_handler *h, uint32_t events)
{
	struct virtio_blk *b = container_of(h, struct virtio_blk, throttle_ev);
	uint64_t n;

	(void)events;
	if (read(b->throttle_fd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&b->vdev.lock);
	if (virtio_dev_live(&b->vdev) && b->vdev.queues[0].ready)
		process_queue(b);
	pthread_mutex_unlock(&b->vdev.lock);
}

void virtio_blk_set_limits(struct virtio_blk *b, const struct blk_limits *l)
{
	uint64_t now = mono_ns();

	b->limits = *l;
	tb_set(&b->bytes, l->bps, l->bps_burst, now);
	tb_set(&b->ops, l->iops, l->iops_burst, now);
	/* A request held under the old limits may go now. */
	if (b->held && virtio_dev_live(&b->vdev) && b->vdev.queues[0].ready)
		process_queue(b);
}

static void on_aio(struct ev_handler *h, uint32_t events)
{
	struct virtio_blk *b = container_of(h, struct virtio_blk, aio_ev);

	(void)events;
	pthread_mutex_lock(&b->vdev.lock);
	b->stats.reaps++;
	blk_aio_reap(&b->aio);
	/* Completions may have freed slots for requests still waiting. */
	if (virtio_dev_live(&b->vdev) && b->vdev.queues[0].ready)
		process_queue(b);
	pthread_mutex_unlock(&b->vdev.lock);
}

static const struct virtio_dev_ops blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .num_queues = 1,
    .queue_max = VIRTIO_BLK_QUEUE_SIZE,
    .config = blk_config,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
};

int virtio_blk_create(struct virtio_blk *b, const struct drive_config *cfg,
		      unsigned index, const struct virtio_host *host,
		      uint64_t mmio_base, unsigned gsi)
{
	uint64_t features = VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC |
			    VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE |
			    VIRTIO_BLK_F_FLUSH;
	int ret;

	memset(b, 0, sizeof(*b));
	b->aio.efd = -1;
	b->throttle_fd = -1;
	b->disk.fd = b->disk.write_fd = -1;
	b->disk.direct_fd = b->disk.write_direct_fd = -1;
	ret = disk_open(&b->disk, cfg, index);
	if (ret)
		return ret;
	if (cfg->read_only)
		features |= VIRTIO_BLK_F_RO;
	else
		features |= VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;
	fill_config(b);
	b->reqs = calloc(VIRTIO_BLK_QUEUE_SIZE, sizeof(*b->reqs));
	if (!b->reqs)
		return -ENOMEM;
	ret = blk_aio_init(&b->aio, VIRTIO_BLK_QUEUE_SIZE, aio_done, b);
	if (ret)
		log_warnx("%s: no Linux AIO (%s); using synchronous I/O",
			  cfg->path, strerror(-ret));
	log_debug("drive %u: %s, %llu bytes%s%s, I/O: %s", index, cfg->path,
		  (unsigned long long)b->disk.size,
		  cfg->read_only ? ", read-only" : "",
		  cfg->overlay ? ", copy-on-write" : "",
		  b->aio.usable && (b->disk.direct_fd >= 0 ||
				    b->disk.write_direct_fd >= 0)
		      ? "libaio + O_DIRECT"
		      : "synchronous (no O_DIRECT here)");
	virtio_blk_set_limits(b, &cfg->limits);
	b->throttle_fd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (b->throttle_fd < 0) {
		ret = -errno;
		log_err(ret, "%s: timerfd", cfg->path);
		return ret;
	}
	if (host->ep >= 0) {
		b->throttle_ev.fn = on_throttle;
		ret = evloop_add(host->ep, b->throttle_fd, EPOLLIN,
				 &b->throttle_ev);
		if (ret) {
			log_err(ret, "%s: event loop", cfg->path);
			return ret;
		}
	}
	if (b->aio.efd >= 0 && host->ep >= 0) {
		b->aio_ev.fn = on_aio;
		ret = evloop_add(host->ep, b->aio.efd, EPOLLIN, &b->aio_ev);
		if (ret) {
			log_err(ret, "%s: event loop", cfg->path);
			return ret;
		}
	}
	return virtio_dev_init(&b->vdev, &blk_ops, features, host, mmio_base,
			       gsi);
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (b->vdev.ops)
		pthread_mutex_lock(&b->vdev.lock);
	blk_aio_destroy(&b->aio);
	if (b->vdev.ops) {
		pthread_mutex_unlock(&b->vdev.lock);
		virtio_dev_destroy(&b->vdev);
	}
	free(b->reqs);
	b->reqs = NULL;
	if (b->throttle_fd >= 0)
		close(b->throttle_fd);
	b->throttle_fd = -1;
	disk_close(&b->disk);
}
