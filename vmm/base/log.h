/* SPDX-License-Identifier: MIT */
/*
 * Logging: every message goes to stderr prefixed with "hutch: ".
 * log_err/log_warn append strerror(-err) for a negative errno; the *x
 * variants do not.  Errors are reported once, where the context is known.
 */
#ifndef HUTCH_LOG_H
#define HUTCH_LOG_H

#include <stdbool.h>

#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))

/* At most this many bytes of messages per process; then one line saying
 * the rest is suppressed. */
#define LOG_MAX_BYTES (1u << 20)

void log_set_verbose(bool verbose);
bool log_verbose(void);

/* "hutch: <msg>: <strerror(-err)>" */
void log_err(int err, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* "hutch: <msg>" */
void log_errx(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* "hutch: warning: <msg>" */
void log_warnx(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Only with --verbose. */
void log_debug(const char *fmt, ...) PRINTF_LIKE(1, 2);

#endif
