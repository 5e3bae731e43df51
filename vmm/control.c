// SPDX-License-Identifier: MIT
/*
 * The running VM's control channel (control.h): a Unix socket, mode
 * 0600, and a one-line protocol.  Threads: control_open during set-up;
 * the handlers on the event loop thread only.
 */
#include "vmm/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/base/host_connect.h"
#include "vmm/base/log.h"
#include "vmm/vm.h"

/* "limit <type> <index> <spec>": 0, or the reason it was refused. */
static const char *do_limit(struct vm *vm, char *args)
{
	char *type = strtok(args, " "), *index = strtok(NULL, " ");
	char *spec = strtok(NULL, " "), *end;
	unsigned long n;

	if (!type || !index || !spec || strtok(NULL, " "))
		return "usage: limit TYPE INDEX KEY=VALUE[,KEY=VALUE...]";
	n = strtoul(index, &end, 10);
	if (*index < '0' || *index > '9' || *end)
		return "bad index";
	for (unsigned i = 0; i < vm->ndevs; i++) {
		struct device_instance *d = &vm->devs[i];

		if (strcmp(d->type->name, type) || d->index != n)
			continue;
		if (!d->type->set_limits)
			return "that device has no limits";
		return d->type->set_limits(d->dev, spec) ? "bad limits" : NULL;
	}
	return "no such device";
}

/* "snapshot", with the files to write passed along (state, memory, one
 * per drive overlay): 0, or the reason it failed. */
static const char *do_snapshot(struct vm *vm, struct control_conn *k)
{
	const char *why;

	if (k->nfds < 2)
		return "snapshot: pass the state and memory files";
	if (vm_snapshot(vm, k->fds[0], k->fds[1], k->fds + 2, k->nfds - 2,
			&why))
		return why;
	return NULL;
}

static void serve_line(struct control *c, struct control_conn *k)
{
	const char *why = "unknown command (expected: limit, snapshot)";
	char reply[160];
	int n;

	k->buf[strcspn(k->buf, "\n")] = 0;
	if (!strncmp(k->buf, "limit ", 6))
		why = do_limit(c->vm, k->buf + 6);
	else if (!strcmp(k->buf, "snapshot"))
		why = do_snapshot(c->vm, k);
	n = why ? snprintf(reply, sizeof(reply), "error: %s\n", why)
		: snprintf(reply, sizeof(reply), "ok\n");
	/* One short line into an empty socket buffer: it fits. */
	if (write(k->fd, reply, (size_t)n) < 0)
		log_debug("control: reply: %s", strerror(errno));
}

static void close_fds(struct control_conn *k)
{
	for (unsigned i = 0; i < k->nfds; i++)
		close(k->fds[i]);
	k->nfds = 0;
}

static void conn_close(struct control *c, struct control_conn *k)
{
	evloop_del(c->vm->ep, k->fd);
	close(k->fd);
	close_fds(k);
	k->fd = -1;
}

/* Bytes of the request, and any descriptors passed with them (kept up
 * to CONTROL_MAX_FDS; more are closed, and MSG_CTRUNC ends the
 * connection: a request whose files did not all arrive). */
static ssize_t conn_read(struct control_conn *k)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * CONTROL_MAX_FDS)];
	} ctl;
	struct iovec iov = {k->buf + k->len, sizeof(k->buf) - 1 - k->len};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf)};
	ssize_t n = recvmsg(k->fd, &msg, MSG_CMSG_CLOEXEC);

	if (n < 0)
		return n;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm;
	     cm = CMSG_NXTHDR(&msg, cm)) {
		size_t nfd;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(fd));
			if (k->nfds < CONTROL_MAX_FDS)
				k->fds[k->nfds++] = fd;
			else
				close(fd);
		}
	}
	if (msg.msg_flags & MSG_CTRUNC) {
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

static void on_conn(struct ev_handler *h, uint32_t events)
{
	struct control_conn *k = container_of(h, struct control_conn, ev);
	struct control *c = k->c;
	ssize_t n = conn_read(k);

	(void)events;
	if (n < 0 && errno == EAGAIN)
		return;
	if (n > 0) {
		k->len += (size_t)n;
		k->buf[k->len] = 0;
		if (!strchr(k->buf, '\n') && k->len < sizeof(k->buf) - 1)
			return; /* more to come */
		if (strchr(k->buf, '\n'))
			serve_line(c, k);
	}
	/* One request a connection; EOF, an error or an over-long line
	 * end it too. */
	conn_close(c, k);
}

static void on_listen(struct ev_handler *h, uint32_t events)
{
	struct control *c = container_of(h, struct control, listen_ev);
	int fd;

	(void)events;
	while ((fd = accept4(c->fd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct control_conn *k = NULL;

		for (unsigned i = 0; i < CONTROL_MAX_CONNS && !k; i++)
			if (c->conns[i].fd < 0)
				k = &c->conns[i];
		if (!k || evloop_add(c->vm->ep, fd, EPOLLIN, &k->ev)) {
			close(fd); /* busy: the client retries */
			continue;
		}
		k->fd = fd;
		k->len = 0;
		k->nfds = 0;
	}
}

/* A socket left by a VMM that died: nobody listens there any more. */
static int remove_stale(const char *path)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = host_unix_connect(path);
	if (fd >= 0) {
		close(fd);
		return -EADDRINUSE;
	}
	return fd == -ECONNREFUSED && unlink(path) == 0 ? 0 : -EADDRINUSE;
}

int control_open(struct control *c, struct vm *vm, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old_mask;
	int ret;

	c->vm = vm;
	c->fd = -1;
	for (unsigned i = 0; i < CONTROL_MAX_CONNS; i++)
		c->conns[i] = (struct control_conn){.fd = -1, .c = c};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_errx("--control %s: path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	ret = remove_stale(path);
	if (!ret) {
		c->fd = socket(AF_UNIX,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ret = c->fd < 0 ? -errno : 0;
	}
	if (!ret) {
		/* Whoever can connect can change the VM's limits: 0600
		 * (devices are made before any other thread). */
		old_mask = umask(0177);
		ret = bind(c->fd, (struct sockaddr *)&sa, sizeof(sa));
		umask(old_mask);
		if (ret == 0)
			ret = listen(c->fd, 8);
		ret = ret < 0 ? -errno : 0;
	}
	c->listen_ev.fn = on_listen;
	for (unsigned i = 0; i < CONTROL_MAX_CONNS; i++)
		c->conns[i].ev.fn = on_conn;
	if (!ret)
		ret = evloop_add(vm->ep, c->fd, EPOLLIN, &c->listen_ev);
	if (ret)
		log_err(ret, "--control %s", path);
	return ret;
}

void control_close(struct control *c)
{
	if (!c->vm)
		return; /* never opened */
	for (unsigned i = 0; i < CONTROL_MAX_CONNS; i++)
		if (c->conns[i].fd >= 0) {
			close(c->conns[i].fd);
			close_fds(&c->conns[i]);
		}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
