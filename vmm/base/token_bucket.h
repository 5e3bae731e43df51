/* SPDX-License-Identifier: MIT */
/*
 * A token bucket: rate tokens a second, at most burst saved up.  Guest-
 * facing rate limits (virtio-blk's bytes and requests per second) are
 * two of them.  A request larger than the bucket may go once the bucket
 * is full and leaves it in debt, so nothing is refused for its size.
 * No locking: the owner serialises (a device's lock).
 */
#ifndef HUTCH_TOKEN_BUCKET_H
#define HUTCH_TOKEN_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct token_bucket {
	uint64_t rate;	/* tokens per second; 0: no limit */
	uint64_t burst; /* most tokens saved up */
	int64_t tokens; /* may be negative: debt from a large request */
	uint64_t last_ns;
};

/* (Re)configure; a full bucket.  burst 0: one second's worth. */
void tb_set(struct token_bucket *b, uint64_t rate, uint64_t burst,
	    uint64_t now_ns);

/* 0 if n tokens may be taken now; else how many ns until they may. */
uint64_t tb_wait(struct token_bucket *b, uint64_t n, uint64_t now_ns);

/* Take n tokens (after tb_wait said 0). */
void tb_take(struct token_bucket *b, uint64_t n);

/* A rate limit's value for key= (a rate or a burst: decimal digits, at
 * most 2^50; 0: no limit) into *out.  0, or -EINVAL after saying why. */
int tb_parse_value(const char *key, const char *value, uint64_t *out);

#endif
