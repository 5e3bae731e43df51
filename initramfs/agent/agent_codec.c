// SPDX-License-Identifier: MIT
#include "agent_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ---- */

void agent_wbuf_reset(struct agent_wbuf *b)
{
	b->len = 0;
	b->oom = false;
}

void agent_wbuf_free(struct agent_wbuf *b)
{
	free(b->p);
	*b = (struct agent_wbuf){0};
}

static uint8_t *grow(struct agent_wbuf *b, size_t n)
{
	uint8_t *p;

	if (b->oom)
		return NULL;
	if (n > AGENT_MAX_PAYLOAD || b->len + n > AGENT_MAX_PAYLOAD) {
		b->oom = true; /* could never be sent anyway */
		return NULL;
	}
	if (b->len + n > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 256) + n;

		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	p = b->p + b->len;
	b->len += n;
	return p;
}

static void put_bytes(struct agent_wbuf *b, const void *data, size_t n)
{
	uint8_t *p;

	if (!n)
		return;
	p = grow(b, n);
	if (p)
		memcpy(p, data, n);
}

static void put_u16(struct agent_wbuf *b, uint16_t v)
{
	uint8_t *p = grow(b, 2);

	if (p)
		agent_put_le16(p, v);
}

static void put_u32(struct agent_wbuf *b, uint32_t v)
{
	uint8_t *p = grow(b, 4);

	if (p)
		agent_put_le32(p, v);
}

static void put_u64(struct agent_wbuf *b, uint64_t v)
{
	uint8_t *p = grow(b, 8);

	if (p)
		agent_put_le64(p, v);
}

static void put_str_n(struct agent_wbuf *b, const char *s, size_t n)
{
	if (n > UINT32_MAX) {
		b->oom = true;
		return;
	}
	put_u32(b, (uint32_t)n);
	put_bytes(b, s, n);
}

static void put_str(struct agent_wbuf *b, const char *s)
{
	put_str_n(b, s, s ? strlen(s) : 0);
}

static void put_strv(struct agent_wbuf *b, const char *const *v)
{
	uint32_t n = 0;

	while (v && v[n])
		n++;
	put_u32(b, n);
	for (uint32_t i = 0; i < n; i++)
		put_str(b, v[i]);
}

void agent_enc_hello(struct agent_wbuf *b, uint32_t version)
{
	put_u32(b, version);
}

void agent_enc_hello_ok(struct agent_wbuf *b, uint32_t version,
			const char *agent_name)
{
	put_u32(b, version);
	put_str(b, agent_name);
}

void agent_enc_error(struct agent_wbuf *b, int32_t err, const char *msg,
		     size_t msg_len)
{
	put_u32(b, (uint32_t)err);
	put_str_n(b, msg, msg_len);
}

void agent_enc_exec(struct agent_wbuf *b, const struct agent_exec_args *a)
{
	put_u32(b, a->flags);
	put_u32(b, a->timeout_ms);
	put_u32(b, a->uid);
	put_u32(b, a->gid);
	put_u16(b, a->rows);
	put_u16(b, a->cols);
	put_strv(b, a->argv);
	put_strv(b, a->env);
	put_str(b, a->cwd);
}

void agent_enc_started(struct agent_wbuf *b, uint32_t pid)
{
	put_u32(b, pid);
}

void agent_enc_exit(struct agent_wbuf *b, const struct agent_exit_msg *m)
{
	uint8_t *p;

	put_u32(b, (uint32_t)m->code);
	put_u32(b, (uint32_t)m->signal);
	p = grow(b, 1);
	if (p)
		*p = m->timed_out ? 1 : 0;
}

void agent_enc_signal(struct agent_wbuf *b, uint32_t signo)
{
	put_u32(b, signo);
}

void agent_enc_resize(struct agent_wbuf *b, uint16_t rows, uint16_t cols)
{
	put_u16(b, rows);
	put_u16(b, cols);
}

void agent_enc_put(struct agent_wbuf *b, uint32_t mode, const char *path)
{
	put_u32(b, mode);
	put_str(b, path);
}

void agent_enc_get(struct agent_wbuf *b, const char *path)
{
	put_str(b, path);
}

void agent_enc_put_ok(struct agent_wbuf *b, uint64_t written)
{
	put_u64(b, written);
}

void agent_enc_get_ok(struct agent_wbuf *b, uint32_t mode, uint64_t size)
{
	put_u32(b, mode);
	put_u64(b, size);
}

/* ---- reading ---- */

struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->bad || r->left < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static uint16_t get_u16(struct rd *r)
{
	const uint8_t *p = take(r, 2);

	return p ? agent_get_le16(p) : 0;
}

static uint32_t get_u32(struct rd *r)
{
	const uint8_t *p = take(r, 4);

	return p ? agent_get_le32(p) : 0;
}

static uint64_t get_u64(struct rd *r)
{
	const uint8_t *p = take(r, 8);

	return p ? agent_get_le64(p) : 0;
}

/* A string in place: inside the payload, without NUL bytes. */
static struct agent_str get_str(struct rd *r)
{
	struct agent_str s = {0};
	uint32_t n = get_u32(r);

	if (r->bad || n > r->left || memchr(r->p, '\0', n)) {
		r->bad = true;
		return s;
	}
	s.p = take(r, n);
	s.len = n;
	return s;
}

static char *get_str_copy(struct rd *r)
{
	struct agent_str s = get_str(r);
	char *c;

	if (r->bad)
		return NULL;
	c = malloc((size_t)s.len + 1);
	if (!c) {
		r->bad = true;
		return NULL;
	}
	if (s.len)
		memcpy(c, s.p, s.len);
	c[s.len] = '\0';
	return c;
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **s = v; *s; s++)
		free(*s);
	free(v);
}

static char **get_strv(struct rd *r, uint32_t *count)
{
	uint32_t n = get_u32(r);
	char **v;

	/* Each string takes at least 4 bytes: no huge array for a lie. */
	if (r->bad || n > r->left / 4) {
		r->bad = true;
		return NULL;
	}
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v) {
		r->bad = true;
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		v[i] = get_str_copy(r);
		if (!v[i]) {
			strv_free(v);
			return NULL;
		}
	}
	*count = n;
	return v;
}

/* The whole payload read, nothing missing, nothing left over. */
static int done(const struct rd *r)
{
	return r->bad || r->left ? -EPROTO : 0;
}

int agent_dec_hello(const uint8_t *p, size_t len, uint32_t *version)
{
	struct rd r = {p, len, false};

	*version = get_u32(&r);
	return done(&r);
}

int agent_dec_hello_ok(const uint8_t *p, size_t len, uint32_t *version,
		       struct agent_str *agent_name)
{
	struct rd r = {p, len, false};

	*version = get_u32(&r);
	*agent_name = get_str(&r);
	return done(&r);
}

int agent_dec_error(const uint8_t *p, size_t len, int32_t *err,
		    struct agent_str *msg)
{
	struct rd r = {p, len, false};

	*err = (int32_t)get_u32(&r);
	*msg = get_str(&r);
	return done(&r);
}

void agent_exec_req_free(struct agent_exec_req *r)
{
	strv_free(r->argv);
	strv_free(r->env);
	free(r->cwd);
	r->argv = r->env = NULL;
	r->cwd = NULL;
}

int agent_dec_exec(const uint8_t *p, size_t len, struct agent_exec_req *req)
{
	struct rd r = {p, len, false};

	memset(req, 0, sizeof(*req));
	req->flags = get_u32(&r);
	req->timeout_ms = get_u32(&r);
	req->uid = get_u32(&r);
	req->gid = get_u32(&r);
	req->rows = get_u16(&r);
	req->cols = get_u16(&r);
	req->argv = get_strv(&r, &req->argc);
	if (!r.bad)
		req->env = get_strv(&r, &req->envc);
	if (!r.bad)
		req->cwd = get_str_copy(&r);
	if (done(&r)) {
		agent_exec_req_free(req);
		return -EPROTO;
	}
	return 0;
}

int agent_dec_started(const uint8_t *p, size_t len, uint32_t *pid)
{
	struct rd r = {p, len, false};

	*pid = get_u32(&r);
	return done(&r);
}

int agent_dec_exit(const uint8_t *p, size_t len, struct agent_exit_msg *m)
{
	struct rd r = {p, len, false};
	const uint8_t *t;

	m->code = (int32_t)get_u32(&r);
	m->signal = (int32_t)get_u32(&r);
	t = take(&r, 1);
	m->timed_out = t && *t;
	return done(&r);
}

int agent_dec_signal(const uint8_t *p, size_t len, uint32_t *signo)
{
	struct rd r = {p, len, false};

	*signo = get_u32(&r);
	return done(&r);
}

int agent_dec_resize(const uint8_t *p, size_t len, uint16_t *rows,
		     uint16_t *cols)
{
	struct rd r = {p, len, false};

	*rows = get_u16(&r);
	*cols = get_u16(&r);
	return done(&r);
}

int agent_dec_put(const uint8_t *p, size_t len, uint32_t *mode, char **path)
{
	struct rd r = {p, len, false};

	*mode = get_u32(&r);
	*path = get_str_copy(&r);
	if (done(&r)) {
		free(*path);
		*path = NULL;
		return -EPROTO;
	}
	return 0;
}

int agent_dec_get(const uint8_t *p, size_t len, char **path)
{
	struct rd r = {p, len, false};

	*path = get_str_copy(&r);
	if (done(&r)) {
		free(*path);
		*path = NULL;
		return -EPROTO;
	}
	return 0;
}

int agent_dec_put_ok(const uint8_t *p, size_t len, uint64_t *written)
{
	struct rd r = {p, len, false};

	*written = get_u64(&r);
	return done(&r);
}

int agent_dec_get_ok(const uint8_t *p, size_t len, uint32_t *mode,
		     uint64_t *size)
{
	struct rd r = {p, len, false};

	*mode = get_u32(&r);
	*size = get_u64(&r);
	return done(&r);
}
