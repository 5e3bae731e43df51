// SPDX-License-Identifier: MIT
/*
 * The seccomp lists without KVM: every entry of both lists compiles into
 * a filter that loads; a forked child under each filter can make the
 * calls its thread makes and is killed with SIGSYS by one it must not
 * (an inet socket; an ioctl number that is not listed); log mode lets it
 * through.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/seccomp_filter.h"

TestSuite(seccomp, .timeout = 60);

/* Fork; the child installs the filter and runs fn, then ends the way
 * that kind of thread does: a vCPU thread with exit, the main thread
 * with exit_group.  The child's wait status. */
static int in_child(enum seccomp_thread kind, enum seccomp_mode mode,
		    void (*fn)(void))
{
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (seccomp_thread_apply(kind, mode))
			syscall(SYS_exit, 100);
		fn();
		syscall(kind == SECCOMP_VCPU ? SYS_exit : SYS_exit_group, 0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

static void allowed_vcpu(void)
{
	struct timespec ts;
	char c = 'x';

	/* What a vCPU thread does around its exits. */
	if (write(STDERR_FILENO, &c, 0) < 0 ||
	    clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		syscall(SYS_exit, 101);
	/* KVM_RUN on a non-KVM fd: EBADF/ENOTTY, but not killed. */
	ioctl(-1, KVM_RUN, 0);
}

static void allowed_loop(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		syscall(SYS_exit_group, 102);
	close(fd);
	ioctl(-1, KVM_IRQ_LINE, 0);
}

static void inet_socket(void)
{
	socket(AF_INET, SOCK_STREAM, 0);
}

static void other_kvm_ioctl(void)
{
	/* Creating a vCPU is set-up: off both lists. */
	ioctl(-1, KVM_CREATE_VCPU, 0);
}

static void spawn_thread(void)
{
	/* No list has clone: no thread or process can be made. */
	if (fork() == 0)
		syscall(SYS_exit, 0);
}

Test(seccomp, both_lists_load_and_allow_their_threads_calls)
{
	int st = in_child(SECCOMP_VCPU, SECCOMP_KILL, allowed_vcpu);

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "vcpu status %#x", st);
	st = in_child(SECCOMP_LOOP, SECCOMP_KILL, allowed_loop);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "loop status %#x", st);
}

Test(seccomp, forbidden_calls_are_killed_with_sigsys)
{
	void (*bad[])(void) = {inet_socket, other_kvm_ioctl, spawn_thread};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = in_child(SECCOMP_VCPU, SECCOMP_KILL, bad[i]);

		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
			  "vcpu, case %u: status %#x", i, st);
		st = in_child(SECCOMP_LOOP, SECCOMP_KILL, bad[i]);
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
			  "loop, case %u: status %#x", i, st);
	}
}

Test(seccomp, log_mode_lets_a_forbidden_call_through)
{
	int st = in_child(SECCOMP_VCPU, SECCOMP_LOG, inet_socket);

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}

Test(seccomp, modes_parse)
{
	enum seccomp_mode m;

	cr_assert_eq(seccomp_parse_mode("kill", &m), 0);
	cr_assert_eq(m, SECCOMP_KILL);
	cr_assert_eq(seccomp_parse_mode("log", &m), 0);
	cr_assert_eq(m, SECCOMP_LOG);
	cr_assert_eq(seccomp_parse_mode("off", &m), 0);
	cr_assert_eq(m, SECCOMP_OFF);
	cr_assert_eq(seccomp_parse_mode("Kill", &m), -EINVAL);
	cr_assert_eq(seccomp_parse_mode("", &m), -EINVAL);
}
