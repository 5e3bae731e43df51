// SPDX-License-Identifier: MIT
/*
 * virtio-vsock, where Unix connections come from: the listening socket
 * (host programs and their "CONNECT <port>\n" line) and the connections
 * we make to PATH_<port> for the guest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/base/log.h"
#include "devices/vsock/vsock_conn.h"

/* Registered once, edge-triggered (see vsock_conn.c). */
#define CONN_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/* ---- connections from host programs ---- */

static struct vsock_conn *conn_alloc(struct virtio_vsock *v, int fd)
{
	struct vsock_conn *c = NULL;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS && !c; i++)
		if (v->slots[i].state == VS_FREE)
			c = &v->slots[i];
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->ev.fn = vsock_conn_event;
	c->v = v;
	c->fd = fd;
	c->readable = c->writable = true;
	if (v->vdev.host.ep >= 0 &&
	    evloop_add(v->vdev.host.ep, fd, CONN_EVENTS, &c->ev)) {
		log_debug("vsock: cannot watch a connection: %s",
			  strerror(errno));
		c->fd = -1;
		return NULL;
	}
	c->state = VS_LINE;
	v->nconns++;
	return c;
}

static uint32_t alloc_local_port(struct virtio_vsock *v, uint32_t peer)
{
	for (;;) {
		uint32_t p = v->next_local_port++;

		if (v->next_local_port == UINT32_MAX)
			v->next_local_port = VSOCK_FIRST_LOCAL_PORT;
		/* At most VSOCK_MAX_CONNS ports are taken: this ends. */
		if (!vsock_conn_find(v, p, peer))
			return p;
	}
}

/* "CONNECT <port>": the port, or -1. */
static int64_t parse_connect(const char *line)
{
	const char *p = line + 8;
	uint64_t port = 0;

	if (strncmp(line, "CONNECT ", 8) || !*p)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || p - line >= 8 + 10)
			return -1;
		port = port * 10 + (uint64_t)(*p - '0');
	}
	/* VMADDR_PORT_ANY (-1U) is no port. */
	return port >= UINT32_MAX ? -1 : (int64_t)port;
}

void vsock_read_line(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;
	char line[VSOCK_LINE_MAX + 1], *nl;
	ssize_t n = recv(c->fd, line, VSOCK_LINE_MAX, MSG_PEEK | MSG_DONTWAIT);
	int64_t port;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		vsock_conn_free(c); /* gone before saying anything */
		return;
	}
	nl = memchr(line, '\n', (size_t)n);
	if (!nl) {
		if (n == VSOCK_LINE_MAX) {
			log_debug("vsock: no CONNECT line in %d bytes",
				  VSOCK_LINE_MAX);
			vsock_conn_free(c);
		}
		return; /* the rest of the line comes with the next edge */
	}
	/* Take the line only; what follows it is data for the guest. */
	if (recv(c->fd, line, (size_t)(nl - line + 1), MSG_DONTWAIT) !=
	    nl - line + 1) {
		vsock_conn_free(c);
		return;
	}
	*nl = 0;
	port = parse_connect(line);
	if (port < 0) {
		log_debug("vsock: bad line from host: '%s'", line);
		vsock_conn_free(c);
		return;
	}
	if (!virtio_dev_live(&v->vdev)) {
		log_debug("vsock: CONNECT %u before the guest driver is ready",
			  (unsigned)port);
		vsock_conn_free(c);
		return;
	}
	c->peer_port = (uint32_t)port;
	c->local_port = alloc_local_port(v, c->peer_port);
	c->state = VS_CONNECTING;
	vsock_conn_set_deadline(c, v->connect_timeout_ns);
	vsock_conn_hash_add(c);
	vsock_conn_queue(c, PEND_REQUEST);
}

void vsock_guest_request(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vsock_conn *c;
	int fd;

	if (v->nconns >= VSOCK_MAX_CONNS) {
		log_debug("vsock: too many connections; refusing guest port "
			  "%u",
			  h->src_port);
		vsock_orphan_rst(v, h);
		return;
	}
	/* vsock_listen checked that every PATH_<port> fits. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->path,
		 h->dst_port);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_debug("vsock: guest connect to %s: %s", sa.sun_path,
			  strerror(errno));
		if (fd >= 0)
			close(fd);
		vsock_orphan_rst(v, h);
		return;
	}
	c = conn_alloc(v, fd);
	if (!c) {
		close(fd);
		vsock_orphan_rst(v, h);
		return;
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->state = VS_OPEN;
	vsock_conn_hash_add(c);
	v->stats.conns_guest++;
	vsock_conn_queue(c, PEND_RESPONSE);
}

/* ---- the listening socket ---- */

void vsock_listen_resume(struct virtio_vsock *v)
{
	if (!v->listen_paused || v->vdev.host.ep < 0)
		return;
	if (evloop_add(v->vdev.host.ep, v->listen_fd, EPOLLIN, &v->listen_ev) ==
	    0)
		v->listen_paused = false;
}

static void on_listen(struct ev_handler *h, uint32_t events)
{
	struct virtio_vsock *v =
	    container_of(h, struct virtio_vsock, listen_ev);

	(void)events;
	pthread_mutex_lock(&v->vdev.lock);
	for (;;) {
		int fd = accept4(v->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vsock_conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN) {
				/* Out of fds: stop accepting (the socket
				 * would stay readable) until one closes. */
				log_debug("vsock: accept: %s", strerror(errno));
				evloop_del(v->vdev.host.ep, v->listen_fd);
				v->listen_paused = true;
			}
			break;
		}
		c = conn_alloc(v, fd);
		if (!c) {
			log_debug("vsock: too many connections; closing a "
				  "new one");
			close(fd);
			continue;
		}
		vsock_conn_set_deadline(c, v->line_timeout_ns);
		vsock_read_line(c);
	}
	vsock_rx_pump(v);
	pthread_mutex_unlock(&v->vdev.lock);
}

/* An existing path is ours to replace only if it is a socket nobody
 * listens on (a VMM killed before it could clean up). */
static int check_stale(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_errx("--vsock: %s exists and is not a socket", path);
		return -EEXIST;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (ret == 0) {
		log_errx("--vsock: %s is in use (another VM?)", path);
		return -EADDRINUSE;
	}
	if (errno != ECONNREFUSED) {
		ret = -errno;
		log_err(ret, "--vsock: %s", path);
		return ret;
	}
	log_debug("vsock: removing stale socket %s", path);
	return unlink(path) < 0 ? -errno : 0;
}

int vsock_listen(struct virtio_vsock *v)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old_mask;
	int ret;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		v->slots[i].ev.fn = vsock_conn_event;
		v->slots[i].v = v;
		v->slots[i].fd = -1;
	}
	/* Room for PATH and for PATH_<any port>. */
	if (strlen(v->path) + sizeof("_4294967295") > sizeof(sa.sun_path)) {
		log_errx("--vsock: path %s is too long for a Unix socket (at "
			 "most %zu bytes)",
			 v->path, sizeof(sa.sun_path) - sizeof("_4294967295"));
		return -ENAMETOOLONG;
	}
	ret = check_stale(v->path);
	if (ret) {
		if (ret != -EEXIST && ret != -EADDRINUSE)
			log_err(ret, "--vsock: %s", v->path);
		return ret;
	}
	strcpy(sa.sun_path, v->path);
	v->listen_fd =
	    socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (v->listen_fd < 0) {
		ret = -errno;
		log_err(ret, "--vsock: socket");
		return ret;
	}
	/* Whoever can connect can run commands as the guest's root: the
	 * socket is the owner's alone (0600), whatever the umask.  The umask
	 * is process-wide, but devices are made before any other thread. */
	old_mask = umask(0177);
	ret = bind(v->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (ret < 0) {
		ret = -errno;
		log_err(ret, "--vsock: cannot create %s", v->path);
		return ret;
	}
	v->bound = true;
	if (lstat(v->path, &st) == 0) {
		v->sock_dev = st.st_dev;
		v->sock_ino = st.st_ino;
	}
	if (listen(v->listen_fd, 128) < 0) {
		ret = -errno;
		log_err(ret, "--vsock: listen on %s", v->path);
		return ret;
	}
	v->listen_ev.fn = on_listen;
	v->timer_ev.fn = vsock_timer_event;
	v->timer_fd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (v->timer_fd < 0) {
		ret = -errno;
		log_err(ret, "vsock: timerfd");
		return ret;
	}
	if (v->vdev.host.ep >= 0) {
		ret = evloop_add(v->vdev.host.ep, v->listen_fd, EPOLLIN,
				 &v->listen_ev);
		if (!ret)
			ret = evloop_add(v->vdev.host.ep, v->timer_fd, EPOLLIN,
					 &v->timer_ev);
		if (ret) {
			log_err(ret, "vsock: event loop");
			return ret;
		}
	}
	return 0;
}

void vsock_unlisten(struct virtio_vsock *v)
{
	struct stat st;

	if (v->listen_fd >= 0)
		close(v->listen_fd);
	v->listen_fd = -1;
	if (v->timer_fd >= 0)
		close(v->timer_fd);
	v->timer_fd = -1;
	/* Only the socket we made: not one a newer VMM bound meanwhile. */
	if (v->bound && lstat(v->path, &st) == 0 &&
	    (uint64_t)st.st_dev == v->sock_dev &&
	    (uint64_t)st.st_ino == v->sock_ino)
		unlink(v->path);
	v->bound = false;
}
