// SPDX-License-Identifier: MIT
/*
 * Boot real guests on KVM (directly, or inside tools/l1/kvm-run's L1 VM) with
 * the project's kernel and test initramfs, and check what a user would:
 * the command's output, memory and CPUs the guest sees, exit codes.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "support/images.h"
#include "support/run.h"

/* Nested KVM under TCG is slow: allow generous time per boot. */
#define BOOT_TIMEOUT 240

static void boot(const char *kernel, const char *cmdline, const char *cpus,
		 const char *mem, struct run_result *r)
{
	const char *argv[] = {
	    hutch_bin(), "boot",     "--kernel",
	    kernel,	 "--initrd", guest_file("initramfs.cpio"),
	    "--cmdline", cmdline,    "--cpus",
	    cpus,	 "--mem",    mem,
	    "--stats",	 NULL};

	run_cmd(argv, BOOT_TIMEOUT, (uid_t)-1, r);
}

static void assert_ran(struct run_result *r, const char *expect)
{
	cr_assert_eq(r->status, 0, "exit %d\nstdout:\n%s\nstderr:\n%s",
		     r->status, r->out, r->err);
	cr_assert(strstr(r->out, expect), "missing '%s' in:\n%s", expect,
		  r->out);
	cr_assert(strstr(r->out, "hutch-init: exit status 0"), "%s", r->out);
}

Test(boot, pvh_vmlinux_runs_init_and_powers_off, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;

	boot(guest_file("vmlinux"), "quiet -- echo hello-from-pvh", "1", "128",
	     &r);
	assert_ran(&r, "hello-from-pvh");
	/* init wrote the boot timer port before running the command */
	cr_assert(strstr(r.err, "boot_done_ms=") &&
		      !strstr(r.err, "boot_done_ms=-1"),
		  "%s", r.err);
	/* Where KVM's debugfs is mounted (the L1's is), all exits are
	 * counted, and there are at least as many as reached hutch. */
	if (access("/sys/kernel/debug/kvm", F_OK) == 0) {
		const char *k = strstr(r.err, "kvm_exits="),
			   *v = strstr(r.err, "vmm_exits=");

		cr_assert(k && v, "%s", r.err);
		cr_assert_geq(strtoull(k + 10, NULL, 10),
			      strtoull(v + 10, NULL, 10), "%s", r.err);
		cr_assert_gt(strtoull(k + 10, NULL, 10), 0, "%s", r.err);
	}
	run_free(&r);
}

Test(boot, bzimage_runs_init_and_powers_off, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;

	boot(guest_file("bzImage"), "quiet -- echo hello-from-bzimage", "1",
	     "128", &r);
	assert_ran(&r, "hello-from-bzimage");
	run_free(&r);
}

static unsigned long memtotal_kib(const char *out)
{
	const char *p = strstr(out, "MemTotal:");
	unsigned long kib = 0;

	cr_assert(p, "no MemTotal in:\n%s", out);
	cr_assert_eq(sscanf(p, "MemTotal: %lu kB", &kib), 1);
	return kib;
}

Test(boot, guest_sees_requested_memory, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;
	unsigned long kib;

	boot(guest_file("vmlinux"), "quiet -- grep MemTotal /proc/meminfo", "1",
	     "300", &r);
	assert_ran(&r, "MemTotal:");
	kib = memtotal_kib(r.out);
	/* MemTotal excludes the kernel image and reserved areas. */
	cr_assert(kib > 270 * 1024 && kib <= 300 * 1024, "MemTotal %lu kB",
		  kib);
	run_free(&r);
}

Test(boot, memory_above_4g_is_usable, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;
	unsigned long kib;

	/* 3 GiB below the MMIO hole, 256 MiB above 4 GiB. */
	boot(guest_file("vmlinux"), "quiet -- grep MemTotal /proc/meminfo", "1",
	     "3328", &r);
	assert_ran(&r, "MemTotal:");
	kib = memtotal_kib(r.out);
	/* More than the 3 GiB below the hole: the RAM above 4 GiB counts
	 * (less the memmap and the 64 MiB bounce buffer such guests get). */
	cr_assert(kib > 3100ul * 1024 && kib <= 3328ul * 1024,
		  "MemTotal %lu kB", kib);
	run_free(&r);
}

Test(boot, four_cpus_come_online, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;

	boot(guest_file("vmlinux"),
	     "quiet -- cat /sys/devices/system/cpu/online", "4", "256", &r);
	assert_ran(&r, "0-3\r\n");
	run_free(&r);
}

Test(boot, bzimage_smp_too, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;

	boot(guest_file("bzImage"), "quiet -- nproc", "2", "256", &r);
	assert_ran(&r, "2\r\n");
	run_free(&r);
}

Test(boot, reboot_also_exits_zero, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;

	boot(guest_file("vmlinux"), "quiet -- reboot -f", "1", "128", &r);
	cr_assert_eq(r.status, 0, "exit %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert_null(strstr(r.out, "hutch-init: exit status"),
		       "reboot must end the VM before init continues");
	run_free(&r);
}

Test(boot, kernel_panic_gives_panic_code, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;

	/* "exit" ends PID 1: the kernel panics (attempted to kill init). */
	boot(guest_file("vmlinux"), "-- exit 3", "1", "128", &r);
	cr_assert_eq(r.status, 3, "exit %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.out, "Kernel panic"), "%s", r.out);
	cr_assert(strstr(r.err, "guest kernel panicked"), "%s", r.err);
	run_free(&r);
}

Test(boot, triple_fault_gives_crash_code_and_registers, .timeout = BOOT_TIMEOUT)
{
	char path[] = "/tmp/hutch-triple-XXXXXX";
	int fd = mkstemp(path);
	size_t len;
	uint8_t *img =
	    make_pvh_elf(triple_fault_code, triple_fault_code_len, &len);
	const char *argv[] = {hutch_bin(), "boot", "--kernel", path, NULL};
	struct run_result r;

	cr_assert_eq(write(fd, img, len), (ssize_t)len);
	close(fd);
	free(img);
	run_cmd(argv, BOOT_TIMEOUT, (uid_t)-1, &r);
	unlink(path);
	cr_assert_eq(r.status, 4, "exit %d\n%s", r.status, r.err);
	cr_assert(strstr(r.err, "triple fault"), "%s", r.err);
	cr_assert(strstr(r.err, "rip="), "register dump: %s", r.err);
	cr_assert(strstr(r.err, "cr0="), "%s", r.err);
	run_free(&r);
}

Test(boot, console_output_arrives_intact, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;
	char *expect = malloc(20000), *p = expect;

	/* 2000 numbered lines through the UART, byte for byte. */
	boot(guest_file("vmlinux"), "quiet -- seq 1 2000", "1", "128", &r);
	for (int i = 1; i <= 2000; i++)
		p += sprintf(p, "%d\r\n", i);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, expect), "sequence damaged:\n%s", r.out);
	free(expect);
	run_free(&r);
}

Test(boot, console_to_file, .timeout = BOOT_TIMEOUT)
{
	char path[] = "/tmp/hutch-console-XXXXXX";
	int fd = mkstemp(path);
	const char *argv[] = {hutch_bin(), "boot",
			      "--kernel",  guest_file("vmlinux"),
			      "--initrd",  guest_file("initramfs.cpio"),
			      "--cmdline", "quiet -- echo to-the-file",
			      "--console", path,
			      NULL};
	struct run_result r;
	char buf[4096] = {0};

	close(fd);
	run_cmd(argv, BOOT_TIMEOUT, (uid_t)-1, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_null(strstr(r.out, "to-the-file"), "stdout stays clean");
	fd = open(path, O_RDONLY);
	cr_assert(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	unlink(path);
	cr_assert(strstr(buf, "to-the-file"), "%s", buf);
	run_free(&r);
}

Test(boot, acpi_off_uses_mp_table_and_i8042_reset, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;

	/* Without ACPI the kernel finds CPUs in the MP table and cannot
	 * power off, but reboot=k resets through the i8042: exit 0. */
	boot(guest_file("vmlinux"),
	     "acpi=off quiet -- sh -c \"nproc; reboot -f\"", "2", "128", &r);
	cr_assert_eq(r.status, 0, "exit %d\n%s\n%s", r.status, r.out, r.err);
	cr_assert(strstr(r.out, "2\r\n"), "%s", r.out);
	run_free(&r);
}

Test(boot, stdin_reaches_the_guest, .timeout = BOOT_TIMEOUT)
{
	const char *argv[] = {
	    hutch_bin(), "boot",
	    "--kernel",	 guest_file("vmlinux"),
	    "--initrd",	 guest_file("initramfs.cpio"),
	    "--cmdline", "quiet -- sh -c \"read line; echo got:$line\"",
	    NULL};
	struct run_result r;

	run_cmd_input(argv, "typed-on-the-host\n", BOOT_TIMEOUT, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "got:typed-on-the-host"), "%s", r.out);
	run_free(&r);
}

Test(boot, thirty_two_cpus, .timeout = BOOT_TIMEOUT)
{
	struct run_result r;

	boot(guest_file("vmlinux"), "quiet -- nproc", "32", "512", &r);
	assert_ran(&r, "32\r\n");
	run_free(&r);
}

/* The entropy device is there by default: the kernel's hw_random core
 * uses it, and 1 MiB reads from /dev/hwrng; with --no-rng it is gone.
 * (The kernel hands init the words after "--", honouring double quotes
 * only.) */
Test(boot, virtio_rng_feeds_hwrng_and_no_rng_removes_it,
     .timeout = BOOT_TIMEOUT)
{
	struct run_result r;
	const char *no_rng[] = {
	    hutch_bin(), "boot", "--kernel", guest_file("vmlinux"), "--initrd",
	    guest_file("initramfs.cpio"), "--no-rng", "--cmdline",
	    "quiet -- sh -c \"echo rng=$(cat "
	    "/sys/devices/virtual/misc/hw_random/rng_current)\"",
	    NULL};

	boot(guest_file("vmlinux"),
	     "quiet -- sh -c \"echo rng=$(cat "
	     "/sys/devices/virtual/misc/hw_random/rng_current); "
	     "echo bytes=$(head -c 1048576 /dev/hwrng | wc -c)\"",
	     "1", "128", &r);
	assert_ran(&r, "rng=virtio_rng");
	cr_assert(strstr(r.out, "bytes=1048576"), "%s", r.out);
	cr_assert(strstr(r.err, "hutch-stats: rng requests="), "%s", r.err);
	run_free(&r);

	run_cmd(no_rng, BOOT_TIMEOUT, (uid_t)-1, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "rng=none"), "%s", r.out);
	run_free(&r);
}
