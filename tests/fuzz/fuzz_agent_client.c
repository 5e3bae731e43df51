// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the agent client library (vmm/agent_client.c) reading
 * what a hostile guest agent sends back (initramfs/PROTOCOL.md).
 *
 * The input is the agent's side of one connection: it is written into
 * the peer end of a socket pair (from a thread when it does not fit in
 * the socket buffer), then that end is shut down, so every call ends at
 * the data's end.  In "stall" mode the end stays open instead, and the
 * client's short timeouts end the calls.  The client's requests go
 * unread into the peer's buffer.
 *
 * Besides ASan/UBSan/LeakSanitizer findings, the target aborts when:
 *   - c->error is not a NUL-terminated string of clean UTF-8 (no C0, DEL,
 *     C1 controls, no bidirectional overrides or isolates);
 *   - agent_hello's name is not such a string within name_len;
 *   - agent_get_file's result or the bytes it wrote differ from a model
 *     of the download (FILE_OK, DATA within the announced size,
 *     DATA_END): in particular it writes more than FILE_OK announced;
 *   - agent_exec_wait writes more STDOUT/STDERR bytes than the stream
 *     holds for its id (exactly those before EXIT when it returns 0), or
 *     agent_exit_status is outside 0..255;
 *   - agent_recv returns a frame other than the next one in the stream;
 *   - a call takes much longer than its timeouts allow;
 *   - agent_text_clean (fed directly) writes past dst_len, returns a
 *     length that is not strlen, writes unclean text, is not idempotent,
 *     or gives with less room anything but a prefix of its output with
 *     more.
 *
 * Input:
 *   0   bits 0-2: the calls (0 hello, 1 exec_start + exec_wait, 2
 *       get_file, 3 put_file, 4 agent_recv to the end, 5 all of hello,
 *       exec, get, put in turn, 6 two execs waited for in reverse order,
 *       7 agent_text_clean on the rest of the input); bits 3-5 all set:
 *       stall mode; bit 6 EXEC with PTY; bit 7 exec's stdin is a pipe
 *       with data, and signals arrive on its sig_fd
 *   1   a parameter: hello's name_len (mod 80), the size of the file
 *       put_file sends, the number and kind of signals, text_clean's
 *       dst_len
 *   2.. what the agent sends
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vmm/client/agent_client.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			fail(__LINE__, #cond);                                 \
	} while (0)

static void fail(int line, const char *what)
{
	fprintf(stderr, "fuzz_agent_client: line %d: check failed: %s\n", line,
		what);
	abort();
}

#define IO_TIMEOUT_MS	    50
#define STALL_IO_TIMEOUT_MS 1
#define STALL_WAIT_MS	    2
/* How much longer than its timeouts a call may take (a loaded machine,
 * sanitizers): far less than a hang. */
#define SLACK_MS 2000

static int out_fd = -1, err_fd = -1, put_fd = -1;
static bool trace; /* FUZZ_AGENT_TRACE set: each call's result */

/* ---- clean text ---- */

/* Length of the valid UTF-8 sequence at s, or 0; its code point. */
static size_t utf8_len(const uint8_t *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t v;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, v = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, v = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, v = s[0] & 0x07u;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3fu);
	}
	if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
	    v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* s[0..n) is UTF-8 with nothing a terminal acts on. */
static void check_clean(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;

	for (size_t i = 0; i < n;) {
		uint32_t cp = 0;
		size_t k = utf8_len(p + i, n - i, &cp);

		CHECK(k > 0);
		CHECK(cp >= 0x20 && !(cp >= 0x7f && cp < 0xa0));
		CHECK(!(cp >= 0x202a && cp <= 0x202e) &&
		      !(cp >= 0x2066 && cp <= 0x2069));
		i += k;
	}
}

static void check_error(const struct agent_conn *c)
{
	const char *end = memchr(c->error, 0, sizeof(c->error));

	CHECK(end);
	check_clean(c->error, (size_t)(end - c->error));
}

static void fuzz_text_clean(size_t dst_len, const uint8_t *src, size_t n)
{
	char *dst = dst_len ? malloc(dst_len) : NULL, *full, *again;
	size_t len, full_len;

	if (dst_len) {
		CHECK(dst);
		memset(dst, 0x55, dst_len);
	}
	len = agent_text_clean(dst, dst_len, src, n);
	if (!dst_len) {
		CHECK(len == 0);
		return;
	}
	CHECK(len < dst_len && dst[len] == 0 && strlen(dst) == len);
	check_clean(dst, len);
	/* Each input byte gives at most one output byte: n + 1 is room for
	 * all of it. */
	full = malloc(n + 1);
	again = malloc(n + 1);
	CHECK(full && again);
	full_len = agent_text_clean(full, n + 1, src, n);
	CHECK(full_len <= n);
	CHECK(len <= full_len && memcmp(dst, full, len) == 0);
	/* Clean text stays as it is. */
	CHECK(agent_text_clean(again, n + 1, full, full_len) == full_len);
	CHECK(memcmp(again, full, full_len + 1) == 0);
	free(again);
	free(full);
	free(dst);
}

/* ---- the agent's stream, and a model of what the client should make
 * of it ---- */

static const uint8_t *stream;
static size_t stream_len;
static bool model_ok; /* all of it is in the socket: offsets are known */

struct frame {
	struct agent_hdr h;
	const uint8_t *p;
	int end; /* 0: a whole frame; else what agent_recv returns there */
};

static struct frame frame_at(size_t *off)
{
	struct frame f = {0};
	size_t left = stream_len - *off;

	if (left == 0) {
		f.end = -ECONNRESET; /* what recv_for makes of EOF */
		return f;
	}
	if (left < AGENT_HDR_LEN) {
		f.end = -EPIPE;
		return f;
	}
	agent_hdr_decode(&f.h, stream + *off);
	if (f.h.len > AGENT_MAX_PAYLOAD) {
		f.end = -EMSGSIZE;
		*off += AGENT_HDR_LEN;
		return f;
	}
	if (left - AGENT_HDR_LEN < f.h.len) {
		f.end = -EPIPE;
		return f;
	}
	f.p = stream + *off + AGENT_HDR_LEN;
	*off += AGENT_HDR_LEN + f.h.len;
	return f;
}

/* ERROR: errno (4 bytes), then the message as a length (4 bytes) and
 * that many bytes without NUL, and nothing after it. */
static int model_error(const struct frame *f)
{
	int32_t err;

	if (f->h.len < 8 || agent_get_le32(f->p + 4) != f->h.len - 8 ||
	    memchr(f->p + 8, 0, f->h.len - 8))
		return -EPROTO;
	err = (int32_t)agent_get_le32(f->p);
	return err > 0 && err < 4096 ? -err : -EIO;
}

/* agent_get_file from offset off: its result and the bytes it writes. */
static int model_get(size_t off, uint32_t id, uint64_t *written)
{
	uint64_t size = 0, got = 0;
	bool announced = false;

	*written = 0;
	for (;;) {
		struct frame f = frame_at(&off);

		if (f.end)
			return f.end;
		if (f.h.id != id)
			continue;
		switch (f.h.type) {
		case AGENT_FILE_OK: /* mode (4 bytes), size (8), no more */
			if (f.h.len != 12 || announced)
				return -EPROTO;
			size = agent_get_le64(f.p + 4);
			announced = true;
			break;
		case AGENT_DATA:
			if (!announced)
				return -EPROTO;
			if (f.h.len > size - got)
				return -EFBIG;
			got += f.h.len;
			*written = got;
			break;
		case AGENT_DATA_END:
			if (!announced)
				return -EPROTO;
			return got == size ? 0 : -EIO;
		case AGENT_ERROR:
			return model_error(&f);
		default:
			return -EPROTO;
		}
	}
}

/* STDOUT and STDERR bytes for id from off: up to its EXIT (*exited), or
 * to the end. */
static void model_output(size_t off, uint32_t id, uint64_t *out, uint64_t *err,
			 bool *exited)
{
	*out = *err = 0;
	*exited = false;
	for (;;) {
		struct frame f = frame_at(&off);

		if (f.end)
			return;
		if (f.h.id != id)
			continue;
		if (f.h.type == AGENT_STDOUT)
			*out += f.h.len;
		else if (f.h.type == AGENT_STDERR)
			*err += f.h.len;
		else if (f.h.type == AGENT_EXIT && f.h.len >= 9) {
			*exited = true;
			return;
		}
	}
}

/* How far the client has read. */
static size_t consumed(const struct agent_conn *c)
{
	int unread = 0;

	CHECK(ioctl(c->fd, FIONREAD, &unread) == 0);
	CHECK((size_t)unread <= stream_len);
	return stream_len - (size_t)unread;
}

/* ---- the peer ---- */

struct writer {
	int fd;
	const uint8_t *p;
	size_t len;
	bool stall;
};

static void *write_rest(void *arg)
{
	struct writer *w = arg;

	while (w->len) {
		ssize_t n = send(w->fd, w->p, w->len, MSG_NOSIGNAL);

		if (n <= 0)
			break; /* the client closed its end */
		w->p += n;
		w->len -= (size_t)n;
	}
	if (!w->stall)
		shutdown(w->fd, SHUT_WR);
	return NULL;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t fd_size(int fd)
{
	off_t end = lseek(fd, 0, SEEK_END);

	CHECK(end >= 0);
	return (uint64_t)end;
}

static void fd_clear(int fd)
{
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
}

/* ---- the calls ---- */

struct run {
	struct agent_conn *c;
	uint8_t sel, param;
	bool stall;
	uint64_t started, limit_ms;
};

static void call_begin(struct run *r, unsigned timeouts_ms)
{
	r->started = now_ms();
	r->limit_ms = timeouts_ms + SLACK_MS;
}

static void call_end(struct run *r, const char *what, int ret)
{
	if (trace)
		fprintf(stderr, "%s: %d (%s) %s\n", what, ret,
			ret < 0 ? strerror(-ret) : "ok", r->c->error);
	CHECK(now_ms() - r->started <= r->limit_ms);
	check_error(r->c);
}

static unsigned io_ms(const struct run *r)
{
	return r->c->io_timeout_ms;
}

static void do_hello(struct run *r)
{
	char name[80];
	size_t name_len = r->param % sizeof(name);
	uint32_t version = 0;
	int ret;

	memset(name, 0x55, sizeof(name));
	call_begin(r, io_ms(r));
	ret = agent_hello(r->c, &version, name, name_len);
	call_end(r, "hello", ret);
	if (ret == 0 && name_len) {
		const char *end = memchr(name, 0, name_len);

		CHECK(end);
		check_clean(name, (size_t)(end - name));
	}
	for (size_t i = name_len; i < sizeof(name); i++)
		CHECK(name[i] == 0x55); /* nothing past name_len */
}

/* stdin with data, and signals on a pipe read like a signalfd. */
static void stream_inputs(struct run *r, struct agent_stream *s, int in[2],
			  int sig[2])
{
	static const int signals[4] = {SIGWINCH, SIGTERM, SIGUSR1, SIGINT};
	static const char data[100] = "stdin for the guest";
	unsigned nsig = r->param % 4;

	CHECK(pipe2(in, O_CLOEXEC) == 0);
	CHECK(write(in[1], data, sizeof(data)) == sizeof(data));
	close(in[1]);
	in[1] = -1;
	s->in_fd = in[0];
	CHECK(pipe2(sig, O_CLOEXEC) == 0);
	for (unsigned i = 0; i < nsig; i++) {
		struct signalfd_siginfo si = {
		    .ssi_signo =
			(uint32_t)signals[(r->param >> (2 + 2 * i)) & 3]};

		CHECK(write(sig[1], &si, sizeof(si)) == sizeof(si));
	}
	s->sig_fd = sig[0];
	s->signal_grace_ms = 10;
}

static int exec_start(struct run *r, uint32_t *id)
{
	static const char *const argv[] = {"true", NULL};
	struct agent_exec e = {
	    .argv = argv, .pty = r->sel & 0x40, .rows = 24, .cols = 80};
	int ret;

	call_begin(r, io_ms(r));
	ret = agent_exec_start(r->c, &e, id);
	call_end(r, "exec_start", ret);
	return ret;
}

static void exec_wait(struct run *r, uint32_t id)
{
	struct agent_stream s = {.in_fd = -1,
				 .out_fd = out_fd,
				 .err_fd = err_fd,
				 .sig_fd = -1,
				 .timeout_ms = r->stall ? STALL_WAIT_MS : 1000};
	struct agent_exit ex = {0};
	int in[2] = {-1, -1}, sig[2] = {-1, -1}, ret;
	size_t from = model_ok ? consumed(r->c) : 0;
	uint64_t out, err;
	bool exited;

	if (r->sel & 0x80)
		stream_inputs(r, &s, in, sig);
	fd_clear(out_fd);
	fd_clear(err_fd);
	call_begin(r, s.timeout_ms + io_ms(r));
	ret = agent_exec_wait(r->c, id, &s, &ex);
	call_end(r, "exec_wait", ret);
	if (ret == 0) {
		int status = agent_exit_status(&ex);

		CHECK(status >= 0 && status <= 255);
	}
	if (model_ok) {
		model_output(from, id, &out, &err, &exited);
		CHECK(fd_size(out_fd) <= out && fd_size(err_fd) <= err);
		if (ret == 0)
			CHECK(exited && fd_size(out_fd) == out &&
			      fd_size(err_fd) == err);
	}
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (sig[i] >= 0)
			close(sig[i]);
	}
}

static void do_exec(struct run *r)
{
	uint32_t id;

	if (exec_start(r, &id) == 0)
		exec_wait(r, id);
}

static void do_two_execs(struct run *r)
{
	uint32_t a, b;
	int ra = exec_start(r, &a), rb = exec_start(r, &b);

	if (rb == 0)
		exec_wait(r, b);
	if (ra == 0)
		exec_wait(r, a);
}

static void do_get(struct run *r)
{
	uint32_t mode = 0, id = r->c->next_id + 1 ? r->c->next_id + 1 : 1;
	size_t from = model_ok ? consumed(r->c) : 0;
	uint64_t want;
	int ret, expect;

	fd_clear(out_fd);
	call_begin(r, io_ms(r));
	ret = agent_get_file(r->c, "/etc/hostname", out_fd, &mode);
	call_end(r, "get_file", ret);
	if (!model_ok)
		return;
	expect = model_get(from, id, &want);
	CHECK(ret == expect);
	CHECK(fd_size(out_fd) == want);
}

static void do_put(struct run *r)
{
	static uint8_t data[256];
	int ret;

	fd_clear(put_fd);
	CHECK(write(put_fd, data, r->param) == r->param);
	CHECK(lseek(put_fd, 0, SEEK_SET) == 0);
	call_begin(r, io_ms(r) * 3);
	ret = agent_put_file(r->c, put_fd, 0644, "/tmp/x");
	call_end(r, "put_file", ret);
}

static void do_recv(struct run *r)
{
	size_t off = 0;

	for (;;) {
		struct agent_hdr h;
		const uint8_t *p = NULL;
		int ret;

		call_begin(r, io_ms(r));
		ret = agent_recv(r->c, &h, &p);
		call_end(r, "recv", ret);
		if (model_ok) {
			struct frame f = frame_at(&off);

			if (f.end) {
				CHECK(ret <= 0);
				CHECK(ret ==
				      (f.end == -ECONNRESET ? 0 : f.end));
			} else {
				CHECK(ret == 1);
				CHECK(h.len == f.h.len && h.type == f.h.type &&
				      h.flags == f.h.flags && h.id == f.h.id);
				CHECK(h.len == 0 || memcmp(p, f.p, h.len) == 0);
			}
		}
		if (ret <= 0)
			break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	out_fd = memfd_create("fuzz-out", MFD_CLOEXEC);
	err_fd = memfd_create("fuzz-err", MFD_CLOEXEC);
	put_fd = memfd_create("fuzz-put", MFD_CLOEXEC);
	if (out_fd < 0 || err_fd < 0 || put_fd < 0) {
		perror("fuzz_agent_client: memfd_create");
		abort();
	}
	trace = getenv("FUZZ_AGENT_TRACE");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_conn c;
	struct writer w;
	struct run r;
	pthread_t t;
	bool thread = false;
	int sv[2];
	ssize_t n;

	if (size < 2)
		return 0;
	r = (struct run){.c = &c,
			 .sel = data[0],
			 .param = data[1],
			 .stall = (data[0] & 0x38) == 0x38};
	stream = data + 2;
	stream_len = size - 2;
	if ((r.sel & 7) == 7) {
		fuzz_text_clean(r.param, stream, stream_len);
		return 0;
	}

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	memset(&c, 0, sizeof(c));
	c.fd = sv[0];
	c.io_timeout_ms = r.stall ? STALL_IO_TIMEOUT_MS : IO_TIMEOUT_MS;
	w = (struct writer){
	    .fd = sv[1], .p = stream, .len = stream_len, .stall = r.stall};
	n = stream_len
		? send(sv[1], stream, stream_len, MSG_DONTWAIT | MSG_NOSIGNAL)
		: 0;
	CHECK(n >= 0 || errno == EAGAIN);
	if (n > 0) {
		w.p += n;
		w.len -= (size_t)n;
	}
	model_ok = w.len == 0 && !r.stall;
	if (w.len) {
		CHECK(pthread_create(&t, NULL, write_rest, &w) == 0);
		thread = true;
	} else if (!r.stall) {
		shutdown(sv[1], SHUT_WR);
	}

	switch (r.sel & 7) {
	case 0:
		do_hello(&r);
		break;
	case 1:
		do_exec(&r);
		break;
	case 2:
		do_get(&r);
		break;
	case 3:
		do_put(&r);
		break;
	case 4:
		do_recv(&r);
		break;
	case 5:
		do_hello(&r);
		do_exec(&r);
		do_get(&r);
		do_put(&r);
		break;
	default:
		do_two_execs(&r);
		break;
	}

	agent_close(&c); /* a writer still blocked gets EPIPE */
	if (thread)
		pthread_join(t, NULL);
	close(sv[1]);
	return 0;
}
