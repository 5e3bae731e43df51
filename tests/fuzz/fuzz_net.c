// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: virtio-net's frame path against a hostile guest and
 * a hostile network.  Each input is a sequence of records: one byte
 * (direction and what to do), two bytes of length, then that many bytes:
 *
 *   0  a guest frame with its virtio-net header: the header applied
 *      (checksum completion), then the whole egress filter (rules,
 *      names, DNS queries answered REFUSED, connection names, resets)
 *   1  a frame for the guest: DNS answers pinned, forwards remembered
 *   2  bytes as a connection's first data: the TLS and HTTP name readers
 *   3  bytes as a DNS message: the query, REFUSED and answer readers
 *
 * The policy holds address rules, deny rules, domain rules and a
 * forwarded port, so every branch of the verdict is reachable.  Besides
 * the sanitizers' checks, it aborts if a frame hutch makes is longer than
 * its buffer or not a frame the parser accepts.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "devices/net/net_craft.h"
#include "devices/net/net_dns.h"
#include "devices/net/net_policy.h"
#include "devices/net/net_sni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

static struct net_policy pol;
static int ready;
static uint64_t now = 1000000000ull;

static void made(void *opaque, const uint8_t *frame, size_t len)
{
	struct net_flow f;

	(void)opaque;
	CHECK(len <= 14 + 40 + 8 + 512);
	CHECK(net_frame_parse(frame, len, &f) == NET_FRAME_IP);
}

static void setup(void)
{
	static const char *const rules[] = {"tcp:10.0.2.2:8000", "0.0.0.0/0",
					    "[2001:db8::/32]:443",
					    "icmp:192.0.2.0/24"};
	static const char *const names[] = {"allowed.test", "*.cdn.test",
					    "ssh.test:22"};
	struct net_rule r;
	struct net_domain d;

	CHECK(net_policy_init(&pol) == 0);
	inet_pton(AF_INET, "10.0.2.2", pol.infra.gw4);
	inet_pton(AF_INET, "10.0.2.3", pol.infra.dns4);
	inet_pton(AF_INET6, "fec0::2", pol.infra.gw6);
	inet_pton(AF_INET6, "fec0::3", pol.infra.dns6);
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		CHECK(net_rule_parse(rules[i], true, &r) == 0);
		CHECK(net_policy_add(&pol, &r) == 0);
	}
	CHECK(net_rule_parse("93.184.216.34", false, &r) == 0);
	CHECK(net_policy_add(&pol, &r) == 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		CHECK(net_domain_parse(names[i], &d) == 0);
		CHECK(net_names_add(&pol.names, &d) == 0);
	}
	pol.fwd_ports[pol.nfwd++] = 8080;
	ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct net_filter_io io = {made, made, NULL};
	/* Copies: the filter may write (checksums), and ASan then sees a
	 * read past the record's end. */
	static uint8_t buf[65536];
	char name[NET_NAME_MAX];
	uint8_t out[512];

	if (!ready)
		setup();
	while (size >= 3) {
		unsigned op = data[0] & 3;
		size_t len = (size_t)(data[1] | data[2] << 8);

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		memcpy(buf, data, len);
		switch (op) {
		case 0:
			if (len >= 12 &&
			    net_tx_hdr_apply(buf, buf + 12, len - 12, len & 1))
				net_filter_tx(&pol, buf + 12, len - 12, now,
					      &io);
			break;
		case 1:
			/* A TAP's frame: its header, then the frame. */
			if (len >= 12 &&
			    net_rx_hdr_check(buf, len - 12, len & 1, len & 2,
					     len & 4)) {
				size_t start = (size_t)(buf[6] | buf[7] << 8);
				size_t off = (size_t)(buf[8] | buf[9] << 8);

				CHECK(!(buf[0] & 1) ||
				      start + off + 2 <= len - 12);
			}
			net_filter_rx(&pol, buf, len, now);
			break;
		case 2:
			if (net_tls_sni(buf, len, name, sizeof(name)) == 0)
				CHECK(strlen(name) < sizeof(name));
			if (net_http_host(buf, len, name, sizeof(name)) == 0)
				CHECK(strlen(name) < sizeof(name));
			break;
		case 3:
			if (net_dns_query_name(buf, len, name, sizeof(name)) ==
			    0)
				CHECK(strlen(name) < sizeof(name));
			CHECK(net_dns_refused(buf, len, out, sizeof(out)) <=
			      (int)sizeof(out));
			net_dns_pin_answer(&pol.names, buf, len, now);
			break;
		}
		data += len;
		size -= len;
		/* Time passes: pins and logged flows expire. */
		now += (uint64_t)(op + 1) * 100000000ull;
	}
	return 0;
}
