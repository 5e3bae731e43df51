// SPDX-License-Identifier: MIT
/*
 * The jail (jail.h): the keeper outside, the VMM's way in.  Threads: the
 * main thread, before any other exists; the keeper is a process of its
 * own with one thread.  Every step that fails is reported once and the
 * VMM does not run the guest.
 */
#include "vmm/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/base/host_connect.h"
#include "vmm/base/log.h"

/* The keeper's first message to the VMM: go on (status 0), as host_pid. */
struct jail_go {
	int32_t status;
	int32_t host_pid;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int jail_parse_limit(const char *opt, const char *s, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
	if (!s || *s < '0' || *s > '9' || *end || errno || v < min || v > max) {
		log_errx("%s '%s': expected a number from %" PRIu64
			 " to %" PRIu64,
			 opt, s ? s : "", min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* ---- the keeper (outside the jail) ---- */

static int write_file(const char *dir, const char *file, const char *val)
{
	char path[256];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* JAIL_CGROUP_ROOT/hutch/vm-<pid> with the limits, pid moved in. */
static int cgroup_setup(struct jail_config *j, pid_t pid)
{
	static const char ctl[] = "+cpu +memory +pids";
	char parent[256], val[64];
	int ret;

	snprintf(parent, sizeof(parent), "%s/hutch", JAIL_CGROUP_ROOT);
	if (j->cgroup_name[0]) {
		snprintf(parent, sizeof(parent), "%s/%s", JAIL_CGROUP_ROOT,
			 j->cgroup_name);
		*strrchr(parent, '/') = 0; /* the name's last part is ours */
		snprintf(j->cgroup, sizeof(j->cgroup), "%s/%s",
			 JAIL_CGROUP_ROOT, j->cgroup_name);
	} else {
		snprintf(j->cgroup, sizeof(j->cgroup), "%s/vm-%d", parent,
			 (int)pid);
	}
	/* The controllers down to our level (the root's and ours hold no
	 * processes of ours, so both may delegate). */
	ret = write_file(JAIL_CGROUP_ROOT, "cgroup.subtree_control", ctl);
	if (!ret && mkdir(parent, 0755) < 0 && errno != EEXIST)
		ret = -errno;
	if (!ret)
		ret = write_file(parent, "cgroup.subtree_control", ctl);
	if (!ret && mkdir(j->cgroup, 0755) < 0)
		ret = -errno;
	if (ret) {
		log_err(ret,
			"--jail: cannot make a cgroup under %s (cgroup v2 "
			"with cpu, memory and pids controllers)",
			JAIL_CGROUP_ROOT);
		j->cgroup[0] = 0;
		return ret;
	}
	if (j->cpu_pct) {
		snprintf(val, sizeof(val), "%" PRIu64 " 100000",
			 j->cpu_pct * 1000);
		ret = write_file(j->cgroup, "cpu.max", val);
	}
	if (!ret && j->mem_mib) {
		snprintf(val, sizeof(val), "%" PRIu64, j->mem_mib << 20);
		ret = write_file(j->cgroup, "memory.max", val);
		/* Where swap is accounted: none, so the limit is RAM. */
		if (!ret)
			write_file(j->cgroup, "memory.swap.max", "0");
	}
	if (!ret && j->pids_max) {
		snprintf(val, sizeof(val), "%" PRIu64, j->pids_max);
		ret = write_file(j->cgroup, "pids.max", val);
	}
	for (unsigned i = 0; !ret && i < j->ncgroup_files; i++) {
		char file[64];
		const char *eq = strchr(j->cgroup_file[i], '=');

		snprintf(file, sizeof(file), "%.*s",
			 (int)(eq - j->cgroup_file[i]), j->cgroup_file[i]);
		ret = write_file(j->cgroup, file, eq + 1);
	}
	if (!ret) {
		snprintf(val, sizeof(val), "%d", (int)pid);
		ret = write_file(j->cgroup, "cgroup.procs", val);
	}
	if (ret)
		log_err(ret, "--jail: cannot set up cgroup %s", j->cgroup);
	return ret;
}

/* "<prefix>_<port>" for one of the allowed prefixes, port a u32. */
static bool path_allowed(const struct jail_config *j, const char *path)
{
	for (unsigned i = 0; i < j->nprefixes; i++) {
		size_t n = strlen(j->connect_prefix[i]);
		const char *p = path + n + 1;
		unsigned long long port = 0;
		size_t digits = 0;

		if (strncmp(path, j->connect_prefix[i], n) || path[n] != '_')
			continue;
		for (; *p >= '0' && *p <= '9' && digits < 11; p++, digits++)
			port = port * 10 + (unsigned)(*p - '0');
		if (!*p && digits && digits <= 10 && port <= UINT32_MAX)
			return true;
	}
	return false;
}

/* One request from the VMM: a path to connect to.  Answered with the
 * result and, on success, the descriptor. */
static void broker_serve(const struct jail_config *j, int sock)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	int32_t result;
	struct iovec iov = {&result, sizeof(result)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n = recv(sock, path, sizeof(path) - 1, MSG_DONTWAIT);
	int fd = -1;

	if (n <= 0)
		return;
	path[n] = 0;
	if (strlen(path) != (size_t)n || !path_allowed(j, path)) {
		result = -EPERM;
		log_errx("jail: refused a connect to a path not allowed");
	} else {
		fd = host_unix_connect(path);
		result = fd < 0 ? fd : 0;
	}
	if (fd >= 0) {
		struct cmsghdr *c;

		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		log_debug("jail: broker reply: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* Close every descriptor from 3 up except keep[0..n) (sorted here). */
static void close_all_except(int *keep, unsigned n)
{
	unsigned lo = 3;

	for (unsigned i = 1; i < n; i++)
		for (unsigned k = i; k > 0 && keep[k - 1] > keep[k]; k--) {
			int t = keep[k];

			keep[k] = keep[k - 1];
			keep[k - 1] = t;
		}
	for (unsigned i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if (keep[i] > (int)lo)
			close_range(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	close_range(lo, ~0u, 0);
}

/* After the VMM: its listening socket (the jailed VMM can no longer
 * reach the path to remove it), if nobody listens there now. */
static void remove_stale_socket(const char *path)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	fd = host_unix_connect(path);
	if (fd >= 0) {
		close(fd); /* a newer VM's, alive */
		return;
	}
	if (fd == -ECONNREFUSED)
		unlink(path);
}

/* The keeper's life: serve the broker, forward stop signals, and end
 * with the VMM's status.  Never returns. */
static void keeper(struct jail_config *j, int sock, pid_t pid, int sfd)
{
	int keep[] = {sock, sfd, j->dir_fd};

	close_all_except(keep, j->dir_fd >= 0 ? 3 : 2);
	for (;;) {
		struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
				      {.fd = sfd, .events = POLLIN}};
		struct signalfd_siginfo si;
		int st;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents & (POLLHUP | POLLERR)) {
			/* The VMM let go of its end: serve no more. */
			sock = -1;
		} else if (p[0].revents & POLLIN) {
			broker_serve(j, sock);
		}
		if (!(p[1].revents & POLLIN) ||
		    read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			kill(pid, (int)si.ssi_signo);
			continue;
		}
		if (waitpid(pid, &st, WNOHANG) != pid)
			continue;
		if (j->cgroup[0])
			rmdir(j->cgroup);
		for (unsigned i = 0; i < j->nsockets; i++)
			remove_stale_socket(j->socket_path[i]);
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	kill(pid, SIGKILL);
	_exit(1);
}

/* The child's side of the start: wait for the keeper's go. */
static int await_go(struct jail_config *j, int sock, const sigset_t *old)
{
	struct jail_go go;

	sigprocmask(SIG_SETMASK, old, NULL);
	if (recv(sock, &go, sizeof(go), 0) != sizeof(go) || go.status) {
		log_errx("--jail: the keeper could not set the jail up");
		return -EIO;
	}
	j->host_pid = go.host_pid;
	j->broker_fd = sock;
	return 0;
}

int jail_spawn(struct jail_config *j)
{
	uint64_t t0 = mono_ns();
	struct jail_go go = {0};
	sigset_t sigs, old;
	int sv[2], sfd, ret;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ret = -errno;
		log_err(ret, "--jail: socketpair");
		return ret;
	}
	sigemptyset(&sigs);
	for (int s = 0, l[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
	     s < 5; s++)
		sigaddset(&sigs, l[s]);
	sigprocmask(SIG_BLOCK, &sigs, &old);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0 || unshare(CLONE_NEWPID) < 0) {
		ret = -errno;
		log_err(ret, "--jail: cannot make a PID namespace");
		goto err;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		log_err(ret, "--jail: fork");
		goto err;
	}
	if (pid == 0) {
		/* PID 1 of the new namespace: dies with the keeper. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		close(sfd);
		ret = await_go(j, sv[1], &old);
		j->spawn_ns = mono_ns() - t0;
		return ret;
	}
	close(sv[1]);
	go.host_pid = pid;
	if (j->cpu_pct || j->mem_mib || j->pids_max || j->ncgroup_files)
		go.status = cgroup_setup(j, pid);
	if (send(sv[0], &go, sizeof(go), MSG_NOSIGNAL) != sizeof(go) ||
	    go.status)
		kill(pid, SIGKILL);
	keeper(j, sv[0], pid, sfd);
err:
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (sfd >= 0)
		close(sfd);
	close(sv[0]);
	close(sv[1]);
	return ret;
}

/* ---- the VMM's way in ---- */

/* The broker's client, for host_unix_connect (event loop thread). */
static int broker_connect(void *opaque, const char *path)
{
	const struct jail_config *j = opaque;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	int32_t result;
	struct iovec iov = {&result, sizeof(result)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c;
	int fd = -1;

	if (send(j->broker_fd, path, strlen(path), MSG_NOSIGNAL) < 0)
		return -errno;
	if (recvmsg(j->broker_fd, &msg, MSG_CMSG_CLOEXEC) != sizeof(result))
		return -EIO;
	c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (result < 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		return result < 0 ? result : -EIO;
	}
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

/*
 * The host's resolver list, for a VMM that keeps the host's network:
 * libslirp forwards the guest's DNS to the servers in /etc/resolv.conf,
 * which it reads (again and again) by that path.  The jail's root gets
 * a copy; a host that changes resolvers later is seen by VMs started
 * later.  Its length, or 0.
 */
static size_t read_resolv_conf(char *buf, size_t len)
{
	int fd = open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len) : -1;

	if (fd >= 0)
		close(fd);
	return n > 0 ? (size_t)n : 0;
}

static void write_resolv_conf(const char *buf, size_t len)
{
	int fd;

	if (mkdir("/etc", 0555) < 0)
		return;
	fd = open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		  0444);
	if (fd < 0)
		return;
	if (write(fd, buf, len) != (ssize_t)len)
		log_warnx("--jail: resolv.conf copy cut short");
	close(fd);
}

/* Fresh namespaces (or the network namespace named) and an empty
 * read-only root. */
static int enter_root(struct jail_config *j)
{
	uint64_t t0 = mono_ns();
	const char *step = "network namespace";
	char resolv[4096];
	size_t resolv_len =
	    j->keep_host_net ? read_resolv_conf(resolv, sizeof(resolv)) : 0;
	int fd;

	if (j->netns_path) {
		fd = open(j->netns_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
			if (fd >= 0)
				close(fd);
			goto err;
		}
		close(fd);
	}
	step = "unshare";
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
		    (j->netns_path || j->keep_host_net ? 0 : CLONE_NEWNET)) < 0)
		goto err;
	j->unshare_ns = mono_ns() - t0;
	step = "mount";
	/* Nothing we mount travels back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		goto err;
	/* The new root: an empty tmpfs, here over /tmp, which only this
	 * mount namespace sees. */
	if (mount("hutch-jail", "/tmp", "tmpfs",
		  MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=0555") < 0)
		goto err;
	step = "pivot_root";
	if (chdir("/tmp") < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		goto err;
	if (resolv_len)
		write_resolv_conf(resolv, resolv_len);
	step = "read-only root";
	if (mount(NULL, "/", NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV |
		      MS_NOEXEC,
		  NULL) < 0)
		goto err;
	sethostname("hutch", 5);
	return 0;
err:
	log_err(-errno, "--jail: %s", step);
	return -errno;
}

static int set_limits(const struct jail_config *j)
{
	uint64_t n = j->nofile ? j->nofile : JAIL_NOFILE;
	uint64_t f = j->fsize_override ? j->fsize_override : j->fsize_max;
	struct rlimit core = {0, 0}, nofile = {n, n}, fsize = {f, f};

	if (setrlimit(RLIMIT_CORE, &core) < 0 ||
	    setrlimit(RLIMIT_NOFILE, &nofile) < 0 ||
	    (f && setrlimit(RLIMIT_FSIZE, &fsize) < 0)) {
		log_err(-errno, "--jail: setrlimit");
		return -errno;
	}
	return 0;
}

/* No capability in any set, an unprivileged uid and gid, no way back. */
static int drop_privileges(const struct jail_config *j)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct none[2] = {{0}};
	uid_t uid = j->have_uid ? j->uid : JAIL_ID_BASE + (uid_t)j->host_pid;
	gid_t gid = j->have_gid ? j->gid : JAIL_ID_BASE + (gid_t)j->host_pid;
	const char *step = "capability bounding set";

	for (int cap = 0; prctl(PR_CAPBSET_READ, cap) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap) < 0)
			goto err;
	step = "ambient capabilities";
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		goto err;
	step = "uid and gid";
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		goto err;
	step = "capabilities";
	if (syscall(SYS_capset, &hdr, none) < 0)
		goto err;
	step = "no_new_privs";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		goto err;
	return 0;
err:
	log_err(-errno, "--jail: %s", step);
	return -errno;
}

int jail_enter(struct jail_config *j)
{
	uint64_t t0 = mono_ns();
	int ret;

	ret = enter_root(j);
	if (ret)
		return ret;
	j->root_ns = mono_ns() - t0 - j->unshare_ns;
	if (j->dir_fd >= 0)
		close(j->dir_fd);
	j->dir_fd = -1;
	ret = set_limits(j);
	if (ret)
		return ret;
	ret = drop_privileges(j);
	if (ret)
		return ret;
	clearenv();
	host_unix_connect_set(broker_connect, j);
	j->enter_ns = mono_ns() - t0;
	return 0;
}
