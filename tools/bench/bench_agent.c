// SPDX-License-Identifier: MIT
/*
 * The client half of tools/bench shell: drives a guest agent through the
 * hutch client library, over a hutch VM's vsock Unix socket (--uds) or the
 * host kernel's AF_VSOCK (--cid, QEMU's vhost-vsock), so both VMMs are
 * measured by the same code against the same agent.  Prints one line of
 * JSON per measurement for tools/bench/shell.py.
 *
 *   bench-agent (--uds PATH | --cid N) [--wait MS] OP [ARG]...
 *     (connects every 5 ms until the agent answers, for up to MS)
 *     ready          connect once the agent answers; ms to HELLO_OK
 *     run CMD...     run CMD (stdout and stderr pass through), then power
 *                    the guest off; exits with CMD's status
 *     cmd CMD...     the same, but the guest runs on (tools/bench snapshot)
 *     exec N         N round trips of `true`: EXEC .. EXIT, µs each
 *     up MIB         MIB MiB into `cat > /dev/null`: MiB/s
 *     down MIB       MIB MiB out of `head -c`: MiB/s
 *     socat N PORT   N connections to guest PORT, where
 *                    `socat VSOCK-LISTEN:PORT,fork EXEC:true` (started
 *                    through the agent) answers each: connect to EOF, µs
 *     shutdown       power the guest off
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/client/agent_client.h"

#define AGENT_PORT 1024

static const char *uds;
static unsigned cid;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int connect_port(struct agent_conn *c, unsigned port)
{
	return uds ? agent_connect_vsock(c, uds, port)
		   : agent_connect_cid(c, cid, port, 50);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-agent: %s: %s\n", what, strerror(-err));
	exit(1);
}

/* Keep connecting until the agent answers HELLO (or wait_ms passes). */
static void connect_agent(struct agent_conn *c, unsigned wait_ms)
{
	uint64_t deadline = now_us() + (uint64_t)wait_ms * 1000;
	char name[64];
	uint32_t version;
	int ret;

	for (;;) {
		ret = connect_port(c, AGENT_PORT);
		if (!ret) {
			ret = agent_hello(c, &version, name, sizeof(name));
			if (!ret)
				return;
			agent_close(c);
		}
		if (now_us() > deadline)
			die("connect", ret);
		usleep(5000);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void print_latencies(const char *what, uint64_t *us, unsigned n)
{
	qsort(us, n, sizeof(*us), cmp_u64);
	printf("{\"op\": \"%s\", \"n\": %u, \"p50_us\": %" PRIu64
	       ", \"p99_us\": %" PRIu64 ", \"min_us\": %" PRIu64
	       ", \"max_us\": %" PRIu64 "}\n",
	       what, n, us[n / 2], us[(n * 99) / 100], us[0], us[n - 1]);
}

/* Run argv to its end; stdin from in_fd (-1: none), stdout to out_fd. */
static int run(struct agent_conn *c, const char *const *argv, int in_fd,
	       int out_fd, struct agent_exit *ex)
{
	struct agent_exec e = {.argv = argv};
	uint32_t id;
	int ret = agent_exec_start(c, &e, &id);

	if (!ret) {
		struct agent_stream s = {.in_fd = in_fd,
					 .out_fd = out_fd,
					 .err_fd = 2,
					 .sig_fd = -1};

		ret = agent_exec_wait(c, id, &s, ex);
	}
	return ret;
}

static void op_exec(struct agent_conn *c, unsigned n)
{
	static const char *const argv[] = {"true", NULL};
	uint64_t *us = calloc(n, sizeof(*us));
	int null_fd = open("/dev/null", O_WRONLY);

	for (unsigned i = 0; i < n; i++) {
		struct agent_exit ex;
		uint64_t t0 = now_us();
		int ret = run(c, argv, -1, null_fd, &ex);

		if (ret)
			die("exec", ret);
		if (agent_exit_status(&ex))
			die("exec: true failed", -EIO);
		us[i] = now_us() - t0;
	}
	print_latencies("exec", us, n);
	free(us);
	close(null_fd);
}

/* Through a pipe fed by a child, so the stream is what a user's pipe
 * gives the CLI; the child writes zeros as fast as the pipe takes them. */
static void op_up(struct agent_conn *c, unsigned mib)
{
	static const char *const argv[] = {"sh", "-c", "cat > /dev/null", NULL};
	static char buf[1 << 20];
	struct agent_exit ex;
	int p[2], ret;
	uint64_t t0;

	if (pipe(p) < 0)
		die("pipe", -errno);
	t0 = now_us();
	if (fork() == 0) {
		close(p[0]);
		for (unsigned i = 0; i < mib; i++)
			for (size_t off = 0; off < sizeof(buf);) {
				ssize_t w =
				    write(p[1], buf + off, sizeof(buf) - off);

				if (w <= 0)
					_exit(1);
				off += (size_t)w;
			}
		_exit(0);
	}
	close(p[1]);
	ret = run(c, argv, p[0], 1, &ex);
	if (ret)
		die("up", ret);
	printf("{\"op\": \"up\", \"mib\": %u, \"mib_s\": %.1f}\n", mib,
	       mib / ((now_us() - t0) / 1e6));
	close(p[0]);
	wait(NULL);
}

static void op_down(struct agent_conn *c, unsigned mib)
{
	char count[32];
	const char *argv[] = {"head", "-c", count, "/dev/zero", NULL};
	struct agent_exit ex;
	int p[2], ret;
	uint64_t t0, got = 0;
	pid_t pid;

	snprintf(count, sizeof(count), "%uM", mib);
	if (pipe(p) < 0)
		die("pipe", -errno);
	pid = fork();
	if (pid == 0) { /* count what arrives, as a consumer would */
		static char buf[1 << 16];
		ssize_t r;

		close(p[1]);
		while ((r = read(p[0], buf, sizeof(buf))) > 0)
			got += (uint64_t)r;
		_exit(got == (uint64_t)mib << 20 ? 0 : 1);
	}
	close(p[0]);
	t0 = now_us();
	ret = run(c, argv, -1, p[1], &ex);
	if (ret)
		die("down", ret);
	printf("{\"op\": \"down\", \"mib\": %u, \"mib_s\": %.1f}\n", mib,
	       mib / ((now_us() - t0) / 1e6));
	close(p[1]);
	if (waitpid(pid, &ret, 0) != pid || ret != 0)
		die("down: wrong byte count", -EIO);
}

static void op_socat(struct agent_conn *c, unsigned n, unsigned port)
{
	char listen[64];
	const char *argv[] = {"socat", listen, "EXEC:true", NULL};
	struct agent_exec e = {.argv = argv};
	uint64_t *us = calloc(n, sizeof(*us));
	struct agent_exit ex;
	uint32_t id;
	uint8_t sig[4];
	int ret;

	snprintf(listen, sizeof(listen), "VSOCK-LISTEN:%u,fork,reuseaddr",
		 port);
	ret = agent_exec_start(c, &e, &id);
	if (ret)
		die("socat", ret);
	for (unsigned i = 0; i < n; i++) {
		struct agent_conn s;
		uint64_t t0 = now_us();
		char b[64];

		/* socat may not listen yet on the first ones. */
		while ((ret = connect_port(&s, port)) &&
		       now_us() - t0 < 10 * 1000000)
			usleep(1000);
		if (ret)
			die("socat connect", ret);
		while (read(s.fd, b, sizeof(b)) > 0)
			;
		us[i] = now_us() - t0;
		agent_close(&s);
	}
	agent_put_le32(sig, 15);
	ret = agent_send(c, AGENT_SIGNAL, id, sig, 4);
	if (!ret) {
		struct agent_stream st = {
		    .in_fd = -1, .out_fd = 1, .err_fd = 2, .sig_fd = -1};

		ret = agent_exec_wait(c, id, &st, &ex);
	}
	if (ret)
		die("socat stop", ret);
	print_latencies("socat", us, n);
	free(us);
}

static int op_run(struct agent_conn *c, const char *const *argv, int power_off)
{
	struct agent_exit ex;
	int ret = run(c, argv, -1, 1, &ex);

	if (ret)
		die("run", ret);
	if (power_off) {
		ret = agent_shutdown(c);
		if (ret)
			die("shutdown", ret);
	}
	return agent_exit_status(&ex);
}

int main(int argc, char **argv)
{
	struct agent_conn c;
	unsigned wait_ms = 120000;
	uint64_t t0 = now_us();
	int i = 1, status = 0;

	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "--uds"))
			uds = argv[i + 1];
		else if (!strcmp(argv[i], "--cid"))
			cid = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--wait"))
			wait_ms = (unsigned)atoi(argv[i + 1]);
		else
			break;
	}
	if (i >= argc || (!uds && !cid)) {
		fprintf(stderr, "usage: bench-agent (--uds PATH | --cid N) "
				"[--wait MS] OP [ARG]...\n");
		return 2;
	}
	connect_agent(&c, wait_ms);
	if (!strcmp(argv[i], "ready"))
		printf("{\"op\": \"ready\", \"ms\": %.1f}\n",
		       (now_us() - t0) / 1e3);
	else if (!strcmp(argv[i], "run") && i + 1 < argc)
		status = op_run(&c, (const char *const *)argv + i + 1, 1);
	else if (!strcmp(argv[i], "cmd") && i + 1 < argc)
		status = op_run(&c, (const char *const *)argv + i + 1, 0);
	else if (!strcmp(argv[i], "exec") && i + 1 < argc)
		op_exec(&c, (unsigned)atoi(argv[i + 1]));
	else if (!strcmp(argv[i], "up") && i + 1 < argc)
		op_up(&c, (unsigned)atoi(argv[i + 1]));
	else if (!strcmp(argv[i], "down") && i + 1 < argc)
		op_down(&c, (unsigned)atoi(argv[i + 1]));
	else if (!strcmp(argv[i], "socat") && i + 2 < argc)
		op_socat(&c, (unsigned)atoi(argv[i + 1]),
			 (unsigned)atoi(argv[i + 2]));
	else if (!strcmp(argv[i], "shutdown")) {
		int ret = agent_shutdown(&c);

		if (ret)
			die("shutdown", ret);
	} else {
		fprintf(stderr, "bench-agent: unknown op %s\n", argv[i]);
		return 2;
	}
	agent_close(&c);
	return status;
}
