// SPDX-License-Identifier: MIT
/*
 * Snapshots on real KVM: hutch snapshot, restore and run --from, with the
 * guest's processes, tmpfs and disk carrying on where they were; each
 * restored VM writing only to its own overlay; bad snapshots refused
 * before any VM starts; an interrupted or failed snapshot never
 * damaging the one already there.
 *
 * The VMs run the Debian root image's copy here (its own file, so the
 * "base image changed" case can change it) with 256 MiB.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "support/run.h"

#define TIMEOUT 900

static char state[] = "/tmp/hutch-snap-XXXXXX";

/* VMs under state/vms (HUTCH_STATE_DIR); snapshots and the image beside
 * it, so hutch ls shows only VMs. */
static void setup(void)
{
	char vms[64];

	cr_assert(mkdtemp(state));
	snprintf(vms, sizeof(vms), "%s/vms", state);
	cr_assert_eq(mkdir(vms, 0700), 0);
	setenv("HUTCH_STATE_DIR", vms, 1);
}

static void teardown(void)
{
	char cmd[1024];

	/* Every VM this suite started, whatever its name. */
	snprintf(
	    cmd, sizeof(cmd),
	    "for d in %s/vms/*/; do [ -e \"$d/pid\" ] && '%s' stop "
	    "\"$(basename \"$d\")\" >/dev/null 2>&1; done; umount %s/small "
	    "2>/dev/null; rm -rf %s",
	    state, hutch_bin(), state, state);
	if (system(cmd) != 0)
		fprintf(stderr, "teardown: %s\n", cmd);
}

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = TIMEOUT);

#define H hutch_bin()

/* The root image: the shared Debian image, read-only under each VM's
 * overlay (copies of it cost the L1 hundreds of MiB of writes). */
static const char *image(void)
{
	return guest_file("debian.ext4");
}

static void start_vm(const char *name)
{
	cr_assert_eq(sh("'%s' start --mem 256 --rootfs %s %s >/dev/null", H,
			image(), name),
		     0, "hutch start %s failed", name);
}

static void snapshot(const char *name, const char *dir)
{
	cr_assert_eq(sh("'%s' snapshot %s %s/%s", H, name, state, dir), 0,
		     "hutch snapshot %s failed", name);
}

static long counter(const char *name)
{
	char *out = sh_out("'%s' exec %s -- cat /tmp/t/count", H, name);
	long v = strtol(out, NULL, 10);

	free(out);
	return v;
}

/* A VM with a counter ticking every 10 ms in tmpfs and a file on its
 * disk, snapshotted into dir. */
static void prepared(const char *name, const char *dir)
{
	start_vm(name);
	cr_assert_eq(
	    sh("'%s' exec %s -- sh -c 'mkdir -p /tmp/t && echo in-tmpfs > "
	       "/tmp/t/file && echo on-disk > "
	       "/root/file && sync && setsid sh -c \"i=0; while :; do "
	       "i=\\$((i+1)); echo \\$i > /tmp/t/count; sleep 0.01; done\" "
	       "</dev/null >/dev/null 2>&1 &'",
	       H, name),
	    0);
	sleep(1);
	cr_assert_gt(counter(name), 0, "the counter does not run");
	snapshot(name, dir);
}

Test(snapshot, a_restored_vm_carries_on_where_it_was)
{
	long at_snapshot, after, later;
	char *out;

	prepared("src", "snap");
	at_snapshot = counter("src");
	cr_assert_eq(sh("'%s' restore %s/snap dst >/dev/null", H, state), 0);
	/* exec works at once, and the counter goes on from where it was
	 * (not from zero, not stuck). */
	after = counter("dst");
	cr_assert_gt(after, 0);
	sleep(1);
	later = counter("dst");
	cr_assert_gt(later, after, "the counter stopped after restore");
	cr_assert_leq(after, at_snapshot + 2000);
	out = sh_out("'%s' exec dst -- cat /tmp/t/file /root/file", H);
	cr_assert_str_eq(out, "in-tmpfs\non-disk");
	free(out);

	/* The restored VM writes to its own overlay only. */
	cr_assert_eq(sh("'%s' exec dst -- sh -c 'echo dst > /root/own && "
			"sync'",
			H),
		     0);
	cr_assert_neq(sh("'%s' exec src -- test -e /root/own", H), 0);

	/* And can itself be snapshotted and restored. */
	snapshot("dst", "snap2");
	cr_assert_eq(sh("'%s' restore %s/snap2 third >/dev/null", H, state), 0);
	out = sh_out("'%s' exec third -- cat /root/own /tmp/t/file", H);
	cr_assert_str_eq(out, "dst\nin-tmpfs");
	free(out);
	cr_assert_gt(counter("third"), later);
}

Test(snapshot, run_from_restores_a_throw_away_vm)
{
	char *out;

	prepared("warm", "snap");
	out = sh_out("'%s' run --from %s/snap -- cat /root/file", H, state);
	cr_assert_str_eq(out, "on-disk");
	free(out);
	/* Nothing of that run is left, and the source runs on. */
	out = sh_out("'%s' ls | wc -l", H);
	cr_assert_str_eq(out, "2", "ls: the header and warm, not %s", out);
	free(out);
	cr_assert_gt(counter("warm"), 0);
}

#define CLONES 8

Test(snapshot, clones_run_at_once_with_their_own_disk_and_random_numbers)
{
	char *urandom[CLONES], *pyrandom[CLONES];

	prepared("base", "snap");
	/* Each reads its randomness right after its restore; all of them
	 * stay up. */
	for (int i = 0; i < CLONES; i++) {
		cr_assert_eq(
		    sh("'%s' restore %s/snap clone%d >/dev/null", H, state, i),
		    0);
		urandom[i] = sh_out("'%s' exec clone%d -- sh -c 'head -c 32 "
				    "/dev/urandom | od -An -tx1 | tr -dc "
				    "0-9a-f'",
				    H, i);
		pyrandom[i] = sh_out("'%s' exec clone%d -- python3 -c 'import "
				     "os; print(os.urandom(32).hex())'",
				     H, i);
		cr_assert_eq(strlen(urandom[i]), 64, "clone%d: %s", i,
			     urandom[i]);
		cr_assert_eq(strlen(pyrandom[i]), 64, "clone%d: %s", i,
			     pyrandom[i]);
	}
	for (int i = 0; i < CLONES; i++)
		for (int j = 0; j < i; j++) {
			cr_assert_str_neq(urandom[i], urandom[j],
					  "clones %d and %d read the same "
					  "/dev/urandom bytes",
					  i, j);
			cr_assert_str_neq(pyrandom[i], pyrandom[j],
					  "clones %d and %d got the same "
					  "os.urandom",
					  i, j);
		}
	/* Because their kernels saw a new VM generation. */
	cr_assert_eq(sh("'%s' exec clone0 -- sh -c 'dmesg | grep -q \"crng "
			"reseeded due to virtual machine fork\"'",
			H),
		     0, "the guest's RNG did not reseed on restore");

	/* Each writes to its own overlay and reads back only its own. */
	for (int i = 0; i < CLONES; i++)
		cr_assert_eq(sh("'%s' exec clone%d -- sh -c 'echo %d > "
				"/root/who && sync'",
				H, i, i),
			     0);
	for (int i = 0; i < CLONES; i++) {
		char *out = sh_out("'%s' exec clone%d -- cat /root/who", H, i);
		char want[8];

		snprintf(want, sizeof(want), "%d", i);
		cr_assert_str_eq(out, want, "clone%d reads %s", i, out);
		free(out);
		free(urandom[i]);
		free(pyrandom[i]);
	}
}

/* The state file read, patched and its CRC made right again. */
static void patch_state(const char *dir, size_t off, const void *bytes,
			size_t n, bool fix_crc)
{
	char path[256];
	struct stat st;
	unsigned char *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s/state", state, dir);
	fd = open(path, O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	cr_assert_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	memcpy(buf + off, bytes, n);
	if (fix_crc) {
		uint32_t crc = (uint32_t)crc32(0, buf, (uInt)(st.st_size - 4));

		memcpy(buf + st.st_size - 4, &crc, 4);
	}
	cr_assert_eq(pwrite(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	free(buf);
}

/* A copy of snap to spoil: its own state file, the big files hard
 * links (restoring only reads them). */
static void variant(const char *dir)
{
	cr_assert_eq(sh("mkdir %s/%s && cp %s/snap/state %s/%s/ && ln "
			"%s/snap/memory %s/snap/disk0.cow %s/%s/",
			state, dir, state, state, dir, state, state, state,
			dir),
		     0);
}

/* restore of dir is refused with one line on stderr naming want, and no
 * VM is left. */
static void refused(const char *dir, const char *want)
{
	char *err = sh_out("'%s' restore %s/%s bad 2>&1 >/dev/null; echo "
			   "status=$?",
			   H, state, dir);
	char *ls;

	cr_assert(strstr(err, "status=1"), "%s: not refused: %s", dir, err);
	cr_assert(strstr(err, want), "%s: expected '%s' in: %s", dir, want,
		  err);
	/* One line from hutch, then ours (whose newline was dropped). */
	cr_assert_eq(count_lines(err), 1, "%s: not one line: %s", dir, err);
	free(err);
	ls = sh_out("'%s' ls | grep -c bad", H);
	cr_assert_str_eq(ls, "0", "%s left a VM behind", dir);
	free(ls);
}

Test(snapshot, bad_snapshots_are_refused_and_start_nothing)
{
	const uint16_t major = 2;
	char *size;
	long len;

	prepared("good", "snap");
	snapshot("good", "other");
	size = sh_out("stat -c %%s %s/snap/state", state);
	len = strtol(size, NULL, 10);
	free(size);
	cr_assert_gt(len, 1000);

	/* One flipped byte, anywhere in the state file. */
	for (long off = 0; off < len; off += len / 7 + 1) {
		char dir[32];
		unsigned char b;
		char path[256];
		FILE *f;

		snprintf(dir, sizeof(dir), "flip%ld", off);
		variant(dir);
		snprintf(path, sizeof(path), "%s/%s/state", state, dir);
		f = fopen(path, "r+");
		cr_assert(f);
		fseek(f, off, SEEK_SET);
		b = (unsigned char)fgetc(f);
		fseek(f, off, SEEK_SET);
		fputc(b ^ 0x10, f);
		fclose(f);
		refused(dir, "snapshot");
	}
	/* Cut short at several points. */
	for (long cut = 0; cut < len; cut += len / 5 + 1) {
		char dir[32];

		snprintf(dir, sizeof(dir), "cut%ld", cut);
		variant(dir);
		cr_assert_eq(sh("truncate -s %ld %s/%s/state", cut, state, dir),
			     0);
		refused(dir, "snapshot");
	}
	/* A newer major version, checksum and all. */
	variant("major");
	patch_state("major", 8, &major, 2, true);
	refused("major", "version");
	/* Another snapshot's memory. */
	variant("mixed");
	cr_assert_eq(sh("ln -f %s/other/memory %s/mixed/memory", state, state),
		     0);
	refused("mixed", "belongs to another snapshot");
	/* Memory cut short. */
	variant("short");
	cr_assert_eq(sh("rm %s/short/memory && head -c 1M %s/snap/memory > "
			"%s/short/memory",
			state, state, state),
		     0);
	refused("short", "memory file");
	/* More vCPUs or memory asked than the snapshot has. */
	cr_assert_neq(
	    sh("'%s' restore --cpus 2 %s/snap bad 2>/dev/null", H, state), 0);
	cr_assert_neq(
	    sh("'%s' restore --mem 512 %s/snap bad 2>/dev/null", H, state), 0);
}

/* A root image changed since the snapshot (its own small copy here). */
Test(snapshot, a_changed_root_image_is_refused)
{
	char img[256];

	snprintf(img, sizeof(img), "%s/busybox.ext4", state);
	cr_assert_eq(sh("cp '%s' %s", guest_file("busybox.ext4"), img), 0);
	cr_assert_eq(
	    sh("'%s' start --mem 256 --rootfs %s bb >/dev/null", H, img), 0);
	snapshot("bb", "snap");
	cr_assert_eq(sh("'%s' stop bb", H), 0);
	cr_assert_eq(sh("printf x | dd of=%s bs=1 seek=0 conv=notrunc "
			"2>/dev/null",
			img),
		     0);
	refused("snap", "");
	/* The same byte back: the snapshot restores again. */
	cr_assert_eq(sh("printf '\\0' | dd of=%s bs=1 seek=0 conv=notrunc "
			"2>/dev/null",
			img),
		     0);
	cr_assert_eq(sh("'%s' run --from %s/snap -- true", H, state), 0);
}

/* Start `hutch snapshot vm snap` over the snapshot there and SIGKILL,
 * after ms, the CLI or the VM's VMM; then whatever is at snap must
 * restore, with one of the contents it may have (never a broken VM). */
static void snapshot_killed(int trial, unsigned ms, bool vmm)
{
	pid_t pid = fork();
	char *out;

	cr_assert(pid >= 0);
	if (pid == 0) {
		char dir[256];

		snprintf(dir, sizeof(dir), "%s/snap", state);
		execl(H, H, "snapshot", "vm", dir, (char *)NULL);
		_exit(127);
	}
	usleep(ms * 1000);
	if (vmm)
		sh("kill -9 $(cat %s/vms/vm/pid)", state);
	else
		kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fprintf(stderr, "interrupted: trial %d: %s killed after %u ms\n", trial,
		vmm ? "VMM" : "CLI", ms);
	out = sh_out("'%s' run --from %s/snap -- cat /root/file", H, state);
	cr_assert(!strcmp(out, "on-disk") || !strcmp(out, "second") ||
		      !strcmp(out, "third"),
		  "trial %d: %s", trial, out);
	free(out);
}

Test(snapshot, interrupted_or_failed_snapshots_leave_the_old_one)
{
	unsigned seed = (unsigned)time(NULL);
	char *out;

	fprintf(stderr, "interrupted: seed %u\n", seed);
	srand(seed);
	prepared("vm", "snap");
	cr_assert_eq(sh("'%s' exec vm -- sh -c 'echo second > /root/file && "
			"sync'",
			H),
		     0);
	/* 14 times the CLI and 6 times the VMM killed at random points
	 * while a snapshot is taken over the first (a snapshot takes about
	 * 0.5 s here). */
	for (int i = 0; i < 14; i++)
		snapshot_killed(i, (unsigned)(rand() % 1200), false);
	for (int i = 14; i < 20; i++) {
		snapshot_killed(i, (unsigned)(rand() % 1200), true);
		sh("'%s' stop vm >/dev/null 2>&1", H);
		start_vm("vm");
		cr_assert_eq(sh("'%s' exec vm -- sh -c 'echo third > "
				"/root/file && sync'",
				H),
			     0);
	}
	/* A full disk: a clean error, nothing at the target, the VM runs
	 * on. */
	fprintf(stderr, "interrupted: full disk\n");
	cr_assert_eq(sh("mkdir %s/small && mount -t tmpfs -o size=8m t "
			"%s/small",
			state, state),
		     0);
	cr_assert_neq(sh("'%s' snapshot vm %s/small/s 2>/dev/null", H, state),
		      0);
	cr_assert_neq(sh("test -e %s/small/s", state), 0);
	out = sh_out("ls -A %s/small", state);
	cr_assert_str_eq(out, "", "left behind: %s", out);
	free(out);
	cr_assert_eq(sh("'%s' exec vm -- true", H), 0, "the VM stopped");
}
