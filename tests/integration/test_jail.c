// SPDX-License-Identifier: MIT
/*
 * Defence in depth on real KVM: each thread's seccomp filter kills the
 * process on a forbidden syscall (hutch-test-hooks, a test-only build,
 * makes a thread of the kind named in $HUTCH_TEST_SECCOMP_VIOLATE issue
 * one), and log mode lets it through.
 */
#include <criterion/criterion.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/run.h"

#define TIMEOUT 300

TestSuite(jail, .timeout = TIMEOUT);

/* build/hutch-test-hooks beside the hutch under test. */
static const char *hooked_bin(void)
{
	static char path[512];
	char dir[512];

	snprintf(dir, sizeof(dir), "%s", hutch_bin());
	snprintf(path, sizeof(path), "%s/hutch-test-hooks", dirname(dir));
	return path;
}

static void boot_violating(const char *kind, const char *mode,
			   struct run_result *r)
{
	const char *argv[] = {hooked_bin(), "boot",
			      "--seccomp",  mode,
			      "--cmdline",  "quiet -- echo survived",
			      NULL};

	setenv("HUTCH_TEST_SECCOMP_VIOLATE", kind, 1);
	run_cmd(argv, TIMEOUT, (uid_t)-1, r);
	unsetenv("HUTCH_TEST_SECCOMP_VIOLATE");
}

Test(jail, each_threads_filter_kills_a_forbidden_syscall)
{
	const char *kinds[] = {"vcpu", "loop"};

	for (unsigned i = 0; i < 2; i++) {
		struct run_result r;

		boot_violating(kinds[i], "kill", &r);
		cr_assert_eq(r.status, 128 + SIGSYS,
			     "%s: exit %d (want SIGSYS)\nstderr:\n%s", kinds[i],
			     r.status, r.err);
		cr_assert(!strstr(r.err, "lives"), "%s", r.err);
		run_free(&r);
	}
}

Test(jail, log_mode_lets_the_forbidden_syscall_through)
{
	const char *kinds[] = {"vcpu", "loop"};

	for (unsigned i = 0; i < 2; i++) {
		struct run_result r;

		boot_violating(kinds[i], "log", &r);
		cr_assert_eq(r.status, 0, "%s: exit %d\nstderr:\n%s", kinds[i],
			     r.status, r.err);
		cr_assert(strstr(r.err, "lives") && strstr(r.out, "survived"),
			  "%s\n%s", r.out, r.err);
		run_free(&r);
	}
}
