// SPDX-License-Identifier: MIT
/* Connecting to host Unix sockets by path (host_connect.h). */
#include "vmm/base/host_connect.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Process-wide: set once during set-up, before other threads exist. */
static int (*broker)(void *opaque, const char *path);
static void *broker_opaque;

void host_unix_connect_set(int (*fn)(void *opaque, const char *path),
			   void *opaque)
{
	broker = fn;
	broker_opaque = opaque;
}

int host_unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, ret;

	if (broker)
		return broker(broker_opaque, path);
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}
