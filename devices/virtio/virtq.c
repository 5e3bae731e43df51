// SPDX-License-Identifier: MIT
#include "devices/virtio/virtq.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#define DESC_SIZE 16

/* Guest-shared 16-bit fields: one aligned load or store each, so the
 * compiler neither tears nor repeats them. */
static uint16_t shared_load16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p,
				       __ATOMIC_RELAXED));
}

static void shared_store16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELAXED);
}

static uint64_t avail_bytes(uint16_t size)
{
	return 6 + 2 * (uint64_t)size;
}

static uint64_t used_bytes(uint16_t size)
{
	return 6 + 8 * (uint64_t)size;
}

int virtq_start(struct virtq *q, const struct guest_mem *mem)
{
	q->ready = false;
	if (q->size == 0 || q->size > VIRTQ_MAX_SIZE ||
	    (q->size & (q->size - 1)))
		return -EINVAL;
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return -EINVAL;
	q->desc = gpa_ptr(mem, q->desc_gpa, (uint64_t)q->size * DESC_SIZE);
	q->avail = gpa_ptr(mem, q->avail_gpa, avail_bytes(q->size));
	q->used = gpa_ptr(mem, q->used_gpa, used_bytes(q->size));
	if (!q->desc || !q->avail || !q->used)
		return -EINVAL;
	q->mem = mem;
	q->last_avail = 0;
	q->used_idx = 0;
	q->signalled_valid = false;
	q->error = NULL;
	q->ready = true;
	return 0;
}

int virtq_resume_at(struct virtq *q, uint16_t last_avail, uint16_t used_idx)
{
	uint16_t avail_idx;

	if (!q->ready)
		return -EINVAL;
	/* The device wrote used->idx itself before the snapshot; a memory
	 * image that disagrees is not the one this state was taken with. */
	if (shared_load16(q->used + 2) != used_idx)
		return -ESTALE;
	avail_idx = shared_load16(q->avail + 2);
	if ((uint16_t)(avail_idx - last_avail) > q->size)
		return -ESTALE;
	q->last_avail = last_avail;
	q->used_idx = used_idx;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

static int refuse(struct virtq *q, const char *why)
{
	q->error = why;
	return -EPROTO;
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Copy a descriptor out of (guest-shared) memory once. */
static struct desc desc_load(const uint8_t *table, uint16_t i)
{
	uint8_t raw[DESC_SIZE];
	struct desc d;

	memcpy(raw, table + (size_t)i * DESC_SIZE, DESC_SIZE);
	memcpy(&d.addr, raw, 8);
	memcpy(&d.len, raw + 8, 4);
	memcpy(&d.flags, raw + 12, 2);
	memcpy(&d.next, raw + 14, 2);
	d.addr = le64toh(d.addr);
	d.len = le32toh(d.len);
	d.flags = le16toh(d.flags);
	d.next = le16toh(d.next);
	return d;
}

static int add_buf(struct virtq *q, struct virtq_chain *c, const struct desc *d)
{
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	uint8_t *hva;

	if (c->nbufs >= VIRTQ_MAX_SIZE)
		return refuse(q, "chain longer than the queue");
	if (!writable && c->nbufs > c->nreadable)
		return refuse(q, "readable buffer after a writable one");
	/* gpa_ptr accepts a zero-length range only where a byte would be
	 * valid; a zero-length buffer is harmless, so keep it as such. */
	hva = gpa_ptr(q->mem, d->addr, d->len ? d->len : 1);
	if (!hva)
		return refuse(q, "buffer outside guest memory");
	if (writable)
		c->writable_len += d->len;
	else {
		c->readable_len += d->len;
		c->nreadable++;
	}
	if (c->readable_len + c->writable_len > UINT32_MAX)
		return refuse(q, "chain longer than 4 GiB");
	c->bufs[c->nbufs++] =
	    (struct virtq_buf){.hva = hva, .len = d->len, .writable = writable};
	return 0;
}

/* Walk an indirect table; its entries index the table, not the ring. */
static int walk_indirect(struct virtq *q, struct virtq_chain *c,
			 const struct desc *ind)
{
	const uint8_t *table;
	uint32_t n;
	uint16_t i = 0;

	if (!q->indirect)
		return refuse(q, "indirect descriptor not negotiated");
	if (ind->flags & VIRTQ_DESC_F_NEXT)
		return refuse(q, "indirect descriptor with NEXT");
	if (ind->len == 0 || ind->len % DESC_SIZE)
		return refuse(q, "indirect table length not a multiple of 16");
	n = ind->len / DESC_SIZE;
	if (n > q->size)
		return refuse(q, "indirect table larger than the queue");
	table = gpa_ptr(q->mem, ind->addr, ind->len);
	if (!table)
		return refuse(q, "indirect table outside guest memory");
	for (uint32_t steps = 0;; steps++) {
		struct desc d;
		int ret;

		if (steps >= n)
			return refuse(q, "loop in indirect table");
		d = desc_load(table, i);
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return refuse(q, "nested indirect table");
		ret = add_buf(q, c, &d);
		if (ret)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= n)
			return refuse(q, "indirect next index out of range");
		i = d.next;
	}
}

static int walk_chain(struct virtq *q, struct virtq_chain *c, uint16_t head)
{
	uint16_t i = head;

	c->head = head;
	c->nbufs = c->nreadable = 0;
	c->readable_len = c->writable_len = 0;
	for (unsigned steps = 0;; steps++) {
		struct desc d;
		int ret;

		if (steps >= q->size)
			return refuse(q, "loop in descriptor chain");
		d = desc_load(q->desc, i);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (steps != 0)
				return refuse(q, "indirect descriptor inside "
						 "a chain");
			return walk_indirect(q, c, &d);
		}
		ret = add_buf(q, c, &d);
		if (ret)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= q->size)
			return refuse(q, "next index out of range");
		i = d.next;
	}
}

/* How many chains the driver has made available; -EPROTO if more than
 * the ring holds. */
static int avail_pending(struct virtq *q)
{
	uint16_t idx = shared_load16(q->avail + 2);
	uint16_t pending = (uint16_t)(idx - q->last_avail);

	if (pending > q->size)
		return refuse(q, "avail index ahead by more than the queue");
	return pending;
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	uint16_t head;
	int pending, ret;

	if (!q->ready)
		return 0;
	pending = avail_pending(q);
	if (pending == 0 && q->event_idx) {
		/* Ask for a notification at the next entry, then look again:
		 * the driver may have added one before seeing our request. */
		shared_store16(q->used + 4 + 8 * (size_t)q->size,
			       q->last_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		pending = avail_pending(q);
	}
	if (pending <= 0)
		return pending;
	/* Read the ring entry only after seeing the index that covers it. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	head =
	    shared_load16(q->avail + 4 + 2 * (size_t)(q->last_avail % q->size));
	if (head >= q->size)
		return refuse(q, "head index out of range");
	ret = walk_chain(q, c, head);
	if (ret)
		return ret;
	q->last_avail++;
	return 1;
}

void virtq_notify_on_next(struct virtq *q)
{
	if (!q->ready || !q->event_idx)
		return; /* without EVENT_IDX the driver always notifies */
	shared_store16(q->used + 4 + 8 * (size_t)q->size,
		       shared_load16(q->avail + 2));
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	uint8_t *e = q->used + 4 + 8 * (size_t)(q->used_idx % q->size);
	uint32_t id = htole32(head), len = htole32(written);

	memcpy(e, &id, 4);
	memcpy(e + 4, &len, 4);
	/* The entry must be visible before the index that publishes it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->used_idx++;
	shared_store16(q->used + 2, q->used_idx);
}

bool virtq_should_notify(struct virtq *q)
{
	uint16_t old, now = q->used_idx, event;
	bool valid = q->signalled_valid;

	/* Our used->idx store must be visible before we read the driver's
	 * suppression state, or both sides may decide to wait. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(shared_load16(q->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	old = q->signalled;
	q->signalled = now;
	q->signalled_valid = true;
	if (!valid)
		return true;
	/* virtio 1.x 2.7.10: interrupt if used_event lies in [old, now). */
	event = shared_load16(q->avail + 4 + 2 * (size_t)q->size);
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

/* Copy len bytes between buf and bufs[first..last) of the chain, from
 * byte offset off: into the chain if to_chain.  0 or -EFAULT if those
 * buffers are too short. */
static int chain_copy(const struct virtq_chain *c, unsigned first,
		      unsigned last, uint64_t off, uint8_t *buf, size_t len,
		      bool to_chain)
{
	for (unsigned i = first; i < last && len; i++) {
		const struct virtq_buf *b = &c->bufs[i];
		size_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = b->len - off;
		if (n > len)
			n = len;
		if (to_chain)
			memcpy(b->hva + off, buf, n);
		else
			memcpy(buf, b->hva + off, n);
		buf += n;
		len -= n;
		off = 0;
	}
	return len ? -EFAULT : 0;
}

int virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst,
		     size_t len)
{
	return chain_copy(c, 0, c->nreadable, off, dst, len, false);
}

void virtq_unpop(struct virtq *q, uint16_t n)
{
	q->last_avail = (uint16_t)(q->last_avail - n);
}

int virtq_chain_write(const struct virtq_chain *c, uint64_t off,
		      const void *src, size_t len)
{
	/* chain_copy only reads buf in this direction. */
	return chain_copy(c, c->nreadable, c->nbufs, off, (uint8_t *)src, len,
			  true);
}
