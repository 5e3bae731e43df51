// SPDX-License-Identifier: MIT
/* The egress policy: rules, frame classification, verdicts, the log. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/net/net_craft.h"
#include "devices/net/net_policy.h"
#include "devices/net/net_slirp.h"
#include "devices/net/net_type.h"

static struct net_policy pol;

static void setup(void)
{
	cr_assert_eq(net_policy_init(&pol), 0);
	net_slirp_infra(&pol.infra);
}

static void teardown(void)
{
	net_policy_free(&pol);
}

TestSuite(net_policy, .init = setup, .fini = teardown);

static void add(const char *text, bool allow)
{
	struct net_rule r;

	cr_assert_eq(net_rule_parse(text, allow, &r), 0, "%s", text);
	cr_assert_eq(net_policy_add(&pol, &r), 0);
}

/* An Ethernet frame with an IPv4 packet: proto, dst, ports, TCP flags. */
static size_t frame4(uint8_t *f, uint8_t proto, const char *dst, uint16_t sport,
		     uint16_t dport, uint8_t tcp_flags, uint16_t frag)
{
	size_t l4 = proto == 6 ? 20 : 8, len = 14 + 20 + l4;

	memset(f, 0, len);
	f[12] = 0x08;
	f[14] = 0x45;
	f[16] = (uint8_t)((20 + l4) >> 8);
	f[17] = (uint8_t)(20 + l4);
	f[20] = (uint8_t)(frag >> 8);
	f[21] = (uint8_t)frag;
	f[23] = proto;
	inet_pton(AF_INET, "10.0.2.15", f + 26);
	inet_pton(AF_INET, dst, f + 30);
	f[34] = (uint8_t)(sport >> 8);
	f[35] = (uint8_t)sport;
	f[36] = (uint8_t)(dport >> 8);
	f[37] = (uint8_t)dport;
	if (proto == 6) {
		f[34 + 12] = 5 << 4; /* data offset */
		f[34 + 13] = tcp_flags;
	}
	return len;
}

static size_t frame6(uint8_t *f, uint8_t proto, const char *dst, uint16_t dport)
{
	size_t len = 14 + 40 + 20;

	memset(f, 0, len);
	f[12] = 0x86;
	f[13] = 0xdd;
	f[14] = 0x60;
	f[19] = 20;
	f[20] = proto;
	inet_pton(AF_INET6, "fec0::5054:ff:fe12:3456", f + 22);
	inet_pton(AF_INET6, dst, f + 38);
	f[54] = 0x80;
	f[56] = (uint8_t)(dport >> 8);
	f[57] = (uint8_t)dport;
	f[54 + 12] = 5 << 4;
	f[54 + 13] = 0x02;
	return len;
}

static bool allows4(uint8_t proto, const char *dst, uint16_t dport,
		    const char **why)
{
	uint8_t f[128];
	struct net_flow flow;
	size_t len = frame4(f, proto, dst, 40000, dport, 0x02, 0);

	cr_assert_eq(net_frame_parse(f, len, &flow), NET_FRAME_IP);
	return net_policy_allows(&pol, &flow, 1, why);
}

Test(net_policy, rules_parse_and_bad_ones_are_refused)
{
	static const char *const good[] = {"1.2.3.4",
					   "1.2.3.0/24",
					   "tcp:1.2.3.4:443",
					   "udp:1.2.3.4:53-54",
					   "icmp:10.0.2.2",
					   "2001:db8::1",
					   "[2001:db8::/32]:443",
					   "tcp:[::1]:80",
					   "0.0.0.0/0"};
	static const char *const bad[] = {
	    "",
	    "1.2.3",
	    "1.2.3.4/33",
	    "1.2.3.4:0x50",
	    "1.2.3.4:70000",
	    "1.2.3.4:5-4",
	    "icmp:1.2.3.4:80",
	    "[::1",
	    "[::1]x",
	    "::1/129",
	    "sctp:1.2.3.4",
	    "1.2.3.4/",
	    "1.2.3.4:",
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "4"};
	struct net_rule r;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_expect_eq(net_rule_parse(good[i], true, &r), 0, "%s",
			     good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_neq(net_rule_parse(bad[i], true, &r), 0, "%s",
			      bad[i]);
	cr_assert_eq(net_rule_parse("[2001:db8::/32]:443-444", true, &r), 0);
	cr_expect_eq(r.family, 6);
	cr_expect_eq(r.prefix, 32);
	cr_expect_eq(r.port_lo, 443);
	cr_expect_eq(r.port_hi, 444);
}

Test(net_policy, nothing_leaves_without_a_rule)
{
	const char *why = NULL;

	cr_expect_not(allows4(6, "93.184.216.34", 443, &why));
	cr_expect_str_eq(why, "default");
	cr_expect_not(allows4(17, "93.184.216.34", 443, &why));
	cr_expect_eq(pol.dropped, 2);
}

Test(net_policy, allow_rules_match_address_protocol_and_port)
{
	const char *why = NULL;

	add("tcp:93.184.216.0/24:443", true);
	cr_expect(allows4(6, "93.184.216.34", 443, &why));
	cr_expect_not(allows4(6, "93.184.216.34", 80, &why));
	cr_expect_not(allows4(17, "93.184.216.34", 443, &why));
	cr_expect_not(allows4(6, "93.184.217.34", 443, &why));
	/* A deny rule wins. */
	add("93.184.216.34", false);
	cr_expect_not(allows4(6, "93.184.216.34", 443, &why));
	cr_expect_str_eq(why, "93.184.216.34");
	cr_expect(allows4(6, "93.184.216.35", 443, &why));
}

Test(net_policy, sensitive_ranges_need_a_rule_inside_them)
{
	static const char *const sensitive[] = {
	    "10.0.2.2",	  "127.0.0.1",	"169.254.169.254", "192.168.1.1",
	    "172.16.0.1", "100.64.0.1", "224.0.0.1",	   "255.255.255.255"};
	const char *why = NULL;

	add("0.0.0.0/0", true);
	cr_expect(allows4(6, "93.184.216.34", 443, &why));
	for (size_t i = 0; i < sizeof(sensitive) / sizeof(sensitive[0]); i++) {
		cr_expect_not(allows4(6, sensitive[i], 80, &why), "%s",
			      sensitive[i]);
		cr_expect_str_eq(why, "sensitive");
	}
	add("10.0.2.2:8000", true);
	cr_expect(allows4(6, "10.0.2.2", 8000, &why));
	cr_expect_not(allows4(6, "10.0.2.2", 8001, &why));
	add("169.254.0.0/16", true);
	cr_expect(allows4(6, "169.254.169.254", 80, &why));
}

Test(net_policy, ipv6_is_checked_the_same_way)
{
	uint8_t f[128];
	struct net_flow flow;
	const char *why = NULL;
	size_t len = frame6(f, 6, "2001:db8::1", 443);

	cr_assert_eq(net_frame_parse(f, len, &flow), NET_FRAME_IP);
	cr_expect_not(net_policy_allows(&pol, &flow, 1, &why));
	add("::/0", true);
	cr_expect(net_policy_allows(&pol, &flow, 1, &why));
	len = frame6(f, 6, "fd00:ec2::254", 80);
	cr_assert_eq(net_frame_parse(f, len, &flow), NET_FRAME_IP);
	cr_expect_not(net_policy_allows(&pol, &flow, 1, &why));
	cr_expect_str_eq(why, "sensitive");
	len = frame6(f, 6, "::ffff:10.0.2.2", 80);
	cr_assert_eq(net_frame_parse(f, len, &flow), NET_FRAME_IP);
	cr_expect_not(net_policy_allows(&pol, &flow, 1, &why));
}

Test(net_policy, the_virtual_network_itself_always_works)
{
	const char *why = NULL;

	cr_expect(allows4(17, "255.255.255.255", 67, &why)); /* DHCP */
	cr_expect(allows4(17, "10.0.2.3", 53, &why));	     /* our DNS */
	cr_expect(allows4(6, "10.0.2.3", 53, &why));
	/* Another resolver is not ours. */
	cr_expect_not(allows4(17, "10.0.2.2", 53, &why));
	cr_expect_not(allows4(17, "8.8.8.8", 53, &why));
	cr_expect_not(allows4(6, "10.0.2.3", 80, &why));
}

Test(net_policy, fragments_and_bad_frames_never_pass)
{
	uint8_t f[128];
	struct net_flow flow;
	const char *why = NULL;
	size_t len;

	add("0.0.0.0/0", true);
	len = frame4(f, 17, "93.184.216.34", 1, 53, 0, 0x2000); /* MF */
	cr_assert_eq(net_frame_parse(f, len, &flow), NET_FRAME_IP);
	cr_expect_not(net_policy_allows(&pol, &flow, 1, &why));
	cr_expect_str_eq(why, "fragment");
	len = frame4(f, 17, "93.184.216.34", 1, 53, 0, 0x0010); /* offset */
	cr_assert_eq(net_frame_parse(f, len, &flow), NET_FRAME_IP);
	cr_expect_not(net_policy_allows(&pol, &flow, 1, &why));
	/* Cut short anywhere: never an IP frame the policy passes. */
	len = frame4(f, 6, "93.184.216.34", 1, 443, 0x02, 0);
	for (size_t cut = 0; cut < len; cut++)
		cr_expect_neq(net_frame_parse(f, cut, &flow), NET_FRAME_IP,
			      "cut at %zu", cut);
	/* An IPv4 header length beyond the packet. */
	f[14] = 0x4f;
	cr_expect_eq(net_frame_parse(f, len, &flow), NET_FRAME_BAD);
	/* Another ethertype. */
	f[12] = 0x88;
	cr_expect_eq(net_frame_parse(f, len, &flow), NET_FRAME_OTHER);
}

Test(net_policy, replies_on_forwarded_connections_leave_and_nothing_else)
{
	uint8_t f[128];
	struct net_flow in, out;
	const char *why = NULL;
	size_t len;

	pol.fwd_ports[pol.nfwd++] = 8080;
	/* The host (10.0.2.2:45000) connects to the guest's port 8080. */
	len = frame4(f, 6, "10.0.2.15", 45000, 8080, 0x02, 0);
	memcpy(f + 26, (uint8_t[]){10, 0, 2, 2}, 4);
	cr_assert_eq(net_frame_parse(f, len, &in), NET_FRAME_IP);
	len = frame4(f, 6, "10.0.2.2", 8080, 45000, 0x12, 0);
	cr_assert_eq(net_frame_parse(f, len, &out), NET_FRAME_IP);
	cr_expect_not(net_policy_allows(&pol, &out, 1, &why));
	net_policy_note_inbound(&pol, &in, 1);
	cr_expect(net_policy_allows(&pol, &out, 2, &why));
	/* The same port towards another peer port: no. */
	len = frame4(f, 6, "10.0.2.2", 8080, 45001, 0x02, 0);
	cr_assert_eq(net_frame_parse(f, len, &out), NET_FRAME_IP);
	cr_expect_not(net_policy_allows(&pol, &out, 2, &why));
}

Test(net_policy, each_denied_flow_is_logged_once_as_json)
{
	char path[] = "/tmp/net-policy-log-XXXXXX", buf[2048] = "";
	uint8_t f[128];
	struct net_flow flow;
	const char *why = NULL;
	size_t len = frame4(f, 6, "93.184.216.34", 40000, 443, 0x02, 0);
	int fd = mkstemp(path);
	ssize_t n;

	cr_assert_geq(fd, 0);
	pol.log_fd = fd;
	pol.vm_name = "a\"b\\c\n";
	cr_assert_eq(net_frame_parse(f, len, &flow), NET_FRAME_IP);
	for (int i = 0; i < 5; i++) {
		cr_expect_not(net_policy_allows(&pol, &flow, 100 + i, &why));
		net_policy_log_denied(&pol, &flow, why, NULL,
				      100 + (uint64_t)i);
	}
	/* After the window, once more. */
	net_policy_log_denied(&pol, &flow, why, NULL,
			      100 + NET_POLICY_LOG_WINDOW_NS + 1);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	cr_assert_gt(n, 0);
	buf[n] = 0;
	cr_expect_eq(pol.logged, 2);
	cr_expect(strstr(buf, "\"vm\":\"a\\\"b\\\\c\\u000a\",\"proto\":\"tcp\","
			      "\"dst\":\"93.184.216.34\",\"port\":443,"
			      "\"denied_by\":\"default\"}\n"),
		  "%s", buf);
	cr_expect_eq(strchr(strchr(buf, '\n') + 1, '\n') - buf + 1, n);
	close(fd);
	unlink(path);
}

/* --net tap=IF: its keys, and what does not go with a TAP (or without). */
Test(net_policy, tap_spec_keys)
{
	static const char *const bad[] = {
	    "tap",
	    "tap=",
	    "user,ip=10.9.0.2/24",
	    "user,in=8080",
	    "tap=t0,fwd=tcp:8080:80",
	    "tap=t0,gw=10.9.0.1",
	    "tap=t0,ip=10.9.0.2",
	    "tap=t0,ip=10.9.0.2/31",
	    "tap=t0,ip=10.9.0.300/24",
	    "tap=t0,ip=10.9.0.2/24,dns=x",
	    "tap=t0,in=0",
	};
	char ok[] = "tap=t0,ip=10.9.0.2/24,gw=10.9.0.1,dns=10.9.0.53,in=8080,"
		    "in=22,allow=10.9.0.1";
	struct net_config c;

	cr_assert_eq(net_parse_spec(ok, &c), 0);
	cr_assert_str_eq(c.tap, "t0");
	cr_assert(c.have_ip);
	cr_assert_eq(c.prefix, 24);
	cr_assert_eq(memcmp(c.ip4, "\x0a\x09\x00\x02", 4), 0);
	cr_assert_eq(memcmp(c.gw4, "\x0a\x09\x00\x01", 4), 0);
	cr_assert_eq(memcmp(c.dns4, "\x0a\x09\x00\x35", 4), 0);
	cr_assert_eq(c.nin, 2);
	cr_assert_eq(c.in_ports[1], 22);
	cr_assert_eq(c.nrules, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char spec[128];

		snprintf(spec, sizeof(spec), "%s", bad[i]);
		cr_expect_eq(net_parse_spec(spec, &c), -EINVAL, "%s", bad[i]);
	}
}

/* The guest's virtio-net header on transmit: checksums completed and the
 * request cleared; segmentation only where offered, and only TCP. */
Test(net_policy, tx_header_checksum_and_segmentation)
{
	uint8_t frame[64] = {0}, hdr[12];
	static const uint8_t zero[10];

	for (int i = 20; i < 64; i++)
		frame[i] = (uint8_t)i;
	/* NEEDS_CSUM from 20, stored at 20 + 4. */
	memcpy(hdr, (uint8_t[12]){1, 0, 0, 0, 0, 0, 20, 0, 4, 0}, 12);
	cr_assert(net_tx_hdr_apply(hdr, frame, sizeof(frame), false));
	cr_assert(frame[24] || frame[25], "no checksum stored");
	cr_assert_eq(memcmp(hdr, zero, 10), 0, "the request was left");
	/* Past the frame. */
	memcpy(hdr, (uint8_t[12]){1, 0, 0, 0, 0, 0, 62, 0, 4, 0}, 12);
	cr_assert_not(net_tx_hdr_apply(hdr, frame, sizeof(frame), true));
	/* Unknown flags. */
	memcpy(hdr, (uint8_t[12]){0x82}, 12);
	cr_assert_not(net_tx_hdr_apply(hdr, frame, sizeof(frame), true));
	/* TCPv4 segmentation: only where offered, header kept. */
	memcpy(hdr, (uint8_t[12]){1, 1, 54, 0, 0xa8, 5, 34, 0, 16, 0}, 12);
	cr_assert_not(net_tx_hdr_apply(hdr, frame, sizeof(frame), false));
	cr_assert(net_tx_hdr_apply(hdr, frame, sizeof(frame), true));
	cr_assert_eq(hdr[1], 1);
	cr_assert_eq(hdr[0], 1);
	/* TCPv6 too; UDP (3), ECN (0x81), no segment size, or no checksum
	 * request: refused. */
	hdr[1] = 4;
	cr_assert(net_tx_hdr_apply(hdr, frame, sizeof(frame), true));
	hdr[1] = 3;
	cr_assert_not(net_tx_hdr_apply(hdr, frame, sizeof(frame), true));
	hdr[1] = 0x81;
	cr_assert_not(net_tx_hdr_apply(hdr, frame, sizeof(frame), true));
	hdr[1] = 1;
	hdr[4] = hdr[5] = 0;
	cr_assert_not(net_tx_hdr_apply(hdr, frame, sizeof(frame), true));
	hdr[4] = 0xa8;
	hdr[0] = 0;
	cr_assert_not(net_tx_hdr_apply(hdr, frame, sizeof(frame), true));
}

/* A TAP's header on a frame for the guest: passed on only with what the
 * driver acked, and only checksum requests inside the frame. */
Test(net_policy, rx_header_needs_what_the_driver_acked)
{
	uint8_t hdr[12];

	/* No offload asked: always fine; DATA_VALID needs nothing. */
	memcpy(hdr, (uint8_t[12]){0}, 12);
	cr_assert(net_rx_hdr_check(hdr, 60, false, false, false));
	hdr[0] = 2;
	cr_assert(net_rx_hdr_check(hdr, 60, false, false, false));
	/* A partial checksum: only with GUEST_CSUM, inside the frame. */
	memcpy(hdr, (uint8_t[12]){1, 0, 0, 0, 0, 0, 34, 0, 16, 0}, 12);
	cr_assert_not(net_rx_hdr_check(hdr, 60, false, true, true));
	cr_assert(net_rx_hdr_check(hdr, 60, true, false, false));
	cr_assert_not(net_rx_hdr_check(hdr, 51, true, false, false));
	cr_assert(net_rx_hdr_check(hdr, 52, true, false, false));
	/* Unknown flags. */
	hdr[0] = 5;
	cr_assert_not(net_rx_hdr_check(hdr, 60, true, true, true));
	/* TCPv4 segmentation: with GUEST_TSO4 only, a segment size and a
	 * checksum request. */
	memcpy(hdr, (uint8_t[12]){1, 1, 54, 0, 0xa8, 5, 34, 0, 16, 0}, 12);
	cr_assert(net_rx_hdr_check(hdr, 65000, true, true, false));
	cr_assert_not(net_rx_hdr_check(hdr, 65000, true, false, true));
	cr_assert_not(net_rx_hdr_check(hdr, 65000, false, true, true));
	hdr[1] = 4; /* TCPv6: GUEST_TSO6 */
	cr_assert(net_rx_hdr_check(hdr, 65000, true, false, true));
	cr_assert_not(net_rx_hdr_check(hdr, 65000, true, true, false));
	hdr[1] = 3; /* UDP */
	cr_assert_not(net_rx_hdr_check(hdr, 65000, true, true, true));
	hdr[1] = 0x81; /* ECN */
	cr_assert_not(net_rx_hdr_check(hdr, 65000, true, true, true));
	hdr[1] = 1;
	hdr[4] = hdr[5] = 0;
	cr_assert_not(net_rx_hdr_check(hdr, 65000, true, true, true));
	hdr[4] = 0xa8;
	hdr[0] = 0;
	cr_assert_not(net_rx_hdr_check(hdr, 65000, true, true, true));
}
