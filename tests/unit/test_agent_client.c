// SPDX-License-Identifier: MIT
/*
 * The agent client library against a fake agent on the other end of a
 * socket pair: what a hostile or stalled guest can do to the host side.
 * The library's source is included, not linked, so that its send queue
 * can be tested directly too.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/fake_ring.h"
#include "vmm/client/agent_client.c"

FAKE_UBSAN_FATAL()

static struct agent_conn c;
static int peer = -1;

static void setup(void)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(&c, 0, sizeof(c));
	c.fd = sv[0];
	c.io_timeout_ms = 5000;
	peer = sv[1];
}

static void teardown(void)
{
	agent_close(&c);
	if (peer >= 0)
		close(peer);
	peer = -1;
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 60);

static bool read_n(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t k = read(fd, p, n);

		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

static void put_frame(int fd, uint16_t type, uint32_t id, const void *p,
		      uint32_t len)
{
	struct agent_hdr h = {.len = len, .type = type, .id = id};
	uint8_t hdr[AGENT_HDR_LEN];

	agent_hdr_encode(hdr, &h);
	cr_assert_eq(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	if (len)
		cr_assert_eq(write(fd, p, len), (ssize_t)len);
}

/* The peer of the overrun test: reads nothing for a while (the client's
 * socket buffer and send queue fill up), then checks every frame. */
struct checker {
	unsigned frames, signals, bad;
	bool eof_seen;
};

static void *check_frames(void *arg)
{
	struct checker *ck = arg;
	static uint8_t p[AGENT_MAX_PAYLOAD];
	uint8_t hdr[AGENT_HDR_LEN], exit_msg[AGENT_EXIT_LEN] = {7};
	struct agent_hdr h;
	bool sent_exit = false;

	usleep(500 * 1000);
	while (read_n(peer, hdr, sizeof(hdr))) {
		agent_hdr_decode(&h, hdr);
		if (h.id != 1 || h.len > AGENT_MAX_CHUNK ||
		    !read_n(peer, p, h.len)) {
			ck->bad++;
			break;
		}
		ck->frames++;
		if (h.type == AGENT_SIGNAL)
			ck->signals +=
			    h.len == 4 && agent_get_le32(p) == SIGUSR1;
		else if (h.type == AGENT_STDIN_EOF)
			ck->eof_seen = true;
		else if (h.type != AGENT_STDIN)
			ck->bad++;
		if (ck->eof_seen && ck->signals >= 64 && !sent_exit) {
			uint8_t ehdr[AGENT_HDR_LEN];
			struct agent_hdr eh = {
			    .len = AGENT_EXIT_LEN, .type = AGENT_EXIT, .id = 1};

			agent_hdr_encode(ehdr, &eh);
			if (write(peer, ehdr, sizeof(ehdr)) != sizeof(ehdr) ||
			    write(peer, exit_msg, sizeof(exit_msg)) !=
				sizeof(exit_msg))
				ck->bad++;
			sent_exit = true;
		}
	}
	return NULL;
}

/*
 * Stdin and a signal ready in the same round while the queue has room for
 * exactly one of them: both used to be queued, 16 bytes past the end of
 * the queue, onto its head and length, and send() then used a wild
 * pointer.  Every frame the agent gets must be whole and in order.
 */
Test(client, stdin_and_signals_together_never_overrun_the_send_queue)
{
	char path[] = "/tmp/hutch-client-XXXXXX";
	int in_fd = mkstemp(path), sig_pipe[2], null_fd;
	struct signalfd_siginfo si = {.ssi_signo = SIGUSR1};
	struct agent_stream s = {.out_fd = -1, .err_fd = -1};
	struct checker ck = {0};
	struct agent_exit ex = {0};
	static uint8_t junk[1 << 20];
	pthread_t t;

	/* 8 MiB of stdin, always readable; 256 queued "signals" (a pipe
	 * read like a signalfd), always readable too. */
	cr_assert_geq(in_fd, 0);
	unlink(path);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(write(in_fd, junk, sizeof(junk)), sizeof(junk));
	lseek(in_fd, 0, SEEK_SET);
	cr_assert_eq(pipe(sig_pipe), 0);
	for (int i = 0; i < 256; i++)
		cr_assert_eq(write(sig_pipe[1], &si, sizeof(si)), sizeof(si));
	null_fd = open("/dev/null", O_WRONLY);
	s.in_fd = in_fd;
	s.out_fd = s.err_fd = null_fd;
	s.sig_fd = sig_pipe[0];
	cr_assert_eq(pthread_create(&t, NULL, check_frames, &ck), 0);
	cr_assert_eq(agent_exec_wait(&c, 1, &s, &ex), 0);
	shutdown(c.fd, SHUT_RDWR);
	pthread_join(t, NULL);
	cr_assert_eq(ck.bad, 0, "%u malformed frames", ck.bad);
	cr_assert(ck.eof_seen);
	cr_assert_geq(ck.signals, 64);
	cr_assert_eq(ex.code, 7);
	close(in_fd);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
	close(null_fd);
}

/* An agent that says STARTED and then nothing: the host's own deadline
 * ends the wait. */
Test(client, a_silent_agent_meets_the_host_deadline)
{
	struct agent_stream s = {.in_fd = -1,
				 .out_fd = 1,
				 .err_fd = 2,
				 .sig_fd = -1,
				 .timeout_ms = 300};
	struct agent_exit ex = {0};

	cr_assert_eq(agent_exec_wait(&c, 1, &s, &ex), -ETIMEDOUT);
}

/* A terminating signal is forwarded; the second one ends the wait. */
Test(client, a_second_terminating_signal_gives_up)
{
	int sig_pipe[2];
	struct signalfd_siginfo si = {.ssi_signo = SIGINT};
	struct agent_stream s = {
	    .in_fd = -1, .out_fd = 1, .err_fd = 2, .signal_grace_ms = 60000};
	struct agent_exit ex = {0};

	cr_assert_eq(pipe(sig_pipe), 0);
	cr_assert_eq(write(sig_pipe[1], &si, sizeof(si)), sizeof(si));
	cr_assert_eq(write(sig_pipe[1], &si, sizeof(si)), sizeof(si));
	s.sig_fd = sig_pipe[0];
	cr_assert_eq(agent_exec_wait(&c, 1, &s, &ex), -EINTR);
	cr_assert_eq(s.last_signal, SIGINT);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
}

/* ... and with one signal, the grace period does. */
Test(client, a_signal_the_guest_ignores_gives_up_after_the_grace)
{
	int sig_pipe[2];
	struct signalfd_siginfo si = {.ssi_signo = SIGTERM};
	struct agent_stream s = {
	    .in_fd = -1, .out_fd = 1, .err_fd = 2, .signal_grace_ms = 300};
	struct agent_exit ex = {0};

	cr_assert_eq(pipe(sig_pipe), 0);
	cr_assert_eq(write(sig_pipe[1], &si, sizeof(si)), sizeof(si));
	s.sig_fd = sig_pipe[0];
	cr_assert_eq(agent_exec_wait(&c, 1, &s, &ex), -EINTR);
	cr_assert_eq(s.last_signal, SIGTERM);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
}

/* A request the agent never answers costs the I/O timeout, no more. */
Test(client, a_request_without_answer_times_out)
{
	const char *argv[] = {"true", NULL};
	struct agent_exec e = {.argv = argv}; /* env and cwd NULL */
	uint32_t id;

	c.io_timeout_ms = 200;
	cr_assert_eq(agent_exec_start(&c, &e, &id), -ETIMEDOUT);
}

/* A frame cut off in the middle, then silence: the same. */
Test(client, half_a_frame_then_silence_times_out)
{
	struct agent_hdr h;
	const uint8_t *p;
	uint8_t hdr[AGENT_HDR_LEN] = {100};

	c.io_timeout_ms = 200;
	cr_assert_eq(write(peer, hdr, 7), 7);
	cr_assert_eq(agent_recv(&c, &h, &p), -ETIMEDOUT);
}

Test(client, error_text_from_the_guest_is_made_plain)
{
	static const char msg[] = "\x1b]0;title\x07\x1b[2Jno\r\nsuch\x9b\xc2"
				  "\x9b\xe2\x80\xae file \xc3\xa9";
	const char *argv[] = {"x", NULL};
	struct agent_exec e = {.argv = argv};
	uint8_t buf[256], hdr[AGENT_HDR_LEN];
	uint32_t id, n = sizeof(msg) - 1;

	agent_put_le32(buf, ENOENT);
	agent_put_le32(buf + 4, n);
	memcpy(buf + 8, msg, n);
	/* Answer whatever EXEC comes (id 1) with that ERROR. */
	put_frame(peer, AGENT_ERROR, 1, buf, 8 + n);
	cr_assert_eq(agent_exec_start(&c, &e, &id), -ENOENT);
	cr_assert_str_eq(c.error, "?]0;title??[2Jno??such??? file \xc3\xa9");
	/* The request itself went out whole. */
	cr_assert(read_n(peer, hdr, sizeof(hdr)));
}

Test(client, an_absurd_errno_from_the_guest_is_eio)
{
	uint8_t buf[8];
	uint32_t id;
	const char *argv[] = {"x", NULL};
	struct agent_exec e = {.argv = argv};

	agent_put_le32(buf, (uint32_t)INT_MIN);
	agent_put_le32(buf + 4, 0);
	put_frame(peer, AGENT_ERROR, 1, buf, 8);
	cr_assert_eq(agent_exec_start(&c, &e, &id), -EIO);
}

Test(client, exit_status_of_any_numbers)
{
	struct agent_exit ex = {.code = 3};

	cr_assert_eq(agent_exit_status(&ex), 3);
	ex.code = 0x1ff;
	cr_assert_eq(agent_exit_status(&ex), 0xff);
	ex = (struct agent_exit){.code = -1, .signal = 9};
	cr_assert_eq(agent_exit_status(&ex), 137);
	ex.signal = INT_MAX; /* 128 + it used to overflow */
	cr_assert_eq(agent_exit_status(&ex), 255);
	ex.signal = INT_MIN;
	cr_assert_eq(agent_exit_status(&ex), 255);
	ex.timed_out = true;
	cr_assert_eq(agent_exit_status(&ex), 124);
}

Test(client, text_clean_keeps_utf8_and_drops_the_rest)
{
	char out[16];

	cr_assert_eq(agent_text_clean(out, sizeof(out), "ok", 2), 2);
	cr_assert_str_eq(out, "ok");
	agent_text_clean(out, sizeof(out), "a\0b", 3);
	cr_assert_str_eq(out, "a?b");
	/* Overlong encodings and surrogates are not UTF-8. */
	agent_text_clean(out, sizeof(out), "\xc0\xaf\xed\xa0\x80", 5);
	cr_assert_str_eq(out, "?????");
	/* Never a cut character at the end of the room. */
	agent_text_clean(out, 4, "ab\xc3\xa9", 4);
	cr_assert_str_eq(out, "ab");
	agent_text_clean(out, 1, "abc", 3);
	cr_assert_str_eq(out, "");
}

/*
 * The round that used to overrun the queue, made exact: a signal and a
 * stdin chunk both ready while the queue has room for the chunk's frame
 * but not for both.  The signal goes in, stdin waits for the next round,
 * and the queue never holds more than its buffer.
 */
Test(client, a_signal_takes_the_room_stdin_was_polled_for)
{
	struct signalfd_siginfo si = {.ssi_signo = SIGUSR1};
	struct agent_stream s = {.out_fd = 1, .err_fd = 2};
	struct agent_exit ex = {0};
	struct outq *q = calloc(1, sizeof(*q));
	struct exec_wait w = {
	    .c = &c, .id = 1, .s = &s, .ex = &ex, .q = q, .tty_fd = -1};
	static uint8_t chunk[AGENT_MAX_CHUNK];
	char path[] = "/tmp/hutch-client-XXXXXX";
	int sig_pipe[2], in_fd = mkstemp(path);
	size_t room;

	cr_assert_geq(in_fd, 0);
	unlink(path);
	cr_assert_eq(write(in_fd, chunk, sizeof(chunk)), sizeof(chunk));
	lseek(in_fd, 0, SEEK_SET);
	cr_assert_eq(pipe(sig_pipe), 0);
	cr_assert_eq(write(sig_pipe[1], &si, sizeof(si)), sizeof(si));
	s.sig_fd = sig_pipe[0];
	/* Three chunks queued: room for exactly one more chunk frame, plus
	 * a few bytes (less than a signal frame needs on top). */
	for (int i = 0; i < 3; i++)
		cr_assert(outq_put(q, AGENT_STDIN, 1, chunk, sizeof(chunk)));
	room = sizeof(q->buf) - q->len;
	cr_assert_geq(room, AGENT_HDR_LEN + AGENT_MAX_CHUNK);
	cr_assert_lt(room, 2 * AGENT_HDR_LEN + AGENT_MAX_CHUNK + SIGNAL_LEN);
	cr_assert(outq_fits(q, AGENT_MAX_CHUNK));

	cr_assert_eq(take_inputs(&w, true, true, &in_fd), 0);
	cr_assert_leq(q->head + q->len, sizeof(q->buf));
	cr_assert_eq(q->len,
		     3 * (AGENT_HDR_LEN + AGENT_MAX_CHUNK) + AGENT_HDR_LEN +
			 SIGNAL_LEN,
		     "the stdin chunk went in too: %zu", q->len);
	cr_assert_eq(lseek(in_fd, 0, SEEK_CUR), 0, "stdin was read");
	/* And a frame that does not fit is refused outright. */
	cr_assert_not(outq_put(q, AGENT_STDIN, 1, chunk, sizeof(chunk)));
	cr_assert_leq(q->head + q->len, sizeof(q->buf));
	free(q);
	close(in_fd);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
}

/* An agent that answers about other requests only, forever (or trickles
 * a frame a byte at a time): a request still ends at its deadline. */
struct spammer {
	int fd;
	bool trickle;
	atomic_bool stop;
};

static void *spam(void *arg)
{
	struct spammer *sp = arg;
	uint8_t hdr[AGENT_HDR_LEN];
	struct agent_hdr h = {.len = 0, .type = AGENT_PONG, .id = 999};

	agent_hdr_encode(hdr, &h);
	while (!atomic_load(&sp->stop)) {
		if (sp->trickle) {
			for (size_t i = 0;
			     i < sizeof(hdr) && !atomic_load(&sp->stop); i++) {
				if (send(sp->fd, hdr + i, 1, MSG_NOSIGNAL) != 1)
					return NULL;
				usleep(50 * 1000);
			}
		} else if (send(sp->fd, hdr, sizeof(hdr), MSG_NOSIGNAL) !=
			   sizeof(hdr)) {
			/* MSG_NOSIGNAL: the client shuts its end down when its
			 * request has timed out, maybe between our stop check
			 * and this send; SIGPIPE would kill the test. */
			return NULL;
		}
	}
	return NULL;
}

static void request_under_spam(bool trickle)
{
	const char *argv[] = {"true", NULL};
	struct agent_exec e = {.argv = argv};
	struct spammer sp = {.fd = peer, .trickle = trickle};
	struct timespec t0, t1;
	pthread_t t;
	uint32_t id;
	int ret;

	c.io_timeout_ms = 300;
	cr_assert_eq(pthread_create(&t, NULL, spam, &sp), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = agent_exec_start(&c, &e, &id);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	atomic_store(&sp.stop, true);
	shutdown(c.fd, SHUT_RDWR);
	pthread_join(t, NULL);
	cr_assert_eq(ret, -ETIMEDOUT, "returned %d", ret);
	cr_assert_lt((t1.tv_sec - t0.tv_sec) * 1000 +
			 (t1.tv_nsec - t0.tv_nsec) / 1000000,
		     2000, "took too long");
}

Test(client, frames_about_other_requests_do_not_stretch_the_deadline)
{
	request_under_spam(false);
}

Test(client, a_trickled_frame_does_not_stretch_the_deadline)
{
	request_under_spam(true);
}
