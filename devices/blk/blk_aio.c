// SPDX-License-Identifier: MIT
#include "devices/blk/blk_aio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/base/log.h"

int blk_aio_init(struct blk_aio *a, unsigned depth,
		 void (*done)(void *opaque, struct blk_aio_req *r),
		 void *opaque)
{
	int ret;

	memset(a, 0, sizeof(*a));
	a->done = done;
	a->opaque = opaque;
	a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->efd < 0)
		return -errno;
	a->batch =
	    calloc((size_t)depth * BLK_AIO_MAX_EXTENTS, sizeof(*a->batch));
	if (!a->batch)
		return -ENOMEM;
	ret = io_setup((int)(depth * BLK_AIO_MAX_EXTENTS), &a->ctx);
	if (ret < 0) /* e.g. fs.aio-max-nr exhausted */
		return ret;
	a->usable = true;
	return 0;
}

void blk_aio_destroy(struct blk_aio *a)
{
	blk_aio_drain(a);
	if (a->usable)
		io_destroy(a->ctx);
	a->usable = false;
	if (a->efd >= 0)
		close(a->efd);
	a->efd = -1;
	free(a->batch);
	a->batch = NULL;
}

static bool aligned(uint64_t v, unsigned align)
{
	return (v & (align - 1)) == 0;
}

static bool iov_aligned(const struct iovec *iov, unsigned n, unsigned align)
{
	for (unsigned i = 0; i < n; i++)
		if (!aligned((uintptr_t)iov[i].iov_base, align) ||
		    !aligned(iov[i].iov_len, align))
			return false;
	return true;
}

int blk_aio_submit(struct blk_aio *a, struct disk *d, struct blk_aio_req *r)
{
	struct blk_req *q = &r->req;
	bool write = q->type == VIRTIO_BLK_T_OUT;
	struct disk_extent ext[BLK_AIO_MAX_EXTENTS];
	unsigned used_iov = 0;
	uint64_t done = 0;
	int n, ret;

	if (!a->usable || q->len == 0 || !aligned(q->offset, d->dio_align) ||
	    !iov_aligned(q->iov, q->niov, d->dio_align))
		return 0;
	if (write) {
		uint64_t pos;

		if (d->write_direct_fd < 0)
			return 0;
		ret = disk_write_begin(d, q->offset, q->len, &pos);
		if (ret == -EBUSY) {
			/* It would copy the base into a cluster that a write
			 * in flight may have filled already: let those
			 * complete (and mark their clusters), then retry. */
			blk_aio_drain(a);
			ret = disk_write_begin(d, q->offset, q->len, &pos);
		}
		if (ret)
			return ret;
		r->writing = d;
		ext[0] = (struct disk_extent){.fd = d->write_direct_fd,
					      .file_offset = pos,
					      .len = q->len};
		n = 1;
	} else {
		uint64_t mapped = 0;

		n = disk_map_read(d, q->offset, q->len, true, ext,
				  BLK_AIO_MAX_EXTENTS);
		if (n < 0)
			return 0; /* a file without O_DIRECT: synchronous */
		for (int i = 0; i < n; i++)
			mapped += ext[i].len;
		if (mapped < q->len)
			return 0; /* fragmented: synchronous */
	}

	r->pending = 0;
	r->error = 0;
	/* done: bytes of the request before extent i.  A request may be
	 * close to 4 GiB long, so this sum (like every sum of lengths or
	 * offsets here) is 64-bit. */
	for (int i = 0; i < n; i++) {
		struct iocb *cb = &r->iocbs[i];
		struct iovec *v = r->iov + used_iov;
		unsigned k =
		    iov_slice(q->iov, q->niov, done, ext[i].len, v,
			      VIRTQ_MAX_SIZE + BLK_AIO_MAX_EXTENTS - used_iov);

		used_iov += k;
		if (write)
			io_prep_pwritev(cb, ext[i].fd, v, (int)k,
					(long long)ext[i].file_offset);
		else
			io_prep_preadv(cb, ext[i].fd, v, (int)k,
				       (long long)ext[i].file_offset);
		io_set_eventfd(cb, a->efd);
		cb->data = r;
		a->batch[a->nbatch++] = cb;
		done += ext[i].len;
	}
	r->pending = (unsigned)n;
	a->inflight++;
	return 1;
}

/* The last iocb of r is done: end its write, then report it. */
static void request_done(struct blk_aio *a, struct blk_aio_req *r)
{
	a->inflight--;
	if (r->writing) {
		int ret = disk_write_end(r->writing, r->req.offset, r->req.len,
					 r->error == 0);

		r->writing = NULL;
		if (ret && !r->error)
			r->error = ret;
	}
	a->done(a->opaque, r);
}

/* An iocb that never reached the kernel: its request is redone
 * synchronously once the rest of it is done. */
static void unsubmitted(struct blk_aio *a, struct iocb *cb, int err)
{
	struct blk_aio_req *r = cb->data;

	if (!r->error)
		r->error = err;
	if (--r->pending == 0)
		request_done(a, r);
}

void blk_aio_kick(struct blk_aio *a)
{
	unsigned off = 0;

	/* One io_submit for everything the queue produced: one syscall,
	 * and the host's block layer sees the whole batch at once. */
	while (off < a->nbatch) {
		int ret =
		    io_submit(a->ctx, (long)(a->nbatch - off), a->batch + off);

		if (ret == -EINTR)
			continue;
		if (ret <= 0) {
			while (off < a->nbatch)
				unsubmitted(a, a->batch[off++],
					    ret < 0 ? ret : -EAGAIN);
			break;
		}
		off += (unsigned)ret;
	}
	a->nbatch = 0;
}

static void complete_events(struct blk_aio *a, struct io_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		struct blk_aio_req *r = ev[i].data;
		struct iocb *cb = ev[i].obj;
		const struct iovec *v = cb->u.c.buf;
		uint64_t want = 0;
		long res = (long)ev[i].res;

		/* For preadv/pwritev, nbytes counts iovecs. */
		for (unsigned long k = 0; k < cb->u.c.nbytes; k++)
			want += v[k].iov_len;
		if (res < 0 && !r->error)
			r->error = (int)res;
		else if (res >= 0 && (uint64_t)res != want && !r->error)
			r->error = -EIO; /* short (Linux moves at most ~2 GiB
					    per call): redo synchronously */
		if (--r->pending == 0)
			request_done(a, r);
	}
}

/*
 * The completion ring Linux maps into our address space (fs/aio.c: the
 * io_context_t is its address).  Reading completions from it directly
 * saves an io_getevents syscall per wake-up, which matters where
 * syscalls are expensive (nested virtualization).  Checked by its magic
 * number and header length; anything unexpected falls back to the
 * syscall.
 */
struct aio_ring_hdr {
	unsigned id, nr, head, tail, magic, compat_features, incompat_features,
	    header_length;
	struct io_event events[];
};

#define AIO_RING_MAGIC 0xa10a10a1u

static int ring_take(struct blk_aio *a, struct io_event *out, int max)
{
	struct aio_ring_hdr *ring = (struct aio_ring_hdr *)(void *)a->ctx;
	unsigned head, tail, nr;
	int n = 0;

	if (ring->magic != AIO_RING_MAGIC || ring->incompat_features != 0 ||
	    ring->header_length != sizeof(*ring))
		return -ENOSYS;
	nr = ring->nr;
	head = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
	tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
	if (head >= nr || tail >= nr)
		return -ENOSYS;
	while (head != tail && n < max) {
		out[n++] = ring->events[head];
		head = (head + 1) % nr;
	}
	/* The slots are the kernel's again once head moves past them. */
	__atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
	return n;
}

void blk_aio_reap(struct blk_aio *a)
{
	uint64_t v;

	if (read(a->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	blk_aio_poll(a);
}

void blk_aio_poll(struct blk_aio *a)
{
	struct io_event ev[64];
	struct timespec zero = {0, 0};
	int n;

	if (!a->usable || !a->inflight)
		return;
	do {
		n = ring_take(a, ev, 64);
		if (n == -ENOSYS)
			n = io_getevents(a->ctx, 0, 64, ev, &zero);
		if (n > 0)
			complete_events(a, ev, n);
	} while (n == 64);
}

void blk_aio_drain(struct blk_aio *a)
{
	struct io_event ev[64];

	blk_aio_kick(a); /* what is only prepared would never complete */
	while (a->usable && a->inflight) {
		int n = io_getevents(a->ctx, 1, 64, ev, NULL);

		if (n == -EINTR)
			continue;
		if (n < 0) {
			log_err(n, "waiting for disk I/O to finish");
			return;
		}
		complete_events(a, ev, n);
	}
}
