// SPDX-License-Identifier: MIT
/* Token buckets (token_bucket.h).  The owner serialises calls. */
#include "vmm/base/token_bucket.h"

#include <errno.h>
#include <stdlib.h>

#include "vmm/base/log.h"

#define NS 1000000000ull

void tb_set(struct token_bucket *b, uint64_t rate, uint64_t burst,
	    uint64_t now_ns)
{
	b->rate = rate;
	b->burst = burst ? burst : rate;
	if (b->burst > INT64_MAX / 2)
		b->burst = INT64_MAX / 2;
	b->tokens = (int64_t)b->burst;
	b->last_ns = now_ns;
}

/* Add what the time since last_ns earned, keeping the fraction of a
 * token not yet earned (last_ns moves only by whole tokens' time). */
static void refill(struct token_bucket *b, uint64_t now_ns)
{
	unsigned __int128 earned;

	if (now_ns <= b->last_ns)
		return;
	earned = (unsigned __int128)(now_ns - b->last_ns) * b->rate / NS;
	if (b->tokens + (__int128)earned >= (__int128)b->burst) {
		b->tokens = (int64_t)b->burst;
		b->last_ns = now_ns;
		return;
	}
	b->tokens += (int64_t)earned;
	b->last_ns += (uint64_t)(earned * NS / b->rate);
}

uint64_t tb_wait(struct token_bucket *b, uint64_t n, uint64_t now_ns)
{
	uint64_t need;
	unsigned __int128 ns;

	if (!b->rate)
		return 0;
	refill(b, now_ns);
	/* Larger than the bucket: it goes when the bucket is full. */
	if (n > b->burst)
		n = b->burst;
	if (b->tokens >= (int64_t)n)
		return 0;
	need = (uint64_t)((int64_t)n - b->tokens);
	ns = ((unsigned __int128)need * NS + b->rate - 1) / b->rate;
	ns -= now_ns - b->last_ns < ns ? now_ns - b->last_ns : 0;
	return ns ? (uint64_t)ns : 1;
}

void tb_take(struct token_bucket *b, uint64_t n)
{
	if (b->rate)
		b->tokens -= (int64_t)n;
}

int tb_parse_value(const char *key, const char *value, uint64_t *out)
{
	unsigned long long v = 0;
	char *end = NULL;

	errno = 0;
	if (value && *value >= '0' && *value <= '9')
		v = strtoull(value, &end, 10);
	if (!end || *end || errno || v > (1ull << 50)) {
		log_errx("%s=: expected a number (0: no limit)", key);
		return -EINVAL;
	}
	*out = v;
	return 0;
}
