// SPDX-License-Identifier: MIT
/*
 * hutch snapshot NAME DIR, and the front end's side of restoring one
 * (hutch restore DIR NAME, hutch run --from DIR).
 *
 * A snapshot is written into a fresh directory beside DIR (DIR.part-PID,
 * mode 0700, files 0600 created with O_EXCL), whose files the VMM fills
 * through descriptors passed on its control socket; then every file and
 * the directory are fsynced, and only then does it take DIR's name (an
 * exchange where a snapshot was there before, whose files are removed
 * afterwards), and the parent directory is fsynced.  A crash, a kill or a
 * full disk at any point leaves DIR as it was (the previous snapshot, or
 * nothing) plus at most a DIR.part-PID that is not a snapshot.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/base/file_copy.h"
#include "vmm/base/log.h"
#include "vmm/cli/commands.h"
#include "vmm/cli/state_dir.h"
#include "vmm/client/agent_client.h"
#include "vmm/snapshot.h"

/* Writing guest RAM out takes a while on a slow disk. */
#define SNAPSHOT_TIMEOUT_MS 300000

/* The files a snapshot directory may hold (removing an old one touches
 * nothing else). */
static bool snapshot_member(const char *name)
{
	char disk[32];
	unsigned n;

	if (!strcmp(name, SNAPSHOT_STATE) || !strcmp(name, SNAPSHOT_MEMORY))
		return true;
	/* Exactly what SNAPSHOT_DISK_FMT writes, nothing that merely
	 * starts like it. */
	if (sscanf(name, "disk%u", &n) != 1)
		return false;
	snprintf(disk, sizeof(disk), SNAPSHOT_DISK_FMT, n);
	return !strcmp(name, disk);
}

/* Empty a snapshot directory of its files and remove it. */
static int remove_snapshot_dir(int parent_fd, const char *name)
{
	int fd = openat(parent_fd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d)))
		if (snapshot_member(de->d_name))
			unlinkat(fd, de->d_name, 0);
	closedir(d);
	return unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* What is at DIR now: 0 nothing, 1 a snapshot (or an empty directory),
 * negative: something else, not to be replaced. */
static int target_kind(int parent_fd, const char *name)
{
	struct stat st;
	int fd, kind = 1;
	DIR *d;
	struct dirent *de;

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	fd = openat(parent_fd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    !snapshot_member(de->d_name))
			kind = -ENOTEMPTY;
	closedir(d);
	return kind;
}

static int create_member(int dir_fd, const char *name)
{
	return openat(dir_fd, name,
		      O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* Ask the VMM for the snapshot into the files of part_fd. */
static int take(int vm_dir, int part_fd, const char *name)
{
	int fds[3] = {-1, -1, -1}, ret = 0;
	char reply[160], clean[160];

	fds[0] = create_member(part_fd, SNAPSHOT_STATE);
	fds[1] = create_member(part_fd, SNAPSHOT_MEMORY);
	/* A VM of hutch start has one drive, its root, behind an
	 * overlay. */
	fds[2] = create_member(part_fd, "disk0.cow");
	for (int i = 0; i < 3 && !ret; i++)
		if (fds[i] < 0)
			ret = -errno;
	if (ret) {
		log_err(ret, "snapshot: cannot create its files");
		goto out;
	}
	ret = control_request(vm_dir, "snapshot\n", fds, 3, reply,
			      sizeof(reply), SNAPSHOT_TIMEOUT_MS);
	if (ret) {
		log_errx("snapshot: the VM %s did not answer on its control "
			 "socket",
			 name);
		goto out;
	}
	if (strcmp(reply, "ok")) {
		agent_text_clean(clean, sizeof(clean),
				 reply + (strncmp(reply, "error: ", 7) ? 0 : 7),
				 strlen(reply) -
				     (strncmp(reply, "error: ", 7) ? 0 : 7));
		log_errx("snapshot: %s", clean);
		ret = -EIO;
		goto out;
	}
	for (int i = 0; i < 3 && !ret; i++)
		if (fsync(fds[i]) < 0)
			ret = -errno;
	if (!ret && fsync(part_fd) < 0)
		ret = -errno;
	if (ret)
		log_err(ret, "snapshot: syncing its files");
out:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}

int cmd_snapshot(int argc, char **argv)
{
	struct state_root root = {.fd = -1};
	char dir[PATH_MAX], parent[PATH_MAX], base[NAME_MAX + 1];
	char part[NAME_MAX + 1];
	int vm_dir = -1, parent_fd = -1, part_fd = -1, kind;
	int ret = EXIT_HUTCH_ERROR;
	bool made = false;

	if (argc != 3 || !argv[2][0]) {
		log_errx("snapshot: hutch snapshot NAME DIR");
		return EXIT_USAGE;
	}
	snprintf(dir, sizeof(dir), "%s", argv[2]);
	while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = 0;
	{
		/* dirname and basename may change their argument. */
		char tmp[PATH_MAX];

		snprintf(tmp, sizeof(tmp), "%s", dir);
		snprintf(parent, sizeof(parent), "%s", dirname(tmp));
		snprintf(tmp, sizeof(tmp), "%s", dir);
		snprintf(base, sizeof(base), "%s", basename(tmp));
	}
	if (!strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, "..")) {
		log_errx("snapshot: %s cannot be a snapshot's directory", dir);
		return EXIT_USAGE;
	}
	ret = open_named(argv[1], &root, true, &vm_dir);
	if (ret)
		goto out;
	ret = EXIT_HUTCH_ERROR;
	parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent_fd < 0) {
		log_err(-errno, "snapshot: %s", parent);
		goto out;
	}
	kind = target_kind(parent_fd, base);
	if (kind < 0) {
		log_errx("snapshot: %s exists and is not a snapshot; not "
			 "replacing it",
			 dir);
		goto out;
	}
	snprintf(part, sizeof(part), "%.200s.part-%ld", base, (long)getpid());
	if (mkdirat(parent_fd, part, 0700) < 0) {
		log_err(-errno, "snapshot: cannot create %s/%s", parent, part);
		goto out;
	}
	made = true;
	part_fd = openat(parent_fd, part,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (part_fd < 0 || take(vm_dir, part_fd, argv[1]))
		goto out;
	/* Into place: an exchange keeps a complete snapshot at DIR at
	 * every moment; the old one is removed once it is out of the
	 * way. */
	if (kind == 1) {
		if (renameat2(parent_fd, part, parent_fd, base,
			      RENAME_EXCHANGE) < 0) {
			log_err(-errno, "snapshot: cannot put it at %s", dir);
			goto out;
		}
	} else if (renameat(parent_fd, part, parent_fd, base) < 0) {
		log_err(-errno, "snapshot: cannot put it at %s", dir);
		goto out;
	}
	if (fsync(parent_fd) < 0)
		log_err(-errno, "snapshot: syncing %s", parent);
	/* After an exchange, part names the previous snapshot. */
	if (kind == 1)
		remove_snapshot_dir(parent_fd, part);
	made = false;
	ret = 0;
out:
	if (made)
		remove_snapshot_dir(parent_fd, part);
	if (part_fd >= 0)
		close(part_fd);
	if (parent_fd >= 0)
		close(parent_fd);
	if (vm_dir >= 0)
		close(vm_dir);
	state_root_close(&root);
	return ret;
}

int restore_check(const struct vm_opts *o, struct snapshot *snap)
{
	int ret = snapshot_open(o->from, snap);

	if (ret)
		return ret;
	if ((o->cpus_given && o->cpus != snap->conf.ncpus) ||
	    (o->mem_given && o->mem_mib != snap->conf.mem_mib)) {
		log_errx("snapshot %s has %u vCPUs and %llu MiB; --cpus and "
			 "--mem cannot change that",
			 o->from, snap->conf.ncpus,
			 (unsigned long long)snap->conf.mem_mib);
		snapshot_close(snap);
		return -EINVAL;
	}
	return 0;
}

int restore_prepare(const struct vm_opts *o, int vm_dir, struct snapshot *snap,
		    const char **rootfs)
{
	unsigned files = 0;
	int ret = restore_check(o, snap);

	if (ret)
		return ret;
	*rootfs = NULL;
	for (unsigned i = 0; i < snap->conf.ndevices; i++) {
		const struct snapshot_device *d = &snap->conf.devices[i];
		char name[32];
		int src, dst;

		if (strcmp(d->type, "virtio-blk"))
			continue;
		if (!*rootfs)
			*rootfs = d->path;
		if (!d->file)
			continue;
		/* This VM's own copy of the overlay: clones never share
		 * writes. */
		snprintf(name, sizeof(name), SNAPSHOT_DISK_FMT, files++);
		src = openat(snap->dir_fd, name,
			     O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		dst = state_open_file(vm_dir, "overlay.cow", true);
		ret = src < 0 ? -errno : dst < 0 ? dst : copy_sparse(src, dst);
		if (src >= 0)
			close(src);
		if (dst >= 0)
			close(dst);
		if (ret) {
			log_err(ret, "snapshot %s: copying %s", o->from, name);
			return ret;
		}
	}
	if (!*rootfs || files != 1) {
		log_errx("snapshot %s: not a snapshot of a VM of hutch start "
			 "(one root drive with an overlay)",
			 o->from);
		return -EINVAL;
	}
	return 0;
}
