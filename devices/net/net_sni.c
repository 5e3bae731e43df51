// SPDX-License-Identifier: MIT
/*
 * The name a connection's first bytes ask for: a TLS ClientHello's
 * server_name (RFC 8446 4.1.2, RFC 6066 3) or an HTTP/1 request's Host
 * header.  Only what arrived in the first segment is looked at; a name
 * that is not there whole counts as none.  Bounds are checked at every
 * step: the bytes come from the guest.
 */
#include "devices/net/net_sni.h"

#include <string.h>
#include <strings.h>

#include "devices/net/net_names.h"

static unsigned be16(const uint8_t *p)
{
	return (unsigned)(p[0] << 8 | p[1]);
}

static unsigned be24(const uint8_t *p)
{
	return (unsigned)(p[0] << 16 | p[1] << 8 | p[2]);
}

int net_tls_sni(const uint8_t *p, size_t len, char *name, size_t name_len)
{
	size_t off, end, ext_end;

	/* Record: handshake (22), version, length; then ClientHello (1). */
	if (len < 9 || p[0] != 22 || p[5] != 1)
		return -1;
	end = 5 + be16(p + 3);
	if (end > len)
		end = len; /* the rest of the record is in later segments */
	if (5 + 4 + (size_t)be24(p + 6) < end)
		end = 5 + 4 + (size_t)be24(p + 6);
	off = 9 + 2 + 32; /* legacy_version, random */
	if (off + 1 > end)
		return -1;
	off += 1 + p[off]; /* session id */
	if (off + 2 > end)
		return -1;
	off += 2 + be16(p + off); /* cipher suites */
	if (off + 1 > end)
		return -1;
	off += 1 + p[off]; /* compression methods */
	if (off + 2 > end)
		return -1;
	ext_end = off + 2 + be16(p + off);
	off += 2;
	if (ext_end > end)
		return -1;
	while (off + 4 <= ext_end) {
		unsigned type = be16(p + off), elen = be16(p + off + 2);
		size_t list_end, n;

		off += 4;
		if (off + elen > ext_end)
			return -1;
		if (type != 0) {
			off += elen;
			continue;
		}
		/* server_name_list: one host_name entry is all we take. */
		if (elen < 5)
			return -1;
		list_end = off + 2 + be16(p + off);
		if (list_end > off + elen || p[off + 2] != 0)
			return -1;
		n = be16(p + off + 3);
		if (off + 5 + n > list_end || n == 0 || n >= name_len ||
		    memchr(p + off + 5, 0, n))
			return -1;
		memcpy(name, p + off + 5, n);
		name[n] = 0;
		return net_name_normalise(name, name_len, name) ? 0 : -1;
	}
	return -1;
}

int net_http_host(const uint8_t *p, size_t len, char *name, size_t name_len)
{
	static const char *const methods[] = {"GET ",	"HEAD ",    "POST ",
					      "PUT ",	"DELETE ",  "OPTIONS ",
					      "PATCH ", "CONNECT ", "TRACE "};
	bool method = false;
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		size_t m = strlen(methods[i]);

		method |= len >= m && !memcmp(p, methods[i], m);
	}
	if (!method)
		return -1;
	/* Each header line, up to the blank line that ends them. */
	for (i = 0; i + 1 < len; i++) {
		size_t start, stop, n;

		if (p[i] != '\r' || p[i + 1] != '\n')
			continue;
		start = i + 2;
		if (start + 1 < len && p[start] == '\r' && p[start + 1] == '\n')
			return -1; /* no Host header */
		if (start + 5 > len)
			return -1;
		if (strncasecmp((const char *)p + start, "host:", 5))
			continue;
		start += 5;
		while (start < len && (p[start] == ' ' || p[start] == '\t'))
			start++;
		for (stop = start; stop < len && p[stop] != '\r' &&
				   p[stop] != ':' && p[stop] != ' ';
		     stop++)
			;
		if (stop == len)
			return -1; /* cut off: not whole in this segment */
		n = stop - start;
		if (n == 0 || n >= name_len || memchr(p + start, 0, n))
			return -1;
		memcpy(name, p + start, n);
		name[n] = 0;
		return net_name_normalise(name, name_len, name) ? 0 : -1;
	}
	return -1;
}
