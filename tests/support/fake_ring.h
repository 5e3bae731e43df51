/* SPDX-License-Identifier: MIT */
/*
 * Fake guest memory and a fake driver side of a split virtqueue, for unit
 * tests and the libFuzzer target (STYLE.md pattern 15).
 *
 * The RAM is host memory handed to guest_mem_init_from(); the helpers lay
 * out the descriptor table, avail ring and used ring at fixed guest
 * addresses and play the driver: write descriptors, publish heads, read
 * the used ring.  Nothing here uses Criterion: a helper that is asked for
 * guest memory outside the fake RAM aborts, since that is a bug in the
 * test, not in the code under test.
 */
#ifndef HUTCH_TEST_FAKE_RING_H
#define HUTCH_TEST_FAKE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "devices/virtio/virtq.h"
#include "vmm/base/guest_mem.h"

/*
 * Put once in a test file: in the sanitizer build, an UndefinedBehavior-
 * Sanitizer finding then ends the test as a crash instead of a line in
 * the log (the UBSan runtime looks this hook up; other builds ignore it).
 */
#define FAKE_UBSAN_FATAL()                                                     \
	const char *__ubsan_default_options(void);                             \
	const char *__ubsan_default_options(void)                              \
	{                                                                      \
		return "halt_on_error=1:print_stacktrace=1";                   \
	}

/* Default layout in fake RAM (1 MiB at guest address 0). */
#define FAKE_RAM_SIZE  (1u << 20)
#define FAKE_DESC_GPA  0x1000u	/* up to 256 descriptors: 4 KiB */
#define FAKE_AVAIL_GPA 0x3000u	/* up to 6 + 2 * 256 bytes */
#define FAKE_USED_GPA  0x4000u	/* up to 6 + 8 * 256 bytes */
#define FAKE_DATA_GPA  0x10000u /* free for buffers and indirect tables */

struct fake_mem {
	uint8_t *host;
	size_t len;
	bool mapped; /* mmap'd (large, sparse) rather than calloc'd */
	struct guest_mem mem;
};

/* One region of FAKE_RAM_SIZE bytes at guest address 0, zeroed, page
 * aligned. */
void fake_mem_init(struct fake_mem *m);

/* Regions of any size (sorted, disjoint), backed by one zeroed host
 * buffer; sizes above 64 MiB are mapped lazily (MAP_NORESERVE). */
void fake_mem_init_regions(struct fake_mem *m,
			   const struct guest_region *regions, unsigned n);

void fake_mem_fini(struct fake_mem *m);

/* Host pointer for [gpa, gpa + len); aborts if not inside the fake RAM. */
void *fake_ptr(const struct fake_mem *m, uint64_t gpa, uint64_t len);

/* Copy bytes in or out of fake RAM (aborting if outside). */
void fake_write(const struct fake_mem *m, uint64_t gpa, const void *src,
		size_t len);
void fake_read(const struct fake_mem *m, uint64_t gpa, void *dst, size_t len);

/* The driver's view of one queue. */
struct fake_ring {
	struct fake_mem *m;
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t avail_idx; /* the next avail->idx the driver publishes */
};

/* A ring of the given size at the default addresses. */
void fake_ring_init(struct fake_ring *r, struct fake_mem *m, uint16_t size);

/* A ring at chosen addresses (several queues in one fake RAM). */
void fake_ring_init_at(struct fake_ring *r, struct fake_mem *m, uint16_t size,
		       uint64_t desc_gpa, uint64_t avail_gpa,
		       uint64_t used_gpa);

/* Copy size and ring addresses into q, as a transport would. */
void fake_ring_configure(const struct fake_ring *r, struct virtq *q);

/* Configure q and virtq_start() it; returns virtq_start's result. */
int fake_ring_start(const struct fake_ring *r, struct virtq *q);

/* Write descriptor i of the ring's table. */
void fake_desc(const struct fake_ring *r, uint16_t i, uint64_t addr,
	       uint32_t len, uint16_t flags, uint16_t next);

/* Write entry i of a descriptor table at table_gpa (indirect tables). */
void fake_desc_at(const struct fake_mem *m, uint64_t table_gpa, uint16_t i,
		  uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);

/* Put head into the next avail slot and publish it (avail->idx + 1). */
void fake_publish(struct fake_ring *r, uint16_t head);

/* Write avail->idx directly (a driver lying about it); also becomes the
 * index fake_publish continues from. */
void fake_set_avail_idx(struct fake_ring *r, uint16_t idx);

void fake_set_avail_flags(const struct fake_ring *r, uint16_t flags);
void fake_set_used_event(const struct fake_ring *r, uint16_t event);

/* What the device wrote. */
uint16_t fake_avail_event(const struct fake_ring *r);
uint16_t fake_used_idx(const struct fake_ring *r);
uint16_t fake_used_flags(const struct fake_ring *r);
/* Used ring entry for the used index idx (taken modulo the size). */
void fake_used_elem(const struct fake_ring *r, uint16_t idx, uint32_t *id,
		    uint32_t *len);

/*
 * A driver on another vCPU that keeps a ring full: it moves avail->idx to
 * the device's last_avail + size again and again (every avail slot holds
 * whatever head the test put there), for at most 3 s or until stop.  Run
 * it with pthread_create(..., ring_keep_full, &filler).
 */
struct ring_filler {
	struct fake_ring *ring;
	const struct virtq *q; /* the device's view, for last_avail */
	atomic_bool stop;
	atomic_ullong published; /* avail entries published so far */
};
void *ring_keep_full(void *filler);

#endif
