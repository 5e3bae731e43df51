// SPDX-License-Identifier: MIT
/*
 * virtio-blk on real KVM: the Debian root filesystem, data surviving a
 * killed VMM after the guest synced, overlays left consistent by a VMM
 * killed in the middle of writes, read-only drives, copy-on-write
 * overlays shared by concurrent VMs, and a guest that plays a hostile
 * driver against the device registers.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/run.h"

#define BOOT_TIMEOUT 600 /* one timeout for the suite: see tests/meson.build   \
			  */

static char tmpdir[] = "/tmp/hutch-disk-XXXXXX";

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

TestSuite(disk, .init = setup, .fini = teardown, .timeout = BOOT_TIMEOUT);

static const char *tmp_path(const char *name)
{
	static char path[8][256];
	static unsigned next;
	char *p = path[next++ % 8];

	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	return p;
}

/* A shell command that must succeed. */
static void sh_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh_ok(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(sh("%s", cmd), 0, "failed: %s", cmd);
}

/* A sparse copy of a built image (the originals stay pristine). */
static const char *image_copy(const char *image, const char *name)
{
	const char *dst = tmp_path(name);

	sh_ok("cp --sparse=always '%s' '%s'", guest_file(image), dst);
	return dst;
}

static char *file_sha(const char *path)
{
	char cmd[512], *line = NULL;
	size_t cap = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	p = popen(cmd, "r");
	cr_assert(p);
	cr_assert(getline(&line, &cap, p) > 64);
	pclose(p);
	line[64] = 0;
	return line;
}

/* Boot the test initramfs with the given drives and init command. */
static void boot_drives(const char *const drives[], const char *init_cmd,
			const char *mem, struct run_result *r,
			const char *kill_marker)
{
	const char *argv[32];
	char cmdline[1024];
	unsigned n = 0;

	snprintf(cmdline, sizeof(cmdline), "quiet -- %s", init_cmd);
	argv[n++] = hutch_bin();
	argv[n++] = "boot";
	argv[n++] = "--mem";
	argv[n++] = mem;
	argv[n++] = "--cmdline";
	argv[n++] = cmdline;
	for (unsigned i = 0; drives[i]; i++) {
		argv[n++] = "--drive";
		argv[n++] = drives[i];
	}
	argv[n] = NULL;
	if (kill_marker)
		run_cmd_kill_on(argv, kill_marker, BOOT_TIMEOUT, r);
	else
		run_cmd(argv, BOOT_TIMEOUT, (uid_t)-1, r);
}

static void assert_clean_exit(struct run_result *r)
{
	cr_assert_eq(r->status, 0, "exit %d\nstdout:\n%s\nstderr:\n%s",
		     r->status, r->out, r->err);
	cr_assert(strstr(r->out, "hutch-init: exit status 0"), "%s", r->out);
}

static void assert_out(struct run_result *r, const char *needle)
{
	cr_assert(strstr(r->out, needle), "missing '%s' in:\n%s\nstderr:\n%s",
		  needle, r->out, r->err);
}

Test(disk, debian_rootfs_runs_python_and_git)
{
	char drive[512];
	struct run_result r;

	snprintf(drive, sizeof(drive), "path=%s,root,overlay=%s",
		 guest_file("debian.ext4"), tmp_path("debian.cow"));
	boot_drives(
	    (const char *const[]){drive, NULL},
	    "sh -c \"python3 -c 'print(6*7)' && cd /tmp && git init -q "
	    "r && cd r && git -c user.name=t -c user.email=t@t commit "
	    "-q --allow-empty -m m && git --no-pager log --format=commit:%s\"",
	    "512", &r, NULL);
	assert_clean_exit(&r);
	assert_out(&r, "\n42");
	assert_out(&r, "commit:m");
	run_free(&r);
}

/* The guest syncs, says so, and the VMM is killed -9 right then: a boot
 * afterwards finds the file (nothing lost after a flush). */
static void kill_after_sync(const char *drive)
{
	struct run_result r;

	boot_drives((const char *const[]){drive, NULL},
		    "sh -c \"echo precious-data > /kept && sync && echo "
		    "SYNCED && sleep 600\"",
		    "128", &r, "SYNCED");
	cr_assert_eq(r.status, 128 + 9, "exit %d\n%s\n%s", r.status, r.out,
		     r.err);
	run_free(&r);
	boot_drives((const char *const[]){drive, NULL}, "cat /kept", "128", &r,
		    NULL);
	assert_clean_exit(&r);
	assert_out(&r, "precious-data");
	run_free(&r);
}

Test(disk, synced_data_survives_kill_9_raw)
{
	char drive[512];

	snprintf(drive, sizeof(drive), "path=%s,root",
		 image_copy("busybox.ext4", "raw.ext4"));
	kill_after_sync(drive);
}

Test(disk, synced_data_survives_kill_9_overlay)
{
	char drive[512];

	snprintf(drive, sizeof(drive), "path=%s,root,overlay=%s",
		 guest_file("busybox.ext4"), tmp_path("kill.cow"));
	kill_after_sync(drive);
}

/*
 * Crash safety of overlays (README, "Overlay file format"): a guest
 * rewrites its disk in whole clusters, O_DIRECT, 8 MiB at a time, and
 * hutch is killed -9 at a random moment while it writes.  Every cluster,
 * read the way the format says (bit set: the overlay's data; clear: the
 * base's), must then be the old pattern or the new one, never zeros nor
 * a mix.  Rounds with the overlay on tmpfs take hutch's synchronous path
 * (no O_DIRECT there); rounds on ext4 take Linux AIO.
 */
#define CRASH_DISK_SIZE (128u << 20)
#define CRASH_CLUSTER	4096u
#define OLD_BYTE	0x55
#define NEW_BYTE	0xaa

struct crash_count {
	unsigned old_clusters, new_clusters, bad_clusters;
	long first_bad; /* a cluster that was neither, or -1 */
	int bad_byte;
};

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Count the disk's clusters as the overlay format reads them: bit set,
 * the overlay's data; clear, the base's (all OLD_BYTE, checked apart). */
static void count_clusters(const char *ov, struct crash_count *n)
{
	const unsigned nclusters = CRASH_DISK_SIZE / CRASH_CLUSTER;
	uint8_t hdr[4096], *bitmap = malloc(nclusters / 8), buf[CRASH_CLUSTER];
	int fd = open(ov, O_RDONLY);
	uint64_t data_off;

	cr_assert(bitmap && fd >= 0);
	cr_assert_eq(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	cr_assert_arr_eq(hdr, "HUTCHCOW", 8, "not an overlay");
	data_off = le64_at(hdr + 48);
	cr_assert_eq(pread(fd, bitmap, nclusters / 8, (off_t)le64_at(hdr + 32)),
		     (ssize_t)(nclusters / 8));
	memset(n, 0, sizeof(*n));
	n->first_bad = -1;
	for (unsigned c = 0; c < nclusters; c++) {
		unsigned same = 1;

		if (!(bitmap[c / 8] & (1u << (c % 8)))) {
			n->old_clusters++;
			continue;
		}
		cr_assert_eq(
		    pread(fd, buf, sizeof(buf),
			  (off_t)(data_off + (uint64_t)c * CRASH_CLUSTER)),
		    (ssize_t)sizeof(buf));
		while (same < sizeof(buf) && buf[same] == buf[0])
			same++;
		if (same == sizeof(buf) && buf[0] == OLD_BYTE) {
			n->old_clusters++;
		} else if (same == sizeof(buf) && buf[0] == NEW_BYTE) {
			n->new_clusters++;
		} else if (!n->bad_clusters++) {
			n->first_bad = c;
			n->bad_byte = same < sizeof(buf) ? buf[same] : buf[0];
		}
	}
	free(bitmap);
	close(fd);
}

/* A file of size bytes, all byte. */
static void fill_file(const char *path, uint64_t size, uint8_t byte)
{
	static uint8_t buf[1 << 20];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert(fd >= 0);
	memset(buf, byte, sizeof(buf));
	for (uint64_t off = 0; off < size; off += sizeof(buf))
		cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(fd);
}

/* A directory on tmpfs for overlays that hutch must write synchronously,
 * or NULL where there is none. */
static bool make_tmpfs_dir(char *dir, size_t len)
{
	struct statfs st;

	if (statfs("/dev/shm", &st) || st.f_type != 0x01021994 /* tmpfs */)
		return false;
	snprintf(dir, len, "/dev/shm/hutch-crash-XXXXXX");
	return mkdtemp(dir) != NULL;
}

Test(disk, killed_vmm_leaves_overlay_clusters_old_or_new)
{
	const char *base = tmp_path("crash-base.img");
	char drive[600], cmd[600], ov[300], shm[64], *before, *after;
	unsigned mid_write = 0;
	struct run_result r;

	fill_file(base, CRASH_DISK_SIZE, OLD_BYTE);
	before = file_sha(base);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int round = 0; round < 5; round++) {
		bool sync_path = round < 3 && make_tmpfs_dir(shm, sizeof(shm));
		unsigned delay_ms = 300 + (unsigned)rand() % 1000;
		const char *how =
		    sync_path ? "tmpfs: synchronous" : "ext4: AIO";
		struct crash_count n;
		bool all_written;

		snprintf(ov, sizeof(ov), "%s/crash%d.cow",
			 sync_path ? shm : tmpdir, round);
		snprintf(drive, sizeof(drive),
			 "path=%s,serial=crash,overlay=%s", base, ov);
		/* An 8 MiB file of the new byte (doubled from one), then
		 * dd of it, O_DIRECT, onto fresh clusters until killed. */
		snprintf(
		    cmd, sizeof(cmd),
		    "sh -c \"printf '\\%03o' > /p; for i in $(seq 23); do "
		    "cat /p /p > /q; mv /q /p; done; echo WRITING; (i=0; "
		    "while dd if=/p of=/dev/vda bs=8M seek=$i oflag=direct "
		    "2>/dev/null; do i=$((i+1)); done; echo WROTE-ALL) & "
		    "usleep %u; echo KILL-NOW; sleep 600\"",
		    NEW_BYTE, delay_ms * 1000);
		boot_drives((const char *const[]){drive, NULL}, cmd, "256", &r,
			    "KILL-NOW");
		count_clusters(ov, &n);
		unlink(ov);
		if (sync_path)
			rmdir(shm);
		all_written = strstr(r.out, "WROTE-ALL");
		fprintf(stderr,
			"crash round %d (%s), killed %u ms after writing "
			"began: %u clusters new, %u old, %u neither%s\n",
			round, how, delay_ms, n.new_clusters, n.old_clusters,
			n.bad_clusters, all_written ? " (all written)" : "");
		cr_assert_eq(r.status, 128 + 9, "exit %d\n%s\n%s", r.status,
			     r.out, r.err);
		cr_assert(strstr(r.out, "WRITING"), "%s", r.out);
		cr_assert_eq(n.bad_clusters, 0,
			     "round %d (%s, %u ms): %u clusters neither old "
			     "nor new, the first %ld (byte 0x%02x)",
			     round, how, delay_ms, n.bad_clusters, n.first_bad,
			     n.bad_byte);
		mid_write += n.new_clusters > 0 && !all_written;
		run_free(&r);
	}
	after = file_sha(base);
	cr_assert_str_eq(before, after, "base image changed");
	/* Otherwise no kill landed while the guest was writing. */
	cr_assert_gt(mid_write, 0, "no round was killed mid-write");
	free(before);
	free(after);
}

/* Read fd into out (NUL-terminated, cap bytes) until it holds needle or
 * the deadline passes. */
static void read_until(int fd, char *out, size_t cap, const char *needle,
		       time_t deadline)
{
	size_t used = strlen(out);

	while (!strstr(out, needle) && time(NULL) < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 1000) <= 0)
			continue;
		n = read(fd, out + used, cap - 1 - used);
		if (n <= 0)
			break;
		used += (size_t)n;
		out[used] = 0;
	}
}

/*
 * Two VMMs on one overlay would corrupt it (each keeps its own bitmap):
 * while one runs, a second hutch given the same overlay refuses with one
 * line and exit 1, and the first carries on.
 */
Test(disk, a_second_vmm_on_the_same_overlay_is_refused)
{
	static char out[65536];
	char drive[600];
	const char *argv[] = {hutch_bin(),
			      "boot",
			      "--mem",
			      "128",
			      "--cmdline",
			      "quiet -- sh -c \"echo FIRST-VM-UP; read x; echo "
			      "STILL-UP-$x\"",
			      "--drive",
			      drive,
			      NULL};
	/* Quick to fail if it does boot: it needs no input. */
	const char *second[] = {hutch_bin(), "boot",	  "--mem",
				"128",	     "--cmdline", "quiet -- true",
				"--drive",   drive,	  NULL};
	time_t deadline = time(NULL) + BOOT_TIMEOUT - 60;
	int to_vm[2], from_vm[2], st;
	struct run_result r;
	pid_t pid;

	snprintf(drive, sizeof(drive), "path=%s,overlay=%s",
		 guest_file("busybox.ext4"), tmp_path("shared.cow"));
	cr_assert_eq(pipe2(to_vm, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(from_vm, O_CLOEXEC), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(to_vm[0], 0);
		dup2(from_vm[1], 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(to_vm[0]);
	close(from_vm[1]);
	out[0] = 0;
	read_until(from_vm[0], out, sizeof(out), "FIRST-VM-UP", deadline);
	if (!strstr(out, "FIRST-VM-UP"))
		kill(pid, SIGKILL);
	cr_assert(strstr(out, "FIRST-VM-UP"), "first VM not up:\n%s", out);
	/* It holds the overlay now. */
	run_cmd(second, 60, (uid_t)-1, &r);
	if (write(to_vm[1], "ok\n", 3) == 3)
		read_until(from_vm[0], out, sizeof(out), "hutch-init: exit",
			   deadline);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	close(to_vm[1]);
	close(from_vm[0]);
	cr_assert_eq(r.status, 1, "second VMM: exit %d\n%s\n%s", r.status,
		     r.out, r.err);
	cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.err, "hutch: overlay ") &&
		      strstr(r.err, "is in use by another VM"),
		  "%s", r.err);
	cr_assert_eq(r.out_len, 0, "%s", r.out);
	run_free(&r);
	/* The first carried on undisturbed. */
	cr_assert(strstr(out, "STILL-UP-ok"), "first VM:\n%s", out);
}

Test(disk, read_only_drive_refuses_writes)
{
	const char *img = tmp_path("ro.img");
	char drive[512], *before, *after;
	struct run_result r;

	sh_ok("head -c 4M /dev/urandom > '%s'", img);
	before = file_sha(img);
	snprintf(drive, sizeof(drive), "path=%s,ro,serial=ro-disk", img);
	/* The kernel sees a read-only disk; a raw OUT request sent past the
	 * kernel (driver unbound, /dev/mem) gets VIRTIO_BLK_S_IOERR. */
	boot_drives(
	    (const char *const[]){drive, NULL},
	    "sh -c \"cat /sys/block/vda/ro; dd if=/dev/zero of=/dev/vda "
	    "bs=512 count=1 || echo dd-refused; echo virtio0 > "
	    "/sys/bus/virtio/drivers/virtio_blk/unbind; virtio-poke "
	    "write 0xd0000000\"",
	    "128", &r, NULL);
	assert_clean_exit(&r);
	assert_out(&r, "\n1\r\n");
	assert_out(&r, "dd-refused");
	assert_out(&r, "write status 1");
	after = file_sha(img);
	cr_assert_str_eq(before, after, "read-only image changed");
	free(before);
	free(after);
	run_free(&r);
}

Test(disk, overlays_keep_two_vms_apart_and_base_unchanged)
{
	const char *base = image_copy("busybox.ext4", "base.ext4");
	char *before = file_sha(base), *after;
	char drive[2][512], cmd[2][128];
	pid_t pid[2];
	struct run_result r;

	chmod(base, 0444);
	/* Both VMs at once on the same base, each writing its own file. */
	for (int i = 0; i < 2; i++) {
		snprintf(drive[i], sizeof(drive[i]),
			 "path=%s,root,overlay=%s/vm%d.cow", base, tmpdir, i);
		snprintf(
		    cmd[i], sizeof(cmd[i]),
		    "sh -c \"echo vm%d > /mine; echo hi > /vm%d-was-here\"", i,
		    i);
		pid[i] = fork();
		cr_assert(pid[i] >= 0);
		if (pid[i] == 0) {
			boot_drives((const char *const[]){drive[i], NULL},
				    cmd[i], "128", &r, NULL);
			_exit(r.status == 0 &&
				      strstr(r.out, "hutch-init: exit status 0")
				  ? 0
				  : 1);
		}
	}
	for (int i = 0; i < 2; i++) {
		int st;

		cr_assert_eq(waitpid(pid[i], &st, 0), pid[i]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "VM %d failed",
			  i);
	}
	for (int i = 0; i < 2; i++) {
		char want[32], other[32];

		boot_drives((const char *const[]){drive[i], NULL},
			    "sh -c \"cat /mine; ls /\"", "128", &r, NULL);
		assert_clean_exit(&r);
		snprintf(want, sizeof(want), "vm%d\r\n", i);
		snprintf(other, sizeof(other), "vm%d", 1 - i);
		assert_out(&r, want);
		cr_assert(!strstr(r.out, other), "VM %d sees VM %d's file:\n%s",
			  i, 1 - i, r.out);
		run_free(&r);
	}
	after = file_sha(base);
	cr_assert_str_eq(before, after, "base image changed");
	free(before);
	free(after);
}

Test(disk, hostile_driver_breaks_only_its_device)
{
	const char *a = tmp_path("a.img"), *b = tmp_path("b.img");
	char da[300], db[300];
	struct run_result r;

	sh_ok("truncate -s 64M '%s' '%s'", a, b);
	snprintf(da, sizeof(da), "path=%s", a);
	snprintf(db, sizeof(db), "path=%s,serial=poke-me", b);
	boot_drives(
	    (const char *const[]){da, db, NULL},
	    "sh -c \"echo virtio1 > /sys/bus/virtio/drivers/virtio_blk/unbind "
	    "&& virtio-poke loop 0xd0001000 && virtio-poke getid 0xd0001000 "
	    "&& virtio-poke garbage 0xd0001000 7 200000 && virtio-poke getid "
	    "0xd0001000 && dd if=/dev/urandom of=/x bs=64k count=16 "
	    "2>/dev/null "
	    "&& dd if=/x of=/dev/vda bs=64k 2>/dev/null && sync && echo 3 > "
	    "/proc/sys/vm/drop_caches && dd if=/dev/vda bs=64k count=16 "
	    "2>/dev/null | cmp - /x && echo vda-intact\"",
	    "128", &r, NULL);
	assert_clean_exit(&r);
	/* The looping chain put the device into DEVICE_NEEDS_RESET and told
	 * the driver; a reset brought it back. */
	assert_out(&r, "needs-reset: yes");
	assert_out(&r, "config interrupt: yes");
	assert_out(&r, "id: poke-me status 0");
	assert_out(&r, "garbage done");
	assert_out(&r, "vda-intact");
	cr_assert(strstr(r.err, "guest driver error"), "%s", r.err);
	run_free(&r);
}

Test(disk, several_drives_discard_and_serials)
{
	const char *a = tmp_path("a.img"), *b = tmp_path("b.img"),
		   *c = tmp_path("c.img");
	char da[300], db[300], dc[300];
	struct stat st;
	struct run_result r;

	sh_ok("truncate -s 8M '%s' && truncate -s 16M '%s' && truncate -s 24M "
	      "'%s'",
	      a, b, c);
	snprintf(da, sizeof(da), "path=%s,serial=first", a);
	snprintf(db, sizeof(db), "path=%s,serial=second", b);
	snprintf(dc, sizeof(dc), "path=%s", c);
	/* Fill vdc, then discard all of it: the host file gets its holes
	 * back, and the guest reads zeros. */
	boot_drives(
	    (const char *const[]){da, db, dc, NULL},
	    "sh -c \"cat /sys/block/vda/serial /sys/block/vdb/serial "
	    "/sys/block/vdc/serial; echo; cat /proc/partitions; "
	    "dd if=/dev/urandom of=/dev/vdc bs=1M count=24 2>/dev/null; "
	    "sync; blkdiscard /dev/vdc && echo 3 > "
	    "/proc/sys/vm/drop_caches && dd if=/dev/vdc bs=1M count=24 "
	    "2>/dev/null | tr -d '\\000' | wc -c\"",
	    "256", &r, NULL);
	assert_clean_exit(&r);
	assert_out(&r, "first");
	assert_out(&r, "second");
	assert_out(&r, "hutch-2");
	assert_out(&r, "8192 vda");
	assert_out(&r, "16384 vdb");
	assert_out(&r, "24576 vdc");
	assert_out(&r, "\n0\r\n"); /* no non-zero byte left */
	cr_assert_eq(stat(c, &st), 0);
	cr_assert_lt(st.st_blocks * 512, 2 << 20,
		     "discarded image still uses %lld bytes",
		     (long long)st.st_blocks * 512);
	run_free(&r);
}
