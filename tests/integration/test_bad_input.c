// SPDX-License-Identifier: MIT
/*
 * Bad input: every case must end with exactly one "hutch: ..." line on
 * stderr and a non-zero exit, never a crash.  tools/check runs this suite
 * against the normal build and again against an AddressSanitizer build.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/images.h"
#include "support/run.h"

#define TIMEOUT 120

static char tmpdir[] = "/tmp/hutch-bad-XXXXXX";

static void setup(void)
{
	cr_assert(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(bad_input, .init = setup, .fini = teardown, .timeout = TIMEOUT);

static const char *tmpfile_with(const char *name, const void *data, size_t len)
{
	static char path[8][256];
	static unsigned next;
	char *p = path[next++ % 8];
	int fd;

	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return p;
}

/* A prefix of a real file. */
static const char *truncated_copy(const char *src, const char *name,
				  double fraction)
{
	int fd = open(src, O_RDONLY);
	struct stat st;
	char *buf;
	const char *p;

	cr_assert(fd >= 0, "missing %s", src);
	fstat(fd, &st);
	buf = malloc((size_t)st.st_size);
	cr_assert_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	p = tmpfile_with(name, buf, (size_t)(st.st_size * fraction));
	free(buf);
	return p;
}

static void expect_one_line_error(const char *const argv[], int code,
				  const char *needle, uid_t uid)
{
	struct run_result r;

	run_cmd(argv, TIMEOUT, uid, &r);
	cr_assert_eq(r.status, code, "exit %d (want %d)\nstderr:\n%s", r.status,
		     code, r.err);
	cr_assert_eq(count_lines(r.err), 1, "want one line, got:\n%s", r.err);
	cr_assert_eq(strncmp(r.err, "hutch: ", 7), 0, "%s", r.err);
	cr_assert(strstr(r.err, needle), "want '%s' in: %s", needle, r.err);
	cr_assert_eq(r.out_len, 0, "nothing on stdout: %s", r.out);
	run_free(&r);
}

static void boot_kernel_expect(const char *kernel, const char *needle)
{
	const char *argv[] = {hutch_bin(), "boot", "--kernel", kernel, NULL};

	expect_one_line_error(argv, 1, needle, (uid_t)-1);
}

Test(bad_input, missing_kernel)
{
	boot_kernel_expect("/nonexistent/vmlinux", "No such file");
}

Test(bad_input, empty_kernel)
{
	boot_kernel_expect(tmpfile_with("empty", "", 0), "is empty");
}

Test(bad_input, directory_as_kernel)
{
	boot_kernel_expect(tmpdir, "not a regular file");
}

Test(bad_input, garbage_kernel)
{
	char junk[65536];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7919 + 13);
	boot_kernel_expect(tmpfile_with("junk", junk, sizeof(junk)),
			   "no Linux boot header");
}

Test(bad_input, truncated_vmlinux)
{
	boot_kernel_expect(
	    truncated_copy(guest_file("vmlinux"), "vmlinux-half", 0.5),
	    "truncated");
}

Test(bad_input, truncated_bzimage)
{
	boot_kernel_expect(
	    truncated_copy(guest_file("bzImage"), "bz-half", 0.5), "truncated");
}

Test(bad_input, elf_without_pvh_note)
{
	size_t len;
	uint8_t *img = make_pvh_elf((const uint8_t *)"\xf4", 1, &len);

	/* Turn the Xen note's type into something else. */
	for (size_t i = 0; i + 12 < len; i++)
		if (!memcmp(img + i, "Xen", 4) && img[i - 4] == 18) {
			img[i - 4] = 17;
			break;
		}
	boot_kernel_expect(tmpfile_with("nopvh", img, len), "PVH");
	free(img);
}

Test(bad_input, initrd_larger_than_ram)
{
	const char *big = tmpfile_with("big-initrd", "x", 1);
	const char *argv[] = {
	    hutch_bin(), "boot", "--kernel", guest_file("vmlinux"),
	    "--initrd",	 big,	 "--mem",    "64",
	    NULL};

	/* Sparse: 200 MiB of initrd for a 64 MiB guest. */
	cr_assert_eq(truncate(big, 200 << 20), 0);
	expect_one_line_error(argv, 1, "does not fit", (uid_t)-1);
}

Test(bad_input, missing_initrd)
{
	const char *argv[] = {hutch_bin(), "boot",
			      "--kernel",  guest_file("vmlinux"),
			      "--initrd",  "/nonexistent/initrd",
			      NULL};

	expect_one_line_error(argv, 1, "No such file", (uid_t)-1);
}

Test(bad_input, zero_memory)
{
	const char *argv[] = {
	    hutch_bin(), "boot", "--kernel", guest_file("vmlinux"),
	    "--mem",	 "0",	 NULL};

	expect_one_line_error(argv, 2, "--mem", (uid_t)-1);
}

Test(bad_input, absurd_memory)
{
	const char *argv[] = {
	    hutch_bin(), "boot",    "--kernel", guest_file("vmlinux"),
	    "--mem",	 "1000000", NULL};
	const char *argv2[] = {hutch_bin(), "boot",
			       "--kernel",  guest_file("vmlinux"),
			       "--mem",	    "99999999999999999999",
			       NULL};

	expect_one_line_error(argv, 1, "more than this host", (uid_t)-1);
	expect_one_line_error(argv2, 2, "--mem", (uid_t)-1);
}

Test(bad_input, too_little_memory_for_kernel)
{
	const char *argv[] = {
	    hutch_bin(), "boot", "--kernel", guest_file("bzImage"),
	    "--mem",	 "8",	 NULL};

	expect_one_line_error(argv, 1, "raise --mem", (uid_t)-1);
}

Test(bad_input, overlong_command_line)
{
	char *line = malloc(3000);
	const char *argv[] = {
	    hutch_bin(), "boot", "--kernel", guest_file("vmlinux"),
	    "--cmdline", line,	 NULL};

	memset(line, 'x', 2999);
	line[2999] = 0;
	expect_one_line_error(argv, 1, "command line", (uid_t)-1);
	free(line);
}

Test(bad_input, bad_cpu_count)
{
	const char *argv[] = {
	    hutch_bin(), "boot", "--kernel", guest_file("vmlinux"),
	    "--cpus",	 "0",	 NULL};

	expect_one_line_error(argv, 2, "--cpus", (uid_t)-1);
}

Test(bad_input, no_permission_on_kvm_device)
{
	/* A KVM device node we may not open: a file with mode 0, opened by
	 * an unprivileged user (root would bypass the mode). */
	const char *dev = tmpfile_with("kvm", "", 0);
	char copy[512], cmd[1200];
	const char *argv[] = {copy, "boot", "--kernel", guest_file("vmlinux"),
			      NULL};
	uid_t uid = geteuid() == 0 ? 65534 : (uid_t)-1;

	cr_assert_eq(chmod(dev, 0), 0);
	cr_assert_eq(chmod(tmpdir, 0755), 0);
	/* The unprivileged user must reach the binary itself: the checkout
	 * may sit where it cannot (/root is 0700). */
	snprintf(copy, sizeof(copy), "%s/hutch-copy", tmpdir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0755 '%s'",
		 hutch_bin(), copy, copy);
	cr_assert_eq(system(cmd), 0);
	setenv("HUTCH_KVM_DEVICE", dev, 1);
	expect_one_line_error(argv, 1, "no permission", uid);
}

Test(bad_input, unknown_command_and_option)
{
	const char *a1[] = {hutch_bin(), "frobnicate", NULL};
	const char *a2[] = {hutch_bin(), "boot", "--bogus", NULL};

	expect_one_line_error(a1, 2, "unknown command", (uid_t)-1);
	expect_one_line_error(a2, 2, "unknown option", (uid_t)-1);
}

/* --- Drives */

static void drive_expect(const char *spec, int code, const char *needle)
{
	const char *argv[] = {hutch_bin(), "boot",
			      "--kernel",  guest_file("vmlinux"),
			      "--initrd",  guest_file("initramfs.cpio"),
			      "--cmdline", "quiet -- true",
			      "--drive",   spec,
			      NULL};

	expect_one_line_error(argv, code, needle, (uid_t)-1);
}

static const char *disk_image(const char *name, size_t size)
{
	const char *p = tmpfile_with(name, "", 0);

	cr_assert_eq(truncate(p, (off_t)size), 0);
	return p;
}

static char *spec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *spec(const char *fmt, ...)
{
	static char buf[4][512];
	static unsigned next;
	char *b = buf[next++ % 4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof(buf[0]), fmt, ap);
	va_end(ap);
	return b;
}

Test(bad_input, drive_image_missing_or_not_sectors)
{
	drive_expect("path=/nonexistent/disk.img", 1, "No such file");
	drive_expect(spec("path=%s", disk_image("odd.img", 1000)), 1,
		     "not a positive multiple of 512");
	drive_expect(spec("path=%s", disk_image("empty.img", 0)), 1,
		     "not a positive multiple of 512");
	drive_expect(spec("path=%s", tmpdir), 1, "Is a directory");
}

Test(bad_input, drive_option_syntax)
{
	const char *img = disk_image("ok.img", 1 << 20);

	drive_expect("ro,root", 2, "path=FILE is required");
	drive_expect(spec("path=%s,bogus=1", img), 2, "unknown key 'bogus");
	drive_expect(spec("path=%s,ro=yes", img), 2, "ro takes no value");
	drive_expect(spec("path=%s,overlay=", img), 2, "overlay= needs");
	drive_expect(spec("path=%s,ro,overlay=%s/o.cow", img, tmpdir), 2,
		     "exclude each other");
	drive_expect(spec("path=%s,serial=123456789012345678901", img), 2,
		     "longer than 20");
}

Test(bad_input, two_root_drives_and_too_many)
{
	const char *img = disk_image("ok.img", 1 << 20);
	char *root = spec("path=%s,root", img);
	const char *a1[] = {hutch_bin(), "boot", "--drive", root,
			    "--drive",	 root,	 NULL};
	const char *a2[24] = {hutch_bin(), "boot"};

	expect_one_line_error(a1, 2, "only one drive can be root", (uid_t)-1);
	for (int i = 0; i < 9; i++) {
		a2[2 + 2 * i] = "--drive";
		a2[3 + 2 * i] = spec("path=%s", img);
	}
	expect_one_line_error(
	    a2, 2, "--drive: given more than 8 times: at most 8 allowed",
	    (uid_t)-1);
}

Test(bad_input, unusable_overlays)
{
	const char *img = disk_image("base.img", 1 << 20);
	char junk[8192];

	memset(junk, 'j', sizeof(junk));
	drive_expect(spec("path=%s,overlay=/nonexistent/dir/o.cow", img), 1,
		     "cannot open overlay");
	drive_expect(spec("path=%s,overlay=%s", img, tmpdir), 1,
		     "cannot open overlay");
	drive_expect(spec("path=%s,overlay=%s", img,
			  tmpfile_with("junk.cow", junk, sizeof(junk))),
		     1, "not a hutch overlay");
	drive_expect(spec("path=%s,overlay=%s", img,
			  tmpfile_with("short.cow", "HUTCHCOW", 8)),
		     1, "not a hutch overlay");
}

/* Lock path here as another hutch using it would (flock, how). */
static int hold_lock(const char *path, int how)
{
	int fd = open(path, O_RDONLY);

	cr_assert(fd >= 0, "open %s", path);
	cr_assert_eq(flock(fd, how | LOCK_NB), 0);
	return fd;
}

/* Files another VM uses: refused with one line, nothing else touched. */
Test(bad_input, drives_in_use_by_another_vm)
{
	const char *img = disk_image("base.img", 1 << 20);
	char ov[300], fresh[300];
	struct stat st;
	int fd;

	/* An overlay another VM writes: refused, and not formatted. */
	snprintf(ov, sizeof(ov), "%s/held.cow", tmpdir);
	tmpfile_with("held.cow", "", 0);
	fd = hold_lock(ov, LOCK_EX);
	drive_expect(spec("path=%s,overlay=%s", img, ov), 1,
		     "is in use by another VM");
	cr_assert_eq(stat(ov, &st), 0);
	cr_assert_eq(st.st_size, 0, "the overlay in use was changed");
	close(fd);

	/* An image another VM writes: not as a drive of any kind. */
	snprintf(fresh, sizeof(fresh), "%s/fresh.cow", tmpdir);
	fd = hold_lock(img, LOCK_EX);
	drive_expect(spec("path=%s", img), 1, "is in use by another VM");
	drive_expect(spec("path=%s,ro", img), 1,
		     "is being written by another VM");
	drive_expect(spec("path=%s,overlay=%s", img, fresh), 1,
		     "is being written by another VM");
	cr_assert_neq(stat(fresh, &st), 0, "an overlay was created");
	close(fd);

	/* An image others read (read-only, or as a base): not writable. */
	fd = hold_lock(img, LOCK_SH);
	drive_expect(spec("path=%s", img), 1, "is in use by another VM");
	close(fd);
}

/* An overlay path that is a symbolic link (say, planted in a shared
 * directory) would make hutch create or format the file it names. */
Test(bad_input, overlay_path_is_a_symlink)
{
	const char *img = disk_image("base.img", 1 << 20);
	char link[300], target[300];
	struct stat st;

	snprintf(link, sizeof(link), "%s/link.cow", tmpdir);
	snprintf(target, sizeof(target), "%s/elsewhere", tmpdir);
	cr_assert_eq(symlink(target, link), 0);
	drive_expect(spec("path=%s,overlay=%s", img, link), 1,
		     "is a symbolic link");
	cr_assert_neq(stat(target, &st), 0, "the link's target was created");
}

/* Make a valid overlay by booting once, then change the base under it. */
Test(bad_input, base_changed_under_overlay)
{
	const char *img = disk_image("base.img", 4 << 20);
	char ov[300];
	const char *argv[] = {hutch_bin(), "boot",
			      "--kernel",  guest_file("vmlinux"),
			      "--initrd",  guest_file("initramfs.cpio"),
			      "--cmdline", "quiet -- true",
			      "--drive",   spec("path=%s,overlay=%s", img, ov),
			      NULL};
	struct run_result r;
	struct stat st;
	int fd;

	snprintf(ov, sizeof(ov), "%s/o.cow", tmpdir);
	argv[9] = spec("path=%s,overlay=%s", img, ov);
	run_cmd(argv, TIMEOUT, (uid_t)-1, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	/* hutch made the overlay private to its user. */
	cr_assert_eq(stat(ov, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "overlay mode %o",
		     (unsigned)(st.st_mode & 0777));

	/* Flip one byte of the header's checksummed area. */
	fd = open(ov, O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, "\x02", 1, 8), 1);
	close(fd);
	drive_expect(spec("path=%s,overlay=%s", img, ov), 1,
		     "unsupported overlay version");
	cr_assert_eq(pwrite(fd = open(ov, O_RDWR), "\x01", 1, 8), 1);
	cr_assert_eq(pwrite(fd, "\xff", 1, 20), 1);
	close(fd);
	drive_expect(spec("path=%s,overlay=%s", img, ov), 1, "checksum");
	cr_assert_eq(pwrite(fd = open(ov, O_RDWR), "\x00", 1, 20), 1);
	close(fd);

	/* The base gets one byte written where the fingerprint samples. */
	fd = open(img, O_RDWR);
	cr_assert_eq(pwrite(fd, "x", 1, 1024), 1);
	close(fd);
	drive_expect(spec("path=%s,overlay=%s", img, ov), 1,
		     "base image changed since the overlay was made");
	/* ... or grows. */
	cr_assert_eq(truncate(img, 8 << 20), 0);
	drive_expect(spec("path=%s,overlay=%s", img, ov), 1, "changed size");
}
