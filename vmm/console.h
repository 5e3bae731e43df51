/* SPDX-License-Identifier: MIT */
/* The host end of the guest console: stdout or a file, and stdin. */
#ifndef HUTCH_CONSOLE_H
#define HUTCH_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A console written to a regular file starts again from empty (with a
 * line saying so) when it would grow past this: the guest decides how much
 * it prints, the host's disk must not. */
#define CONSOLE_FILE_LIMIT (64ull << 20)

struct console {
	int fd;
	bool capped;	  /* a regular file: written is bounded by limit */
	uint64_t written; /* bytes in the file */
	uint64_t limit;
	uint64_t restarts; /* times the file was emptied at the limit */
};

/*
 * path NULL: stdout.  Otherwise the file is created mode 0600 (a symbolic
 * link is refused) and emptied if it is a regular file.  0 or negative
 * errno, reported.
 */
int console_open(struct console *c, const char *path, uint64_t limit);
void console_close(struct console *c);

/* serial_sink callback; opaque points at the struct console. */
void console_write(void *opaque, const uint8_t *buf, size_t len);

/* Put a terminal stdin into raw mode so keys reach the guest; restored by
 * console_restore_tty() (also registered with atexit). */
void console_raw_stdin(void);
void console_restore_tty(void);

#endif
