// SPDX-License-Identifier: MIT
#include "vmm/cli/state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmm/base/log.h"

/* What hutch puts in a VM's directory; state_vm_remove takes only these. */
static const char *const vm_files[] = {
    "lock",	   "pid",	  "vsock.sock", "control.sock",
    "overlay.cow", "console.log", "vmm.log",	NULL,
};

/* Ours, a directory, nobody else's business.  0 or the reason. */
static const char *dir_problem(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return "cannot be examined";
	if (!S_ISDIR(st.st_mode))
		return "is not a directory";
	if (st.st_uid != geteuid())
		return "belongs to another user";
	if (st.st_mode & 077)
		return "is open to other users (it must be mode 0700)";
	return NULL;
}

static int open_dir_at(int at, const char *path)
{
	int fd =
	    openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* mkdir -m 0700 of each missing component of path below base (which
 * exists), e.g. ".local/state" under $HOME. */
static void make_parents(const char *base, const char *rel)
{
	char buf[PATH_MAX];
	int n = snprintf(buf, sizeof(buf), "%s/%s", base, rel);

	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	for (char *p = buf + strlen(base) + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		mkdir(buf, 0700);
		*p = '/';
	}
	mkdir(buf, 0700);
}

static void default_root(char *buf, size_t len)
{
	const char *env = getenv("HUTCH_STATE_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	const char *home = getenv("HOME");
	struct stat st;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
	} else if (xdg && *xdg) {
		snprintf(buf, len, "%s/hutch", xdg);
	} else if (geteuid() == 0 && stat("/run", &st) == 0 &&
		   S_ISDIR(st.st_mode) && st.st_uid == 0) {
		snprintf(buf, len, "/run/hutch");
	} else if (home && *home == '/' && stat(home, &st) == 0 &&
		   S_ISDIR(st.st_mode) && st.st_uid == geteuid()) {
		/* Outside /tmp: nobody else can create it first. */
		make_parents(home, ".local/state");
		snprintf(buf, len, "%s/.local/state/hutch", home);
	} else {
		snprintf(buf, len, "/tmp/hutch-%u", (unsigned)geteuid());
	}
}

int state_root_open(struct state_root *r)
{
	const char *why;
	int fd, ret;

	default_root(r->path, sizeof(r->path));
	r->fd = -1;
	if (mkdir(r->path, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		log_err(ret, "cannot create the state directory %s", r->path);
		return ret;
	}
	fd = open_dir_at(AT_FDCWD, r->path);
	if (fd < 0) {
		log_err(fd, "cannot open the state directory %s%s", r->path,
			fd == -ELOOP || fd == -ENOTDIR
			    ? " (it must be a real directory, not a link)"
			    : "");
		return fd;
	}
	why = dir_problem(fd);
	if (why) {
		log_errx("refusing the state directory %s: it %s; set "
			 "HUTCH_STATE_DIR to a directory of your own",
			 r->path, why);
		close(fd);
		return -EPERM;
	}
	r->fd = fd;
	return 0;
}

void state_root_close(struct state_root *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

bool state_valid_name(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > STATE_NAME_MAX || n[0] == '.')
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
		      *p == '.'))
			return false;
	return true;
}

int state_vm_open(const struct state_root *r, const char *name, bool create)
{
	int fd;

	if (!state_valid_name(name))
		return -EINVAL;
	if (create && mkdirat(r->fd, name, 0700) < 0)
		return -errno;
	fd = open_dir_at(r->fd, name);
	if (fd < 0)
		return fd;
	if (dir_problem(fd)) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

int state_vm_create_temp(const struct state_root *r, char *name,
			 size_t name_len)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";

	if (name_len < 16)
		return -EINVAL;
	for (int tries = 0; tries < 100; tries++) {
		uint8_t rnd[6];
		int fd;

		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
			return -EIO;
		strcpy(name, "run-");
		for (unsigned i = 0; i < sizeof(rnd); i++)
			name[4 + i] = chars[rnd[i] % (sizeof(chars) - 1)];
		name[4 + sizeof(rnd)] = 0;
		fd = state_vm_open(r, name, true);
		if (fd != -EEXIST)
			return fd;
	}
	return -EEXIST;
}

void state_vm_remove(const struct state_root *r, const char *name)
{
	int fd = open_dir_at(r->fd, name);

	if (fd >= 0) {
		for (unsigned i = 0; vm_files[i]; i++)
			unlinkat(fd, vm_files[i], 0);
		close(fd);
	}
	unlinkat(r->fd, name, AT_REMOVEDIR);
}

int state_open_file(int dir_fd, const char *file, bool trunc)
{
	struct stat st;
	int fd = openat(dir_fd, file,
			O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
			    (trunc ? O_TRUNC : 0),
			0600);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

const char *state_path(int dir_fd, const char *file, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d/%s", dir_fd, file);
	return buf;
}

static struct flock whole_file(short type)
{
	return (struct flock){.l_type = type, .l_whence = SEEK_SET};
}

int state_lock_take(int dir_fd)
{
	struct flock fl = whole_file(F_WRLCK);
	int fd = openat(dir_fd, "lock",
			O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		int ret = errno == EACCES || errno == EAGAIN ? -EBUSY : -errno;

		close(fd);
		return ret;
	}
	return fd;
}

pid_t state_lock_holder(int dir_fd)
{
	struct flock fl = whole_file(F_WRLCK);
	int fd = openat(dir_fd, "lock", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fcntl(fd, F_GETLK, &fl) < 0)
		ret = -errno;
	else if (fl.l_type != F_UNLCK)
		ret = fl.l_pid > 0 ? fl.l_pid : -EIO;
	close(fd);
	return ret;
}

int state_vm_kill(int dir_fd, int sig)
{
	for (int tries = 0; tries < 3; tries++) {
		pid_t pid = state_lock_holder(dir_fd);
		int pidfd, ret;

		if (pid <= 0)
			return pid ? pid : -ESRCH;
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0) {
			if (errno == ESRCH)
				continue; /* it just went: look again */
			return -errno;
		}
		/* The pidfd pins that process; if it still holds the lock,
		 * it is the VMM and not a stranger with a recycled pid. */
		if (state_lock_holder(dir_fd) != pid) {
			close(pidfd);
			continue;
		}
		ret = (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
		ret = ret < 0 ? -errno : 0;
		close(pidfd);
		return ret;
	}
	return -ESRCH;
}
