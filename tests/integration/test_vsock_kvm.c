// SPDX-License-Identifier: MIT
/*
 * virtio-vsock on real KVM against the guest kernel's AF_VSOCK: host
 * programs reaching a guest listener through "CONNECT <port>\n" on the
 * device's Unix socket, the guest reaching host listeners on PATH_<port>,
 * many connections at once, 64 MiB each way byte-exact (with the
 * throughput printed), a refused guest connect, and no socket left behind
 * after SIGTERM (a stale one after SIGKILL is replaced by the next VM).
 *
 * The guest side is initramfs/vsock-test; the VM runs on a thread (or a
 * child process) while the test plays the host programs.  (Named
 * test_vsock_kvm: tests/unit/test_vsock.c already makes a test_vsock.)
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/run.h"

#define BOOT_TIMEOUT 300
#define DIAL_TIMEOUT 120
#define BIG	     (64u << 20)

static char tmpdir[] = "/tmp/hutch-vsock-XXXXXX";
static char sock[128];

static void setup(void)
{
	cr_assert(mkdtemp(tmpdir));
	snprintf(sock, sizeof(sock), "%s/v.sock", tmpdir);
	signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(vsock, .init = setup, .fini = teardown, .timeout = BOOT_TIMEOUT);

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the VM, on a thread ---- */

struct vm_thread {
	pthread_t thread;
	const char *argv[16];
	char cmdline[1024];
	struct run_result r;
};

/* Set once the VM of the running test stopped: dial() gives up. */
static atomic_bool vm_exited;

static void *vm_main(void *p)
{
	struct vm_thread *vm = p;

	run_cmd(vm->argv, BOOT_TIMEOUT, (uid_t)-1, &vm->r);
	atomic_store(&vm_exited, true);
	return NULL;
}

/* Boot the test initramfs with our vsock device, running sh -c CMD. */
static void vm_start(struct vm_thread *vm, const char *cmd)
{
	unsigned n = 0;

	memset(vm, 0, sizeof(*vm));
	atomic_store(&vm_exited, false);
	snprintf(vm->cmdline, sizeof(vm->cmdline), "quiet -- sh -c \"%s\"",
		 cmd);
	vm->argv[n++] = hutch_bin();
	vm->argv[n++] = "boot";
	vm->argv[n++] = "--kernel";
	vm->argv[n++] = guest_file("vmlinux");
	vm->argv[n++] = "--initrd";
	vm->argv[n++] = guest_file("initramfs.cpio");
	vm->argv[n++] = "--mem";
	vm->argv[n++] = "256";
	vm->argv[n++] = "--vsock";
	vm->argv[n++] = sock;
	vm->argv[n++] = "--cmdline";
	vm->argv[n++] = vm->cmdline;
	vm->argv[n] = NULL;
	cr_assert_eq(pthread_create(&vm->thread, NULL, vm_main, vm), 0);
}

/* Wait for the VM; it must have powered off cleanly. */
static void vm_finish(struct vm_thread *vm)
{
	pthread_join(vm->thread, NULL);
	cr_assert_eq(vm->r.status, 0, "exit %d\nstdout:\n%s\nstderr:\n%s",
		     vm->r.status, vm->r.out, vm->r.err);
	cr_assert(strstr(vm->r.out, "hutch-init: exit status 0"),
		  "stdout:\n%s\nstderr:\n%s", vm->r.out, vm->r.err);
	cr_assert_eq(access(sock, F_OK), -1, "%s left behind", sock);
}

static void assert_out(struct vm_thread *vm, const char *needle)
{
	cr_assert(strstr(vm->r.out, needle),
		  "missing '%s' in:\n%s\nstderr:\n%s", needle, vm->r.out,
		  vm->r.err);
}

static unsigned count_of(const char *s, const char *needle)
{
	unsigned n = 0;

	for (; (s = strstr(s, needle)); s += strlen(needle))
		n++;
	return n;
}

/* ---- host programs ---- */

static void sun_set(struct sockaddr_un *sa, const char *p)
{
	cr_assert_lt(strlen(p), sizeof(sa->sun_path));
	memcpy(sa->sun_path, p, strlen(p) + 1);
}

/* Read a line of at most len - 1 bytes (up to '\n'), waiting at most
 * timeout_s seconds; false on EOF, timeout or error. */
static bool read_line(int fd, char *buf, size_t len, int timeout_s)
{
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, timeout_s * 1000) != 1 ||
		    read(fd, buf + n, 1) != 1)
			return false;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = 0;
	return n > 0 && buf[n - 1] == '\n';
}

/* Connect to guest port `port` through the device; retries while the
 * VM boots (no socket yet, or the guest answered RST: not listening
 * yet).  The connected fd; the "OK <port>" line into ok if not NULL. */
static int dial(unsigned port, char *ok, size_t oklen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	double deadline = now_s() + DIAL_TIMEOUT;
	char line[64], cmd[32];

	sun_set(&sa, sock);
	snprintf(cmd, sizeof(cmd), "CONNECT %u\n", port);
	while (now_s() < deadline && !atomic_load(&vm_exited)) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		cr_assert_geq(fd, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    write(fd, cmd, strlen(cmd)) == (ssize_t)strlen(cmd) &&
		    read_line(fd, line, sizeof(line), 30)) {
			cr_assert(!strncmp(line, "OK ", 3), "got '%s'", line);
			if (ok)
				snprintf(ok, oklen, "%s", line);
			return fd;
		}
		close(fd);
		usleep(100 * 1000);
	}
	cr_assert_fail("guest port %u never answered", port);
	return -1;
}

static int host_listen(unsigned port)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char p[160];

	cr_assert_geq(fd, 0);
	snprintf(p, sizeof(p), "%s_%u", sock, port);
	sun_set(&sa, p);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	return fd;
}

/* Write out, half-close, and read everything back until EOF, at the
 * same time (so neither direction waits for the other).  The bytes
 * read, or -1 after saying why (no Criterion asserts: clients run on
 * threads). */
static ssize_t exchange(int fd, const uint8_t *out, size_t outlen, uint8_t *in,
			size_t inmax)
{
	size_t sent = 0, got = 0;

	if (!outlen)
		shutdown(fd, SHUT_WR);
	for (;;) {
		struct pollfd p = {
		    .fd = fd, .events = POLLIN | (sent < outlen ? POLLOUT : 0)};
		uint8_t extra;
		ssize_t n;

		if (poll(&p, 1, 60000) != 1) {
			fprintf(stderr,
				"exchange: stalled at %zu/%zu sent, "
				"%zu received\n",
				sent, outlen, got);
			return -1;
		}
		if (p.revents & POLLOUT) {
			n = send(fd, out + sent, outlen - sent,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN) {
				perror("exchange: send");
				return -1;
			}
			if (n > 0 && (sent += (size_t)n) == outlen)
				shutdown(fd, SHUT_WR);
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		/* Past inmax, one byte is enough to tell EOF from more. */
		n = got < inmax ? recv(fd, in + got, inmax - got, MSG_DONTWAIT)
				: recv(fd, &extra, 1, MSG_DONTWAIT);
		if (n == 0)
			return sent == outlen ? (ssize_t)got : -1;
		if (n < 0 && errno != EAGAIN) {
			perror("exchange: recv");
			return -1;
		}
		if (n > 0 && got >= inmax) {
			fprintf(stderr, "exchange: more than %zu bytes\n",
				inmax);
			return -1;
		}
		if (n > 0)
			got += (size_t)n;
	}
}

/* The hash vsock-test prints (see initramfs/vsock-test.c). */
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

static void random_bytes(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 24);
	}
}

/* ---- tests ---- */

Test(vsock, host_connects_to_guest_listener_and_gets_echo)
{
	struct vm_thread vm;
	static uint8_t out[300000], in[300000];
	char ok[64];
	unsigned port;
	int fd;

	vm_start(&vm, "vsock-test listen 5000");
	fd = dial(5000, ok, sizeof(ok));
	cr_assert_eq(sscanf(ok, "OK %u", &port), 1);
	cr_assert_geq(port, 1u << 30);
	random_bytes(out, sizeof(out), 1);
	cr_assert_eq(exchange(fd, out, sizeof(out), in, sizeof(in)),
		     (ssize_t)sizeof(out));
	cr_assert_arr_eq(in, out, sizeof(out));
	close(fd);
	vm_finish(&vm);
	assert_out(&vm, "echoed 300000 bytes");
	run_free(&vm.r);
}

struct host_server {
	int lfd;
	pthread_t thread;
	char reply[256];
	size_t got;
	struct sum sum;
	double seconds;
};

/* Accept one connection, read it to EOF, answer, close. */
static void *serve_one(void *p)
{
	struct host_server *s = p;
	static uint8_t buf[1 << 16];
	char seen[64] = "";
	double t0 = 0;
	int fd = accept(s->lfd, NULL, NULL);
	ssize_t n;

	if (fd < 0)
		return NULL;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (!t0)
			t0 = now_s();
		if (s->got < sizeof(seen) - 1)
			memcpy(seen + s->got, buf,
			       (size_t)n < sizeof(seen) - 1 - s->got
				   ? (size_t)n
				   : sizeof(seen) - 1 - s->got);
		s->got += (size_t)n;
		sum_add(&s->sum, buf, (size_t)n);
	}
	s->seconds = t0 ? now_s() - t0 : 0;
	seen[strcspn(seen, "\n")] = 0;
	snprintf(s->reply, sizeof(s->reply), "host heard [%s]\n", seen);
	if (write(fd, s->reply, strlen(s->reply)) < 0)
		s->reply[0] = 0;
	close(fd);
	return NULL;
}

static void server_start(struct host_server *s, unsigned port)
{
	memset(s, 0, sizeof(*s));
	s->lfd = host_listen(port);
	cr_assert_eq(pthread_create(&s->thread, NULL, serve_one, s), 0);
}

static void server_finish(struct host_server *s)
{
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

Test(vsock, guest_connects_to_host_listener_on_path_port)
{
	struct vm_thread vm;
	struct host_server s;

	server_start(&s, 6000);
	vm_start(&vm, "echo ping-from-guest | vsock-test connect 2 6000");
	vm_finish(&vm);
	server_finish(&s);
	cr_assert_eq(s.got, strlen("ping-from-guest\n"));
	assert_out(&vm, "host heard [ping-from-guest]");
	run_free(&vm.r);
}

Test(vsock, guest_connect_without_host_listener_fails_cleanly)
{
	struct vm_thread vm;

	vm_start(&vm, "vsock-test connect 2 6999 </dev/null; echo rc=$?; "
		      "vsock-test connect 7 1 </dev/null; echo rc=$?");
	vm_finish(&vm);
	assert_out(&vm, "connect: Connection reset by peer");
	/* Both failed (no listener on PATH_6999; CID 7 is nobody). */
	cr_assert_eq(count_of(vm.r.out, "rc=1\r\n"), 2, "%s", vm.r.out);
	run_free(&vm.r);
}

#define NCONN	  10
#define CONN_SIZE (512u * 1024)

struct client {
	pthread_t thread;
	unsigned index;
	uint8_t *out, *in;
	ssize_t got;
	int fd;
};

static void *client_main(void *p)
{
	struct client *c = p;

	c->got = exchange(c->fd, c->out, CONN_SIZE, c->in, CONN_SIZE);
	close(c->fd);
	return NULL;
}

Test(vsock, ten_concurrent_connections)
{
	struct vm_thread vm;
	struct client c[NCONN];
	unsigned ports[NCONN];

	vm_start(&vm, "vsock-test listen 5000 10");
	/* All open first (the guest forks an echo per connection), then
	 * all transfer at once. */
	for (unsigned i = 0; i < NCONN; i++) {
		char ok[64];

		c[i].index = i;
		c[i].out = malloc(CONN_SIZE);
		c[i].in = malloc(CONN_SIZE);
		cr_assert(c[i].out && c[i].in);
		random_bytes(c[i].out, CONN_SIZE, 100 + i);
		c[i].fd = dial(5000, ok, sizeof(ok));
		cr_assert_eq(sscanf(ok, "OK %u", &ports[i]), 1);
		for (unsigned k = 0; k < i; k++)
			cr_assert_neq(ports[k], ports[i], "same host port");
	}
	for (unsigned i = 0; i < NCONN; i++)
		cr_assert_eq(
		    pthread_create(&c[i].thread, NULL, client_main, &c[i]), 0);
	for (unsigned i = 0; i < NCONN; i++) {
		pthread_join(c[i].thread, NULL);
		cr_assert_eq(c[i].got, (ssize_t)CONN_SIZE,
			     "connection %u: %zd bytes", i, c[i].got);
		cr_assert_arr_eq(c[i].in, c[i].out, CONN_SIZE,
				 "connection %u corrupted", i);
		free(c[i].out);
		free(c[i].in);
	}
	vm_finish(&vm);
	run_free(&vm.r);
}

/* "<what>: <bytes> bytes sum <hex> <rate> MiB/s" from the guest. */
static void guest_report(struct vm_thread *vm, const char *what,
			 unsigned long long *bytes, unsigned long long *sum,
			 double *rate)
{
	char key[32];
	const char *p;

	snprintf(key, sizeof(key), "%s: ", what);
	p = strstr(vm->r.out, key);
	cr_assert(p, "no '%s' line in:\n%s", what, vm->r.out);
	cr_assert_eq(sscanf(p + strlen(key), "%llu bytes sum %llx %lf", bytes,
			    sum, rate),
		     3, "%s", p);
}

Test(vsock, sixty_four_mib_each_way_byte_exact)
{
	struct vm_thread vm;
	struct host_server s;
	static uint8_t chunk[1 << 16];
	unsigned long long bytes, sum;
	struct sum mine = {0};
	double rate, t0, host_rate;
	char tail;
	int fd;

	server_start(&s, 6002);
	vm_start(&vm, "vsock-test sink 5001 && vsock-test flood 6002 64");
	fd = dial(5001, NULL, 0);
	/* Host to guest: 64 MiB of a stream only we know, hashed. */
	t0 = now_s();
	for (unsigned i = 0; i < BIG / sizeof(chunk); i++) {
		size_t off = 0;

		random_bytes(chunk, sizeof(chunk), 1000 + i);
		sum_add(&mine, chunk, sizeof(chunk));
		while (off < sizeof(chunk)) {
			ssize_t n = write(fd, chunk + off, sizeof(chunk) - off);

			cr_assert_gt(n, 0, "write: %s", strerror(errno));
			off += (size_t)n;
		}
	}
	shutdown(fd, SHUT_WR);
	cr_assert_eq(read(fd, &tail, 1), 0); /* the guest read it all */
	host_rate = BIG / 1048576.0 / (now_s() - t0);
	close(fd);
	vm_finish(&vm);
	server_finish(&s);

	guest_report(&vm, "sink", &bytes, &sum, &rate);
	cr_assert_eq(bytes, BIG);
	cr_assert_eq(sum, sum_final(&mine), "host->guest stream corrupted");
	fprintf(stderr,
		"vsock throughput host->guest: %.1f MiB/s (host clock), "
		"%.1f MiB/s (guest clock)\n",
		host_rate, rate);
	/* Guest to host. */
	guest_report(&vm, "flood", &bytes, &sum, &rate);
	cr_assert_eq(bytes, BIG);
	cr_assert_eq(s.got, BIG);
	cr_assert_eq(sum, sum_final(&s.sum), "guest->host stream corrupted");
	fprintf(stderr,
		"vsock throughput guest->host: %.1f MiB/s (host clock), "
		"%.1f MiB/s (guest clock)\n",
		s.seconds > 0 ? BIG / 1048576.0 / s.seconds : 0.0, rate);
	run_free(&vm.r);
}

/* hutch as a child process we can signal. */
static pid_t spawn_vm(const char *cmd)
{
	char cmdline[256];
	pid_t pid;

	snprintf(cmdline, sizeof(cmdline), "quiet -- sh -c \"%s\"", cmd);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execl(hutch_bin(), hutch_bin(), "boot", "--kernel",
		      guest_file("vmlinux"), "--initrd",
		      guest_file("initramfs.cpio"), "--mem", "256", "--vsock",
		      sock, "--cmdline", cmdline, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int wait_exit(pid_t pid)
{
	int st;

	for (int i = 0; i < 600; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st)
					     : 128 + WTERMSIG(st);
		usleep(100 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	cr_assert_fail("hutch did not exit");
	return -1;
}

/* The guest is up and its vsock answers: one echo round trip. */
static void ping_guest(void)
{
	uint8_t in[4];
	int fd = dial(5000, NULL, 0);

	cr_assert_eq(exchange(fd, (const uint8_t *)"ping", 4, in, sizeof(in)),
		     4);
	cr_assert_arr_eq(in, "ping", 4);
	close(fd);
}

Test(vsock, sigterm_leaves_no_socket_and_sigkill_leftover_is_replaced)
{
	pid_t pid;
	struct stat st;

	/* SIGTERM: hutch stops the VM and removes its socket. */
	pid = spawn_vm("vsock-test listen 5000; sleep 600");
	ping_guest();
	cr_assert_eq(kill(pid, SIGTERM), 0);
	cr_assert_eq(wait_exit(pid), 128 + SIGTERM);
	cr_assert_eq(access(sock, F_OK), -1, "socket left after SIGTERM");

	/* SIGKILL leaves a stale socket... */
	pid = spawn_vm("vsock-test listen 5000; sleep 600");
	ping_guest();
	kill(pid, SIGKILL);
	cr_assert_eq(wait_exit(pid), 128 + SIGKILL);
	cr_assert_eq(lstat(sock, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	/* ...which the next VM replaces, and removes on SIGINT. */
	pid = spawn_vm("vsock-test listen 5000; sleep 600");
	ping_guest();
	cr_assert_eq(kill(pid, SIGINT), 0);
	cr_assert_eq(wait_exit(pid), 128 + SIGINT);
	cr_assert_eq(access(sock, F_OK), -1, "socket left after SIGINT");
}

Test(vsock, second_vm_on_a_live_socket_is_refused)
{
	struct run_result r;
	pid_t pid = spawn_vm("vsock-test listen 5000 2; sleep 600");
	const char *argv[] = {
	    hutch_bin(), "boot", "--kernel", guest_file("vmlinux"),
	    "--vsock",	 sock,	 NULL};

	ping_guest();
	run_cmd(argv, 60, (uid_t)-1, &r);
	cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "in use"), "%s", r.err);
	run_free(&r);
	/* The first VM still answers. */
	ping_guest();
	kill(pid, SIGTERM);
	cr_assert_eq(wait_exit(pid), 128 + SIGTERM);
	cr_assert_eq(access(sock, F_OK), -1);
}
