/* SPDX-License-Identifier: MIT */
/*
 * hutch agent protocol, version 1: the numbers of PROTOCOL.md (the
 * specification, beside this file), shared by the guest agent and the
 * host client; their message bodies go through agent_codec.h.  Header-only, no dependencies beyond <stdint.h>.
 */
#ifndef HUTCH_AGENT_PROTO_H
#define HUTCH_AGENT_PROTO_H

#include <stdint.h>

#define AGENT_PROTO_VERSION 1
#define AGENT_VSOCK_PORT    1024

/* Frame header: u32 len, u16 type, u16 flags, u32 id (little endian). */
#define AGENT_HDR_LEN 12
/* Largest payload either side may send; a longer len ends the connection. */
#define AGENT_MAX_PAYLOAD (1024u * 1024)
/* Largest STDOUT, STDERR or DATA payload the agent sends. */
#define AGENT_MAX_CHUNK (64u * 1024)

enum agent_msg {
	AGENT_HELLO = 1,
	AGENT_HELLO_OK = 2,
	AGENT_PING = 3,
	AGENT_PONG = 4,
	AGENT_ERROR = 5,
	AGENT_EXEC = 16,
	AGENT_STARTED = 17,
	AGENT_STDIN = 18,
	AGENT_STDIN_EOF = 19,
	AGENT_STDOUT = 20,
	AGENT_STDERR = 21,
	AGENT_EXIT = 22,
	AGENT_SIGNAL = 23,
	AGENT_RESIZE = 24,
	AGENT_PUT = 32,
	AGENT_GET = 33,
	AGENT_DATA = 34,
	AGENT_DATA_END = 35,
	AGENT_FILE_OK = 36,
	AGENT_SHUTDOWN = 48,
};

/* EXEC flags. */
#define AGENT_EXEC_PTY	 (1u << 0)
#define AGENT_EXEC_FLAGS AGENT_EXEC_PTY

/* EXEC's fixed part: flags, timeout_ms, uid, gid (u32), rows, cols (u16). */
#define AGENT_EXEC_FIXED_LEN 20
/* EXIT: i32 exit_code, i32 signal, u8 timed_out. */
#define AGENT_EXIT_LEN 9

struct agent_hdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint32_t id;
};

static inline void agent_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void agent_put_le32(uint8_t *p, uint32_t v)
{
	agent_put_le16(p, (uint16_t)v);
	agent_put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void agent_put_le64(uint8_t *p, uint64_t v)
{
	agent_put_le32(p, (uint32_t)v);
	agent_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t agent_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t agent_get_le32(const uint8_t *p)
{
	uint32_t lo = agent_get_le16(p), hi = agent_get_le16(p + 2);

	return lo | hi << 16;
}

static inline uint64_t agent_get_le64(const uint8_t *p)
{
	uint64_t lo = agent_get_le32(p), hi = agent_get_le32(p + 4);

	return lo | hi << 32;
}

static inline void agent_hdr_encode(uint8_t out[AGENT_HDR_LEN],
				    const struct agent_hdr *h)
{
	agent_put_le32(out, h->len);
	agent_put_le16(out + 4, h->type);
	agent_put_le16(out + 6, h->flags);
	agent_put_le32(out + 8, h->id);
}

static inline void agent_hdr_decode(struct agent_hdr *h,
				    const uint8_t in[AGENT_HDR_LEN])
{
	h->len = agent_get_le32(in);
	h->type = agent_get_le16(in + 4);
	h->flags = agent_get_le16(in + 6);
	h->id = agent_get_le32(in + 8);
}

#endif
