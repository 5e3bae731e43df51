// SPDX-License-Identifier: MIT
/*
 * The commands a user types to use VMs as shells: run (one command in a
 * throw-away VM), start / exec / shell / cp / stop / ls (a named VM in the
 * background).  Each VM is a "hutch boot" of the default kernel with the
 * guest agent as init (rdinit=/bin/hutch-agent), the root image behind a
 * copy-on-write overlay, and a vsock socket; everything about a named VM
 * lives in its state directory:
 *
 *   $HUTCH_STATE_DIR (default $XDG_RUNTIME_DIR/hutch, else /tmp/hutch-UID)
 *     NAME/pid          the VMM's pid
 *     NAME/vsock.sock   the VM's vsock socket (agent: port 1024)
 *     NAME/overlay.cow  the root disk's writes
 *     NAME/console.log  the guest console; NAME/vmm.log hutch's messages
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent_client.h"
#include "cli.h"
#include "commands.h"
#include "log.h"
#include "vm_control.h"

#define READY_TIMEOUT_MS 120000 /* boot to agent; nested emulation is slow */
#define STOP_TIMEOUT_MS	 15000

const char *state_root(char *buf, size_t len)
{
	const char *env = getenv("HUTCH_STATE_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		snprintf(buf, len, "%s", env);
	else if (xdg && *xdg)
		snprintf(buf, len, "%s/hutch", xdg);
	else
		snprintf(buf, len, "/tmp/hutch-%u", (unsigned)getuid());
	return buf;
}

static bool valid_name(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > 64 || n[0] == '.')
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
		      *p == '.'))
			return false;
	return true;
}

int vm_dir(const char *name, char *buf, size_t len)
{
	char root[PATH_MAX - 80];

	if (!valid_name(name)) {
		log_errx("'%s' is not a VM name (letters, digits, - _ ., at "
			 "most 64)",
			 name);
		return -EINVAL;
	}
	snprintf(buf, len, "%s/%s", state_root(root, sizeof(root)), name);
	return 0;
}

char *path_in(const char *dir, const char *file)
{
	static char buf[4][PATH_MAX];
	static unsigned next;
	char *b = buf[next++ % 4];

	snprintf(b, PATH_MAX, "%s/%s", dir, file);
	return b;
}

pid_t read_pid(const char *dir)
{
	FILE *f = fopen(path_in(dir, "pid"), "r");
	long pid = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

bool alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

void remove_dir(const char *dir)
{
	static const char *const files[] = {
	    "pid", "vsock.sock", "overlay.cow", "console.log", "vmm.log", NULL};

	for (unsigned i = 0; files[i]; i++)
		unlink(path_in(dir, files[i]));
	rmdir(dir);
}

/*
 * In a child process: become "hutch boot" for this VM, with stdout and
 * stderr in dir/vmm.log.  Never returns.
 */
static void vm_child(const char *dir, const struct vm_opts *o, int ready_fd)
{
	char drive[PATH_MAX + 64], ready[16], *argv[26];
	int argc = 0, log_fd, null_fd;

	FILE *f = fopen(path_in(dir, "pid"), "w");

	/* Who to stop later: this process becomes the VMM. */
	if (f) {
		fprintf(f, "%ld\n", (long)getpid());
		fclose(f);
	}
	snprintf(drive, sizeof(drive), "path=%s,root,overlay=%s", o->rootfs,
		 path_in(dir, "overlay.cow"));
	argv[argc++] = "boot";
	if (o->kernel) {
		argv[argc++] = "--kernel";
		argv[argc++] = (char *)o->kernel;
		argv[argc++] = "--initrd";
		argv[argc++] = cli_beside_exe("initramfs.cpio");
	}
	argv[argc++] = "--cpus";
	argv[argc++] = (char *)o->cpus;
	argv[argc++] = "--mem";
	argv[argc++] = (char *)o->mem;
	argv[argc++] = "--drive";
	argv[argc++] = drive;
	argv[argc++] = "--vsock";
	argv[argc++] = path_in(dir, "vsock.sock");
	argv[argc++] = "--console";
	argv[argc++] = path_in(dir, "console.log");
	argv[argc++] = "--cmdline";
	argv[argc++] = "quiet rdinit=/bin/hutch-agent";
	snprintf(ready, sizeof(ready), "%d", ready_fd);
	argv[argc++] = "--ready-fd";
	argv[argc++] = ready;
	argv[argc] = NULL;

	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	log_fd = open(path_in(dir, "vmm.log"),
		      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (null_fd < 0 || log_fd < 0)
		_exit(EXIT_HUTCH_ERROR);
	dup2(null_fd, STDIN_FILENO);
	dup2(log_fd, STDOUT_FILENO);
	dup2(log_fd, STDERR_FILENO);
	_exit(cmd_boot(argc, argv));
}

/* The first line of dir/vmm.log, to explain a VM that did not come up. */
static void report_vmm_log(const char *dir)
{
	char line[512] = "";
	FILE *f = fopen(path_in(dir, "vmm.log"), "r");

	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
	}
	line[strcspn(line, "\n")] = 0;
	if (!strncmp(line, "hutch: ", 7))
		memmove(line, line + 7, strlen(line + 7) + 1);
	log_errx("the VM did not start: %s",
		 line[0] ? line : "(see the guest console)");
}

static int ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int)((now.tv_sec - t0->tv_sec) * 1000 +
		     (now.tv_nsec - t0->tv_nsec) / 1000000);
}

/*
 * Connect to the agent of the VM whose VMM is pid, while it boots.  The
 * VMM writes a byte to ready_rd (its --ready-fd) when the agent reports
 * that it listens, and the pipe reads EOF if the VMM dies, so there is no
 * polling: each early connect attempt would cost the booting guest a vsock
 * request and reset.  After the signal (or once a second without one, for
 * a guest that never sends it) connects are tried until one succeeds.
 */
static int wait_agent(struct agent_conn *c, const char *dir, pid_t pid,
		      int ready_rd)
{
	struct timespec t0;
	bool signalled = false;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd = {.fd = ready_rd, .events = POLLIN};
		int ret, left = READY_TIMEOUT_MS - ms_since(&t0);

		if (left <= 0) {
			log_errx("the VM's agent did not answer within %d s",
				 READY_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		if (!signalled) {
			ret = poll(&pfd, 1, left < 1000 ? left : 1000);
			if (ret < 0 && errno != EINTR)
				return -errno;
			if (ret > 0) {
				char b;

				/* A byte: ready.  EOF: the VMM closed it
				 * (after writing) or died; either way stop
				 * waiting on it. */
				signalled = true;
				if (read(ready_rd, &b, 1) != 1 && !alive(pid)) {
					report_vmm_log(dir);
					return -ECHILD;
				}
			}
		} else {
			struct timespec pause = {0, 5 * 1000 * 1000};

			nanosleep(&pause, NULL);
		}
		ret = agent_connect_vsock(c, path_in(dir, "vsock.sock"),
					  AGENT_VSOCK_PORT);
		if (ret == 0)
			return 0;
		if (!alive(pid) || waitpid(pid, NULL, WNOHANG) == pid) {
			report_vmm_log(dir);
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
	    {NULL, 0, NULL, 0},
	};
	int c;

	o->cpus = "1";
	o->mem = "512";
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		char *end;
		unsigned long v;

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
			o->cpus = optarg;
			break;
		case 'm':
			o->mem = optarg;
			break;
		case 't':
			v = strtoul(optarg, &end, 10);
			if (*end || !*optarg || v == 0 || v > 86400 * 30) {
				log_errx("--timeout '%s': expected seconds",
					 optarg);
				return -EINVAL;
			}
			o->timeout_s = (unsigned)v;
			break;
		default:
			log_errx("unknown option %s (see hutch --help)",
				 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (with_vm && !o->rootfs) {
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

/* Run argv in the VM behind c, streaming; returns the exit status. */
static int exec_stream(struct agent_conn *c, char **argv,
		       const struct vm_opts *o)
{
	struct agent_exec e = {.argv = (const char *const *)argv,
			       .timeout_ms = o->timeout_s * 1000};
	struct agent_exit ex = {0};
	sigset_t sigs;
	int sfd, ret, in_fd;
	uint32_t id;

	/* Ctrl-C and friends go to the command in the guest. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

	ret = agent_exec_start(c, &e, &id);
	if (ret) {
		log_errx("cannot run %s in the VM: %s", argv[0],
			 c->error[0] ? c->error : strerror(-ret));
		close(sfd);
		return 127;
	}
	/* A terminal's input stays with the terminal (there is no pty);
	 * piped input is the command's stdin. */
	in_fd = isatty(STDIN_FILENO) ? -1 : STDIN_FILENO;
	ret = agent_exec_wait(c, id, in_fd, STDOUT_FILENO, STDERR_FILENO, sfd,
			      &ex);
	close(sfd);
	if (ret) {
		log_err(ret, "lost the connection to the VM");
		return EXIT_HUTCH_ERROR;
	}
	if (ex.timed_out)
		log_errx("%s timed out after %u s and was killed", argv[0],
			 o->timeout_s);
	return agent_exit_status(&ex);
}

/* Power the VM off through its agent; kill the VMM if it lingers. */
void stop_vm(struct agent_conn *c, const char *dir, pid_t pid, bool own_child)
{
	struct agent_conn tmp = {.fd = -1};

	if (!c && agent_connect_vsock(&tmp, path_in(dir, "vsock.sock"),
				      AGENT_VSOCK_PORT) == 0)
		c = &tmp;
	if (c)
		agent_shutdown(c);
	for (int waited = 0; alive(pid) && waited < STOP_TIMEOUT_MS;
	     waited += 10) {
		struct timespec pause = {0, 10 * 1000 * 1000};

		if (own_child && waitpid(pid, NULL, WNOHANG) == pid)
			break;
		nanosleep(&pause, NULL);
	}
	if (alive(pid)) {
		kill(pid, SIGTERM);
		if (own_child)
			waitpid(pid, NULL, 0);
	}
	if (tmp.fd >= 0)
		agent_close(&tmp);
}

/* Throw-away VMs whose "hutch run" was killed leave their directory. */
static void clean_stale_runs(const char *root)
{
	char dir[PATH_MAX + 300];
	struct dirent *de;
	DIR *d = opendir(root);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "run-", 4) ||
		    strlen(root) + strlen(de->d_name) + 2 > sizeof(dir))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name);
		if (!alive(read_pid(dir)))
			remove_dir(dir);
	}
	closedir(d);
}

int cmd_run(int argc, char **argv)
{
	struct vm_opts o = {0};
	char root[PATH_MAX - 100], dir[PATH_MAX];
	struct agent_conn c = {.fd = -1};
	int i = parse_vm_opts(argc, argv, &o, true), code, ret, ready[2];
	pid_t pid;

	if (i < 0)
		return i == -ENOENT ? EXIT_HUTCH_ERROR : EXIT_USAGE;
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc) {
		log_errx("run: no command given (hutch run [options] -- CMD)");
		return EXIT_USAGE;
	}
	snprintf(dir, sizeof(dir), "%s/run-XXXXXX",
		 state_root(root, sizeof(root)));
	mkdir(root, 0700);
	clean_stale_runs(root);
	if (!mkdtemp(dir)) {
		log_err(-errno, "cannot create %s", dir);
		return EXIT_HUTCH_ERROR;
	}
	if (pipe2(ready, O_CLOEXEC) < 0) {
		log_err(-errno, "pipe");
		remove_dir(dir);
		return EXIT_HUTCH_ERROR;
	}
	pid = fork();
	if (pid == 0) {
		/* The VM must not outlive this command. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ready[0]);
		vm_child(dir, &o, ready[1]);
	}
	close(ready[1]);
	ret = pid < 0 ? -errno : wait_agent(&c, dir, pid, ready[0]);
	close(ready[0]);
	if (ret) {
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		remove_dir(dir);
		return EXIT_HUTCH_ERROR;
	}
	code = exec_stream(&c, argv + i, &o);
	stop_vm(&c, dir, pid, true);
	agent_close(&c);
	remove_dir(dir);
	return code;
}

int cmd_start(int argc, char **argv)
{
	struct vm_opts o = {0};
	char dir[PATH_MAX], root[PATH_MAX - 100];
	struct agent_conn c = {.fd = -1};
	int i = parse_vm_opts(argc, argv, &o, true), ret, ready[2];
	pid_t pid;

	if (i < 0)
		return i == -ENOENT ? EXIT_HUTCH_ERROR : EXIT_USAGE;
	if (i != argc - 1) {
		log_errx(
		    "start: give one VM name (hutch start [options] NAME)");
		return EXIT_USAGE;
	}
	if (vm_dir(argv[i], dir, sizeof(dir)))
		return EXIT_USAGE;
	if (alive(read_pid(dir))) {
		log_errx("a VM named %s is already running", argv[i]);
		return EXIT_HUTCH_ERROR;
	}
	remove_dir(dir); /* leftovers of a VM that was killed */
	mkdir(state_root(root, sizeof(root)), 0700);
	if (mkdir(dir, 0700) < 0) {
		log_err(-errno, "cannot create %s", dir);
		return EXIT_HUTCH_ERROR;
	}
	if (pipe2(ready, O_CLOEXEC) < 0) {
		log_err(-errno, "pipe");
		return EXIT_HUTCH_ERROR;
	}
	pid = fork();
	if (pid == 0) {
		/* Detached: its own session, not our child for long. */
		setsid();
		close(ready[0]);
		if (fork() == 0)
			vm_child(dir, &o, ready[1]);
		_exit(0);
	}
	close(ready[1]);
	if (pid < 0) {
		log_err(-errno, "fork");
		close(ready[0]);
		return EXIT_HUTCH_ERROR;
	}
	waitpid(pid, NULL, 0);
	/* The grandchild (the VMM) writes its pid first thing. */
	for (int tries = 0; tries < 200 && !read_pid(dir); tries++) {
		struct timespec pause = {0, 5 * 1000 * 1000};

		nanosleep(&pause, NULL);
	}
	pid = read_pid(dir);
	ret = pid ? wait_agent(&c, dir, pid, ready[0]) : -ECHILD;
	close(ready[0]);
	if (ret) {
		if (!pid)
			report_vmm_log(dir);
		if (pid > 0)
			kill(pid, SIGKILL);
		remove_dir(dir);
		return EXIT_HUTCH_ERROR;
	}
	agent_close(&c);
	printf("%s\n", argv[i]);
	return 0;
}

/* Connect to a running named VM's agent. */
int connect_named(const char *name, struct agent_conn *c, char *dir, size_t len)
{
	int ret;

	if (vm_dir(name, dir, len))
		return EXIT_USAGE;
	if (!alive(read_pid(dir))) {
		log_errx("no VM named %s is running", name);
		return EXIT_HUTCH_ERROR;
	}
	ret = agent_connect_vsock(c, path_in(dir, "vsock.sock"),
				  AGENT_VSOCK_PORT);
	if (ret) {
		log_err(ret, "cannot reach the agent of VM %s", name);
		return EXIT_HUTCH_ERROR;
	}
	return 0;
}

int cmd_exec(int argc, char **argv)
{
	struct vm_opts o = {0};
	struct agent_conn c = {.fd = -1};
	char dir[PATH_MAX];
	int i = parse_vm_opts(argc, argv, &o, false), code;

	if (i < 0)
		return EXIT_USAGE;
	if (i >= argc) {
		log_errx("exec: hutch exec NAME -- CMD ARGS...");
		return EXIT_USAGE;
	}
	code = connect_named(argv[i], &c, dir, sizeof(dir));
	if (code)
		return code;
	i++;
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc) {
		log_errx("exec: no command given");
		agent_close(&c);
		return EXIT_USAGE;
	}
	code = exec_stream(&c, argv + i, &o);
	agent_close(&c);
	return code;
}
