/* SPDX-License-Identifier: MIT */
/* The monotonic clock in nanoseconds (timeouts, rate limits, pin TTLs). */
#ifndef HUTCH_MONO_TIME_H
#define HUTCH_MONO_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
