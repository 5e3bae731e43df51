/* SPDX-License-Identifier: MIT */
/*
 * The one encoder and decoder of every agent message body (PROTOCOL.md),
 * linked into both the guest agent and the host's client library, so the
 * two ends cannot drift apart.  Frames (the 12-byte header) are in
 * agent_proto.h.
 *
 * Encoders append to a growable buffer and latch allocation failure in
 * it (check b->oom once, before sending).  Decoders take a payload as it
 * arrived, copy what they keep, and return 0 or -EPROTO for a payload that
 * is short, overlong where the protocol fixes the size, or has a string
 * running past its end or holding a NUL byte.  Nothing here trusts a
 * length it read: counts of strings are checked against the bytes left
 * before anything is allocated.
 */
#ifndef HUTCH_AGENT_CODEC_H
#define HUTCH_AGENT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_proto.h"

struct agent_wbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

/* Empty it (keeping the allocation) / free it. */
void agent_wbuf_reset(struct agent_wbuf *b);
void agent_wbuf_free(struct agent_wbuf *b);

/* A string inside a payload: not NUL-terminated, not copied. */
struct agent_str {
	const uint8_t *p;
	uint32_t len;
};

/* EXEC as the host sends it. */
struct agent_exec_args {
	uint32_t flags; /* AGENT_EXEC_PTY */
	uint32_t timeout_ms;
	uint32_t uid, gid;
	uint16_t rows, cols;
	const char *const *argv; /* NULL-terminated */
	const char *const *env;	 /* NULL-terminated, or NULL: none */
	const char *cwd;	 /* NULL: "" */
};

/* EXEC as the agent receives it: every string a NUL-terminated copy. */
struct agent_exec_req {
	uint32_t flags, timeout_ms, uid, gid;
	uint16_t rows, cols;
	char **argv; /* argc entries and a NULL */
	uint32_t argc;
	char **env; /* envc entries and a NULL */
	uint32_t envc;
	char *cwd;
};

struct agent_exit_msg {
	int32_t code;	/* -1 if killed by a signal */
	int32_t signal; /* 0 if it exited */
	bool timed_out;
};

/* ---- encoders: append one message body ---- */
void agent_enc_hello(struct agent_wbuf *b, uint32_t version);
void agent_enc_hello_ok(struct agent_wbuf *b, uint32_t version,
			const char *agent_name);
void agent_enc_error(struct agent_wbuf *b, int32_t err, const char *msg,
		     size_t msg_len);
void agent_enc_exec(struct agent_wbuf *b, const struct agent_exec_args *a);
void agent_enc_started(struct agent_wbuf *b, uint32_t pid);
void agent_enc_exit(struct agent_wbuf *b, const struct agent_exit_msg *m);
void agent_enc_signal(struct agent_wbuf *b, uint32_t signo);
void agent_enc_resize(struct agent_wbuf *b, uint16_t rows, uint16_t cols);
void agent_enc_put(struct agent_wbuf *b, uint32_t mode, const char *path);
void agent_enc_get(struct agent_wbuf *b, const char *path);
/* FILE_OK after a PUT (bytes written) / before a GET's data. */
void agent_enc_put_ok(struct agent_wbuf *b, uint64_t written);
void agent_enc_get_ok(struct agent_wbuf *b, uint32_t mode, uint64_t size);

/* ---- decoders ---- */
int agent_dec_hello(const uint8_t *p, size_t len, uint32_t *version);
int agent_dec_hello_ok(const uint8_t *p, size_t len, uint32_t *version,
		       struct agent_str *agent_name);
int agent_dec_error(const uint8_t *p, size_t len, int32_t *err,
		    struct agent_str *msg);
/* Allocates; free with agent_exec_req_free (also after an error). */
int agent_dec_exec(const uint8_t *p, size_t len, struct agent_exec_req *r);
void agent_exec_req_free(struct agent_exec_req *r);
int agent_dec_started(const uint8_t *p, size_t len, uint32_t *pid);
int agent_dec_exit(const uint8_t *p, size_t len, struct agent_exit_msg *m);
int agent_dec_signal(const uint8_t *p, size_t len, uint32_t *signo);
int agent_dec_resize(const uint8_t *p, size_t len, uint16_t *rows,
		     uint16_t *cols);
/* *path: a NUL-terminated copy (free it), NULL after an error. */
int agent_dec_put(const uint8_t *p, size_t len, uint32_t *mode, char **path);
int agent_dec_get(const uint8_t *p, size_t len, char **path);
int agent_dec_put_ok(const uint8_t *p, size_t len, uint64_t *written);
int agent_dec_get_ok(const uint8_t *p, size_t len, uint32_t *mode,
		     uint64_t *size);

#endif
