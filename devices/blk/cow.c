// SPDX-License-Identifier: MIT
#include "devices/blk/cow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "vmm/base/le.h"

#define SAMPLE_SIZE  4096u
#define SAMPLES	     64u
#define DATA_ALIGN   (1ull << 20)
#define PATH_OFFSET  128u
#define PATH_MAX_LEN 1024u
#define CRC_OFFSET   (COW_HEADER_SIZE - 4)

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* file shorter than it should be */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int cow_fingerprint(int fd, uint64_t size, uint32_t *out)
{
	uint8_t buf[SAMPLE_SIZE];
	uLong crc = crc32(0, Z_NULL, 0);

	for (unsigned i = 0; i <= SAMPLES; i++) {
		uint64_t off = ((size / SAMPLES) * i) & ~(SAMPLE_SIZE - 1ull);
		size_t n;
		int ret;

		if (i == SAMPLES) /* the very end, aligned or not */
			off = size > SAMPLE_SIZE ? size - SAMPLE_SIZE : 0;
		n = size - off < SAMPLE_SIZE ? (size_t)(size - off)
					     : SAMPLE_SIZE;
		ret = pread_full(fd, buf, n, off);
		if (ret)
			return ret;
		crc = crc32(crc, buf, (uInt)n);
	}
	*out = (uint32_t)crc;
	return 0;
}

static uint64_t clusters_of(uint64_t size, uint32_t cluster)
{
	return (size + cluster - 1) / cluster;
}

static int format(struct cow *c, int base_fd, uint64_t base_size,
		  const char *base_path)
{
	uint8_t h[COW_HEADER_SIZE] = {0};
	size_t plen = base_path ? strlen(base_path) : 0;
	uint32_t fp;
	int ret;

	ret = cow_fingerprint(base_fd, base_size, &fp);
	if (ret)
		return ret;
	if (plen > PATH_MAX_LEN)
		plen = 0; /* informational only */
	memcpy(h, COW_MAGIC, 8);
	put_le32(h + 8, COW_VERSION);
	put_le32(h + 12, COW_HEADER_SIZE);
	put_le32(h + 16, c->cluster_size);
	put_le64(h + 24, c->disk_size);
	put_le64(h + 32, c->bitmap_offset);
	put_le64(h + 40, c->bitmap_len);
	put_le64(h + 48, c->data_offset);
	put_le64(h + 56, base_size);
	put_le32(h + 64, fp);
	put_le16(h + 68, (uint16_t)plen);
	if (plen)
		memcpy(h + PATH_OFFSET, base_path, plen);
	put_le32(h + CRC_OFFSET, (uint32_t)crc32(0, h, CRC_OFFSET));
	/* Size first (the bitmap and data read as zeros), header last. */
	if (ftruncate(c->overlay_fd, (off_t)(c->data_offset + c->disk_size)))
		return -errno;
	return pwrite_full(c->overlay_fd, h, sizeof(h), 0);
}

static int check_header(struct cow *c, int base_fd, uint64_t base_size,
			uint64_t file_size, const char **why)
{
	uint8_t h[COW_HEADER_SIZE];
	uint32_t fp;
	int ret;

	*why = "not a hutch overlay (bad magic)";
	if (file_size < COW_HEADER_SIZE)
		return -EINVAL;
	ret = pread_full(c->overlay_fd, h, sizeof(h), 0);
	if (ret) {
		*why = "cannot read the overlay header";
		return ret;
	}
	if (memcmp(h, COW_MAGIC, 8))
		return -EINVAL;
	*why = "unsupported overlay version";
	if (get_le32(h + 8) != COW_VERSION)
		return -EINVAL;
	*why = "overlay header is corrupt (checksum)";
	if (get_le32(h + CRC_OFFSET) != (uint32_t)crc32(0, h, CRC_OFFSET))
		return -EINVAL;
	*why = "overlay header is corrupt (layout)";
	if (get_le32(h + 12) != COW_HEADER_SIZE ||
	    get_le32(h + 16) != c->cluster_size ||
	    get_le64(h + 32) != c->bitmap_offset ||
	    get_le64(h + 40) !=
		(clusters_of(get_le64(h + 24), c->cluster_size) + 7) / 8 ||
	    get_le64(h + 48) % DATA_ALIGN ||
	    get_le64(h + 48) < c->bitmap_offset + get_le64(h + 40))
		return -EINVAL;
	*why = "the base image changed size since the overlay was made";
	if (get_le64(h + 56) != base_size || get_le64(h + 24) != base_size)
		return -ESTALE;
	ret = cow_fingerprint(base_fd, base_size, &fp);
	if (ret) {
		*why = "cannot read the base image";
		return ret;
	}
	*why = "the base image changed since the overlay was made "
	       "(fingerprint differs)";
	if (get_le32(h + 64) != fp)
		return -ESTALE;
	c->data_offset = get_le64(h + 48);
	*why = "overlay file is truncated";
	if (file_size < c->data_offset)
		return -EINVAL;
	*why = NULL;
	return 0;
}

int cow_open(struct cow *c, int overlay_fd, int base_fd, uint64_t base_size,
	     const char *base_path, const char **why)
{
	struct stat st;
	int ret;

	memset(c, 0, sizeof(*c));
	c->overlay_fd = overlay_fd;
	c->disk_size = base_size;
	c->cluster_size = COW_CLUSTER_SIZE;
	c->bitmap_offset = COW_HEADER_SIZE;
	c->bitmap_len = (clusters_of(base_size, c->cluster_size) + 7) / 8;
	c->data_offset = (c->bitmap_offset + c->bitmap_len + DATA_ALIGN - 1) &
			 ~(DATA_ALIGN - 1);
	*why = NULL;
	if (fstat(overlay_fd, &st) < 0) {
		*why = "cannot stat the overlay";
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "overlay is not a regular file";
		return -EINVAL;
	}
	if (st.st_size == 0) {
		ret = format(c, base_fd, base_size, base_path);
		if (ret) {
			*why = "cannot create the overlay";
			return ret;
		}
	} else {
		ret = check_header(c, base_fd, base_size, (uint64_t)st.st_size,
				   why);
		if (ret)
			return ret;
		/* A copied overlay may have lost its sparse tail. */
		if ((uint64_t)st.st_size < c->data_offset + c->disk_size &&
		    ftruncate(overlay_fd,
			      (off_t)(c->data_offset + c->disk_size))) {
			*why = "cannot extend the overlay";
			return -errno;
		}
	}
	c->bitmap = calloc(1, c->bitmap_len ? c->bitmap_len : 1);
	if (!c->bitmap) {
		*why = "out of memory for the overlay bitmap";
		return -ENOMEM;
	}
	ret =
	    pread_full(overlay_fd, c->bitmap, c->bitmap_len, c->bitmap_offset);
	if (ret) {
		*why = "cannot read the overlay bitmap";
		free(c->bitmap);
		c->bitmap = NULL;
		return ret;
	}
	return 0;
}

void cow_close(struct cow *c)
{
	free(c->bitmap);
	c->bitmap = NULL;
	free(c->pending);
	c->pending = NULL;
	c->npending = c->pending_cap = 0;
}

bool cow_present(const struct cow *c, uint64_t cluster)
{
	return c->bitmap[cluster / 8] & (1u << (cluster % 8));
}

int cow_mark(struct cow *c, uint64_t first, uint64_t n)
{
	uint64_t lo = UINT64_MAX, hi = 0;

	for (uint64_t i = first; i < first + n; i++) {
		if (cow_present(c, i))
			continue;
		c->bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
		if (i / 8 < lo)
			lo = i / 8;
		hi = i / 8 + 1;
	}
	if (lo == UINT64_MAX)
		return 0;
	return pwrite_full(c->overlay_fd, c->bitmap + lo, hi - lo,
			   c->bitmap_offset + lo);
}

int cow_map_read(const struct cow *c, uint64_t off, uint64_t len,
		 struct cow_extent *out, unsigned max)
{
	const uint64_t cs = c->cluster_size;
	unsigned n = 0;

	while (len) {
		bool ov = cow_present(c, off / cs);
		uint64_t end = (off / cs + 1) * cs;

		/* Extend the run over following clusters in the same file;
		 * neighbouring extents therefore alternate. */
		while (end < off + len && cow_present(c, end / cs) == ov)
			end += cs;
		if (end > off + len)
			end = off + len;
		if (n == max)
			break;
		out[n++] = (struct cow_extent){
		    .in_overlay = ov,
		    .file_offset = ov ? cow_data_pos(c, off) : off,
		    .len = end - off};
		len -= end - off;
		off = end;
	}
	return (int)n;
}

static int copy_up(struct cow *c, int base_fd, uint64_t cluster)
{
	uint64_t start = cluster * c->cluster_size;
	size_t n = c->cluster_size;
	uint8_t *buf;
	int ret;

	if (cow_present(c, cluster))
		return 0;
	if (start + n > c->disk_size)
		n = (size_t)(c->disk_size - start);
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	ret = pread_full(base_fd, buf, n, start);
	if (!ret)
		ret =
		    pwrite_full(c->overlay_fd, buf, n, cow_data_pos(c, start));
	free(buf);
	return ret;
}

/* Does the write [off, off + len) cover all of the cluster? */
static bool covers(const struct cow *c, uint64_t cluster, uint64_t off,
		   uint64_t len)
{
	uint64_t start = cluster * c->cluster_size;
	uint64_t end = start + c->cluster_size;

	if (end > c->disk_size)
		end = c->disk_size;
	return off <= start && off + len >= end;
}

/* The clusters a write of [off, off + len) (len > 0) touches,
 * [*first, *last], and the fully covered ones, [*full, *full_end). */
static void write_span(const struct cow *c, uint64_t off, uint64_t len,
		       uint64_t *first, uint64_t *last, uint64_t *full,
		       uint64_t *full_end)
{
	*first = off / c->cluster_size;
	*last = (off + len - 1) / c->cluster_size;
	*full = covers(c, *first, off, len) ? *first : *first + 1;
	*full_end = covers(c, *last, off, len) ? *last + 1 : *last;
	if (*full_end < *full) /* one partly covered cluster */
		*full_end = *full;
}

static bool is_pending(const struct cow *c, uint64_t cluster)
{
	for (unsigned i = 0; i < c->npending; i++)
		if (cluster >= c->pending[i].first &&
		    cluster < c->pending[i].end)
			return true;
	return false;
}

int cow_write_begin(struct cow *c, int base_fd, uint64_t off, uint64_t len)
{
	uint64_t first, last, full, full_end, part[2];
	unsigned nparts = 0;
	int ret;

	if (len == 0)
		return 0;
	write_span(c, off, len, &first, &last, &full, &full_end);
	if (first < full)
		part[nparts++] = first;
	if (last >= full_end && last != first)
		part[nparts++] = last;
	for (unsigned i = 0; i < nparts; i++)
		if (!cow_present(c, part[i]) && is_pending(c, part[i]))
			return -EBUSY;
	if (full < full_end && c->npending == c->pending_cap) {
		unsigned cap = c->pending_cap ? 2 * c->pending_cap : 16;
		struct cow_pending *p =
		    realloc(c->pending, cap * sizeof(*c->pending));

		if (!p)
			return -ENOMEM;
		c->pending = p;
		c->pending_cap = cap;
	}
	for (unsigned i = 0; i < nparts; i++) {
		ret = copy_up(c, base_fd, part[i]);
		if (!ret)
			ret = cow_mark(c, part[i], 1);
		if (ret)
			return ret;
	}
	if (full < full_end)
		c->pending[c->npending++] =
		    (struct cow_pending){.first = full, .end = full_end};
	return 0;
}

int cow_write_end(struct cow *c, uint64_t off, uint64_t len, bool ok)
{
	uint64_t first, last, full, full_end;

	if (len == 0)
		return 0;
	write_span(c, off, len, &first, &last, &full, &full_end);
	if (full == full_end)
		return 0;
	for (unsigned i = 0; i < c->npending; i++) {
		if (c->pending[i].first == full &&
		    c->pending[i].end == full_end) {
			c->pending[i] = c->pending[--c->npending];
			break;
		}
	}
	return ok ? cow_mark(c, full, full_end - full) : 0;
}
