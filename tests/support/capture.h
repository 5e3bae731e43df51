/* SPDX-License-Identifier: MIT */
/* Capture what a unit under test writes to stderr (hutch's log). */
#ifndef HUTCH_TEST_CAPTURE_H
#define HUTCH_TEST_CAPTURE_H

#include <stddef.h>

/* Start sending stderr to a temporary file. */
void capture_stderr_begin(void);
/* Put stderr back; what was written (malloc'd, NUL-terminated). */
char *capture_stderr_end(void);
/* How many times needle occurs in s. */
unsigned count_occurrences(const char *s, const char *needle);

#endif
