// SPDX-License-Identifier: MIT
/*
 * Test tool for the guest's vsock (AF_VSOCK stream sockets):
 *
 *   vsock-test listen PORT [N]     accept N connections (default 1), each
 *                                  echoing everything back until EOF;
 *                                  exits when all are done
 *   vsock-test connect CID PORT    connect; copy stdin to the socket and
 *                                  the socket to stdout until both ends
 *                                  are closed
 *   vsock-test flood PORT [MiB]    connect to the host (CID 2) and write
 *                                  MiB (default 64) as fast as it can;
 *                                  prints "flood: <bytes> bytes sum
 *                                  <hex> <MiB/s> MiB/s"
 *   vsock-test sink PORT           accept one connection, read it to EOF;
 *                                  prints "sink: <bytes> bytes sum <hex>
 *                                  <MiB/s> MiB/s"
 *
 * The sum is the word-wise hash in sum_add() (tests compute the same on
 * the host).  Exit status 0 on success, 1 with a message otherwise.
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

struct sum {
	uint64_t h, bytes;
	uint8_t carry[8];
	unsigned n;
};

static void mix(struct sum *s, const uint8_t *w8)
{
	uint64_t w;

	memcpy(&w, w8, 8);
	s->h = (s->h ^ w) * 0x100000001b3ull;
	s->h ^= s->h >> 29;
}

static void sum_add(struct sum *s, const uint8_t *p, size_t len)
{
	s->bytes += len;
	while (len && s->n) {
		s->carry[s->n++] = *p++;
		len--;
		if (s->n == 8) {
			mix(s, s->carry);
			s->n = 0;
		}
	}
	for (; len >= 8; p += 8, len -= 8)
		mix(s, p);
	memcpy(s->carry, p, len);
	s->n = (unsigned)len;
}

static uint64_t sum_final(struct sum *s)
{
	uint8_t last[8] = {0};

	memcpy(last, s->carry, s->n);
	mix(s, last);
	return s->h ^ s->bytes;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "vsock-test: %s: %s\n", what, strerror(errno));
	exit(1);
}

static unsigned long number(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno) {
		fprintf(stderr, "vsock-test: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int listener(unsigned port)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK,
				 .svm_cid = VMADDR_CID_ANY,
				 .svm_port = port};
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind");
	if (listen(fd, 64) < 0)
		die("listen");
	fprintf(stderr, "vsock-test: listening on port %u\n", port);
	return fd;
}

static int connect_to(unsigned cid, unsigned port)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	return fd;
}

static int echo(int fd)
{
	static uint8_t buf[CHUNK];
	unsigned long total = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		if (write_all(fd, buf, (size_t)n))
			die("write");
		total += (unsigned long)n;
	}
	fprintf(stderr, "vsock-test: echoed %lu bytes\n", total);
	close(fd);
	return 0;
}

static int cmd_listen(unsigned port, unsigned count)
{
	int lfd = listener(port), failed = 0;

	for (unsigned i = 0; i < count; i++) {
		int fd = accept(lfd, NULL, NULL);
		pid_t pid;

		if (fd < 0)
			die("accept");
		pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			close(lfd);
			_exit(echo(fd));
		}
		close(fd);
	}
	close(lfd);
	for (unsigned i = 0; i < count; i++) {
		int st;

		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			failed = 1;
	}
	return failed;
}

static int cmd_connect(unsigned cid, unsigned port)
{
	static uint8_t buf[CHUNK];
	int fd = connect_to(cid, port);
	struct pollfd p[2] = {{.fd = 0, .events = POLLIN},
			      {.fd = fd, .events = POLLIN}};

	while (p[1].fd >= 0) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[0].revents) {
			ssize_t n = read(0, buf, sizeof(buf));

			if (n <= 0) {
				shutdown(fd, SHUT_WR);
				p[0].fd = -1;
			} else if (write_all(fd, buf, (size_t)n)) {
				die("write");
			}
		}
		if (p[1].revents) {
			ssize_t n = read(fd, buf, sizeof(buf));

			if (n < 0)
				die("read");
			if (n == 0)
				p[1].fd = -1;
			else if (write_all(1, buf, (size_t)n))
				die("stdout");
		}
	}
	/* The host may close before we reach EOF on stdin. */
	close(fd);
	return 0;
}

static int cmd_flood(unsigned port, unsigned long mib)
{
	static uint8_t buf[CHUNK];
	int fd = connect_to(VMADDR_CID_HOST, port);
	unsigned long chunks = mib * (1024 * 1024 / CHUNK);
	struct sum s = {0};
	double t0 = now_s(), dt;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + (i >> 8));
	for (unsigned long i = 0; i < chunks; i++) {
		/* Each chunk differs: lost or reordered chunks show. */
		memcpy(buf, &i, sizeof(i));
		sum_add(&s, buf, sizeof(buf));
		if (write_all(fd, buf, sizeof(buf)))
			die("write");
	}
	shutdown(fd, SHUT_WR);
	/* Wait for the host's close, so all of it arrived. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	dt = now_s() - t0;
	printf("flood: %llu bytes sum %016llx %.1f MiB/s\n",
	       (unsigned long long)s.bytes, (unsigned long long)sum_final(&s),
	       (double)s.bytes / 1048576.0 / (dt > 0 ? dt : 1e-9));
	close(fd);
	return 0;
}

static int cmd_sink(unsigned port)
{
	static uint8_t buf[CHUNK];
	int lfd = listener(port), fd;
	struct sum s = {0};
	double t0 = 0, dt;

	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept");
	close(lfd);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		if (!t0)
			t0 = now_s();
		sum_add(&s, buf, (size_t)n);
	}
	dt = t0 ? now_s() - t0 : 0;
	printf("sink: %llu bytes sum %016llx %.1f MiB/s\n",
	       (unsigned long long)s.bytes, (unsigned long long)sum_final(&s),
	       (double)s.bytes / 1048576.0 / (dt > 0 ? dt : 1e-9));
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "listen") && argc <= 4)
		return cmd_listen((unsigned)number(argv[2]),
				  argc == 4 ? (unsigned)number(argv[3]) : 1);
	if (argc == 4 && !strcmp(argv[1], "connect"))
		return cmd_connect((unsigned)number(argv[2]),
				   (unsigned)number(argv[3]));
	if (argc >= 3 && argc <= 4 && !strcmp(argv[1], "flood"))
		return cmd_flood((unsigned)number(argv[2]),
				 argc == 4 ? number(argv[3]) : 64);
	if (argc == 3 && !strcmp(argv[1], "sink"))
		return cmd_sink((unsigned)number(argv[2]));
	fprintf(stderr,
		"usage: vsock-test listen PORT [N] | connect CID PORT |\n"
		"       flood PORT [MiB] | sink PORT\n");
	return 2;
}
