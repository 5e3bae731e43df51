// SPDX-License-Identifier: MIT
/*
 * The commands a user types to use VMs as shells: run (one command in a
 * throw-away VM), start and exec (a named VM in the background; shell, cp,
 * stop and ls are in cmd_session.c).  Each VM is a child process that
 * becomes the VMM (boot_vm) with the default kernel, the guest agent as
 * init (rdinit=/bin/hutch-agent), the root image behind a copy-on-write
 * overlay and a vsock socket, all in its state directory (state_dir.h).
 *
 * Nothing the guest does can hang these commands: every read from the
 * agent has a deadline, --timeout is enforced on the host too, and
 * signals reach the command in the guest first and end the CLI if the
 * guest does not react.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "devices/blk/blk_type.h"
#include "devices/net/net_type.h"
#include "devices/vsock/vsock_type.h"
#include "vmm/client/agent_client.h"
#include "vmm/base/host_connect.h"
#include "vmm/boot_options.h"
#include "vmm/cli/commands.h"
#include "vmm/base/log.h"
#include "vmm/cli/state_dir.h"
#include "vmm/base/vm_control.h"
#include "vmm/snapshot.h"

#define READY_TIMEOUT_MS 120000 /* boot to agent; nested emulation is slow */
#define STOP_TIMEOUT_MS	 15000	/* agent shutdown to VMM exit */
#define KILL_WAIT_MS	 5000	/* after SIGTERM, then after SIGKILL */
#define EXEC_GRACE_MS	 10000	/* beyond --timeout before the host acts */
#define SIGNAL_GRACE_MS	 5000	/* a signalled command's time to exit */
#define STALE_RUN_S	 120	/* a lockless run-* this old is a leftover */

/* Where the VMM child finds its directory and ready pipe: fixed numbers,
 * so paths through /proc/self/fd/ can be written before they exist. */
#define CHILD_DIR_FD   3
#define CHILD_READY_FD 4

/* The signals that end run/exec; blocked and read through a signalfd. */
static int block_stop_signals(void)
{
	sigset_t sigs;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	return signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Move fd to number `to` (the old number is closed). */
static int move_fd(int fd, int to)
{
	int tmp;

	if (fd == to)
		return 0;
	/* Above anything we still need, so dup2 cannot clobber it. */
	tmp = fcntl(fd, F_DUPFD, 16);
	if (tmp < 0 || dup2(tmp, to) < 0)
		return -1;
	close(tmp);
	close(fd);
	return 0;
}

/*
 * In the child: become the VMM of the VM in dir_fd, with stdout and
 * stderr in its vmm.log.  parent > 0: die with that process (hutch run).
 * Never returns.
 */
static void vm_child(int dir_fd, const struct vm_opts *o, int ready_fd,
		     pid_t parent)
{
	static char overlay[64], vsock[64], console[64], control[64];
	static struct drive_config drive;
	static struct vsock_config vsock_cfg;
	static struct net_config net_cfg;
	static struct snapshot snap;
	const char *rootfs = o->rootfs;
	struct boot_options b;
	sigset_t none;
	int log_fd, null_fd, lock_fd, pid_fd;

	if (parent > 0) {
		/* The VM must not outlive `hutch run`; and if the parent died
		 * before the line above took effect, go now. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(EXIT_HUTCH_ERROR);
	}
	/* Its own session: a terminal's Ctrl-C goes to the CLI, which
	 * forwards it to the command in the guest, not to the VMM. */
	setsid();
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);

	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	log_fd = state_open_file(dir_fd, "vmm.log", true);
	if (null_fd < 0 || log_fd < 0)
		_exit(EXIT_HUTCH_ERROR);
	dup2(null_fd, STDIN_FILENO);
	dup2(log_fd, STDOUT_FILENO);
	dup2(log_fd, STDERR_FILENO);
	close(null_fd);
	close(log_fd);
	if (move_fd(dir_fd, CHILD_DIR_FD) || move_fd(ready_fd, CHILD_READY_FD))
		_exit(EXIT_HUTCH_ERROR);
	/* Nothing else of the caller's (its sockets, terminals, pipes)
	 * stays open in a VMM that may outlive it. */
	close_range(CHILD_READY_FD + 1, ~0u, 0);

	memset(&b, 0, sizeof(b));
	if (o->from) {
		/* The snapshot's machine: its vCPUs, memory and root image,
		 * with this VM's own copy of its overlay. */
		if (restore_prepare(o, CHILD_DIR_FD, &snap, &rootfs))
			_exit(EXIT_HUTCH_ERROR);
		b.cfg.restore = &snap;
		b.cfg.ncpus = snap.conf.ncpus;
		b.cfg.mem_mib = snap.conf.mem_mib;
	} else {
		b.cfg.ncpus = o->cpus;
		b.cfg.mem_mib = o->mem_mib;
	}
	b.cfg.kvm_path = getenv("HUTCH_KVM_DEVICE");
	if (!b.cfg.kvm_path)
		b.cfg.kvm_path = "/dev/kvm";
	b.cfg.seccomp = o->seccomp;
	b.cfg.keeper_fd = -1;
	b.cfg.kernel_path = o->kernel;
	if (o->kernel) {
		/* The agent lives in hutch's initramfs, whatever kernel. */
		b.owned[1] = cli_beside_exe("initramfs.cpio");
		b.cfg.initrd_path = b.owned[1];
		if (!b.cfg.initrd_path) {
			log_errx(
			    "no initramfs.cpio beside hutch (build it with "
			    "tools/setup)");
			_exit(EXIT_HUTCH_ERROR);
		}
	}
	b.cfg.cmdline = "quiet rdinit=/bin/hutch-agent";
	b.cfg.console_path =
	    state_path(CHILD_DIR_FD, "console.log", console, sizeof(console));
	b.cfg.console_limit = CONSOLE_FILE_LIMIT;
	b.cfg.control_path =
	    state_path(CHILD_DIR_FD, "control.sock", control, sizeof(control));
	/* The root disk behind its overlay, the vsock socket, and whatever
	 * the table adds by default. */
	drive = (struct drive_config){
	    .path = rootfs,
	    .root = true,
	    .limits = o->root_limits,
	    .overlay = state_path(CHILD_DIR_FD, "overlay.cow", overlay,
				  sizeof(overlay)),
	};
	vsock_cfg = (struct vsock_config){
	    .path =
		state_path(CHILD_DIR_FD, "vsock.sock", vsock, sizeof(vsock)),
	    .guest_cid = VSOCK_DEFAULT_CID,
	};
	b.cfg.devices[0] =
	    (struct device_config){.type = &virtio_blk_type, .cfg = &drive};
	b.cfg.devices[1] = (struct device_config){.type = &virtio_vsock_type,
						  .cfg = &vsock_cfg};
	b.cfg.ndevices = 2;
	if (o->net_spec) {
		if (net_parse_spec(o->net_spec, &net_cfg))
			_exit(EXIT_HUTCH_ERROR);
		net_cfg.vm_name = o->name;
		b.cfg.devices[b.cfg.ndevices++] = (struct device_config){
		    .type = &virtio_net_type, .cfg = &net_cfg};
	}
	if (cli_add_default_devices(&b.cfg, NULL))
		_exit(EXIT_HUTCH_ERROR);
	b.cfg.has_ready_fd = true;
	b.cfg.ready_fd = CHILD_READY_FD;
	if (o->jail.enabled) {
		/* The keeper stays here with the directory (vsock's
		 * PATH_<port> connects go through it); the VMM goes on in
		 * the jail, and takes the lock itself. */
		b.jail = o->jail;
		b.jail.dir_fd = CHILD_DIR_FD;
		if (boot_jail_spawn(&b))
			_exit(EXIT_HUTCH_ERROR);
	}
	lock_fd = state_lock_take(CHILD_DIR_FD);
	if (lock_fd < 0) {
		log_err(lock_fd, "cannot lock the VM's directory");
		_exit(EXIT_HUTCH_ERROR);
	}
	pid_fd = state_open_file(CHILD_DIR_FD, "pid", true);
	if (pid_fd >= 0) {
		/* The host's pid (a jailed VMM is 1 in its namespace). */
		dprintf(pid_fd, "%ld\n",
			(long)(b.jail.host_pid ? b.jail.host_pid : getpid()));
		close(pid_fd);
	}
	_exit(boot_vm(&b));
}

/* The first line of the VM's vmm.log, to explain a VM that did not come
 * up (made safe to print: the guest's doings can reach that file). */
static void report_vmm_log(int dir_fd)
{
	char raw[512] = "", line[512];
	int fd = openat(dir_fd, "vmm.log", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, raw, sizeof(raw) - 1) : -1;

	if (fd >= 0)
		close(fd);
	raw[n > 0 ? n : 0] = 0;
	raw[strcspn(raw, "\n")] = 0;
	agent_text_clean(line, sizeof(line),
			 raw + (strncmp(raw, "hutch: ", 7) ? 0 : 7),
			 strlen(raw + (strncmp(raw, "hutch: ", 7) ? 0 : 7)));
	log_errx("the VM did not start: %s",
		 line[0] ? line : "(see the guest console)");
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&t, NULL);
}

static bool vmm_alive(struct vm_proc *p)
{
	if (p->child > 0) {
		if (p->reaped)
			return false;
		if (waitpid(p->child, NULL, WNOHANG) == p->child) {
			p->reaped = true;
			return false;
		}
		return true;
	}
	return state_lock_holder(p->dir_fd) > 0;
}

static void vmm_signal(struct vm_proc *p, int sig)
{
	if (p->child > 0) {
		/* Our child: its pid cannot be reused until we reap it. */
		if (!p->reaped)
			kill(p->child, sig);
		return;
	}
	state_vm_kill(p->dir_fd, sig);
}

/* True once the VMM is gone, within ms. */
static bool wait_gone(struct vm_proc *p, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (vmm_alive(p)) {
		if (now_ms() >= end)
			return false;
		sleep_ms(10);
	}
	return true;
}

static int connect_agent(struct agent_conn *c, int dir_fd, unsigned timeout_ms)
{
	char path[64];

	return agent_connect_vsock_timeout(
	    c, state_path(dir_fd, "vsock.sock", path, sizeof(path)),
	    AGENT_VSOCK_PORT, timeout_ms);
}

/*
 * Connect to the agent of a VM while it boots.  The VMM writes a byte to
 * ready_rd (its --ready-fd) when the agent listens, and the pipe reads EOF
 * if the VMM dies first, so nothing polls the booting guest (each early
 * connect attempt would cost it a vsock request and reset).  A stop
 * signal on sig_fd ends the wait: -EINTR, *sig set.
 */
static int wait_agent(struct agent_conn *c, struct vm_proc *p, int ready_rd,
		      int sig_fd, int *sig)
{
	uint64_t deadline = now_ms() + READY_TIMEOUT_MS;
	bool signalled = false;

	for (;;) {
		struct pollfd pfd[2] = {
		    {.fd = signalled ? -1 : ready_rd, .events = POLLIN},
		    {.fd = sig_fd, .events = POLLIN}};
		uint64_t now = now_ms();
		int ret;

		if (now >= deadline) {
			log_errx("the VM's agent did not answer within %d s",
				 READY_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		ret = poll(pfd, 2, signalled ? 5 : (int)(deadline - now));
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
				*sig = (int)si.ssi_signo;
				return -EINTR;
			}
		}
		if (!signalled && (pfd[0].revents & (POLLIN | POLLHUP))) {
			char b;

			/* A byte: ready.  EOF without one: the VMM died. */
			if (read(ready_rd, &b, 1) != 1) {
				report_vmm_log(p->dir_fd);
				return -ECHILD;
			}
			signalled = true;
		}
		if (!signalled)
			continue;
		ret = connect_agent(c, p->dir_fd, AGENT_IO_TIMEOUT_MS);
		if (ret == 0)
			return 0;
		if (!vmm_alive(p)) {
			report_vmm_log(p->dir_fd);
			return -ECHILD;
		}
	}
}

int parse_vm_opts(int argc, char **argv, struct vm_opts *o, bool with_vm)
{
	static const struct option longopts[] = {
	    {"rootfs", required_argument, NULL, 'r'},
	    {"kernel", required_argument, NULL, 'k'},
	    {"cpus", required_argument, NULL, 'c'},
	    {"mem", required_argument, NULL, 'm'},
	    {"timeout", required_argument, NULL, 't'},
	    {"seccomp", required_argument, NULL, 's'},
	    {"no-jail", no_argument, NULL, 'N'},
	    {"drive-limits", required_argument, NULL, 'L'},
	    {"jail", no_argument, NULL, 'J'},
	    {"jail-uid", required_argument, NULL, 'J'},
	    {"jail-gid", required_argument, NULL, 'J'},
	    {"jail-cpu", required_argument, NULL, 'J'},
	    {"jail-mem", required_argument, NULL, 'J'},
	    {"jail-pids", required_argument, NULL, 'J'},
	    {"from", required_argument, NULL, 'F'},
	    {"net", required_argument, NULL, 'E'},
	    {"allow", required_argument, NULL, 'A'},
	    {"deny", required_argument, NULL, 'D'},
	    {"allow-domain", required_argument, NULL, 'O'},
	    {"deny-log", required_argument, NULL, 'G'},
	    {NULL, 0, NULL, 0},
	};
	const char *net = NULL, *deny_log = NULL;
	char rules[16384] = "";
	size_t used = 0;
	uint64_t v;
	int c, idx = 0;

	o->cpus = 1;
	o->mem_mib = 512;
	o->seccomp = seccomp_default_mode();
	optind = 0;
	opterr = 0;
	o->jail.dir_fd = -1;
	while ((c = getopt_long(argc, argv, "+", longopts, &idx)) != -1) {
		if (!with_vm && c != 't' && c != '?' && c != ':') {
			log_errx("%s applies to run and start only",
				 argv[optind - 1]);
			return -EINVAL;
		}
		switch (c) {
		case 'r':
			o->rootfs = optarg;
			break;
		case 'k':
			o->kernel = optarg;
			break;
		case 'c':
			if (cli_parse_cpus(optarg, &o->cpus))
				return -EINVAL;
			o->cpus_given = true;
			break;
		case 'm':
			if (cli_parse_mem_mib(optarg, &o->mem_mib))
				return -EINVAL;
			o->mem_given = true;
			break;
		case 'F':
			o->from = optarg;
			break;
		case 'E':
			if (net) {
				log_errx(
				    "--net: one NIC per VM here (hutch boot "
				    "takes more)");
				return -EINVAL;
			}
			net = optarg;
			break;
		case 'A':
		case 'D':
		case 'O': {
			const char *key = c == 'A'   ? "allow"
					  : c == 'D' ? "deny"
						     : "allow-domain";

			/* Checked when the spec is parsed; no commas inside. */
			if (strchr(optarg, ',') ||
			    used + strlen(optarg) + 16 >= sizeof(rules)) {
				log_errx("--%s '%s': one rule each, no commas",
					 key, optarg);
				return -EINVAL;
			}
			used +=
			    (size_t)snprintf(rules + used, sizeof(rules) - used,
					     ",%s=%s", key, optarg);
			break;
		}
		case 'G':
			deny_log = optarg;
			break;
		case 'N':
			o->no_jail = true;
			break;
		case 'L':
			if (blk_parse_limits(optarg, &o->root_limits))
				return -EINVAL;
			break;
		case 'J':
			if (cli_parse_jail_option(longopts[idx].name, optarg,
						  &o->jail) < 0)
				return -EINVAL;
			break;
		case 's':
			if (seccomp_parse_mode(optarg, &o->seccomp)) {
				log_errx("--seccomp '%s': expected kill, log "
					 "or off",
					 optarg);
				return -EINVAL;
			}
			break;
		case 't':
			if (cli_parse_u64(optarg, 1, 86400 * 30, &v)) {
				log_errx("--timeout '%s': expected seconds",
					 optarg);
				return -EINVAL;
			}
			o->timeout_s = (unsigned)v;
			break;
		case ':':
			log_errx("option %s needs an argument",
				 argv[optind - 1]);
			return -EINVAL;
		default:
			log_errx("unknown option %s (see hutch --help)",
				 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (o->no_jail && o->jail.enabled) {
		log_errx("--no-jail excludes --jail and its limits");
		return -EINVAL;
	}
	if (!net && (used || deny_log)) {
		log_errx("--allow, --deny, --allow-domain and --deny-log need "
			 "--net");
		return -EINVAL;
	}
	if (net) {
		size_t len = strlen(net) + used +
			     (deny_log ? strlen(deny_log) + 6 : 0) + 1;
		struct net_config check;
		char *copy;

		o->net_spec = malloc(len);
		copy = malloc(len);
		if (!o->net_spec || !copy) {
			free(copy);
			return -ENOMEM;
		}
		snprintf(o->net_spec, len, "%s%s%s%s", net, rules,
			 deny_log ? ",log=" : "", deny_log ? deny_log : "");
		/* Refused here, before any VM directory exists. */
		strcpy(copy, o->net_spec);
		if (net_parse_spec(copy, &check)) {
			free(copy);
			return -EINVAL;
		}
		free(copy);
	}
	/* Jailed by default where it can be (root). */
	if (with_vm && !o->no_jail && geteuid() == 0)
		o->jail.enabled = true;
	if (o->from && net) {
		log_errx(
		    "a restored VM keeps its snapshot's devices: no --net");
		return -EINVAL;
	}
	if (o->from && (o->rootfs || o->kernel)) {
		log_errx("a restored VM keeps its snapshot's root image and "
			 "kernel: no --rootfs or --kernel");
		return -EINVAL;
	}
	if (with_vm && !o->rootfs && !o->from) {
		o->rootfs = cli_beside_exe("debian.ext4");
		if (!o->rootfs) {
			log_errx("no --rootfs given and no default root image "
				 "(build one with tools/mkrootfs debian "
				 "build/guest/debian.ext4)");
			return -ENOENT;
		}
	}
	return optind;
}

/*
 * Run argv in the VM behind c, streaming, and return its exit status.
 * *lost: the CLI gave up on the guest (no answer after --timeout, a
 * signal it ignored, the connection failed): the caller must not trust
 * the VM to stop by itself.
 */
static int exec_stream(struct agent_conn *c, char **argv,
		       const struct vm_opts *o, int sig_fd, bool *lost)
{
	struct agent_exec e = {.argv = (const char *const *)argv,
			       .timeout_ms = o->timeout_s * 1000};
	struct agent_stream s = {
	    /* A terminal's input stays with the terminal (there is no
	     * pty); piped input is the command's stdin. */
	    .in_fd = isatty(STDIN_FILENO) ? -1 : STDIN_FILENO,
	    .out_fd = STDOUT_FILENO,
	    .err_fd = STDERR_FILENO,
	    .sig_fd = sig_fd,
	    .timeout_ms =
		o->timeout_s ? o->timeout_s * 1000 + EXEC_GRACE_MS : 0,
	    .signal_grace_ms = SIGNAL_GRACE_MS,
	};
	struct agent_exit ex = {0};
	uint32_t id;
	int ret;

	*lost = false;
	ret = agent_exec_start(c, &e, &id);
	if (ret) {
		log_errx("cannot run %s in the VM: %s", argv[0],
			 c->error[0] ? c->error : strerror(-ret));
		*lost = ret == -ETIMEDOUT;
		return 127;
	}
	ret = agent_exec_wait(c, id, &s, &ex);
	if (ret == -ETIMEDOUT) {
		log_errx("%s: no exit from the VM %d s after its --timeout; "
			 "giving up",
			 argv[0], EXEC_GRACE_MS / 1000);
		*lost = true;
		return 124;
	}
	if (ret == -EINTR) {
		log_errx("%s did not exit after signal %d; giving up", argv[0],
			 s.last_signal);
		*lost = true;
		return 128 + s.last_signal;
	}
	if (ret) {
		log_err(ret, "lost the connection to the VM");
		*lost = true;
		return EXIT_HUTCH_ERROR;
	}
	if (ex.timed_out)
		log_errx("%s timed out after %u s and was killed", argv[0],
			 o->timeout_s);
	return agent_exit_status(&ex);
}

int stop_vm(struct vm_proc *p, struct agent_conn *c)
{
	struct agent_conn tmp = {.fd = -1};

	if (!c && vmm_alive(p) &&
	    connect_agent(&tmp, p->dir_fd, KILL_WAIT_MS) == 0)
		c = &tmp;
	if (c) {
		/* A guest that stopped reading must not hold us here. */
		c->io_timeout_ms = KILL_WAIT_MS;
		agent_shutdown(c);
	}
	if (tmp.fd >= 0)
		agent_close(&tmp);
	if (wait_gone(p, c ? STOP_TIMEOUT_MS : 0))
		return 0;
	vmm_signal(p, SIGTERM);
	if (wait_gone(p, KILL_WAIT_MS))
		return 0;
	vmm_signal(p, SIGKILL);
	return wait_gone(p, KILL_WAIT_MS) ? 0 : -EBUSY;
}

/* Throw-away VMs whose "hutch run" was killed leave their directory: one
 * nobody holds the lock of, old enough not to be a run still starting. */
static void clean_stale_runs(struct state_root *root)
{
	int fd = dup(root->fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	time_t now = time(NULL);

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		int dir;

		if (strncmp(de->d_name, "run-", 4) ||
		    fstatat(root->fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    now - st.st_mtime < STALE_RUN_S)
			continue;
		dir = state_vm_open(root, de->d_name, false);
		if (dir < 0)
			continue;
		if (state_lock_holder(dir) == 0)
			state_vm_remove(root, de->d_name);
		close(dir);
	}
	closedir(d);
}

/* Fork the VMM for the VM in dir; start: detached (a grandchild, its own
 * session), else our child, dying with us.  The read end of its ready
 * pipe in *ready_rd.  0 or negative errno, reported. */
static int spawn_vmm(struct vm_proc *p, const struct vm_opts *o, bool detach,
		     int *ready_rd)
{
	pid_t self = getpid(), pid;
	int ready[2];

	if (pipe2(ready, O_CLOEXEC) < 0) {
		log_err(-errno, "pipe");
		return -errno;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		if (!detach)
			vm_child(p->dir_fd, o, ready[1], self);
		if (fork() == 0)
			vm_child(p->dir_fd, o, ready[1], 0);
		_exit(0);
	}
	close(ready[1]);
	if (pid < 0) {
		log_err(-errno, "fork");
		close(ready[0]);
		return -errno;
	}
	if (detach)
		waitpid(pid, NULL, 0);
	else
		p->child = pid;
	*ready_rd = ready[0];
	return 0;
}

static int from_usable(const struct vm_opts *o);

int cmd_run(int argc, char **argv)
{
	struct vm_opts o = {0};
	struct state_root root = {.fd = -1};
	struct vm_proc p = {.dir_fd = -1};
	struct agent_conn c = {.fd = -1};
	char name[32];
	int i = parse_vm_opts(argc, argv, &o, true), code, ret, ready, sig = 0;
	int sig_fd;
	bool lost = false;

	if (i < 0)
		return i == -ENOENT ? EXIT_HUTCH_ERROR : EXIT_USAGE;
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc) {
		log_errx("run: no command given (hutch run [options] -- CMD)");
		return EXIT_USAGE;
	}
	if (o.from && from_usable(&o))
		return EXIT_HUTCH_ERROR;
	/* From here on a stop signal tears the VM down in order. */
	sig_fd = block_stop_signals();
	if (sig_fd < 0 || state_root_open(&root))
		return EXIT_HUTCH_ERROR;
	clean_stale_runs(&root);
	p.dir_fd = state_vm_create_temp(&root, name, sizeof(name));
	if (p.dir_fd < 0) {
		log_err(p.dir_fd, "cannot create a directory in %s", root.path);
		return EXIT_HUTCH_ERROR;
	}
	code = EXIT_HUTCH_ERROR;
	o.name = name;
	if (spawn_vmm(&p, &o, false, &ready))
		goto out;
	ret = wait_agent(&c, &p, ready, sig_fd, &sig);
	close(ready);
	if (ret) {
		if (ret == -EINTR)
			code = 128 + sig;
		vmm_signal(&p, SIGKILL);
		wait_gone(&p, KILL_WAIT_MS);
		goto out;
	}
	code = exec_stream(&c, argv + i, &o, sig_fd, &lost);
	if (lost) {
		/* The guest did not play along: the VM goes, now. */
		vmm_signal(&p, SIGKILL);
		wait_gone(&p, KILL_WAIT_MS);
	} else {
		stop_vm(&p, &c);
	}
out:
	agent_close(&c);
	if (p.child > 0 && !vmm_alive(&p))
		state_vm_remove(&root, name);
	close(p.dir_fd);
	state_root_close(&root);
	close(sig_fd);
	return code;
}

/* A bad snapshot is refused here, before any VM directory or VMM. */
static int from_usable(const struct vm_opts *o)
{
	struct snapshot snap;

	if (restore_check(o, &snap))
		return -EINVAL;
	snapshot_close(&snap);
	return 0;
}

/* Start (or restore) the VM called name in the background. */
static int start_named(const struct vm_opts *opts, const char *name)
{
	struct vm_opts named = *opts, *o = &named;
	struct state_root root = {.fd = -1};
	struct vm_proc p = {.dir_fd = -1};
	struct agent_conn c = {.fd = -1};
	int ret, ready, sig = 0, sig_fd;

	if (!state_valid_name(name)) {
		log_errx("'%s' is not a VM name (letters, digits, - _ ., at "
			 "most %d, not starting with .)",
			 name, STATE_NAME_MAX);
		return EXIT_USAGE;
	}
	o->name = name;
	if (o->from && from_usable(o))
		return EXIT_HUTCH_ERROR;
	sig_fd = block_stop_signals();
	if (sig_fd < 0 || state_root_open(&root))
		return EXIT_HUTCH_ERROR;
	p.dir_fd = state_vm_open(&root, name, false);
	if (p.dir_fd >= 0) {
		if (state_lock_holder(p.dir_fd) != 0) {
			log_errx("a VM named %s is already running", name);
			ret = EXIT_HUTCH_ERROR;
			goto out;
		}
		/* Leftovers of a VM that was killed. */
		close(p.dir_fd);
		state_vm_remove(&root, name);
	}
	p.dir_fd = state_vm_open(&root, name, true);
	if (p.dir_fd < 0) {
		log_err(p.dir_fd, "cannot create %s/%s", root.path, name);
		ret = EXIT_HUTCH_ERROR;
		goto out;
	}
	ret = EXIT_HUTCH_ERROR;
	if (spawn_vmm(&p, o, true, &ready))
		goto out;
	if (wait_agent(&c, &p, ready, sig_fd, &sig)) {
		close(ready);
		state_vm_kill(p.dir_fd, SIGKILL);
		wait_gone(&p, KILL_WAIT_MS);
		state_vm_remove(&root, name);
		ret = sig ? 128 + sig : EXIT_HUTCH_ERROR;
		goto out;
	}
	close(ready);
	printf("%s\n", name);
	ret = 0;
out:
	agent_close(&c);
	if (p.dir_fd >= 0)
		close(p.dir_fd);
	state_root_close(&root);
	close(sig_fd);
	return ret;
}

int cmd_start(int argc, char **argv)
{
	struct vm_opts o = {0};
	int i = parse_vm_opts(argc, argv, &o, true);

	if (i < 0)
		return i == -ENOENT ? EXIT_HUTCH_ERROR : EXIT_USAGE;
	if (i != argc - 1) {
		log_errx(
		    "start: give one VM name (hutch start [options] NAME)");
		return EXIT_USAGE;
	}
	return start_named(&o, argv[i]);
}

int cmd_restore(int argc, char **argv)
{
	/* DIR first, so the options know there is no root image to find. */
	struct vm_opts o = {.from = argc >= 3 ? argv[argc - 2] : NULL};
	int i = parse_vm_opts(argc, argv, &o, true);

	if (i < 0)
		return i == -ENOENT ? EXIT_HUTCH_ERROR : EXIT_USAGE;
	if (i != argc - 2 || strcmp(o.from, argv[i])) {
		log_errx("restore: hutch restore [options] DIR NAME");
		return EXIT_USAGE;
	}
	return start_named(&o, argv[i + 1]);
}

int open_named(const char *name, struct state_root *root, bool running,
	       int *dir_fd)
{
	*dir_fd = -1;
	if (!state_valid_name(name)) {
		log_errx("'%s' is not a VM name", name);
		return EXIT_USAGE;
	}
	if (state_root_open(root))
		return EXIT_HUTCH_ERROR;
	*dir_fd = state_vm_open(root, name, false);
	if (*dir_fd < 0 || (running && state_lock_holder(*dir_fd) <= 0)) {
		log_errx(running ? "no VM named %s is running"
				 : "no VM named %s",
			 name);
		return EXIT_HUTCH_ERROR;
	}
	return 0;
}

int connect_named(const char *name, struct state_root *root,
		  struct agent_conn *c, int *dir_fd)
{
	int ret = open_named(name, root, true, dir_fd);

	if (ret)
		return ret;
	ret = connect_agent(c, *dir_fd, AGENT_IO_TIMEOUT_MS);
	if (ret) {
		log_err(ret, "cannot reach the agent of VM %s", name);
		return EXIT_HUTCH_ERROR;
	}
	return 0;
}

int cmd_exec(int argc, char **argv)
{
	struct vm_opts o = {0};
	struct state_root root = {.fd = -1};
	struct agent_conn c = {.fd = -1};
	int i = parse_vm_opts(argc, argv, &o, false), code, dir_fd, sig_fd;
	bool lost;

	if (i < 0)
		return EXIT_USAGE;
	if (i >= argc) {
		log_errx("exec: hutch exec NAME -- CMD ARGS...");
		return EXIT_USAGE;
	}
	if (i + 1 < argc && !strcmp(argv[i + 1], "--") ? i + 2 >= argc
						       : i + 1 >= argc) {
		log_errx("exec: no command given");
		return EXIT_USAGE;
	}
	sig_fd = block_stop_signals();
	code = connect_named(argv[i], &root, &c, &dir_fd);
	if (!code) {
		i++;
		if (!strcmp(argv[i], "--"))
			i++;
		/* Giving up closes the connection, which makes the agent
		 * kill the command. */
		code = exec_stream(&c, argv + i, &o, sig_fd, &lost);
	}
	agent_close(&c);
	if (dir_fd >= 0)
		close(dir_fd);
	state_root_close(&root);
	if (sig_fd >= 0)
		close(sig_fd);
	return code;
}

int control_request(int dir_fd, const char *line, const int *fds, unsigned nfds,
		    char *reply, size_t len, unsigned timeout_ms)
{
	char path[64];
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} ctl;
	struct iovec iov = {(void *)line, strlen(line)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct pollfd p = {.events = POLLIN};
	uint64_t end = now_ms() + timeout_ms;
	ssize_t n;
	size_t got = 0;
	int fd;

	if (nfds > 16)
		return -EINVAL;
	fd = host_unix_connect(
	    state_path(dir_fd, "control.sock", path, sizeof(path)));
	if (fd < 0)
		return fd;
	p.fd = fd;
	if (nfds) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	if (sendmsg(fd, &msg, MSG_NOSIGNAL) != (ssize_t)strlen(line)) {
		close(fd);
		return -EIO;
	}
	while (got < len - 1 && now_ms() < end &&
	       poll(&p, 1, (int)(end - now_ms())) == 1) {
		n = read(fd, reply + got, len - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(reply, '\n', got))
			break;
	}
	close(fd);
	reply[got] = 0;
	reply[strcspn(reply, "\n")] = 0;
	return got ? 0 : -ETIMEDOUT;
}

/* "limit TYPE INDEX SPEC" to the running VM name; what: the command,
 * for messages.  0 or an exit status after saying why. */
static int control_limit(const char *what, const char *name, const char *type,
			 const char *index, const char *spec)
{
	struct state_root root = {.fd = -1};
	char line[256], reply[160], clean[160];
	int dir_fd = -1, ret;

	ret = open_named(name, &root, true, &dir_fd);
	if (ret)
		goto out;
	ret = EXIT_HUTCH_ERROR;
	snprintf(line, sizeof(line), "limit %s %s %s\n", type, index, spec);
	if (control_request(dir_fd, line, NULL, 0, reply, sizeof(reply),
			    KILL_WAIT_MS)) {
		log_errx("the VM %s did not answer on its control socket",
			 name);
		goto out;
	}
	if (strcmp(reply, "ok")) {
		agent_text_clean(clean, sizeof(clean), reply, strlen(reply));
		log_errx("%s: %s", what, clean);
		goto out;
	}
	ret = 0;
out:
	if (dir_fd >= 0)
		close(dir_fd);
	state_root_close(&root);
	return ret;
}

/* hutch limit NAME DEVICE SPEC: DEVICE a drive's index (0: the root
 * disk), or netN (net: net0) for a NIC. */
int cmd_limit(int argc, char **argv)
{
	const char *type = "virtio-blk", *index = argc == 4 ? argv[2] : "";

	if (!strncmp(index, "net", 3)) {
		type = "virtio-net";
		index = index[3] ? index + 3 : "0";
	}
	if (argc != 4 || strspn(index, "0123456789") != strlen(index) ||
	    !index[0] || strlen(index) > 3 || strlen(argv[3]) > 160 ||
	    strpbrk(argv[3], " \n")) {
		log_errx("limit: hutch limit NAME DRIVE|netN KEY=VALUE[,...]");
		return EXIT_USAGE;
	}
	return control_limit("limit", argv[1], type, index, argv[3]);
}

int cmd_net(int argc, char **argv)
{
	struct net_domain d;
	struct net_rule r;
	char spec[NET_NAME_MAX + 32];

	bool domain = argc == 4 && !strcmp(argv[2], "allow-domain");

	if (argc != 4 ||
	    (!domain && strcmp(argv[2], "allow") && strcmp(argv[2], "deny")) ||
	    strlen(argv[3]) >= NET_NAME_MAX || strpbrk(argv[3], " ,\n")) {
		log_errx("net: hutch net NAME allow|deny RULE, or hutch net "
			 "NAME allow-domain NAME");
		return EXIT_USAGE;
	}
	if (domain ? net_domain_parse(argv[3], &d)
		   : net_rule_parse(argv[3], argv[2][0] == 'a', &r))
		return EXIT_USAGE;
	snprintf(spec, sizeof(spec), "%s=%s", argv[2], argv[3]);
	return control_limit("net", argv[1], "virtio-net", "0", spec);
}
