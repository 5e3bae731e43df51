// SPDX-License-Identifier: MIT
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"

/* Process-wide: there is one controlling terminal to restore. */
static struct termios saved_tty;
static bool tty_saved;

int console_open(const char *path, int *fd)
{
	if (!path) {
		*fd = STDOUT_FILENO;
		return 0;
	}
	*fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (*fd < 0) {
		int ret = -errno;

		log_err(ret, "cannot open console file %s", path);
		return ret;
	}
	return 0;
}

void console_write(void *opaque, const uint8_t *buf, size_t len)
{
	int fd = *(int *)opaque;

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
