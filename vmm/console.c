// SPDX-License-Identifier: MIT
#include "vmm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "vmm/base/log.h"

/* Process-wide: there is one controlling terminal to restore. */
static struct termios saved_tty;
static bool tty_saved;

int console_open(struct console *c, const char *path, uint64_t limit)
{
	struct stat st;
	int ret;

	memset(c, 0, sizeof(*c));
	c->fd = STDOUT_FILENO;
	if (!path)
		return 0;
	c->fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (c->fd < 0) {
		ret = -errno;
		log_err(ret, "cannot open console file %s%s", path,
			ret == -ELOOP ? " (a symbolic link: give the file "
					"itself)"
				      : "");
		return ret;
	}
	if (fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if (ftruncate(c->fd, 0) < 0) {
			ret = -errno;
			log_err(ret, "cannot empty console file %s", path);
			return ret;
		}
		c->capped = limit != 0;
		c->limit = limit;
	}
	return 0;
}

void console_close(struct console *c)
{
	if (c->fd > STDERR_FILENO)
		close(c->fd);
	c->fd = -1;
}

static void write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* a closed console must not stop the guest */
		buf += n;
		len -= (size_t)n;
	}
}

void console_write(void *opaque, const uint8_t *buf, size_t len)
{
	static const char restarted[] =
	    "[hutch: console file limit reached; restarted]\r\n";
	struct console *c = opaque;

	if (c->capped && c->written + len > c->limit) {
		if (ftruncate(c->fd, 0) == 0 &&
		    lseek(c->fd, 0, SEEK_SET) == 0) {
			c->restarts++;
			c->written = 0;
			write_all(c->fd, (const uint8_t *)restarted,
				  sizeof(restarted) - 1);
			c->written = sizeof(restarted) - 1;
		}
		if (c->written + len > c->limit)
			return; /* cannot make room: drop */
	}
	write_all(c->fd, buf, len);
	c->written += len;
}

void console_restore_tty(void)
{
	if (tty_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	tty_saved = false;
}

void console_raw_stdin(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return;
	tty_saved = true;
	atexit(console_restore_tty);
	raw = saved_tty;
	cfmakeraw(&raw);
	/* Keep output processing: the guest sends \r\n itself, but hutch's
	 * own messages on stderr use \n. */
	raw.c_oflag |= OPOST;
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}
