// SPDX-License-Identifier: MIT
/*
 * Frames hutch itself puts on the guest's link (net_craft.h): the
 * REFUSED answer in the resolver's place, and the resets that end a
 * connection whose name the policy refused.  Built from the guest's own
 * frame with the two ends swapped (or not), checksums complete.  And the
 * guest's frames' virtio-net headers, applied.
 */
#include "devices/net/net_craft.h"

#include <string.h>

#define ETH_HLEN 14

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (i < len)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/*
 * Ethernet and IP headers for an L4 payload of l4_len bytes, from src to
 * dst (each the guest frame's own addresses, swapped by the caller's
 * choice).  The L4 header goes at the returned offset.
 */
static size_t headers(uint8_t *out, const uint8_t *frame,
		      const struct net_flow *f, bool swap, uint8_t proto,
		      size_t l4_len)
{
	const uint8_t *src = swap ? f->dst : f->src;
	const uint8_t *dst = swap ? f->src : f->dst;

	memcpy(out, frame + (swap ? 6 : 0), 6);
	memcpy(out + 6, frame + (swap ? 0 : 6), 6);
	if (f->family == 4) {
		uint8_t *ip = out + ETH_HLEN;

		put16(out + 12, 0x0800);
		memset(ip, 0, 20);
		ip[0] = 0x45;
		put16(ip + 2, (unsigned)(20 + l4_len));
		put16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		ip[9] = proto;
		memcpy(ip + 12, src, 4);
		memcpy(ip + 16, dst, 4);
		put16(ip + 10, fold(sum16(0, ip, 20)));
		return ETH_HLEN + 20;
	}
	put16(out + 12, 0x86dd);
	memset(out + ETH_HLEN, 0, 40);
	out[ETH_HLEN] = 0x60;
	put16(out + ETH_HLEN + 4, (unsigned)l4_len);
	out[ETH_HLEN + 6] = proto;
	out[ETH_HLEN + 7] = 64;
	memcpy(out + ETH_HLEN + 8, src, 16);
	memcpy(out + ETH_HLEN + 24, dst, 16);
	return ETH_HLEN + 40;
}

/* The L4 checksum over the pseudo-header and l4_len bytes at l4. */
static uint16_t l4_csum(const uint8_t *out, const struct net_flow *f,
			size_t ip_off, const uint8_t *l4, size_t l4_len,
			uint8_t proto)
{
	unsigned alen = f->family == 4 ? 4 : 16;
	const uint8_t *addrs = out + ip_off + (f->family == 4 ? 12 : 8);
	uint32_t sum = sum16(0, addrs, 2 * alen);

	sum += proto;
	sum += (uint32_t)l4_len;
	return fold(sum16(sum, l4, l4_len));
}

int net_craft_udp_reply(const uint8_t *frame, const struct net_flow *f,
			const uint8_t *payload, size_t plen, uint8_t *out,
			size_t out_len)
{
	size_t off, ip_off = ETH_HLEN, l4_len = 8 + plen;
	uint8_t *udp;
	uint16_t c;

	if (ETH_HLEN + 40 + l4_len > out_len)
		return -1;
	off = headers(out, frame, f, true, 17, l4_len);
	udp = out + off;
	put16(udp, f->dport);
	put16(udp + 2, f->sport);
	put16(udp + 4, (unsigned)l4_len);
	put16(udp + 6, 0);
	memcpy(udp + 8, payload, plen);
	c = l4_csum(out, f, ip_off, udp, l4_len, 17);
	put16(udp + 6, c ? c : 0xffff);
	return (int)(off + l4_len);
}

int net_craft_tcp_rst(const uint8_t *frame, const struct net_flow *f,
		      bool to_guest, uint8_t *out, size_t out_len)
{
	const uint8_t *seg = frame + f->l4_off;
	size_t off;
	uint8_t *tcp;

	if (ETH_HLEN + 40 + 20 > out_len)
		return -1;
	off = headers(out, frame, f, to_guest, 6, 20);
	tcp = out + off;
	memset(tcp, 0, 20);
	if (to_guest) {
		/* From the peer, at the sequence number the guest expects. */
		put16(tcp, f->dport);
		put16(tcp + 2, f->sport);
		memcpy(tcp + 4, seg + 8, 4);
	} else {
		put16(tcp, f->sport);
		put16(tcp + 2, f->dport);
		memcpy(tcp + 4, seg + 4, 4);
	}
	tcp[12] = 5 << 4;
	tcp[13] = 0x04; /* RST */
	put16(tcp + 16, l4_csum(out, f, ETH_HLEN, tcp, 20, 6));
	return (int)(off + 20);
}

bool net_tx_hdr_apply(uint8_t *hdr, uint8_t *frame, size_t len, bool gso_ok)
{
	unsigned start = (unsigned)(hdr[6] | hdr[7] << 8);
	unsigned off = (unsigned)(hdr[8] | hdr[9] << 8);
	unsigned gso_size = (unsigned)(hdr[4] | hdr[5] << 8);
	uint16_t sum;

	if (hdr[0] & ~1u)
		return false;
	if (hdr[1] != 0 /* GSO_NONE */) {
		/* TCPV4 (1) or TCPV6 (4), no ECN bit: what HOST_TSO4/6 let
		 * the driver send. */
		if (!gso_ok || (hdr[1] != 1 && hdr[1] != 4) || !(hdr[0] & 1) ||
		    gso_size == 0 || (size_t)start + off + 2 > len)
			return false;
		return true;
	}
	if (!(hdr[0] & 1)) /* NEEDS_CSUM */
		return true;
	if ((size_t)start + off + 2 > len)
		return false;
	sum = fold(sum16(0, frame + start, len - start));
	put16(frame + start + off, sum);
	/* Done: whatever reads the header next (a TAP) must not redo it. */
	memset(hdr, 0, 10);
	return true;
}

bool net_rx_hdr_check(const uint8_t *hdr, size_t len, bool csum_ok,
		      bool tso4_ok, bool tso6_ok)
{
	unsigned start = (unsigned)(hdr[6] | hdr[7] << 8);
	unsigned off = (unsigned)(hdr[8] | hdr[9] << 8);
	unsigned gso_size = (unsigned)(hdr[4] | hdr[5] << 8);
	bool needs_csum = hdr[0] & 1;

	if (hdr[0] & ~3u) /* NEEDS_CSUM, DATA_VALID */
		return false;
	if (needs_csum && (!csum_ok || (size_t)start + off + 2 > len))
		return false;
	switch (hdr[1]) {
	case 0: /* GSO_NONE */
		return true;
	case 1: /* TCPV4 */
		return tso4_ok && needs_csum && gso_size != 0;
	case 4: /* TCPV6 */
		return tso6_ok && needs_csum && gso_size != 0;
	default: /* UDP, ECN: never turned on */
		return false;
	}
}
