// SPDX-License-Identifier: MIT
/*
 * Rate limits without KVM: the token bucket's arithmetic (rate, burst,
 * fractions kept, debt from a request larger than the bucket) and the
 * drive's limit keys, at start (--drive) and on a running VM (the
 * control channel's "bps=...,iops=...").
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/blk/blk_type.h"
#include "vmm/base/token_bucket.h"

#define MS 1000000ull

TestSuite(limits, .timeout = 60);

Test(limits, bucket_rate_and_burst)
{
	struct token_bucket b;

	tb_set(&b, 1000, 10, 0); /* 1000 a second, 10 saved up */
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(tb_wait(&b, 1, 0), 0);
		tb_take(&b, 1);
	}
	/* Empty: the next token comes 1 ms later. */
	cr_assert_eq(tb_wait(&b, 1, 0), 1 * MS);
	cr_assert_eq(tb_wait(&b, 1, MS / 2), MS / 2);
	cr_assert_eq(tb_wait(&b, 1, MS), 0);
	tb_take(&b, 1);
	/* 5 ms later: 5 tokens, not more. */
	cr_assert_eq(tb_wait(&b, 5, 6 * MS), 0);
	cr_assert_neq(tb_wait(&b, 6, 6 * MS), 0);
	/* Much later: the burst, no more. */
	cr_assert_eq(tb_wait(&b, 10, 1000 * MS), 0);
	tb_take(&b, 10);
	cr_assert_neq(tb_wait(&b, 1, 1000 * MS), 0);
}

Test(limits, fractions_are_kept)
{
	struct token_bucket b;
	uint64_t t = 0;
	unsigned taken = 0;

	tb_set(&b, 3, 3, 0); /* 3 a second: one every 333.3 ms */
	tb_take(&b, 3);
	/* Polled every 100 ms for 10 s: 30 tokens, not 10 * 3 rounded. */
	for (t = 100 * MS; t <= 10000 * MS; t += 100 * MS)
		if (tb_wait(&b, 1, t) == 0) {
			tb_take(&b, 1);
			taken++;
		}
	cr_assert_eq(taken, 30, "%u", taken);
}

Test(limits, a_request_larger_than_the_bucket_goes_when_full)
{
	struct token_bucket b;

	tb_set(&b, 1000, 100, 0);
	cr_assert_eq(tb_wait(&b, 1000, 0), 0); /* full: it may go */
	tb_take(&b, 1000);
	/* 900 in debt: the next token after 901 ms. */
	cr_assert_eq(tb_wait(&b, 1, 0), 901 * MS);
	cr_assert_eq(tb_wait(&b, 1, 901 * MS), 0);
}

Test(limits, no_rate_no_limit)
{
	struct token_bucket b;

	tb_set(&b, 0, 0, 0);
	cr_assert_eq(tb_wait(&b, 1ull << 40, 0), 0);
	tb_take(&b, 1ull << 40);
	cr_assert_eq(tb_wait(&b, 1ull << 40, 0), 0);
}

Test(limits, drive_keys)
{
	char spec[] = "path=x.img,bps=1048576,iops=100,bps_burst=4096,"
		      "iops_burst=2";
	char bad1[] = "path=x.img,bps=-1",
	     bad2[] = "path=x.img,iops=", bad3[] = "path=x.img,bps=1k";
	struct drive_config d;

	cr_assert_eq(blk_parse_drive(spec, &d), 0);
	cr_assert_eq(d.limits.bps, 1048576);
	cr_assert_eq(d.limits.bps_burst, 4096);
	cr_assert_eq(d.limits.iops, 100);
	cr_assert_eq(d.limits.iops_burst, 2);
	cr_assert_eq(blk_parse_drive(bad1, &d), -EINVAL);
	cr_assert_eq(blk_parse_drive(bad2, &d), -EINVAL);
	cr_assert_eq(blk_parse_drive(bad3, &d), -EINVAL);
}

Test(limits, running_vm_keys_change_only_those_given)
{
	struct blk_limits l = {.bps = 5, .bps_burst = 6, .iops = 7};
	char ok[] = "iops=0,bps=100", bad1[] = "bogus=1", bad2[] = "bps",
	     bad3[] = "bps=1,,iops=2", empty[] = "";

	cr_assert_eq(blk_parse_limits(ok, &l), 0);
	cr_assert_eq(l.bps, 100);
	cr_assert_eq(l.bps_burst, 6);
	cr_assert_eq(l.iops, 0);
	cr_assert_eq(blk_parse_limits(bad1, &l), -EINVAL);
	cr_assert_eq(blk_parse_limits(bad2, &l), -EINVAL);
	cr_assert_eq(blk_parse_limits(bad3, &l), -EINVAL);
	cr_assert_eq(blk_parse_limits(empty, &l), 0);
}
