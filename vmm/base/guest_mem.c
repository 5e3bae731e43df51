// SPDX-License-Identifier: MIT
#include "vmm/base/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_2M (2ull << 20)

static int check_regions(const struct guest_region *r, unsigned n)
{
	uint64_t end;

	if (n == 0 || n > GUEST_MEM_MAX_REGIONS)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		if (r[i].size == 0 ||
		    __builtin_add_overflow(r[i].gpa, r[i].size, &end))
			return -EINVAL;
		/* Regions are sorted and disjoint. */
		if (i > 0 && r[i].gpa < r[i - 1].gpa + r[i - 1].size)
			return -EINVAL;
	}
	return 0;
}

static void assign_hva(struct guest_mem *m, uint8_t *host,
		       const struct guest_region *regions, unsigned n)
{
	size_t off = 0;

	m->host = host;
	m->nr_regions = n;
	for (unsigned i = 0; i < n; i++) {
		m->regions[i] = regions[i];
		m->regions[i].hva = host + off;
		off += regions[i].size;
	}
	m->host_len = off;
}

int guest_mem_init_from(struct guest_mem *m, void *host,
			const struct guest_region *regions, unsigned nr_regions)
{
	int ret = check_regions(regions, nr_regions);

	if (ret)
		return ret;
	memset(m, 0, sizeof(*m));
	assign_hva(m, host, regions, nr_regions);
	return 0;
}

int guest_mem_create(struct guest_mem *m, const struct guest_region *regions,
		     unsigned nr_regions)
{
	size_t total = 0, reserve;
	uint8_t *area, *aligned;
	int ret;

	ret = check_regions(regions, nr_regions);
	if (ret)
		return ret;
	for (unsigned i = 0; i < nr_regions; i++)
		if (__builtin_add_overflow(total, regions[i].size, &total))
			return -EINVAL;
	if (__builtin_add_overflow(total, HUGE_2M, &reserve))
		return -ENOMEM;

	/*
	 * Reserve 2 MiB more than needed, then trim so the guest mapping
	 * starts on a 2 MiB boundary: only then can THP back guest pages with
	 * huge pages, which keeps nested page faults per boot in the hundreds.
	 */
	area = mmap(NULL, reserve, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (area == MAP_FAILED)
		return -errno;
	aligned = (uint8_t *)(((uintptr_t)area + HUGE_2M - 1) & ~(HUGE_2M - 1));
	if (aligned > area)
		munmap(area, (size_t)(aligned - area));
	if (aligned + total < area + reserve)
		munmap(aligned + total,
		       (size_t)(area + reserve - aligned - total));
	if (mmap(aligned, total, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
		 0) == MAP_FAILED) {
		ret = -errno;
		munmap(aligned, total);
		return ret;
	}
	madvise(aligned, total, MADV_HUGEPAGE);
	/* Guest RAM never belongs in a core dump of the VMM. */
	madvise(aligned, total, MADV_DONTDUMP);

	memset(m, 0, sizeof(*m));
	assign_hva(m, aligned, regions, nr_regions);
	m->owns_mapping = 1;
	return 0;
}

int guest_mem_map_file(struct guest_mem *m, int fd, uint64_t offset)
{
	void *p;

	if (!m->owns_mapping || !m->host)
		return -EINVAL;
	/* Over the reservation, so the 2 MiB alignment stays; private, so
	 * the guest's writes never reach the file and clones share the
	 * page cache for whatever they only read. */
	p = mmap(m->host, m->host_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, (off_t)offset);
	if (p == MAP_FAILED)
		return -errno;
	return 0;
}

void guest_mem_destroy(struct guest_mem *m)
{
	if (m->owns_mapping && m->host)
		munmap(m->host, m->host_len);
	memset(m, 0, sizeof(*m));
}

void *gpa_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct guest_region *r = &m->regions[i];
		uint64_t off, end;

		if (gpa < r->gpa)
			continue;
		off = gpa - r->gpa;
		if (off >= r->size)
			continue;
		if (__builtin_add_overflow(off, len, &end) || end > r->size)
			return NULL;
		return r->hva + off;
	}
	return NULL;
}

int guest_write(const struct guest_mem *m, uint64_t gpa, const void *src,
		size_t len)
{
	void *p = gpa_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

int guest_read(const struct guest_mem *m, uint64_t gpa, void *dst, size_t len)
{
	const void *p = gpa_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

uint64_t guest_mem_end(const struct guest_mem *m)
{
	const struct guest_region *last;

	if (!m->nr_regions)
		return 0;
	last = &m->regions[m->nr_regions - 1];
	return last->gpa + last->size;
}

int guest_read_fd(const struct guest_mem *m, uint64_t gpa, int fd, uint64_t len)
{
	uint8_t *dst = gpa_ptr(m, gpa, len);

	if (!dst)
		return -EFAULT;
	for (uint64_t done = 0; done < len;) {
		ssize_t n = pread(fd, dst + done, len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (uint64_t)n;
	}
	return 0;
}
