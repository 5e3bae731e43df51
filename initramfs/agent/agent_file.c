// SPDX-License-Identifier: MIT
/*
 * PUT and GET: files streamed in DATA frames.
 *
 * Paths are resolved inside the commands' root (the root disk when there
 * is one) with openat2(RESOLVE_IN_ROOT): "..", absolute symlinks and
 * absolute paths all stay under it, as they would for a chrooted command.
 * Kernels before 5.6 get a plain open of root + path with ".." refused.
 *
 * A PUT writes each DATA frame as it arrives (regular files only, so the
 * write does not block on anything but the disk).  A GET is read by
 * xfer_pump, a chunk at a time, only while the connection's write queue
 * is short: a 50 MiB file never sits in memory.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static bool has_dotdot(const char *path)
{
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return true;
		p += n;
		p += strspn(p, "/");
	}
	return false;
}

static int open_in_root(const char *path, int flags, mode_t mode)
{
	struct open_how how = {
	    .flags = (uint64_t)flags,
	    .mode = (flags & O_CREAT) ? mode : 0,
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	char full[4096];
	int fd;

	if (!path[0])
		return -ENOENT;
	fd = (int)syscall(SYS_openat2, agent.root_fd, path, &how, sizeof(how));
	if (fd >= 0)
		return fd;
	if (errno != ENOSYS)
		return -errno;
	if (has_dotdot(path))
		return -EACCES;
	if ((size_t)snprintf(full, sizeof(full), "%s/%s",
			     agent.chroot_dir ? agent.chroot_dir : "",
			     path) >= sizeof(full))
		return -ENAMETOOLONG;
	fd = open(full, flags, mode);
	return fd < 0 ? -errno : fd;
}

struct xfer *xfer_find(struct conn *c, uint32_t id)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->xfers)
	{
		struct xfer *x = container_of(pos, struct xfer, link);

		if (x->id == id)
			return x;
	}
	return NULL;
}

void xfer_free(struct xfer *x)
{
	if (x->fd >= 0)
		close(x->fd);
	list_del(&x->link);
	free(x);
}

bool xfer_get_pending(struct conn *c)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->xfers)
	{
		if (container_of(pos, struct xfer, link)->get)
			return true;
	}
	return false;
}

static struct xfer *xfer_new(struct conn *c, uint32_t id, bool get)
{
	struct xfer *x = calloc(1, sizeof(*x));

	if (!x) {
		conn_send_error(c, id, ENOMEM, "out of memory");
		return NULL;
	}
	x->id = id;
	x->fd = -1;
	x->get = get;
	list_add_tail(&c->xfers, &x->link);
	return x;
}

/* Opened and a regular file (we never block on a FIFO or a device). */
static int open_regular(const char *path, int flags, mode_t mode,
			struct stat *st)
{
	int fd =
	    open_in_root(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode);

	if (fd < 0)
		return fd;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		int err = S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;

		close(fd);
		return err;
	}
	return fd;
}

/* Common checks of a new transfer; the path (to free), or NULL. */
static char *xfer_parse(struct conn *c, uint32_t id, const uint8_t *p,
			size_t len, uint32_t *mode, const char *what)
{
	char *path;
	int ret = mode ? agent_dec_put(p, len, mode, &path)
		       : agent_dec_get(p, len, &path);

	if (ret) {
		conn_send_error(c, id, EPROTO, "%s: malformed payload", what);
		return NULL;
	}
	if (!id || conn_id_in_use(c, id)) {
		conn_send_error(c, id, id ? EEXIST : EINVAL,
				"%s: id %u is reserved or in use", what, id);
		free(path);
		return NULL;
	}
	return path;
}

void xfer_put(struct conn *c, uint32_t id, const uint8_t *p, size_t len)
{
	struct stat st = {0};
	struct xfer *x;
	uint32_t mode;
	char *path = xfer_parse(c, id, p, len, &mode, "PUT");
	int fd;

	if (!path)
		return;
	x = xfer_new(c, id, false);
	if (!x)
		goto out;
	fd =
	    open_regular(path, O_WRONLY | O_CREAT | O_TRUNC, mode & 07777, &st);
	/* The umask, and an existing file's old mode, must not win. */
	if (fd >= 0 && fchmod(fd, mode & 07777) < 0) {
		close(fd);
		fd = -errno;
	}
	if (fd < 0) {
		conn_send_error(c, id, -fd, "PUT %s: %s", path, strerror(-fd));
		/* Its DATA may already be on the way: swallow it. */
		x->failed = true;
		goto out;
	}
	x->fd = fd;
out:
	free(path);
}

void xfer_data(struct conn *c, uint32_t id, const uint8_t *p, size_t len)
{
	struct xfer *x = xfer_find(c, id);

	if (!x || x->get) {
		conn_send_error(c, id, EBADF, "DATA: no PUT %u", id);
		return;
	}
	while (len && !x->failed) {
		ssize_t n = write(x->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;

			conn_send_error(c, id, err, "PUT: write: %s",
					strerror(err));
			close(x->fd);
			x->fd = -1;
			x->failed = true;
			break;
		}
		p += n;
		len -= (size_t)n;
		x->bytes += (uint64_t)n;
	}
}

void xfer_data_end(struct conn *c, uint32_t id, size_t len)
{
	struct xfer *x = xfer_find(c, id);
	int fd;

	if (!x || x->get) {
		conn_send_error(c, id, EBADF, "DATA_END: no PUT %u", id);
		return;
	}
	if (len) {
		conn_send_error(c, id, EPROTO, "DATA_END: payload not empty");
		return;
	}
	fd = x->fd;
	x->fd = -1;
	/* close reports delayed write errors on some file systems. */
	if (!x->failed && close(fd) < 0) {
		conn_send_error(c, id, errno, "PUT: close: %s",
				strerror(errno));
	} else if (!x->failed) {
		struct agent_wbuf b = {0};

		agent_enc_put_ok(&b, x->bytes);
		conn_send_msg(c, AGENT_FILE_OK, id, &b);
	}
	xfer_free(x);
}

void xfer_get(struct conn *c, uint32_t id, const uint8_t *p, size_t len)
{
	struct stat st = {0};
	struct agent_wbuf b = {0};
	struct xfer *x;
	char *path = xfer_parse(c, id, p, len, NULL, "GET");
	int fd;

	if (!path)
		return;
	fd = open_regular(path, O_RDONLY, 0, &st);
	if (fd < 0) {
		conn_send_error(c, id, -fd, "GET %s: %s", path, strerror(-fd));
		goto out;
	}
	x = xfer_new(c, id, true);
	if (!x) {
		close(fd);
		goto out;
	}
	x->fd = fd;
	agent_enc_get_ok(&b, st.st_mode & 07777, (uint64_t)st.st_size);
	conn_send_msg(c, AGENT_FILE_OK, id, &b);
out:
	free(path);
}

/* The first GET on the list; after a chunk it moves to the back, so
 * several GETs share the connection. */
static struct xfer *next_get(struct conn *c)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->xfers)
	{
		struct xfer *x = container_of(pos, struct xfer, link);

		if (x->get)
			return x;
	}
	return NULL;
}

bool xfer_pump(struct conn *c)
{
	static uint8_t buf[AGENT_MAX_CHUNK];
	struct xfer *x;
	bool any = false;

	while (c->wq_bytes < WQ_PAUSE && !c->closing && (x = next_get(c))) {
		ssize_t n = read(x->fd, buf, sizeof(buf));

		any = true;
		if (n > 0) {
			conn_send(c, AGENT_DATA, x->id, buf, (size_t)n);
			list_del(&x->link);
			list_add_tail(&c->xfers, &x->link);
		} else if (n == 0) {
			conn_send(c, AGENT_DATA_END, x->id, NULL, 0);
			xfer_free(x);
		} else if (errno != EINTR) {
			conn_send_error(c, x->id, errno, "GET: read: %s",
					strerror(errno));
			xfer_free(x);
		}
	}
	return any;
}
