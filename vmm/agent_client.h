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

#include "../initramfs/agent_proto.h"

struct agent_conn {
	int fd;
	uint32_t next_id;
	uint8_t *buf; /* one frame's payload */
	size_t cap;
	char error[256]; /* the last ERROR message from the agent */
};

/* Through a hutch VM's vsock socket: "CONNECT <port>\n", then "OK ...".
 * -ECONNREFUSED/-ECONNRESET/-ENOENT while the guest is not listening yet. */
int agent_connect_vsock(struct agent_conn *c, const char *uds_path,
			unsigned port);
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

/*
 * Stream a started process to the end: in_fd's bytes become its stdin
 * (-1: none, stdin closed at once), its stdout and stderr go to out_fd and
 * err_fd.  sig_fd (-1: none) is a signalfd: SIGWINCH sends the terminal
 * size of in_fd (pty mode), other signals are forwarded to the process.
 */
int agent_exec_wait(struct agent_conn *c, uint32_t id, int in_fd, int out_fd,
		    int err_fd, int sig_fd, struct agent_exit *ex);

/* Copy a local file descriptor into the guest (path, mode bits), or a
 * guest file into fd (its mode in *mode). */
int agent_put_file(struct agent_conn *c, int fd, uint32_t mode,
		   const char *path);
int agent_get_file(struct agent_conn *c, const char *path, int fd,
		   uint32_t *mode);

/* Ask the agent to sync and power the VM off. */
int agent_shutdown(struct agent_conn *c);

/* Shell-style exit status for an agent_exit: code, or 128 + signal, or
 * 124 after a timeout (as timeout(1)). */
int agent_exit_status(const struct agent_exit *ex);

#endif
