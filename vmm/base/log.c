// SPDX-License-Identifier: MIT
#include "vmm/base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Process-wide: set once from the command line before any thread starts. */
static bool verbose;
/* Process-wide: bytes of messages written so far.  Past LOG_MAX_BYTES
 * nothing more is written, so a guest that finds a way to make hutch talk
 * cannot fill the disk or the RAM-backed vmm.log behind it. */
static atomic_size_t logged;

void log_set_verbose(bool v)
{
	verbose = v;
}

bool log_verbose(void)
{
	return verbose;
}

static void vlog(const char *prefix, int err, const char *fmt, va_list ap)
{
	char msg[512], line[1024];
	size_t before;
	int n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (err)
		n = snprintf(line, sizeof(line), "hutch: %s%s: %s\n", prefix,
			     msg, strerror(-err));
	else
		n = snprintf(line, sizeof(line), "hutch: %s%s\n", prefix, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	before = atomic_fetch_add(&logged, (size_t)n);
	if (before >= LOG_MAX_BYTES)
		return;
	if (before + (size_t)n > LOG_MAX_BYTES) {
		fputs("hutch: further messages suppressed (log limit "
		      "reached)\n",
		      stderr);
		return;
	}
	fputs(line, stderr);
}

void log_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("", err, fmt, ap);
	va_end(ap);
}

void log_errx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("", 0, fmt, ap);
	va_end(ap);
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("warning: ", 0, fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	vlog("", 0, fmt, ap);
	va_end(ap);
}
