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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
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

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the VM, a child process ---- */

struct vm_proc {
	pid_t pid;
	bool done;
	int status; /* exit code, or 128 + signal */
	char out_path[160], err_path[160];
	char *out, *err; /* read by vm_finish */
};

/* This test's VMs: killed at teardown if a failed assertion left them
 * running (they also die with the test process: PDEATHSIG). */
static struct vm_proc vms[8];
static unsigned nvms;

/* Boot the test initramfs with our vsock device, running sh -c CMD;
 * stdout and stderr go to files in tmpdir. */
static struct vm_proc *vm_start(const char *cmd)
{
	struct vm_proc *vm;
	char cmdline[1024];
	pid_t parent = getpid();

	cr_assert_lt(nvms, sizeof(vms) / sizeof(vms[0]));
	vm = &vms[nvms++];
	memset(vm, 0, sizeof(*vm));
	snprintf(cmdline, sizeof(cmdline), "quiet -- sh -c \"%s\"", cmd);
	snprintf(vm->out_path, sizeof(vm->out_path), "%s/vm%u.out", tmpdir,
		 nvms);
	snprintf(vm->err_path, sizeof(vm->err_path), "%s/vm%u.err", tmpdir,
		 nvms);
	vm->pid = fork();
	cr_assert_geq(vm->pid, 0);
	if (vm->pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int out =
		    open(vm->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err =
		    open(vm->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		/* Never outlive the test, nor hold its runner's fds. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent || in < 0 || out < 0 || err < 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		close_range(3, ~0u, 0);
		execl(hutch_bin(), hutch_bin(), "boot", "--kernel",
		      guest_kernel(), "--initrd", guest_file("initramfs.cpio"),
		      "--mem", "256", "--vsock", sock, "--cmdline", cmdline,
		      (char *)NULL);
		_exit(127);
	}
	return vm;
}

static bool vm_running(struct vm_proc *vm)
{
	int st;

	if (vm->done)
		return false;
	if (waitpid(vm->pid, &st, WNOHANG) != vm->pid)
		return true;
	vm->done = true;
	vm->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return false;
}

/* Wait for the VM to end on its own; its exit status. */
static int vm_wait(struct vm_proc *vm)
{
	double deadline = now_s() + BOOT_TIMEOUT;

	while (vm_running(vm) && now_s() < deadline)
		usleep(50 * 1000);
	cr_assert(vm->done, "hutch did not exit");
	return vm->status;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	cr_assert_not_null(f, "%s", path);
	if (getdelim(&buf, &len, 0, f) < 0) { /* empty */
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	return buf;
}

/* Wait for the VM; it must have powered off cleanly, its socket gone. */
static void vm_finish(struct vm_proc *vm)
{
	int status = vm_wait(vm);

	vm->out = slurp(vm->out_path);
	vm->err = slurp(vm->err_path);
	cr_assert_eq(status, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", status,
		     vm->out, vm->err);
	cr_assert(strstr(vm->out, "hutch-init: exit status 0"),
		  "stdout:\n%s\nstderr:\n%s", vm->out, vm->err);
	cr_assert_eq(access(sock, F_OK), -1, "%s left behind", sock);
}

static void vm_free(struct vm_proc *vm)
{
	free(vm->out);
	free(vm->err);
	vm->out = vm->err = NULL;
}

static void assert_out(struct vm_proc *vm, const char *needle)
{
	cr_assert(strstr(vm->out, needle), "missing '%s' in:\n%s\nstderr:\n%s",
		  needle, vm->out, vm->err);
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
static int dial(struct vm_proc *vm, unsigned port, char *ok, size_t oklen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	double deadline = now_s() + DIAL_TIMEOUT;
	char line[64], cmd[32];

	sun_set(&sa, sock);
	snprintf(cmd, sizeof(cmd), "CONNECT %u\n", port);
	while (now_s() < deadline && vm_running(vm)) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		cr_assert_geq(fd, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    write(fd, cmd, strlen(cmd)) == (ssize_t)strlen(cmd) &&
		    read_line(fd, line, sizeof(line), 30)) {
			struct timeval tv = {.tv_sec = 60};

			cr_assert(!strncmp(line, "OK ", 3), "got '%s'", line);
			/* Blocking I/O on it fails rather than hangs. */
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
				   sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
				   sizeof(tv));
			if (ok)
				snprintf(ok, oklen, "%s", line);
			return fd;
		}
		close(fd);
		usleep(100 * 1000);
	}
	if (!vm_running(vm)) {
		char *out = slurp(vm->out_path), *err = slurp(vm->err_path);

		cr_assert_fail("guest port %u never answered: hutch exited "
			       "%d\nstdout:\n%s\nstderr:\n%s",
			       port, vm->status, out, err);
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

static void setup(void)
{
	cr_assert(mkdtemp(tmpdir));
	snprintf(sock, sizeof(sock), "%s/v.sock", tmpdir);
	signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
	char cmd[128];

	for (unsigned i = 0; i < nvms; i++) {
		if (vm_running(&vms[i])) {
			kill(vms[i].pid, SIGKILL);
			waitpid(vms[i].pid, NULL, 0);
		}
		vm_free(&vms[i]);
	}
	nvms = 0;

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(vsock, .init = setup, .fini = teardown, .timeout = BOOT_TIMEOUT);

/* ---- tests ---- */

Test(vsock, host_connects_to_guest_listener_and_gets_echo)
{
	struct vm_proc *vm;
	static uint8_t out[300000], in[300000];
	char ok[64];
	unsigned port;
	int fd;

	vm = vm_start("vsock-test listen 5000");
	fd = dial(vm, 5000, ok, sizeof(ok));
	cr_assert_eq(sscanf(ok, "OK %u", &port), 1);
	cr_assert_geq(port, 1u << 30);
	random_bytes(out, sizeof(out), 1);
	cr_assert_eq(exchange(fd, out, sizeof(out), in, sizeof(in)),
		     (ssize_t)sizeof(out));
	cr_assert_arr_eq(in, out, sizeof(out));
	close(fd);
	vm_finish(vm);
	assert_out(vm, "echoed 300000 bytes");
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

	struct timeval tv = {.tv_sec = 60};

	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
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
	shutdown(s->lfd, SHUT_RDWR); /* no connection came: end accept() */
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

Test(vsock, guest_connects_to_host_listener_on_path_port)
{
	struct vm_proc *vm;
	struct host_server s;

	server_start(&s, 6000);
	vm = vm_start("echo ping-from-guest | vsock-test connect 2 6000");
	vm_finish(vm);
	server_finish(&s);
	cr_assert_eq(s.got, strlen("ping-from-guest\n"));
	assert_out(vm, "host heard [ping-from-guest]");
}

Test(vsock, guest_connect_without_host_listener_fails_cleanly)
{
	struct vm_proc *vm;

	vm = vm_start("vsock-test connect 2 6999 </dev/null; echo rc=$?; "
		      "vsock-test connect 7 1 </dev/null; echo rc=$?");
	vm_finish(vm);
	assert_out(vm, "connect: Connection reset by peer");
	/* Both failed (no listener on PATH_6999; CID 7 is nobody). */
	cr_assert_eq(count_of(vm->out, "rc=1\r\n"), 2, "%s", vm->out);
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
	struct vm_proc *vm;
	struct client c[NCONN];
	unsigned ports[NCONN];

	vm = vm_start("vsock-test listen 5000 10");
	/* All open first (the guest forks an echo per connection), then
	 * all transfer at once. */
	for (unsigned i = 0; i < NCONN; i++) {
		char ok[64];

		c[i].index = i;
		c[i].out = malloc(CONN_SIZE);
		c[i].in = malloc(CONN_SIZE);
		cr_assert(c[i].out && c[i].in);
		random_bytes(c[i].out, CONN_SIZE, 100 + i);
		c[i].fd = dial(vm, 5000, ok, sizeof(ok));
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
	vm_finish(vm);
}

/* "<what>: <bytes> bytes sum <hex> <rate> MiB/s" from the guest. */
static void guest_report(struct vm_proc *vm, const char *what,
			 unsigned long long *bytes, unsigned long long *sum,
			 double *rate)
{
	char key[32];
	const char *p;

	snprintf(key, sizeof(key), "%s: ", what);
	p = strstr(vm->out, key);
	cr_assert(p, "no '%s' line in:\n%s", what, vm->out);
	cr_assert_eq(sscanf(p + strlen(key), "%llu bytes sum %llx %lf", bytes,
			    sum, rate),
		     3, "%s", p);
}

Test(vsock, sixty_four_mib_each_way_byte_exact)
{
	struct vm_proc *vm;
	struct host_server s;
	static uint8_t chunk[1 << 16];
	unsigned long long bytes, sum;
	struct sum mine = {0};
	double rate, t0, host_rate;
	char tail;
	int fd;

	server_start(&s, 6002);
	vm = vm_start("vsock-test sink 5001 && vsock-test flood 6002 64");
	fd = dial(vm, 5001, NULL, 0);
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
	vm_finish(vm);
	server_finish(&s);

	guest_report(vm, "sink", &bytes, &sum, &rate);
	cr_assert_eq(bytes, BIG);
	cr_assert_eq(sum, sum_final(&mine), "host->guest stream corrupted");
	fprintf(stderr,
		"vsock throughput host->guest: %.1f MiB/s (host clock), "
		"%.1f MiB/s (guest clock)\n",
		host_rate, rate);
	/* Guest to host. */
	guest_report(vm, "flood", &bytes, &sum, &rate);
	cr_assert_eq(bytes, BIG);
	cr_assert_eq(s.got, BIG);
	cr_assert_eq(sum, sum_final(&s.sum), "guest->host stream corrupted");
	fprintf(stderr,
		"vsock throughput guest->host: %.1f MiB/s (host clock), "
		"%.1f MiB/s (guest clock)\n",
		s.seconds > 0 ? BIG / 1048576.0 / s.seconds : 0.0, rate);
}

/* The guest is up and its vsock answers: one echo round trip. */
static void ping_guest(struct vm_proc *vm)
{
	uint8_t in[4];
	int fd = dial(vm, 5000, NULL, 0);

	cr_assert_eq(exchange(fd, (const uint8_t *)"ping", 4, in, sizeof(in)),
		     4);
	cr_assert_arr_eq(in, "ping", 4);
	close(fd);
}

Test(vsock, sigterm_leaves_no_socket_and_sigkill_leftover_is_replaced)
{
	struct vm_proc *a, *b, *c;
	struct stat st;

	/* SIGTERM: hutch stops the VM and removes its socket. */
	a = vm_start("vsock-test listen 5000; sleep 120");
	ping_guest(a);
	cr_assert_eq(kill(a->pid, SIGTERM), 0);
	cr_assert_eq(vm_wait(a), 128 + SIGTERM);
	cr_assert_eq(access(sock, F_OK), -1, "socket left after SIGTERM");

	/* SIGKILL leaves a stale socket... */
	b = vm_start("vsock-test listen 5000; sleep 120");
	ping_guest(b);
	kill(b->pid, SIGKILL);
	cr_assert_eq(vm_wait(b), 128 + SIGKILL);
	cr_assert_eq(lstat(sock, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	/* ...which the next VM replaces, and removes on SIGINT. */
	c = vm_start("vsock-test listen 5000; sleep 120");
	ping_guest(c);
	cr_assert_eq(kill(c->pid, SIGINT), 0);
	cr_assert_eq(vm_wait(c), 128 + SIGINT);
	cr_assert_eq(access(sock, F_OK), -1, "socket left after SIGINT");
}

Test(vsock, second_vm_on_a_live_socket_is_refused)
{
	struct vm_proc *vm;
	struct run_result r;
	const char *argv[] = {hutch_bin(), "boot", "--kernel", guest_kernel(),
			      "--vsock",   sock,   NULL};

	vm = vm_start("vsock-test listen 5000 2; sleep 120");
	ping_guest(vm);
	run_cmd(argv, 60, (uid_t)-1, &r);
	cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "in use"), "%s", r.err);
	run_free(&r);
	/* The first VM still answers. */
	ping_guest(vm);
	kill(vm->pid, SIGTERM);
	cr_assert_eq(vm_wait(vm), 128 + SIGTERM);
	cr_assert_eq(access(sock, F_OK), -1);
}
