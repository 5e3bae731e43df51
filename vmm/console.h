/* SPDX-License-Identifier: MIT */
/* The host end of the guest console: stdout or a file, and stdin. */
#ifndef HUTCH_CONSOLE_H
#define HUTCH_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

/* path NULL: stdout.  Otherwise create/truncate the file. */
int console_open(const char *path, int *fd);

/* serial_sink callback; opaque points at the fd. */
void console_write(void *opaque, const uint8_t *buf, size_t len);

/* Put a terminal stdin into raw mode so keys reach the guest; restored by
 * console_restore_tty() (also registered with atexit). */
void console_raw_stdin(void);
void console_restore_tty(void);

#endif
