// SPDX-License-Identifier: MIT
/*
 * Rate limits without KVM: the token bucket's arithmetic (rate, burst,
 * fractions kept, debt from a request larger than the bucket) and the
 * drive's and the NIC's limit keys, at start (--drive, --net) and on a
 * running VM (the control channel's "bps=...,iops=...").
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/blk/blk_type.h"
#include "devices/net/net_type.h"
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

Test(limits, nic_keys_at_start_each_way_or_both)
{
	char spec[] = "user,bps=1000,tx_pps=50,rx_bps_burst=4096,"
		      "allow=10.0.2.2:80,pps_burst=3";
	char bad1[] = "user,tx_bps=1k", bad2[] = "user,up_bps=1",
	     bad3[] = "user,rx_pps=";
	struct net_config c;

	cr_assert_eq(net_parse_spec(spec, &c), 0);
	cr_assert_eq(c.limits.tx.bps, 1000);
	cr_assert_eq(c.limits.rx.bps, 1000);
	cr_assert_eq(c.limits.tx.pps, 50);
	cr_assert_eq(c.limits.rx.pps, 0);
	cr_assert_eq(c.limits.rx.bps_burst, 4096);
	cr_assert_eq(c.limits.tx.bps_burst, 0);
	cr_assert_eq(c.limits.tx.pps_burst, 3);
	cr_assert_eq(c.limits.rx.pps_burst, 3);
	cr_assert_eq(c.nrules, 1);
	cr_assert_eq(net_parse_spec(bad1, &c), -EINVAL);
	cr_assert_eq(net_parse_spec(bad2, &c), -EINVAL);
	cr_assert_eq(net_parse_spec(bad3, &c), -EINVAL);
}

Test(limits, running_nic_keys_change_only_those_given)
{
	struct net_limits l = {.tx = {.bps = 5, .pps = 6},
			       .rx = {.bps = 7, .pps_burst = 8}};
	char ok[] = "rx_bps=100,tx_pps=0", lift[] = "bps=0,pps=0",
	     bad1[] = "iops=1", bad2[] = "tx_bps", bad3[] = "rx_bps=-2";

	cr_assert_eq(net_parse_limits(ok, &l), 0);
	cr_assert_eq(l.rx.bps, 100);
	cr_assert_eq(l.tx.bps, 5);
	cr_assert_eq(l.tx.pps, 0);
	cr_assert_eq(l.rx.pps_burst, 8);
	cr_assert_eq(net_parse_limits(lift, &l), 0);
	cr_assert_eq(l.rx.bps + l.tx.bps + l.rx.pps + l.tx.pps, 0);
	cr_assert_eq(l.rx.pps_burst, 8);
	cr_assert_eq(net_parse_limits(bad1, &l), -EINVAL);
	cr_assert_eq(net_parse_limits(bad2, &l), -EINVAL);
	cr_assert_eq(net_parse_limits(bad3, &l), -EINVAL);
}
