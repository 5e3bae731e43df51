// SPDX-License-Identifier: MIT
/* hutch shell / cp / stop / ls: working with a named VM (see cmd_vm.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "vmm/client/agent_client.h"
#include "vmm/cli/commands.h"
#include "vmm/base/log.h"
#include "vmm/cli/state_dir.h"
#include "vmm/base/vm_control.h"

static void close_named(struct agent_conn *c, struct state_root *root,
			int dir_fd)
{
	agent_close(c);
	if (dir_fd >= 0)
		close(dir_fd);
	state_root_close(root);
}

int cmd_shell(int argc, char **argv)
{
	const char *shell[] = {"/bin/bash", "-l", NULL};
	const char *fallback[] = {"/bin/sh", "-l", NULL};
	char term[64];
	const char *env[] = {term, "HOME=/root",
			     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
			     "/usr/bin:/sbin:/bin",
			     NULL};
	struct agent_exec e = {
	    .argv = shell, .env = env, .pty = true, .rows = 24, .cols = 80};
	struct agent_stream s = {.in_fd = STDIN_FILENO,
				 .out_fd = STDOUT_FILENO,
				 .err_fd = STDOUT_FILENO};
	struct state_root root = {.fd = -1};
	struct agent_conn c = {.fd = -1};
	struct agent_exit ex = {0};
	struct termios saved, raw;
	bool tty = isatty(STDIN_FILENO), raw_mode = false;
	sigset_t sigs;
	uint32_t id;
	int ret, dir_fd;

	if (argc != 2) {
		log_errx("shell: hutch shell NAME");
		return EXIT_USAGE;
	}
	ret = connect_named(argv[1], &root, &c, &dir_fd);
	if (ret) {
		close_named(&c, &root, dir_fd);
		return ret;
	}
	snprintf(term, sizeof(term), "TERM=%s",
		 getenv("TERM") ? getenv("TERM") : "xterm");
	if (tty) {
		struct winsize ws;

		if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row) {
			e.rows = ws.ws_row;
			e.cols = ws.ws_col;
		}
	}
	ret = agent_exec_start(&c, &e, &id);
	if (ret == -ENOENT) {
		e.argv = fallback;
		ret = agent_exec_start(&c, &e, &id);
	}
	if (ret) {
		log_errx("cannot start a shell: %s",
			 c.error[0] ? c.error : strerror(-ret));
		close_named(&c, &root, dir_fd);
		return EXIT_HUTCH_ERROR;
	}
	/* The terminal belongs to the guest's pty now: raw, and window
	 * size changes follow (SIGWINCH).  Ctrl-C is a byte to the guest;
	 * SIGTERM and SIGHUP are forwarded, and end the shell here if it
	 * does not go. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGWINCH);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	s.sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
	s.signal_grace_ms = 5000;
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		cfmakeraw(&raw);
		raw_mode = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
	}
	ret = agent_exec_wait(&c, id, &s, &ex);
	if (raw_mode)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	if (s.sig_fd >= 0)
		close(s.sig_fd);
	close_named(&c, &root, dir_fd);
	if (ret == -EINTR)
		return 128 + s.last_signal;
	if (ret) {
		log_err(ret, "lost the connection to the VM");
		return EXIT_HUTCH_ERROR;
	}
	return agent_exit_status(&ex);
}

/* "NAME:/path" -> name and path; NULL name for a local path. */
static bool split_remote(char *arg, char **name, char **path)
{
	char *colon = strchr(arg, ':');

	if (!colon || strchr(arg, '/') < colon) {
		*name = NULL;
		*path = arg;
		return false;
	}
	*colon = 0;
	*name = arg;
	*path = colon + 1;
	return true;
}

/*
 * Download src from the VM into dst: into a new file beside dst, renamed
 * over dst only once every announced byte arrived, so a failed or hostile
 * transfer leaves dst as it was.  Permission bits as `cp` gives them:
 * the guest's rwx bits under the umask; with keep_mode (-p) all of
 * them, set-id and sticky bits included.
 */
static int download(struct agent_conn *c, const char *src, const char *dst,
		    bool keep_mode)
{
	char target[PATH_MAX], tmp[PATH_MAX + 32], dir_buf[PATH_MAX],
	    base_buf[PATH_MAX];
	uint32_t mode = 0;
	struct stat st;
	mode_t mask;
	int fd, ret;

	/* cp SRC DIR puts it in DIR under SRC's name. */
	if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(base_buf, sizeof(base_buf), "%s", src);
		snprintf(target, sizeof(target), "%s/%s", dst,
			 basename(base_buf));
	} else {
		snprintf(target, sizeof(target), "%s", dst);
	}
	snprintf(dir_buf, sizeof(dir_buf), "%s", target);
	snprintf(base_buf, sizeof(base_buf), "%s", target);
	snprintf(tmp, sizeof(tmp), "%s/.%s.hutch-XXXXXX", dirname(dir_buf),
		 basename(base_buf));
	fd = mkostemp(tmp, O_CLOEXEC); /* 0600, O_EXCL: never an old file */
	if (fd < 0) {
		ret = -errno;
		log_err(ret, "cp: cannot create a file beside %s", target);
		return ret;
	}
	ret = agent_get_file(c, src, fd, &mode);
	if (!ret) {
		mask = umask(0);
		umask(mask);
		mode = keep_mode ? mode & 07777 : mode & 0777 & ~mask;
		if (fchmod(fd, (mode_t)mode) < 0)
			ret = -errno;
	}
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, target) < 0) {
		ret = -errno;
		log_err(ret, "cp: cannot create %s", target);
		unlink(tmp);
		return ret;
	}
	if (ret) {
		unlink(tmp);
		log_errx("cp: %s", c->error[0] ? c->error : strerror(-ret));
	}
	return ret;
}

int cmd_cp(int argc, char **argv)
{
	struct state_root root = {.fd = -1};
	struct agent_conn c = {.fd = -1};
	char *src_vm, *src, *dst_vm, *dst;
	bool keep_mode = false;
	struct stat st;
	int ret, fd, dir_fd;

	if (argc == 4 && !strcmp(argv[1], "-p")) {
		keep_mode = true;
		argv++;
		argc--;
	}
	if (argc != 3) {
		log_errx("cp: hutch cp [-p] SRC DST, one of them NAME:/path");
		return EXIT_USAGE;
	}
	split_remote(argv[1], &src_vm, &src);
	split_remote(argv[2], &dst_vm, &dst);
	if (!src_vm == !dst_vm) {
		log_errx("cp: exactly one of SRC and DST must be NAME:/path");
		return EXIT_USAGE;
	}
	ret = connect_named(src_vm ? src_vm : dst_vm, &root, &c, &dir_fd);
	if (ret)
		goto out;
	if (src_vm) {
		ret = download(&c, src, dst, keep_mode) ? EXIT_HUTCH_ERROR : 0;
		goto out;
	}
	fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_errx("cp: %s is not a readable file", src);
		if (fd >= 0)
			close(fd);
		ret = EXIT_HUTCH_ERROR;
		goto out;
	}
	ret = agent_put_file(&c, fd, st.st_mode & 07777, dst);
	close(fd);
	if (ret) {
		log_errx("cp: %s", c.error[0] ? c.error : strerror(-ret));
		ret = EXIT_HUTCH_ERROR;
	}
out:
	close_named(&c, &root, dir_fd);
	return ret;
}

int cmd_stop(int argc, char **argv)
{
	struct state_root root = {.fd = -1};
	struct vm_proc p = {.dir_fd = -1};
	int ret = 0;

	if (argc != 2) {
		log_errx("stop: hutch stop NAME");
		return EXIT_USAGE;
	}
	ret = open_named(argv[1], &root, false, &p.dir_fd);
	if (ret) {
		state_root_close(&root);
		return ret;
	}
	/* The directory goes only with the VMM: never under a live one. */
	if (stop_vm(&p, NULL)) {
		log_errx("the VM %s did not stop, even after SIGKILL", argv[1]);
		ret = EXIT_HUTCH_ERROR;
	} else {
		state_vm_remove(&root, argv[1]);
	}
	close(p.dir_fd);
	state_root_close(&root);
	return ret;
}

int cmd_ls(int argc, char **argv)
{
	struct state_root root = {.fd = -1};
	struct dirent *de;
	DIR *d;
	int fd;

	(void)argv;
	if (argc != 1) {
		log_errx("ls: takes no arguments");
		return EXIT_USAGE;
	}
	if (state_root_open(&root))
		return EXIT_HUTCH_ERROR;
	fd = dup(root.fd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	printf("%-24s %-8s %s\n", "NAME", "PID", "STATE");
	while (d && (de = readdir(d))) {
		char name[4 * STATE_NAME_MAX + 1];
		pid_t pid;
		int dir;

		if (de->d_name[0] == '.' || !strncmp(de->d_name, "run-", 4))
			continue;
		/* Whatever else is in there, its name reaches a terminal
		 * only as plain text. */
		agent_text_clean(name, sizeof(name), de->d_name,
				 strlen(de->d_name));
		dir = state_valid_name(de->d_name)
			  ? state_vm_open(&root, de->d_name, false)
			  : -EINVAL;
		if (dir < 0) {
			printf("%-24s %-8s %s\n", name, "-",
			       "not a VM directory (left alone)");
			continue;
		}
		pid = state_lock_holder(dir);
		close(dir);
		printf("%-24s %-8ld %s\n", name, (long)(pid > 0 ? pid : 0),
		       pid > 0 ? "running" : "dead (hutch stop cleans it up)");
	}
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
	state_root_close(&root);
	return 0;
}
