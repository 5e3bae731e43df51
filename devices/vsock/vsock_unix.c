// SPDX-License-Identifier: MIT
/*
 * virtio-vsock, bottom layer: the Unix-socket multiplexer (API and rules
 * in vsock_mux.h).  The listening socket (host programs and their
 * "CONNECT <port>\n" line), the connections we make to PATH_<port> for
 * the guest, their registration with the event loop, the reads, writes
 * and shutdowns the connection layer asks for, and the timer.  Nothing
 * here knows connection states, credit or the guest.
 *
 * Threads and locks: event loop thread only (init aside, made before the
 * loop runs); the handlers below take the lock given at init before
 * calling up, everything else runs with it held.
 *
 * Unix connections are registered edge-triggered for input and output
 * once; the layer above remembers an edge until a read or write says
 * EAGAIN, so the loop never spins on a socket nobody can serve right now
 * and nothing is re-registered as credit comes and goes.
 */
#include "devices/vsock/vsock_mux.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/base/host_connect.h"
#include "vmm/base/log.h"

#define CONN_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

uint64_t vsock_mux_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the event loop's handlers ---- */

static void on_sock(struct ev_handler *h, uint32_t events)
{
	struct vsock_mux_sock *s = container_of(h, struct vsock_mux_sock, ev);
	struct vsock_mux *m = s->mux;
	unsigned ev = 0;

	if (events & EPOLLIN)
		ev |= VSOCK_MUX_IN;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		ev |= VSOCK_MUX_OUT;
	if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
		ev |= VSOCK_MUX_HUP;
	pthread_mutex_lock(m->lock);
	/* Fetched before its connection closed: nothing left to tell. */
	if (s->fd >= 0)
		m->up->event(m->ctx, (unsigned)(s - m->socks), ev);
	pthread_mutex_unlock(m->lock);
}

static void on_listen(struct ev_handler *h, uint32_t events)
{
	struct vsock_mux *m = container_of(h, struct vsock_mux, listen_ev);

	(void)events;
	pthread_mutex_lock(m->lock);
	m->up->incoming(m->ctx);
	pthread_mutex_unlock(m->lock);
}

static void on_timer(struct ev_handler *h, uint32_t events)
{
	struct vsock_mux *m = container_of(h, struct vsock_mux, timer_ev);
	uint64_t n;

	(void)events;
	pthread_mutex_lock(m->lock);
	if (read(m->timer_fd, &n, sizeof(n)) == sizeof(n))
		m->up->timer(m->ctx);
	pthread_mutex_unlock(m->lock);
}

/* Watch PATH again after running out of fds. */
static void listen_resume(struct vsock_mux *m)
{
	if (m->listen_paused &&
	    evloop_add(m->ep, m->listen_fd, EPOLLIN, &m->listen_ev) == 0)
		m->listen_paused = false;
}

/* Out of fds a while ago: fds may have been freed by anything, not only
 * by our own connections closing; look again. */
static void on_retry(struct ev_handler *h, uint32_t events)
{
	struct vsock_mux *m = container_of(h, struct vsock_mux, retry_ev);
	uint64_t n;

	(void)events;
	pthread_mutex_lock(m->lock);
	if (read(m->retry_fd, &n, sizeof(n)) == sizeof(n))
		listen_resume(m);
	pthread_mutex_unlock(m->lock);
}

/* ---- connections ---- */

/* fd becomes connection id (or is closed).  0 or negative errno. */
static int sock_attach(struct vsock_mux *m, unsigned id, int fd)
{
	struct vsock_mux_sock *s = &m->socks[id];
	int ret;

	if (m->ep >= 0) {
		ret = evloop_add(m->ep, fd, CONN_EVENTS, &s->ev);
		if (ret) {
			log_debug("vsock: cannot watch a connection: %s",
				  strerror(-ret));
			close(fd);
			return ret;
		}
	}
	s->fd = fd;
	return 0;
}

int vsock_mux_accept(struct vsock_mux *m, int id)
{
	for (;;) {
		int fd = accept4(m->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		int ret;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && m->ep >= 0) {
				/* Out of fds: stop watching (the socket
				 * would stay readable) until one closes,
				 * or the retry timer says to look again. */
				struct itimerspec t = {
				    .it_value.tv_nsec = VSOCK_ACCEPT_RETRY_NS};

				log_debug("vsock: accept: %s", strerror(errno));
				evloop_del(m->ep, m->listen_fd);
				m->listen_paused = true;
				timerfd_settime(m->retry_fd, 0, &t, NULL);
			}
			return 0;
		}
		if (id < 0) {
			log_debug("vsock: too many connections; closing a "
				  "new one");
			close(fd);
			return -EBUSY;
		}
		ret = sock_attach(m, (unsigned)id, fd);
		return ret ? ret : 1;
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

int vsock_mux_read_line(struct vsock_mux *m, unsigned id, uint32_t *port)
{
	int fd = m->socks[id].fd;
	char line[VSOCK_LINE_MAX + 1], *nl;
	ssize_t n = recv(fd, line, VSOCK_LINE_MAX, MSG_PEEK | MSG_DONTWAIT);
	int64_t p;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -ECONNRESET; /* gone before saying anything */
	nl = memchr(line, '\n', (size_t)n);
	if (!nl) {
		if (n < VSOCK_LINE_MAX)
			return 0; /* the rest comes with the next edge */
		log_debug("vsock: no CONNECT line in %d bytes", VSOCK_LINE_MAX);
		return -EPROTO;
	}
	/* Take the line only; what follows it is data for the guest. */
	if (recv(fd, line, (size_t)(nl - line + 1), MSG_DONTWAIT) !=
	    nl - line + 1)
		return -ECONNRESET;
	*nl = 0;
	p = parse_connect(line);
	if (p < 0) {
		log_debug("vsock: bad line from host: '%s'", line);
		return -EPROTO;
	}
	*port = (uint32_t)p;
	return 1;
}

int vsock_mux_connect(struct vsock_mux *m, unsigned id, uint32_t port)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;

	/* vsock_mux_init checked that every PATH_<port> fits.  Connected
	 * directly, or by the jail's broker (vmm/base/host_connect.h). */
	snprintf(path, sizeof(path), "%s_%u", m->path, port);
	fd = host_unix_connect(path);
	if (fd < 0) {
		log_debug("vsock: guest connect to %s: %s", path,
			  strerror(-fd));
		return fd;
	}
	return sock_attach(m, id, fd);
}

ssize_t vsock_mux_recv(struct vsock_mux *m, unsigned id,
		       const struct iovec *iov, unsigned niov)
{
	ssize_t n = readv(m->socks[id].fd, iov, (int)niov);

	return n < 0 ? -errno : n;
}

ssize_t vsock_mux_send(struct vsock_mux *m, unsigned id,
		       const struct iovec *iov, unsigned niov)
{
	struct msghdr msg = {.msg_iov = (struct iovec *)iov,
			     .msg_iovlen = niov};
	ssize_t n = sendmsg(m->socks[id].fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);

	return n < 0 ? -errno : n;
}

void vsock_mux_shut_wr(struct vsock_mux *m, unsigned id)
{
	shutdown(m->socks[id].fd, SHUT_WR);
}

bool vsock_mux_hung_up(struct vsock_mux *m, unsigned id)
{
	struct pollfd p = {.fd = m->socks[id].fd, .events = POLLOUT};

	return p.fd >= 0 && poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLHUP | POLLERR));
}

bool vsock_mux_rdhup(struct vsock_mux *m, unsigned id)
{
	struct pollfd p = {.fd = m->socks[id].fd, .events = POLLRDHUP};

	return p.fd >= 0 && poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void vsock_mux_close(struct vsock_mux *m, unsigned id)
{
	struct vsock_mux_sock *s = &m->socks[id];

	if (s->fd < 0)
		return;
	close(s->fd); /* also leaves the epoll set */
	s->fd = -1;
	/* An fd is free again: accept again if we ran out. */
	listen_resume(m);
}

/* ---- the timer ---- */

int vsock_mux_timer(struct vsock_mux *m, uint64_t at_ns)
{
	struct itimerspec t = {
	    .it_value.tv_sec = (time_t)(at_ns / 1000000000),
	    .it_value.tv_nsec = (long)(at_ns % 1000000000),
	};

	if (m->timer_fd < 0)
		return -EBADF;
	if (timerfd_settime(m->timer_fd, TFD_TIMER_ABSTIME, &t, NULL) < 0)
		return -errno;
	return 0;
}

/* ---- the listening socket ---- */

/* An existing path is ours to replace only if it is a socket nobody
 * listens on (a VMM killed before it could clean up).  0 or negative
 * errno, reported. */
static int check_stale(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		goto err;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_errx("--vsock: %s exists and is not a socket", path);
		return -EEXIST;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto err;
	}
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (ret < 0)
		ret = -errno;
	close(fd);
	if (ret == 0) {
		log_errx("--vsock: %s is in use (another VM?)", path);
		return -EADDRINUSE;
	}
	if (ret != -ECONNREFUSED)
		goto err;
	log_debug("vsock: removing stale socket %s", path);
	if (unlink(path) == 0)
		return 0;
	ret = -errno;
err:
	log_err(ret, "--vsock: %s", path);
	return ret;
}

/* Bind and listen on m->path, mode 0600.  0 or negative errno, reported. */
static int listen_path(struct vsock_mux *m)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old_mask;
	int ret;

	strcpy(sa.sun_path, m->path);
	m->listen_fd =
	    socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->listen_fd < 0) {
		ret = -errno;
		log_err(ret, "--vsock: socket");
		return ret;
	}
	/* Whoever can connect can run commands as the guest's root: the
	 * socket is the owner's alone (0600), whatever the umask.  The umask
	 * is process-wide, but devices are made before any other thread. */
	old_mask = umask(0177);
	ret = bind(m->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (ret < 0) {
		ret = -errno;
		log_err(ret, "--vsock: cannot create %s", m->path);
		return ret;
	}
	m->bound = true;
	if (lstat(m->path, &st) == 0) {
		m->sock_dev = st.st_dev;
		m->sock_ino = st.st_ino;
	}
	if (listen(m->listen_fd, 128) < 0) {
		ret = -errno;
		log_err(ret, "--vsock: listen on %s", m->path);
		return ret;
	}
	return 0;
}

int vsock_mux_init(struct vsock_mux *m, const char *path, int ep,
		   pthread_mutex_t *lock, const struct vsock_mux_up *up,
		   void *ctx)
{
	struct sockaddr_un sa;
	int ret;

	m->up = up;
	m->ctx = ctx;
	m->lock = lock;
	m->ep = ep;
	m->listen_fd = m->timer_fd = m->retry_fd = -1;
	m->listen_ev.fn = on_listen;
	m->timer_ev.fn = on_timer;
	m->retry_ev.fn = on_retry;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		m->socks[i].ev.fn = on_sock;
		m->socks[i].mux = m;
		m->socks[i].fd = -1;
	}
	/* Room for PATH and for PATH_<any port>. */
	if (strlen(path) + sizeof("_4294967295") > sizeof(sa.sun_path)) {
		log_errx("--vsock: path %s is too long for a Unix socket (at "
			 "most %zu bytes)",
			 path, sizeof(sa.sun_path) - sizeof("_4294967295"));
		return -ENAMETOOLONG;
	}
	m->path = strdup(path);
	if (!m->path) {
		log_err(-ENOMEM, "vsock");
		return -ENOMEM;
	}
	ret = check_stale(m->path);
	if (!ret)
		ret = listen_path(m);
	if (ret)
		return ret;
	m->timer_fd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	m->retry_fd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (m->timer_fd < 0 || m->retry_fd < 0) {
		ret = -errno;
		log_err(ret, "vsock: timerfd");
		return ret;
	}
	if (ep < 0)
		return 0;
	ret = evloop_add(ep, m->listen_fd, EPOLLIN, &m->listen_ev);
	if (!ret)
		ret = evloop_add(ep, m->timer_fd, EPOLLIN, &m->timer_ev);
	if (!ret)
		ret = evloop_add(ep, m->retry_fd, EPOLLIN, &m->retry_ev);
	if (ret)
		log_err(ret, "vsock: event loop");
	return ret;
}

void vsock_mux_fini(struct vsock_mux *m)
{
	struct stat st;

	if (!m->up)
		return; /* vsock_mux_init never ran: nothing is ours */
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		vsock_mux_close(m, i);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	m->listen_fd = -1;
	if (m->timer_fd >= 0)
		close(m->timer_fd);
	m->timer_fd = -1;
	if (m->retry_fd >= 0)
		close(m->retry_fd);
	m->retry_fd = -1;
	/* Only the socket we made: not one a newer VMM bound meanwhile. */
	if (m->bound && lstat(m->path, &st) == 0 &&
	    (uint64_t)st.st_dev == m->sock_dev &&
	    (uint64_t)st.st_ino == m->sock_ino)
		unlink(m->path);
	m->bound = false;
	free(m->path);
	m->path = NULL;
}
