// SPDX-License-Identifier: MIT
#include "vmm/base/snap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "vmm/base/le.h"

/* ---- writing ---- */

static uint8_t *grow(struct snap_writer *w, size_t n)
{
	uint8_t *p;

	if (w->oom)
		return NULL;
	if (n > SNAP_MAX_FILE_LEN || w->len + n > SNAP_MAX_FILE_LEN) {
		w->oom = true;
		return NULL;
	}
	if (w->len + n > w->cap) {
		size_t cap = (w->cap ? w->cap * 2 : 4096) + n;

		p = realloc(w->p, cap);
		if (!p) {
			w->oom = true;
			return NULL;
		}
		w->p = p;
		w->cap = cap;
	}
	p = w->p + w->len;
	w->len += n;
	return p;
}

void snap_put_u8(struct snap_writer *w, uint8_t v)
{
	uint8_t *p = grow(w, 1);

	if (p)
		*p = v;
}

void snap_put_u16(struct snap_writer *w, uint16_t v)
{
	uint8_t *p = grow(w, 2);

	if (p)
		put_le16(p, v);
}

void snap_put_u32(struct snap_writer *w, uint32_t v)
{
	uint8_t *p = grow(w, 4);

	if (p)
		put_le32(p, v);
}

void snap_put_u64(struct snap_writer *w, uint64_t v)
{
	uint8_t *p = grow(w, 8);

	if (p)
		put_le64(p, v);
}

void snap_put_bytes(struct snap_writer *w, const void *src, size_t n)
{
	uint8_t *p;

	if (!n)
		return;
	p = grow(w, n);
	if (p)
		memcpy(p, src, n);
}

void snap_put_str(struct snap_writer *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	snap_put_u32(w, (uint32_t)n);
	snap_put_bytes(w, s, n);
}

void snap_writer_init(struct snap_writer *w)
{
	*w = (struct snap_writer){0};
	snap_put_bytes(w, SNAP_MAGIC, 8);
	snap_put_u16(w, SNAP_MAJOR);
	snap_put_u16(w, SNAP_MINOR);
	snap_put_u32(w, 0);
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->p);
	*w = (struct snap_writer){0};
}

void snap_section_begin(struct snap_writer *w, uint32_t tag, uint32_t instance)
{
	if (w->section)
		snap_section_end(w); /* a forgotten end: close it */
	w->section = w->len;
	snap_put_u32(w, tag);
	snap_put_u32(w, instance);
	snap_put_u64(w, 0); /* the length, once known */
}

void snap_section_end(struct snap_writer *w)
{
	if (!w->section)
		return;
	if (!w->oom)
		put_le64(w->p + w->section + 8,
			 w->len - w->section - SNAP_SECTION_HDR);
	w->section = 0;
}

int snap_writer_finish(struct snap_writer *w)
{
	snap_section_end(w);
	if (!w->oom)
		snap_put_u32(w, (uint32_t)crc32(0, w->p, (uInt)w->len));
	return w->oom ? -ENOMEM : 0;
}

/* ---- reading ---- */

static const uint8_t *take(struct snap_reader *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t snap_get_u8(struct snap_reader *r)
{
	const uint8_t *p = take(r, 1);

	return p ? *p : 0;
}

uint16_t snap_get_u16(struct snap_reader *r)
{
	const uint8_t *p = take(r, 2);

	return p ? get_le16(p) : 0;
}

uint32_t snap_get_u32(struct snap_reader *r)
{
	const uint8_t *p = take(r, 4);

	return p ? get_le32(p) : 0;
}

uint64_t snap_get_u64(struct snap_reader *r)
{
	const uint8_t *p = take(r, 8);

	return p ? get_le64(p) : 0;
}

void snap_get_bytes(struct snap_reader *r, void *dst, size_t n)
{
	const uint8_t *p = take(r, n);

	if (p)
		memcpy(dst, p, n);
	else if (n)
		memset(dst, 0, n);
}

void snap_get_str(struct snap_reader *r, char *dst, size_t len)
{
	uint32_t n = snap_get_u32(r);
	const uint8_t *p;

	dst[0] = 0;
	if (r->bad || n >= len) {
		r->bad = true;
		return;
	}
	p = take(r, n);
	if (!p || memchr(p, 0, n)) {
		r->bad = true;
		return;
	}
	memcpy(dst, p, n);
	dst[n] = 0;
}

int snap_reader_done(const struct snap_reader *r)
{
	return r->bad || r->off != r->len ? -EINVAL : 0;
}

int snap_file_open(const uint8_t *p, size_t len, struct snap_reader *body,
		   uint16_t *minor, const char **why)
{
	*why = "too short to be a hutch snapshot";
	if (len < SNAP_HEADER_LEN + 4)
		return -EINVAL;
	*why = "not a hutch snapshot (bad magic)";
	if (memcmp(p, SNAP_MAGIC, 8))
		return -EINVAL;
	*why = "made by an incompatible hutch (major version differs)";
	if (get_le16(p + 8) != SNAP_MAJOR)
		return -EINVAL;
	*why = "too big to be a hutch snapshot";
	if (len > SNAP_MAX_FILE_LEN)
		return -EINVAL;
	*why = "corrupt (checksum)";
	if (get_le32(p + len - 4) != (uint32_t)crc32(0, p, (uInt)(len - 4)))
		return -EINVAL;
	*why = "unknown flags";
	if (get_le32(p + 12) != 0)
		return -EINVAL;
	*minor = get_le16(p + 10);
	*body = (struct snap_reader){.p = p + SNAP_HEADER_LEN,
				     .len = len - SNAP_HEADER_LEN - 4};
	*why = NULL;
	return 0;
}

int snap_next_section(struct snap_reader *body, uint32_t *tag,
		      uint32_t *instance, struct snap_reader *sec)
{
	uint64_t n;

	if (body->off == body->len)
		return 0;
	*tag = snap_get_u32(body);
	*instance = snap_get_u32(body);
	n = snap_get_u64(body);
	if (body->bad || n > body->len - body->off) {
		body->bad = true;
		return -EINVAL;
	}
	*sec = (struct snap_reader){.p = body->p + body->off, .len = (size_t)n};
	body->off += (size_t)n;
	return 1;
}
