// SPDX-License-Identifier: MIT
/* `hutch boot` option parsing and validation. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "vmm/boot_options.h"

static int parse(struct boot_options *o, int argc, const char **argv)
{
	return cli_parse_boot(argc, (char **)argv, o);
}

Test(cli, defaults)
{
	struct boot_options o;
	const char *argv[] = {"boot", NULL};

	cr_assert_eq(parse(&o, 1, argv), 0);
	cr_assert_eq(o.cfg.ncpus, 1);
	cr_assert_eq(o.cfg.mem_mib, CLI_DEFAULT_MEM_MIB);
	cr_assert_null(o.cfg.kernel_path);
	cr_assert_null(o.cfg.cmdline);
}

Test(cli, all_options)
{
	struct boot_options o;
	const char *argv[] = {
	    "boot",	 "--kernel", "k",	"--initrd=i", "--cmdline",
	    "a b -- c",	 "--cpus",   "32",	"--mem",      "4096",
	    "--console", "log",	     "--stats", NULL};

	cr_assert_eq(parse(&o, 13, argv), 0);
	cr_assert_str_eq(o.cfg.kernel_path, "k");
	cr_assert_str_eq(o.cfg.initrd_path, "i");
	cr_assert_str_eq(o.cfg.cmdline, "a b -- c");
	cr_assert_eq(o.cfg.ncpus, 32);
	cr_assert_eq(o.cfg.mem_mib, 4096);
	cr_assert_str_eq(o.cfg.console_path, "log");
	cr_assert(o.cfg.stats);
}

Test(cli, rejects_bad_numbers, .init = cr_redirect_stderr)
{
	struct boot_options o;
	const char *bad[][3] = {
	    {"boot", "--cpus", "0"},
	    {"boot", "--cpus", "255"},
	    {"boot", "--cpus", "two"},
	    {"boot", "--cpus", "-1"},
	    {"boot", "--mem", "0"},
	    {"boot", "--mem", "1"},
	    {"boot", "--mem", "12x"},
	    {"boot", "--mem", ""},
	    {"boot", "--mem", "99999999999999999999999"},
	    {"boot", "--mem", "2000000"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[] = {bad[i][0], bad[i][1], bad[i][2], NULL};

		cr_assert_eq(parse(&o, 3, argv), -EINVAL, "%s %s accepted",
			     bad[i][1], bad[i][2]);
	}
}

Test(cli, rejects_unknown_options_and_stray_args, .init = cr_redirect_stderr)
{
	struct boot_options o;
	const char *a1[] = {"boot", "--frobnicate", NULL};
	const char *a2[] = {"boot", "--kernel", NULL};
	const char *a3[] = {"boot", "--cmdline", "a", "b", NULL};
	const char *a4[] = {"boot", "--help", NULL};

	cr_assert_eq(parse(&o, 2, a1), -EINVAL);
	cr_assert_eq(parse(&o, 2, a2), -EINVAL);
	cr_assert_eq(parse(&o, 4, a3), -EINVAL);
	cr_assert_eq(parse(&o, 2, a4), CLI_HELP);
}

Test(cli, parse_u64_is_strict)
{
	uint64_t v;

	cr_assert_eq(cli_parse_u64("42", 1, 100, &v), 0);
	cr_assert_eq(v, 42);
	cr_assert_eq(cli_parse_u64(" 42", 1, 100, &v), -EINVAL);
	cr_assert_eq(cli_parse_u64("42 ", 1, 100, &v), -EINVAL);
	cr_assert_eq(cli_parse_u64("0x10", 1, 100, &v), -EINVAL);
	cr_assert_eq(cli_parse_u64("101", 1, 100, &v), -ERANGE);
	cr_assert_eq(cli_parse_u64("18446744073709551616", 1, UINT64_MAX, &v),
		     -ERANGE);
}

Test(cli, memory_beyond_host_is_refused, .init = cr_redirect_stderr)
{
	struct boot_options o;
	const char *argv[] = {"boot",  "--kernel", "/nonexistent",
			      "--mem", "1048576",  NULL};

	cr_assert_eq(parse(&o, 5, argv), 0);
	cr_assert_eq(cli_resolve_defaults(&o), -EINVAL);
	cli_free(&o);
}

Test(cli, ready_fd_must_be_open, .init = cr_redirect_stderr)
{
	struct boot_options o;
	int p[2];
	char num[16];
	const char *ok[] = {"boot", "--ready-fd", num, NULL};
	const char *bad1[] = {"boot", "--ready-fd", "999", NULL};
	const char *bad2[] = {"boot", "--ready-fd", "x", NULL};

	cr_assert_eq(pipe(p), 0);
	snprintf(num, sizeof(num), "%d", p[1]);
	cr_assert_eq(parse(&o, 3, ok), 0);
	cr_assert(o.cfg.has_ready_fd);
	cr_assert_eq(o.cfg.ready_fd, p[1]);
	cr_assert_eq(parse(&o, 3, bad1), -EINVAL);
	cr_assert_eq(parse(&o, 3, bad2), -EINVAL);
	cr_assert_eq(parse(&o, 1, ok), 0);
	cr_assert_not(o.cfg.has_ready_fd, "--ready-fd is off by default");
	close(p[0]);
	close(p[1]);
}
