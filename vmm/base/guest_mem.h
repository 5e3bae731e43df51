/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM: one host mapping split into a few guest-physical regions
 * (x86 leaves a hole below 4 GiB for MMIO).  Every access by the VMM goes
 * through gpa_ptr() or the copy helpers, which check that the whole range
 * lies inside one region without overflow.  A guest address is never
 * trusted.
 */
#ifndef HUTCH_GUEST_MEM_H
#define HUTCH_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 4

struct guest_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	uint8_t *host;	 /* start of the host mapping */
	size_t host_len; /* its length: the sum of region sizes */
	unsigned nr_regions;
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
	int owns_mapping; /* munmap on destroy */
};

/*
 * Map anonymous memory for the given regions (gpa, size pairs; hva is
 * filled in).  The mapping is 2 MiB aligned and advised for huge pages so
 * the guest takes few nested page faults.
 */
int guest_mem_create(struct guest_mem *m, const struct guest_region *regions,
		     unsigned nr_regions) __attribute__((warn_unused_result));

/* Use caller-provided host memory (unit tests, fuzzers). */
int guest_mem_init_from(struct guest_mem *m, void *host,
			const struct guest_region *regions, unsigned nr_regions)
    __attribute__((warn_unused_result));

/*
 * Back the whole guest RAM of m (from guest_mem_create) with a file,
 * MAP_PRIVATE from offset (page aligned): a snapshot's memory, read in
 * only where the guest touches it.  The caller checked the file's size.
 * 0 or negative errno.
 */
int guest_mem_map_file(struct guest_mem *m, int fd, uint64_t offset)
    __attribute__((warn_unused_result));

void guest_mem_destroy(struct guest_mem *m);

/* Host pointer for [gpa, gpa+len) or NULL if not wholly inside one region. */
void *gpa_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* 0 or -EFAULT. */
int guest_write(const struct guest_mem *m, uint64_t gpa, const void *src,
		size_t len) __attribute__((warn_unused_result));
int guest_read(const struct guest_mem *m, uint64_t gpa, void *dst, size_t len)
    __attribute__((warn_unused_result));

/* Read len bytes of fd, from its start, into [gpa, gpa+len) (the
 * initrd).  0, -EFAULT for a range not wholly inside one region, -EIO
 * for a file shorter than len, or the read's negative errno. */
int guest_read_fd(const struct guest_mem *m, uint64_t gpa, int fd, uint64_t len)
    __attribute__((warn_unused_result));

/* Highest guest-physical address + 1 of any region. */
uint64_t guest_mem_end(const struct guest_mem *m);

#endif
