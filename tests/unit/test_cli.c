// SPDX-License-Identifier: MIT
/* `hutch boot` option parsing and validation. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "devices/blk/blk_type.h"
#include "devices/vsock/vsock_type.h"
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

/* ---- the device table's options ---- */

Test(cli, vsock_option_values)
{
	struct vsock_config c;
	char a[] = "/run/v.sock", b[] = "/run/v.sock,cid=4294967294",
	     cc[] = "/run/v.sock,cid=2", d[] = ",cid=5",
	     e[] = "/x,cid=4294967295", f[] = "/x,port=1",
	     g[] = "/x,cid=", h[] = "/x,cid=0x10";

	cr_assert_eq(vsock_parse_option(a, &c), 0);
	cr_assert_str_eq(c.path, "/run/v.sock");
	cr_assert_eq(c.guest_cid, 3);
	cr_assert_eq(vsock_parse_option(b, &c), 0);
	cr_assert_str_eq(c.path, "/run/v.sock");
	cr_assert_eq(c.guest_cid, 4294967294u);
	cr_assert_eq(vsock_parse_option(cc, &c), -EINVAL);
	cr_assert_eq(vsock_parse_option(d, &c), -EINVAL);
	cr_assert_eq(vsock_parse_option(e, &c), -EINVAL);
	cr_assert_eq(vsock_parse_option(f, &c), -EINVAL);
	cr_assert_eq(vsock_parse_option(g, &c), -EINVAL);
	cr_assert_eq(vsock_parse_option(h, &c), -EINVAL);
}

/* The table hands --drive and --vsock to their types, and lays the
 * devices out in its order: disks first (vda, vdb), then vsock. */
Test(cli, device_options_go_to_their_types_in_table_order)
{
	struct boot_options o;
	char v[] = "/tmp/v.sock,cid=9", d1[] = "path=/a,root",
	     d2[] = "path=/b,ro,serial=x", opt_v[] = "--vsock",
	     opt_d[] = "--drive", boot[] = "boot";
	char *argv[] = {boot, opt_v, v, opt_d, d1, opt_d, d2, NULL};
	const struct vsock_config *vc;
	const struct drive_config *dc;

	cr_assert_eq(cli_parse_boot(7, argv, &o), 0);
	cr_assert_geq(o.cfg.ndevices, 3);
	cr_assert_eq(o.cfg.devices[0].type, &virtio_blk_type);
	dc = o.cfg.devices[0].cfg;
	cr_assert_str_eq(dc->path, "/a");
	cr_assert(dc->root);
	cr_assert_eq(o.cfg.devices[1].type, &virtio_blk_type);
	dc = o.cfg.devices[1].cfg;
	cr_assert(dc->read_only);
	cr_assert_str_eq(dc->serial, "x");
	cr_assert_eq(o.cfg.devices[2].type, &virtio_vsock_type);
	vc = o.cfg.devices[2].cfg;
	cr_assert_str_eq(vc->path, "/tmp/v.sock");
	cr_assert_eq(vc->guest_cid, 9);
	cli_free(&o);
}

Test(cli, device_limits_and_conflicts)
{
	struct boot_options o;
	char v1[] = "/a.sock", v2[] = "/b.sock", r1[] = "path=/a,root",
	     r2[] = "path=/b,root", opt_v[] = "--vsock", opt_d[] = "--drive",
	     boot[] = "boot";
	char *two_vsocks[] = {boot, opt_v, v1, opt_v, v2, NULL};
	char *two_roots[] = {boot, opt_d, r1, opt_d, r2, NULL};
	char *nine[20] = {boot};
	char specs[9][16];

	cr_assert_eq(cli_parse_boot(5, two_vsocks, &o), -EINVAL);
	cli_free(&o);
	cr_assert_eq(cli_parse_boot(5, two_roots, &o), -EINVAL);
	cli_free(&o);
	for (int i = 0; i < 9; i++) {
		snprintf(specs[i], sizeof(specs[i]), "path=/d%d", i);
		nine[1 + 2 * i] = opt_d;
		nine[2 + 2 * i] = specs[i];
	}
	cr_assert_eq(cli_parse_boot(19, nine, &o), -EINVAL, "9 drives");
	cli_free(&o);
}
