// SPDX-License-Identifier: MIT
/*
 * PID 1 duties: the pseudo file systems, stdio on the console, hostname,
 * the root disk (root=/dev/vdX, ro|rw) at /newroot with the pseudo file
 * systems bound into it, self-protection from the OOM killer, the cgroup
 * that confines commands, and the way out (kill, sync, unmount, power
 * off).  Failures here are logged and the agent carries on with less:
 * a guest that answers is worth more than a perfect one that panics.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#else
#include <sys/mman.h>

#include "vmm/arm64/layout.h"
#endif

#include "devices/legacy/boot_timer.h"

#define NEWROOT	      "/newroot"
#define CMDS_CGROUP   "/sys/fs/cgroup/cmds"
#define AGENT_RESERVE (16ll << 20) /* memory kept out of the cgroup */
#define CMDS_PIDS_MAX 4096

struct cmdline {
	char root[64];
	bool ro;
	char hostname[65];
};

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n < 0)
		err = -errno;
	else if ((size_t)n != strlen(text))
		err = -EIO;
	close(fd);
	return err;
}

/* Reads at most size - 1 bytes, NUL-terminated; length or -errno. */
static ssize_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = -errno;
	else
		buf[n] = '\0';
	close(fd);
	return n;
}

static int mount_fs(const char *src, const char *target, const char *type,
		    unsigned long flags, const char *data)
{
	if (mkdir(target, 0755) < 0 && errno != EEXIST && errno != EROFS)
		agent_log_err(-errno, "mkdir %s", target);
	if (mount(src, target, type, flags, data) < 0) {
		int err = -errno;

		/* devtmpfs may be mounted by the kernel already. */
		if (err == -EBUSY)
			return 0;
		agent_log_err(err, "mount %s on %s", type ? type : src, target);
		return err;
	}
	return 0;
}

/*
 * The kernel starts us with no stdio (the cpio has no /dev/console).
 * Fill 0-2 before anything else opens an fd, so that a socket never
 * lands on fd 2 and receives our log lines.
 */
static void attach_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);

	if (fd < 0)
		fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	for (int i = 0; i <= 2; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static void parse_cmdline(struct cmdline *cl)
{
	char buf[4096];
	char *save = NULL;

	memset(cl, 0, sizeof(*cl));
	strcpy(cl->hostname, "hutch");
	if (read_file("/proc/cmdline", buf, sizeof(buf)) < 0)
		return;
	for (char *w = strtok_r(buf, " \t\n", &save); w;
	     w = strtok_r(NULL, " \t\n", &save)) {
		if (!strcmp(w, "--"))
			break;
		if (!strncmp(w, "root=", 5))
			snprintf(cl->root, sizeof(cl->root), "%s", w + 5);
		else if (!strcmp(w, "ro"))
			cl->ro = true;
		else if (!strcmp(w, "rw"))
			cl->ro = false;
		else if (!strncmp(w, "hutch.hostname=", 15))
			snprintf(cl->hostname, sizeof(cl->hostname), "%s",
				 w + 15);
	}
}

/* The clock comes from kvmclock already; just say what it reads. */
static void log_clock(void)
{
	struct timespec rt, up;
	char when[64] = "?", src[64] = "";
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_BOOTTIME, &up);
	if (gmtime_r(&rt.tv_sec, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (read_file("/sys/devices/system/clocksource/clocksource0/"
		      "current_clocksource",
		      src, sizeof(src)) > 0)
		src[strcspn(src, "\n")] = '\0';
	agent_log("%s, clocksource %s, up %lld.%03ld s", when,
		  src[0] ? src : "?", (long long)up.tv_sec,
		  up.tv_nsec / 1000000);
}

static void mount_pseudo(void)
{
	mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	attach_console();
	mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		 NULL);
	mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		 NULL);
	mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		 "newinstance,ptmxmode=0666,mode=0620,gid=5");
	mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	mount_fs("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
}

/*
 * A NIC the kernel configured by DHCP (ip=dhcp) left its resolver in
 * /proc/net/pnp, in resolv.conf's syntax: make it the root's
 * /etc/resolv.conf (a bind mount, so a read-only root works too and the
 * image is not changed).
 */
static void use_dhcp_resolver(void)
{
	char buf[512];
	int fd;

	if (read_file("/proc/net/pnp", buf, sizeof(buf)) <= 0 ||
	    !strstr(buf, "nameserver"))
		return;
	fd = open(NEWROOT "/etc/resolv.conf",
		  O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	mount_fs("/proc/net/pnp", NEWROOT "/etc/resolv.conf", NULL, MS_BIND,
		 NULL);
}

static int mount_root_disk(const char *dev, bool ro)
{
	static const char *const binds[] = {"/proc", "/sys", "/dev", "/dev/pts",
					    "/run"};
	char target[64];
	int err = 0;

	mkdir(NEWROOT, 0755);
	/* virtio-blk probes before init runs, but give a slow one a second. */
	for (int i = 0; i < 20; i++) {
		err = mount(dev, NEWROOT, "ext4", ro ? MS_RDONLY : 0, "") < 0
			  ? -errno
			  : 0;
		if (err != -ENOENT && err != -ENXIO)
			break;
		usleep(50 * 1000);
	}
	if (err) {
		agent_log_err(err,
			      "cannot mount %s on " NEWROOT
			      "; commands run in the initramfs",
			      dev);
		return err;
	}
	for (size_t i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
		snprintf(target, sizeof(target), NEWROOT "%s", binds[i]);
		/* /sys with its cgroup2 mount: runtimes read their limits
		 * there. */
		mount_fs(binds[i], target, NULL,
			 MS_BIND | (!strcmp(binds[i], "/sys") ? MS_REC : 0),
			 NULL);
	}
	mount_fs("tmpfs", NEWROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
		 "mode=1777");
	use_dhcp_resolver();
	agent.chroot_dir = NEWROOT;
	agent_log("root %s mounted %s on " NEWROOT, dev, ro ? "ro" : "rw");
	return 0;
}

/* MemTotal in bytes, or -errno. */
static long long mem_total(void)
{
	char buf[4096];
	const char *p;
	long long kib;

	if (read_file("/proc/meminfo", buf, sizeof(buf)) < 0)
		return -errno;
	p = strstr(buf, "MemTotal:");
	if (!p || sscanf(p + 9, "%lld", &kib) != 1)
		return -EINVAL;
	return kib * 1024;
}

int cgroup_setup(const char *dir, long long memory_max, long pids_max)
{
	char path[4096], val[32];
	int err;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		err = -errno;
		agent_log_err(err, "mkdir %s", dir);
		return err;
	}
	if (memory_max > 0) {
		snprintf(path, sizeof(path), "%s/memory.max", dir);
		snprintf(val, sizeof(val), "%lld", memory_max);
		err = write_file(path, val);
		if (err)
			agent_log_err(err, "%s", path);
	}
	if (pids_max > 0) {
		snprintf(path, sizeof(path), "%s/pids.max", dir);
		snprintf(val, sizeof(val), "%ld", pids_max);
		err = write_file(path, val);
		/* A host cgroup without the pids controller: no limit. */
		if (err && (agent.pid1 || err != -ENOENT))
			agent_log_err(err, "%s", path);
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	agent.cgroup_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (agent.cgroup_fd < 0) {
		err = -errno;
		agent_log_err(err, "%s", path);
		return err;
	}
	return 0;
}

/*
 * cgroup v2 with the memory and pids controllers for the commands' group;
 * the agent stays in the root group (no limits there), so a fork bomb or a
 * memory hog in cmds meets its own limits, not the agent's.
 */
/*
 * pids.max: 4096, but at most half the kernel's own task limit
 * (threads-max, about 2000 in a 256 MiB guest): a fork bomb must hit the
 * cgroup's limit, not the kernel's, which would leave no task for the
 * kernel's workers either.
 */
static long pids_max(void)
{
	char buf[32];
	long threads;

	if (read_file("/proc/sys/kernel/threads-max", buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%ld", &threads) != 1 || threads / 2 >= CMDS_PIDS_MAX)
		return CMDS_PIDS_MAX;
	return threads / 2 > 64 ? threads / 2 : 64;
}

static void setup_cgroup(void)
{
	long long total = mem_total(), max;
	long pids = pids_max();
	int err;

	if (mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2",
		     MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		return;
	err = write_file("/sys/fs/cgroup/cgroup.subtree_control",
			 "+memory +pids");
	if (err)
		agent_log_err(err, "enabling the memory and pids controllers");
	max = total > 0 ? total / 10 * 9 - AGENT_RESERVE : -1;
	if (total > 0 && max < AGENT_RESERVE)
		max = AGENT_RESERVE;
	if (cgroup_setup(CMDS_CGROUP, max, pids) == 0)
		agent_log("commands run in " CMDS_CGROUP
			  " (memory.max %lld MiB, pids.max %ld)",
			  max >> 20, pids);
}

int pid1_setup(void)
{
	struct cmdline cl;
	int err;

	mount_pseudo();
	agent_log("%s starting as PID 1", AGENT_NAME);
	log_clock();
	parse_cmdline(&cl);
	if (sethostname(cl.hostname, strlen(cl.hostname)) < 0)
		agent_log_err(-errno, "sethostname %s", cl.hostname);
	/* Commands get 0 back (agent.reset_oom) before they exec. */
	err = write_file("/proc/self/oom_score_adj", "-1000");
	if (err)
		agent_log_err(err, "oom_score_adj");
	agent.reset_oom = true;
	setup_cgroup();
	if (cl.root[0])
		mount_root_disk(cl.root, cl.ro);
	return 0;
}

/* Tell the VMM the agent listens: it then lets the host connect (no
 * polling of a booting guest). */
void boot_done(void)
{
#if defined(__x86_64__) || defined(__i386__)
	if (ioperm(BOOT_TIMER_PORT, 1, 1) < 0) {
		agent_log_err(-errno, "ioperm (boot timer port)");
		return;
	}
	outb(BOOT_TIMER_MAGIC, BOOT_TIMER_PORT);
#else
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	volatile uint8_t *reg;

	if (fd < 0) {
		agent_log_err(-errno, "/dev/mem (boot timer)");
		return;
	}
	reg = mmap(NULL, (size_t)page, PROT_WRITE, MAP_SHARED, fd,
		   ARM64_BOOT_TIMER_BASE);
	close(fd);
	if (reg == MAP_FAILED) {
		agent_log_err(-errno, "mmap boot timer");
		return;
	}
	*reg = BOOT_TIMER_MAGIC;
	munmap((void *)reg, (size_t)page);
#endif
}

/* Everything but us, then wait (bounded: a task stuck in D state must
 * not keep the VM up forever). */
static void kill_everything(void)
{
	struct timespec tick = {0, 10 * 1000 * 1000};

	kill(-1, SIGKILL);
	for (int i = 0; i < 300; i++) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);

		if (pid < 0 && errno == ECHILD)
			return;
		if (pid <= 0)
			nanosleep(&tick, NULL);
	}
	agent_log("some processes did not die");
}

static void unmount_root_disk(void)
{
	static const char *const mounts[] = {
	    NEWROOT "/tmp", NEWROOT "/run", NEWROOT "/dev/pts",
	    NEWROOT "/dev", NEWROOT "/sys", NEWROOT "/proc",
	};

	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++)
		umount2(mounts[i], MNT_DETACH);
	if (umount(NEWROOT) == 0)
		return;
	agent_log_err(-errno, "umount " NEWROOT "; remounting it ro");
	if (mount(NULL, NEWROOT, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		agent_log_err(-errno, "remount " NEWROOT " ro");
}

void pid1_finish(int how)
{
	kill_everything();
	sync();
	if (agent.chroot_dir)
		unmount_root_disk();
	sync();
	reboot(how);
	agent_log_err(-errno, "reboot");
	/* PID 1 must not exit: that would panic the guest. */
	for (;;)
		pause();
}
