// SPDX-License-Identifier: MIT
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *hutch_bin(void)
{
	const char *p = getenv("HUTCH_BIN");

	return p ? p : "build/hutch";
}

const char *guest_file(const char *name)
{
	static char buf[8][512];
	static unsigned next;
	const char *dir = getenv("HUTCH_GUEST_DIR");
	char *b = buf[next++ % 8];

	snprintf(b, sizeof(buf[0]), "%s/%s", dir ? dir : "build/guest", name);
	return b;
}

const char *guest_kernel(void)
{
#if defined(__aarch64__)
	return guest_file("Image");
#else
	return guest_file("vmlinux");
#endif
}

static void append(char **buf, size_t *len, const char *p, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = 0;
}

static void run(const char *const argv[], const char *input, unsigned timeout_s,
		uid_t uid, const char *kill_marker, struct run_result *r)
{
	int out[2], err[2], in[2] = {-1, -1}, wstatus;
	pid_t pid;
	time_t deadline = time(NULL) + timeout_s;
	struct pollfd pfd[2];
	int open_fds = 2;
	bool timed_out = false;

	memset(r, 0, sizeof(*r));
	append(&r->out, &r->out_len, "", 0);
	append(&r->err, &r->err_len, "", 0);
	if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) ||
	    (input && pipe2(in, O_CLOEXEC)))
		abort();
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(input ? in[0] : null, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (uid != (uid_t)-1 && (setgid(uid) || setuid(uid)))
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	if (input) {
		/* Small enough for the pipe buffer: write, then EOF. */
		close(in[0]);
		if (write(in[1], input, strlen(input)) < 0)
			abort();
		close(in[1]);
	}
	pfd[0] = (struct pollfd){.fd = out[0], .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = err[0], .events = POLLIN};
	while (open_fds > 0) {
		int left = (int)(deadline - time(NULL));
		char buf[65536];

		if (left <= 0) {
			kill(pid, SIGKILL);
			timed_out = true;
			break;
		}
		if (poll(pfd, 2, left * 1000) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (pfd[i].fd < 0 ||
			    !(pfd[i].revents & (POLLIN | POLLHUP)))
				continue;
			n = read(pfd[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open_fds--;
			} else if (i == 0) {
				append(&r->out, &r->out_len, buf, (size_t)n);
				if (kill_marker &&
				    strstr(r->out, kill_marker)) {
					kill(pid, SIGKILL);
					kill_marker = NULL;
				}
			} else {
				append(&r->err, &r->err_len, buf, (size_t)n);
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	waitpid(pid, &wstatus, 0);
	if (timed_out)
		r->status = -1;
	else if (WIFEXITED(wstatus))
		r->status = WEXITSTATUS(wstatus);
	else
		r->status = 128 + WTERMSIG(wstatus);
}

void run_cmd(const char *const argv[], unsigned timeout_s, uid_t uid,
	     struct run_result *r)
{
	run(argv, NULL, timeout_s, uid, NULL, r);
}

void run_cmd_kill_on(const char *const argv[], const char *marker,
		     unsigned timeout_s, struct run_result *r)
{
	run(argv, NULL, timeout_s, (uid_t)-1, marker, r);
}

void run_cmd_input(const char *const argv[], const char *input,
		   unsigned timeout_s, struct run_result *r)
{
	run(argv, input, timeout_s, (uid_t)-1, NULL, r);
}

void run_free(struct run_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

unsigned count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

char *sh_out(const char *fmt, ...)
{
	char cmd[4096], *buf = calloc(1, 65536);
	va_list ap;
	size_t n = 0;
	FILE *p;

	if (!buf)
		abort();
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	if (p) {
		n = fread(buf, 1, 65535, p);
		pclose(p);
	}
	while (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	return buf;
}

int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
