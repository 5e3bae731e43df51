// SPDX-License-Identifier: MIT
/*
 * The agent protocol codec (initramfs/agent/agent_codec.c): every message
 * body round-trips, the bytes are the ones PROTOCOL.md specifies, and every
 * way a payload can lie is refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent_codec.h"

static struct agent_wbuf b;

static void setup(void)
{
	memset(&b, 0, sizeof(b));
}

static void teardown(void)
{
	agent_wbuf_free(&b);
}

TestSuite(codec, .init = setup, .fini = teardown);

/* The payload is exactly these bytes. */
static void expect_bytes(const void *want, size_t len)
{
	cr_assert_not(b.oom);
	cr_assert_eq(b.len, len, "%zu bytes, want %zu", b.len, len);
	cr_assert_eq(memcmp(b.p, want, len), 0);
}

Test(codec, fixed_messages_have_the_specified_bytes)
{
	struct agent_exit_msg ex = {.code = -1, .signal = 9, .timed_out = true};

	agent_enc_hello(&b, 1);
	expect_bytes("\1\0\0\0", 4);
	agent_wbuf_reset(&b);
	agent_enc_started(&b, 0x01020304);
	expect_bytes("\4\3\2\1", 4);
	agent_wbuf_reset(&b);
	agent_enc_exit(&b, &ex);
	expect_bytes("\xff\xff\xff\xff\x09\0\0\0\1", 9);
	agent_wbuf_reset(&b);
	agent_enc_resize(&b, 40, 120);
	expect_bytes("\x28\0\x78\0", 4);
	agent_wbuf_reset(&b);
	agent_enc_put(&b, 0640, "/a");
	expect_bytes("\xa0\x01\0\0\2\0\0\0/a", 10);
	agent_wbuf_reset(&b);
	agent_enc_get_ok(&b, 0755, 1ull << 32);
	expect_bytes("\xed\x01\0\0\0\0\0\0\1\0\0\0", 12);
	agent_wbuf_reset(&b);
	agent_enc_error(&b, ENOENT, "no", 2);
	expect_bytes("\2\0\0\0\2\0\0\0no", 10);
}

Test(codec, every_message_round_trips)
{
	struct agent_exit_msg ex = {.code = 42, .signal = 0}, ex2;
	struct agent_str str;
	uint32_t u, mode;
	uint64_t v;
	uint16_t rows, cols;
	int32_t err;
	char *path;

	agent_enc_hello_ok(&b, 1, "hutch-agent 0.1");
	cr_assert_eq(agent_dec_hello_ok(b.p, b.len, &u, &str), 0);
	cr_assert_eq(u, 1);
	cr_assert_eq(str.len, 15);
	cr_assert_eq(memcmp(str.p, "hutch-agent 0.1", 15), 0);

	agent_wbuf_reset(&b);
	agent_enc_error(&b, EACCES, "denied", 6);
	cr_assert_eq(agent_dec_error(b.p, b.len, &err, &str), 0);
	cr_assert_eq(err, EACCES);
	cr_assert_eq(str.len, 6);

	agent_wbuf_reset(&b);
	agent_enc_exit(&b, &ex);
	cr_assert_eq(agent_dec_exit(b.p, b.len, &ex2), 0);
	cr_assert_eq(ex2.code, 42);
	cr_assert_eq(ex2.signal, 0);
	cr_assert_not(ex2.timed_out);

	agent_wbuf_reset(&b);
	agent_enc_signal(&b, 15);
	cr_assert_eq(agent_dec_signal(b.p, b.len, &u), 0);
	cr_assert_eq(u, 15);

	agent_wbuf_reset(&b);
	agent_enc_resize(&b, 24, 80);
	cr_assert_eq(agent_dec_resize(b.p, b.len, &rows, &cols), 0);
	cr_assert_eq(rows, 24);
	cr_assert_eq(cols, 80);

	agent_wbuf_reset(&b);
	agent_enc_put(&b, 04755, "/usr/bin/x");
	cr_assert_eq(agent_dec_put(b.p, b.len, &mode, &path), 0);
	cr_assert_eq(mode, 04755);
	cr_assert_str_eq(path, "/usr/bin/x");
	free(path);

	agent_wbuf_reset(&b);
	agent_enc_get(&b, "");
	cr_assert_eq(agent_dec_get(b.p, b.len, &path), 0);
	cr_assert_str_eq(path, "");
	free(path);

	agent_wbuf_reset(&b);
	agent_enc_put_ok(&b, 123456789012ull);
	cr_assert_eq(agent_dec_put_ok(b.p, b.len, &v), 0);
	cr_assert_eq(v, 123456789012ull);

	agent_wbuf_reset(&b);
	agent_enc_get_ok(&b, 0600, 7);
	cr_assert_eq(agent_dec_get_ok(b.p, b.len, &mode, &v), 0);
	cr_assert_eq(mode, 0600);
	cr_assert_eq(v, 7);
}

Test(codec, exec_round_trips_with_every_field)
{
	const char *argv[] = {"sh", "-c", "echo hi", NULL};
	const char *env[] = {"A=1", "B=", NULL};
	struct agent_exec_args a = {.flags = AGENT_EXEC_PTY,
				    .timeout_ms = 5000,
				    .uid = 1000,
				    .gid = 100,
				    .rows = 30,
				    .cols = 100,
				    .argv = argv,
				    .env = env,
				    .cwd = "/tmp"};
	struct agent_exec_req r;

	agent_enc_exec(&b, &a);
	cr_assert_not(b.oom);
	cr_assert_eq(agent_dec_exec(b.p, b.len, &r), 0);
	cr_assert_eq(r.flags, AGENT_EXEC_PTY);
	cr_assert_eq(r.timeout_ms, 5000);
	cr_assert_eq(r.uid, 1000);
	cr_assert_eq(r.gid, 100);
	cr_assert_eq(r.rows, 30);
	cr_assert_eq(r.cols, 100);
	cr_assert_eq(r.argc, 3);
	cr_assert_str_eq(r.argv[2], "echo hi");
	cr_assert_null(r.argv[3]);
	cr_assert_eq(r.envc, 2);
	cr_assert_str_eq(r.env[1], "B=");
	cr_assert_null(r.env[2]);
	cr_assert_str_eq(r.cwd, "/tmp");
	agent_exec_req_free(&r);

	/* No env and no cwd: empty, not missing. */
	agent_wbuf_reset(&b);
	a.env = NULL;
	a.cwd = NULL;
	agent_enc_exec(&b, &a);
	cr_assert_eq(agent_dec_exec(b.p, b.len, &r), 0);
	cr_assert_eq(r.envc, 0);
	cr_assert_null(r.env[0]);
	cr_assert_str_eq(r.cwd, "");
	agent_exec_req_free(&r);
}

/* Every prefix of a valid payload is refused, and so is one byte more. */
Test(codec, truncated_and_overlong_payloads_are_refused)
{
	const char *argv[] = {"true", NULL};
	struct agent_exec_args a = {.argv = argv, .cwd = "/"};
	struct agent_exec_req r;
	uint8_t big[64];

	agent_enc_exec(&b, &a);
	for (size_t n = 0; n < b.len; n++) {
		cr_assert_eq(agent_dec_exec(b.p, n, &r), -EPROTO, "prefix %zu",
			     n);
		cr_assert_null(r.argv);
	}
	cr_assert_lt(b.len, sizeof(big));
	memcpy(big, b.p, b.len);
	big[b.len] = 'x';
	cr_assert_eq(agent_dec_exec(big, b.len + 1, &r), -EPROTO);

	agent_wbuf_reset(&b);
	agent_enc_get_ok(&b, 0644, 10);
	for (size_t n = 0; n <= b.len + 1; n++) {
		uint32_t mode;
		uint64_t size;

		memcpy(big, b.p, b.len);
		big[b.len] = 0;
		cr_assert_eq(agent_dec_get_ok(big, n, &mode, &size),
			     n == b.len ? 0 : -EPROTO, "length %zu", n);
	}
}

Test(codec, hostile_lengths_and_counts_are_refused)
{
	struct agent_exec_req r;
	struct agent_str s;
	uint32_t v;
	int32_t err;
	char *path;
	/* fixed 20 bytes, then argc 0x40000000: far more than the payload
	 * could hold (each string needs 4 bytes). */
	uint8_t absurd_count[24] = {[20] = 0, [21] = 0, [22] = 0, [23] = 0x40};
	/* argc 1, then a string claiming 1000 bytes. */
	uint8_t long_str[30] = {[20] = 1, [24] = 0xe8, [25] = 3};
	/* A string with a NUL inside. */
	uint8_t nul_str[] = {3, 0, 0, 0, 'a', 0, 'b'};
	/* An error string running past the end, and one of 2^32 - 1. */
	uint8_t err_past[] = {1, 0, 0, 0, 9, 0, 0, 0, 'x'};
	uint8_t err_huge[] = {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};

	cr_assert_eq(agent_dec_exec(absurd_count, sizeof(absurd_count), &r),
		     -EPROTO);
	cr_assert_eq(agent_dec_exec(long_str, sizeof(long_str), &r), -EPROTO);
	cr_assert_eq(agent_dec_get(nul_str, sizeof(nul_str), &path), -EPROTO);
	cr_assert_null(path);
	cr_assert_eq(agent_dec_error(err_past, sizeof(err_past), &err, &s),
		     -EPROTO);
	cr_assert_eq(agent_dec_error(err_huge, sizeof(err_huge), &err, &s),
		     -EPROTO);
	cr_assert_eq(agent_dec_hello(NULL, 0, &v), -EPROTO);
}

/* A body the frame limit could never carry is refused while encoding,
 * not sent half. */
Test(codec, a_body_over_the_frame_limit_is_refused)
{
	size_t n = AGENT_MAX_PAYLOAD;
	char *huge = malloc(n + 1);

	cr_assert_not_null(huge);
	memset(huge, 'a', n);
	huge[n] = 0;
	agent_enc_get(&b, huge);
	cr_assert(b.oom);
	free(huge);
}
