/* SPDX-License-Identifier: MIT */
/*
 * The snapshot state codec: a VM's state written field by field in
 * little endian into tagged sections, and read back as hostile input.
 *
 * State file layout (all integers little endian):
 *
 *   0   magic "HUTCHSNP"
 *   8   u16 major version (a reader refuses any other major)
 *   10  u16 minor version (additions a reader of the same major may skip)
 *   12  u32 flags (0)
 *   16  sections, each: u32 tag, u32 instance, u64 payload length, payload
 *   end u32 crc32 (zlib) of every byte before it
 *
 * Writers build the whole file in memory (states are small; guest RAM is
 * in its own file) and latch allocation failure; readers get a section's
 * payload as a bounded reader whose every get checks the bytes left and
 * latches "bad" instead of reading past them, so a lying length can make
 * a reader fail, never overrun.
 */
#ifndef HUTCH_SNAP_H
#define HUTCH_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC	 "HUTCHSNP"
#define SNAP_MAJOR	 1
#define SNAP_MINOR	 0
#define SNAP_HEADER_LEN	 16
#define SNAP_SECTION_HDR 16
/* No state file is this big; a bigger one is refused before reading. */
#define SNAP_MAX_FILE_LEN (64u << 20)

/* Four-character section tags, e.g. SNAP_TAG('V','M',' ',' '). */
#define SNAP_TAG(a, b, c, d)                                                   \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 |            \
	 (uint32_t)(d) << 24)

struct snap_writer {
	uint8_t *p;
	size_t len, cap;
	size_t section; /* offset of the open section's header, or 0 */
	bool oom;	/* an allocation failed: the whole write fails */
};

/* Start a file (writes the header). */
void snap_writer_init(struct snap_writer *w);
void snap_writer_free(struct snap_writer *w);
void snap_section_begin(struct snap_writer *w, uint32_t tag, uint32_t instance);
void snap_section_end(struct snap_writer *w);
void snap_put_u8(struct snap_writer *w, uint8_t v);
void snap_put_u16(struct snap_writer *w, uint16_t v);
void snap_put_u32(struct snap_writer *w, uint32_t v);
void snap_put_u64(struct snap_writer *w, uint64_t v);
void snap_put_bytes(struct snap_writer *w, const void *p, size_t n);
/* A length-prefixed string (u32 length, bytes). */
void snap_put_str(struct snap_writer *w, const char *s);
/* Close the file (appends the CRC).  0, or -ENOMEM if anything failed. */
int snap_writer_finish(struct snap_writer *w);

struct snap_reader {
	const uint8_t *p;
	size_t len, off;
	bool bad; /* a get wanted more than was left */
};

/*
 * Check a whole state file: size, magic, major version, CRC.  On success
 * *body reads the sections.  0, or -EINVAL with a one-line reason in
 * *why.
 */
int snap_file_open(const uint8_t *p, size_t len, struct snap_reader *body,
		   uint16_t *minor, const char **why);
/*
 * The next section of body: 1 with its tag, instance and a reader over
 * just its payload; 0 at the end; -EINVAL if a header or length lies.
 */
int snap_next_section(struct snap_reader *body, uint32_t *tag,
		      uint32_t *instance, struct snap_reader *sec);

uint8_t snap_get_u8(struct snap_reader *r);
uint16_t snap_get_u16(struct snap_reader *r);
uint32_t snap_get_u32(struct snap_reader *r);
uint64_t snap_get_u64(struct snap_reader *r);
/* n bytes into dst (zeros and "bad" if fewer are left). */
void snap_get_bytes(struct snap_reader *r, void *dst, size_t n);
/* A string written by snap_put_str into dst (NUL-terminated, at most
 * len - 1 bytes: a longer one, or one holding a NUL, makes r bad). */
void snap_get_str(struct snap_reader *r, char *dst, size_t len);
/* The section was read whole and nothing went wrong: 0, else -EINVAL. */
int snap_reader_done(const struct snap_reader *r);

#endif
