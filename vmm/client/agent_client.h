/* SPDX-License-Identifier: MIT */
/*
 * Client of the hutch guest agent (protocol: initramfs/PROTOCOL.md).
 * A plain blocking C API over one connection, for the hutch CLI and for
 * any program that wants to drive a VM: link libhutch_client.a (or
 * compile this file) and include this header.
 *
 * Every function returns 0 or a negative errno; an ERROR frame from the
 * agent becomes its errno, with its message in conn->error.
 */
#ifndef HUTCH_AGENT_CLIENT_H
#define HUTCH_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_proto.h"

/* How long a request may wait for its answer, and any one frame or write
 * may take, before giving up with -ETIMEDOUT, unless changed per
 * connection: an agent that stops answering, trickles bytes or sends
 * frames about other requests cannot stretch it.  Waiting for a running
 * command's next output is not bounded by it (see agent_exec_wait). */
#define AGENT_IO_TIMEOUT_MS 60000

struct agent_conn {
	int fd;
	uint32_t next_id;
	unsigned io_timeout_ms; /* 0: wait forever */
	uint8_t *buf;		/* one frame's payload */
	size_t cap;
	/* The last ERROR message from the agent, made safe to print: no
	 * control characters or escapes, valid UTF-8. */
	char error[256];
};

/* Through a hutch VM's vsock socket: "CONNECT <port>\n", then "OK ...".
 * -ECONNREFUSED/-ECONNRESET/-ENOENT while the guest is not listening yet. */
int agent_connect_vsock(struct agent_conn *c, const char *uds_path,
			unsigned port);
/* The same, waiting at most timeout_ms for the VMM's answer (the plain
 * call waits AGENT_IO_TIMEOUT_MS). */
int agent_connect_vsock_timeout(struct agent_conn *c, const char *uds_path,
				unsigned port, unsigned timeout_ms);
/* Straight to guest CID `cid` over the host kernel's AF_VSOCK (a VMM with
 * vhost-vsock, such as QEMU's vhost-vsock device).  timeout_ms bounds the
 * connect (0: the kernel's default, 2 s): a guest whose vsock driver is
 * not up yet does not answer at all. */
int agent_connect_cid(struct agent_conn *c, unsigned cid, unsigned port,
		      unsigned timeout_ms);
/* Keep trying for up to timeout_ms (the VM is booting). */
int agent_wait_ready(struct agent_conn *c, const char *uds_path, unsigned port,
		     unsigned timeout_ms);
/* Straight to an agent listening on a Unix socket (agent --listen-unix). */
int agent_connect_unix(struct agent_conn *c, const char *path);
void agent_close(struct agent_conn *c);

int agent_send(struct agent_conn *c, uint16_t type, uint32_t id,
	       const void *payload, uint32_t len);
/* One frame; *payload stays valid until the next call.  1: a frame,
 * 0: the agent closed the connection, negative errno: error. */
int agent_recv(struct agent_conn *c, struct agent_hdr *h,
	       const uint8_t **payload);

/* HELLO: the agent's protocol version and name. */
int agent_hello(struct agent_conn *c, uint32_t *version, char *name,
		size_t name_len);

struct agent_exec {
	const char *const *argv; /* argv[0] looked up in the guest's PATH */
	const char *const *env;	 /* NULL: the agent's default */
	const char *cwd;	 /* NULL: / */
	uint32_t timeout_ms;	 /* 0: none */
	uint32_t uid, gid;
	bool pty;
	uint16_t rows, cols;
};

struct agent_exit {
	int code;   /* exit status, or -1 */
	int signal; /* terminating signal, or 0 */
	bool timed_out;
};

/* EXEC; waits for STARTED (0, *id set) or ERROR (its errno). */
int agent_exec_start(struct agent_conn *c, const struct agent_exec *e,
		     uint32_t *id);

/* Where a started process's streams go, and when to stop waiting. */
struct agent_stream {
	int in_fd;  /* its stdin; -1: none (closed at once) */
	int out_fd; /* its stdout (and the pty's output) */
	int err_fd; /* its stderr */
	int sig_fd; /* a signalfd, or -1: SIGWINCH sends in_fd's terminal
		       size (pty mode); other signals are forwarded */
	/* Give up (-ETIMEDOUT) if the process has not exited this long after
	 * the wait began; 0: never.  A host-side backstop for the agent's own
	 * timeout, against an agent that stops answering. */
	unsigned timeout_ms;
	/* With sig_fd: after a forwarded SIGINT, SIGTERM, SIGHUP or SIGQUIT,
	 * give up (-EINTR) if the process has not exited within this many
	 * ms, or at once on a second such signal.  0: only forward. */
	unsigned signal_grace_ms;
	int last_signal; /* out: the last signal read from sig_fd, or 0 */
};

/*
 * Stream a started process to the end (0, *ex filled) or until the
 * connection fails (negative errno) or a limit in *s is reached
 * (-ETIMEDOUT, -EINTR).  Output is written to the local fds as it comes;
 * sending to the agent never blocks, so a process that echoes its input
 * cannot deadlock the client.
 */
int agent_exec_wait(struct agent_conn *c, uint32_t id, struct agent_stream *s,
		    struct agent_exit *ex);

/* Copy a local file descriptor into the guest (path, mode bits), or a
 * guest file into fd (its mode in *mode, as the guest says: the caller
 * decides what to apply).  A download must be exactly the size the agent
 * announced: more is refused at once (-EFBIG), fewer at the end (-EIO). */
int agent_put_file(struct agent_conn *c, int fd, uint32_t mode,
		   const char *path);
int agent_get_file(struct agent_conn *c, const char *path, int fd,
		   uint32_t *mode);

/* Ask the agent to sync and power the VM off. */
int agent_shutdown(struct agent_conn *c);

/* Shell-style exit status for an agent_exit: code, or 128 + signal, or
 * 124 after a timeout (as timeout(1)); 255 for a signal number no real
 * signal has. */
int agent_exit_status(const struct agent_exit *ex);

/*
 * Make n bytes from the guest safe to print on a terminal: invalid UTF-8,
 * control characters (C0, DEL, C1: escape sequences) and bidirectional
 * overrides become '?'.  Writes a NUL-terminated string of at most
 * dst_len - 1 bytes (whole characters only); returns its length.
 */
size_t agent_text_clean(char *dst, size_t dst_len, const void *src, size_t n);

#endif
