// SPDX-License-Identifier: MIT
#include "fake_ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "vmm/base/le.h"

#define LAZY_THRESHOLD (64ull << 20)

static void fail(const char *what, uint64_t gpa, uint64_t len)
{
	fprintf(stderr, "fake_ring: %s: [0x%llx, +0x%llx) not in fake RAM\n",
		what, (unsigned long long)gpa, (unsigned long long)len);
	abort();
}

void fake_mem_init_regions(struct fake_mem *m,
			   const struct guest_region *regions, unsigned n)
{
	size_t total = 0;

	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < n; i++)
		total += regions[i].size;
	if (total > LAZY_THRESHOLD) {
		void *p =
		    mmap(NULL, total, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED)
			fail("mmap", 0, total);
		m->host = p;
		m->mapped = true;
	} else {
		/* Page aligned, so buffers at aligned guest addresses are
		 * also aligned for O_DIRECT. */
		m->host = aligned_alloc(4096, (total + 4095) & ~(size_t)4095);
		if (!m->host)
			fail("alloc", 0, total);
		memset(m->host, 0, total);
	}
	m->len = total;
	if (guest_mem_init_from(&m->mem, m->host, regions, n))
		fail("bad region list", regions[0].gpa, total);
}

void fake_mem_init(struct fake_mem *m)
{
	struct guest_region r = {.gpa = 0, .size = FAKE_RAM_SIZE};

	fake_mem_init_regions(m, &r, 1);
}

void fake_mem_fini(struct fake_mem *m)
{
	if (m->mapped)
		munmap(m->host, m->len);
	else
		free(m->host);
	memset(m, 0, sizeof(*m));
}

void *fake_ptr(const struct fake_mem *m, uint64_t gpa, uint64_t len)
{
	void *p = gpa_ptr(&m->mem, gpa, len);

	if (!p)
		fail("fake_ptr", gpa, len);
	return p;
}

void fake_write(const struct fake_mem *m, uint64_t gpa, const void *src,
		size_t len)
{
	memcpy(fake_ptr(m, gpa, len), src, len);
}

void fake_read(const struct fake_mem *m, uint64_t gpa, void *dst, size_t len)
{
	memcpy(dst, fake_ptr(m, gpa, len), len);
}

void fake_ring_init_at(struct fake_ring *r, struct fake_mem *m, uint16_t size,
		       uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa)
{
	memset(r, 0, sizeof(*r));
	r->m = m;
	r->size = size;
	r->desc_gpa = desc_gpa;
	r->avail_gpa = avail_gpa;
	r->used_gpa = used_gpa;
	/* Known contents, so a test can tell what the device wrote. */
	memset(fake_ptr(m, desc_gpa, 16 * (uint64_t)size), 0,
	       16 * (size_t)size);
	memset(fake_ptr(m, avail_gpa, 6 + 2 * (uint64_t)size), 0,
	       6 + 2 * (size_t)size);
	memset(fake_ptr(m, used_gpa, 6 + 8 * (uint64_t)size), 0,
	       6 + 8 * (size_t)size);
}

void fake_ring_init(struct fake_ring *r, struct fake_mem *m, uint16_t size)
{
	fake_ring_init_at(r, m, size, FAKE_DESC_GPA, FAKE_AVAIL_GPA,
			  FAKE_USED_GPA);
}

void fake_ring_configure(const struct fake_ring *r, struct virtq *q)
{
	q->size = r->size;
	q->desc_gpa = r->desc_gpa;
	q->avail_gpa = r->avail_gpa;
	q->used_gpa = r->used_gpa;
}

int fake_ring_start(const struct fake_ring *r, struct virtq *q)
{
	fake_ring_configure(r, q);
	return virtq_start(q, &r->m->mem);
}

void fake_desc_at(const struct fake_mem *m, uint64_t table_gpa, uint16_t i,
		  uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = fake_ptr(m, table_gpa + 16 * (uint64_t)i, 16);

	put_le64(d, addr);
	put_le32(d + 8, len);
	put_le16(d + 12, flags);
	put_le16(d + 14, next);
}

void fake_desc(const struct fake_ring *r, uint16_t i, uint64_t addr,
	       uint32_t len, uint16_t flags, uint16_t next)
{
	if (i >= r->size)
		fail("descriptor index", i, 1);
	fake_desc_at(r->m, r->desc_gpa, i, addr, len, flags, next);
}

void fake_publish(struct fake_ring *r, uint16_t head)
{
	uint16_t slot = (uint16_t)(r->avail_idx % r->size);

	put_le16(fake_ptr(r->m, r->avail_gpa + 4 + 2 * (uint64_t)slot, 2),
		 head);
	r->avail_idx++;
	put_le16(fake_ptr(r->m, r->avail_gpa + 2, 2), r->avail_idx);
}

void fake_set_avail_idx(struct fake_ring *r, uint16_t idx)
{
	r->avail_idx = idx;
	put_le16(fake_ptr(r->m, r->avail_gpa + 2, 2), idx);
}

void fake_set_avail_flags(const struct fake_ring *r, uint16_t flags)
{
	put_le16(fake_ptr(r->m, r->avail_gpa, 2), flags);
}

void fake_set_used_event(const struct fake_ring *r, uint16_t event)
{
	put_le16(fake_ptr(r->m, r->avail_gpa + 4 + 2 * (uint64_t)r->size, 2),
		 event);
}

uint16_t fake_avail_event(const struct fake_ring *r)
{
	return get_le16(
	    fake_ptr(r->m, r->used_gpa + 4 + 8 * (uint64_t)r->size, 2));
}

uint16_t fake_used_idx(const struct fake_ring *r)
{
	return get_le16(fake_ptr(r->m, r->used_gpa + 2, 2));
}

uint16_t fake_used_flags(const struct fake_ring *r)
{
	return get_le16(fake_ptr(r->m, r->used_gpa, 2));
}

void fake_used_elem(const struct fake_ring *r, uint16_t idx, uint32_t *id,
		    uint32_t *len)
{
	const uint8_t *e =
	    fake_ptr(r->m, r->used_gpa + 4 + 8 * (uint64_t)(idx % r->size), 8);

	*id = get_le32(e);
	*len = get_le32(e + 4);
}

void *ring_keep_full(void *arg)
{
	struct ring_filler *f = arg;
	struct timespec t0, now;
	uint16_t last = f->ring->avail_idx;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!atomic_load(&f->stop)) {
		/* last_avail only grows, and the device cannot pass what we
		 * published, so avail->idx never falls behind it and never
		 * runs more than a ring's size ahead. */
		uint16_t la =
		    __atomic_load_n(&f->q->last_avail, __ATOMIC_ACQUIRE);
		uint16_t want = (uint16_t)(la + f->ring->size);

		if (want != last) {
			atomic_thread_fence(memory_order_seq_cst);
			fake_set_avail_idx(f->ring, want);
			atomic_fetch_add(&f->published,
					 (uint16_t)(want - last));
			last = want;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= 3)
			break; /* a device that never yields fails, not hangs */
	}
	return NULL;
}
