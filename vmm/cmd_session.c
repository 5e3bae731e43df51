// SPDX-License-Identifier: MIT
/* hutch shell / cp / stop / ls: working with a named VM (see cmd_vm.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "agent_client.h"
#include "commands.h"
#include "log.h"
#include "vm_control.h"

int cmd_shell(int argc, char **argv)
{
	const char *shell[] = {"/bin/bash", "-l", NULL};
	const char *fallback[] = {"/bin/sh", "-l", NULL};
	char term[64], dir[PATH_MAX];
	const char *env[] = {term, "HOME=/root",
			     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
			     "/usr/bin:/sbin:/bin",
			     NULL};
	struct agent_exec e = {
	    .argv = shell, .env = env, .pty = true, .rows = 24, .cols = 80};
	struct agent_conn c = {.fd = -1};
	struct agent_exit ex = {0};
	struct termios saved, raw;
	bool tty = isatty(STDIN_FILENO);
	sigset_t sigs;
	uint32_t id;
	int ret, sfd;

	if (argc != 2) {
		log_errx("shell: hutch shell NAME");
		return EXIT_USAGE;
	}
	ret = connect_named(argv[1], &c, dir, sizeof(dir));
	if (ret)
		return ret;
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
		agent_close(&c);
		return EXIT_HUTCH_ERROR;
	}
	/* The terminal belongs to the guest's pty now: raw, and window
	 * size changes follow (SIGWINCH). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGWINCH);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	ret = agent_exec_wait(&c, id, STDIN_FILENO, STDOUT_FILENO,
			      STDOUT_FILENO, sfd, &ex);
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	close(sfd);
	agent_close(&c);
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

int cmd_cp(int argc, char **argv)
{
	struct agent_conn c = {.fd = -1};
	char dir[PATH_MAX], *src_vm, *src, *dst_vm, *dst;
	uint32_t mode = 0644;
	struct stat st;
	int ret, fd;

	if (argc != 3) {
		log_errx("cp: hutch cp SRC DST, one of them NAME:/path");
		return EXIT_USAGE;
	}
	split_remote(argv[1], &src_vm, &src);
	split_remote(argv[2], &dst_vm, &dst);
	if (!src_vm == !dst_vm) {
		log_errx("cp: exactly one of SRC and DST must be NAME:/path");
		return EXIT_USAGE;
	}
	ret = connect_named(src_vm ? src_vm : dst_vm, &c, dir, sizeof(dir));
	if (ret)
		return ret;
	if (dst_vm) {
		fd = open(src, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			log_errx("cp: %s is not a readable file", src);
			ret = EXIT_HUTCH_ERROR;
			goto out;
		}
		ret = agent_put_file(&c, fd, st.st_mode & 07777, dst);
	} else {
		fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			log_err(-errno, "cp: cannot create %s", dst);
			ret = EXIT_HUTCH_ERROR;
			goto out;
		}
		ret = agent_get_file(&c, src, fd, &mode);
		if (!ret && fchmod(fd, mode & 07777) < 0)
			ret = -errno;
	}
	close(fd);
	if (ret) {
		log_errx("cp: %s", c.error[0] ? c.error : strerror(-ret));
		if (src_vm)
			unlink(dst);
		ret = EXIT_HUTCH_ERROR;
	}
out:
	agent_close(&c);
	return ret;
}

int cmd_stop(int argc, char **argv)
{
	char dir[PATH_MAX];
	pid_t pid;

	if (argc != 2) {
		log_errx("stop: hutch stop NAME");
		return EXIT_USAGE;
	}
	if (vm_dir(argv[1], dir, sizeof(dir)))
		return EXIT_USAGE;
	pid = read_pid(dir);
	if (!pid && access(dir, F_OK) != 0) {
		log_errx("no VM named %s", argv[1]);
		return EXIT_HUTCH_ERROR;
	}
	if (alive(pid))
		stop_vm(NULL, dir, pid, false);
	remove_dir(dir);
	return 0;
}

int cmd_ls(int argc, char **argv)
{
	char root[PATH_MAX - 300], dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	(void)argv;
	if (argc != 1) {
		log_errx("ls: takes no arguments");
		return EXIT_USAGE;
	}
	d = opendir(state_root(root, sizeof(root)));
	printf("%-24s %-8s %s\n", "NAME", "PID", "STATE");
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		pid_t pid;

		if (de->d_name[0] == '.' || !strncmp(de->d_name, "run-", 4))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name);
		pid = read_pid(dir);
		printf("%-24s %-8ld %s\n", de->d_name, (long)pid,
		       alive(pid) ? "running"
				  : "dead (hutch stop cleans it up)");
	}
	closedir(d);
	return 0;
}
