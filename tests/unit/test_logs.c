// SPDX-License-Identifier: MIT
/*
 * What the guest can make hutch write is bounded: a console file starts
 * again from empty at its limit, hutch's own messages stop at theirs, and
 * both files are private to their owner.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/console.h"
#include "vmm/base/log.h"

static char dir[] = "/tmp/hutch-logs-XXXXXX";
static char path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/hutch-logs-XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/console.log", dir);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(logs, .init = setup, .fini = teardown, .timeout = 60);

Test(logs, a_console_file_never_grows_past_its_limit)
{
	struct console c;
	uint8_t line[100];
	struct stat st;
	char head[64] = "";
	FILE *f;

	memset(line, 'x', sizeof(line));
	line[99] = '\n';
	cr_assert_eq(console_open(&c, path, 4096), 0);
	for (int i = 0; i < 1000; i++) { /* 100 KB of guest output */
		console_write(&c, line, sizeof(line));
		cr_assert_eq(fstat(c.fd, &st), 0);
		cr_assert_leq(st.st_size, 4096);
	}
	cr_assert_geq(c.restarts, 20);
	console_close(&c);
	/* It says what happened, and the newest output is there. */
	f = fopen(path, "r");
	cr_assert(fgets(head, sizeof(head), f));
	fclose(f);
	cr_assert(strstr(head, "console file limit reached"), "%s", head);
}

Test(logs, a_console_file_is_private_and_no_link_is_followed)
{
	struct console c;
	struct stat st;
	char target[160];

	umask(0);
	cr_assert_eq(console_open(&c, path, CONSOLE_FILE_LIMIT), 0);
	console_close(&c);
	umask(022);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	/* A link planted where the console goes: refused, target intact. */
	snprintf(target, sizeof(target), "%s/precious", dir);
	cr_assert_eq(close(open(target, O_CREAT | O_WRONLY, 0644)), 0);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(symlink(target, path), 0);
	cr_assert_eq(console_open(&c, path, CONSOLE_FILE_LIMIT), -ELOOP);
}

Test(logs, hutch_stops_writing_messages_at_its_limit)
{
	int p[2], st;
	pid_t pid;
	size_t total = 0;
	char buf[65536], last[256] = "";
	ssize_t n;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		for (int i = 0; i < 20000; i++) /* ~2 MB asked for */
			log_warnx("guest-triggered message number %d with some "
				  "padding to make it long enough",
				  i);
		_exit(0);
	}
	close(p[1]);
	while ((n = read(p[0], buf, sizeof(buf))) > 0) {
		total += (size_t)n;
		if (n > 1) {
			const char *l;

			buf[n - 1] = 0;
			l = strrchr(buf, '\n') ? strrchr(buf, '\n') + 1 : buf;
			memcpy(last, l,
			       strlen(l) < sizeof(last) ? strlen(l) + 1
							: sizeof(last) - 1);
		}
	}
	waitpid(pid, &st, 0);
	cr_assert_leq(total, LOG_MAX_BYTES + 128, "%zu bytes logged", total);
	cr_assert_geq(total, LOG_MAX_BYTES / 2);
	cr_assert(strstr(last, "further messages suppressed"), "%s", last);
}
