// SPDX-License-Identifier: MIT
/*
 * virtio-vsock over fake guest memory, with real Unix sockets in a
 * temporary directory on the host side.  The test plays the guest driver
 * (rx buffers like Linux's: a 44-byte header descriptor and a 4 KiB data
 * descriptor; tx packets as header + payload) and runs the device's
 * handlers from its own epoll instance, as the VMM's event loop would.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "devices/vsock/virtio_vsock.h"
#include "devices/vsock/vsock_conn.h"
#include "devices/vsock/vsock_mux.h"
#include "tests/support/fake_mmio.h"
#include "tests/support/fake_ring.h"
#include "vmm/base/le.h"

FAKE_UBSAN_FATAL()

#define ACK VIRTIO_STATUS_ACKNOWLEDGE
#define DRV VIRTIO_STATUS_DRIVER
#define FOK VIRTIO_STATUS_FEATURES_OK
#define DOK VIRTIO_STATUS_DRIVER_OK
#define NR  VIRTIO_STATUS_NEEDS_RESET

#define GCID	    3u
#define RING	    64u
#define RX_BUFS	    32u
#define RX_GPA	    0x100000u
#define RX_STRIDE   0x2000u
#define RX_DATA	    4096u
#define TX_GPA	    0x200000u
#define TX_SLOT	    0x11000u
#define TX_SLOTS    32u
#define MEM_SIZE    (16u << 20)
#define LOOP_MAX    100000
#define HOST_PORT_0 VSOCK_FIRST_LOCAL_PORT

static struct fake_mem fm;
static struct fake_ring rings[3];
static struct virtio_vsock *v;
static int ep = -1;
static char dir[64], path[128];

static uint16_t rx_seen; /* rx used entries consumed */
static uint16_t free_heads[RX_BUFS];
static unsigned nfree;	     /* rx buffers used, not yet reposted */
static unsigned tx_next;     /* next tx slot */
static uint32_t g_buf_alloc; /* what our guest advertises */
static uint32_t g_fwd;	     /* bytes our guest consumed */

/* ---- the device side: registers and the event loop ---- */

static uint32_t rd(uint64_t off)
{
	uint8_t b[4];

	virtio_mmio_read(&v->vdev, off, b, 4);
	return get_le32(b);
}

static void wr(uint64_t off, uint32_t val)
{
	uint8_t b[4];

	put_le32(b, val);
	virtio_mmio_write(&v->vdev, off, b, 4);
}

/* Run the device's handlers until nothing is ready; the number of
 * rounds (a device that spins on a socket would reach LOOP_MAX). */
static int loop(void)
{
	struct epoll_event evs[16];
	int rounds = 0;

	for (; rounds < LOOP_MAX; rounds++) {
		int n = epoll_wait(ep, evs, 16, 0);

		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			struct ev_handler *h = evs[i].data.ptr;

			h->fn(h, evs[i].events);
		}
	}
	cr_assert_lt(rounds, LOOP_MAX, "the event loop never went idle");
	return rounds;
}

static void init_queue(unsigned q)
{
	cr_assert(fake_ring_attach(&v->vdev, q, &rings[q]));
}

static void rx_repost(void);

static void driver_init(void)
{
	for (unsigned q = 0; q < 3; q++) {
		uint64_t base = 0x1000 + (uint64_t)q * 0x1000;

		fake_ring_init_at(&rings[q], &fm, RING, base, base + 0x400,
				  base + 0x800);
	}
	rx_seen = 0;
	tx_next = 0;
	nfree = 0;
	wr(VIRTIO_MMIO_STATUS, ACK);
	wr(VIRTIO_MMIO_STATUS, ACK | DRV);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	wr(VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	for (unsigned q = 0; q < 3; q++)
		init_queue(q);
	wr(VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);
	for (unsigned i = 0; i < RX_BUFS; i++)
		free_heads[nfree++] = (uint16_t)(2 * i);
	rx_repost();
}

static void setup(void)
{
	struct guest_region r = {.gpa = 0, .size = MEM_SIZE};
	struct virtio_host host;

	snprintf(dir, sizeof(dir), "/tmp/hutch-vsock-XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	fake_mem_init_regions(&fm, &r, 1);
	ep = epoll_create1(EPOLL_CLOEXEC);
	cr_assert_geq(ep, 0);
	host = (struct virtio_host){.mem = &fm.mem, .vm_fd = -1, .ep = ep};
	v = calloc(1, sizeof(*v));
	cr_assert_not_null(v);
	cr_assert_eq(virtio_vsock_create(v, path, GCID, &host, 0xd0000000, 5),
		     0);
	g_buf_alloc = 256 * 1024;
	g_fwd = 0;
	driver_init();
}

static void teardown(void)
{
	char cmd[128];

	virtio_vsock_destroy(v);
	free(v);
	close(ep);
	fake_mem_fini(&fm);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/*
 * Every suite here has the same timeout: Criterion 2.4.1's sandbox
 * (BoxFort, bxfi_push_timeout) keeps per-test deadlines in a sorted list
 * but drops the rest of the list when it inserts an earlier deadline.  A
 * 30 s test starting while a 60 s one ran (two jobs) lost the latter's
 * deadline: a 48-byte leak in the runner under ASan, and that test no
 * longer timed out.
 */
#define SUITE_TIMEOUT 60

TestSuite(vsock, .init = setup, .fini = teardown, .timeout = SUITE_TIMEOUT);

/* ---- the guest driver ---- */

/* Give the device back the rx buffers we consumed (header descriptor,
 * then a 4 KiB data descriptor, as Linux 6.1 does). */
static void rx_repost(void)
{
	struct fake_ring *r = &rings[VSOCK_RXQ];

	for (unsigned k = 0; k < nfree; k++) {
		uint16_t h = free_heads[k];
		uint64_t gpa = RX_GPA + (uint64_t)(h / 2) * RX_STRIDE;

		fake_desc(r, h, gpa, VSOCK_HDR_LEN,
			  VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
			  (uint16_t)(h + 1));
		fake_desc(r, (uint16_t)(h + 1), gpa + 64, RX_DATA,
			  VIRTQ_DESC_F_WRITE, 0);
		fake_publish(r, h);
	}
	nfree = 0;
	virtio_dev_notify(&v->vdev, VSOCK_RXQ);
}

/* Take the next packet the device put in rx; payload into data (at
 * least RX_DATA bytes) if not NULL.  RW payload counts as consumed. */
static bool grecv(struct vsock_hdr *h, uint8_t *data)
{
	struct fake_ring *r = &rings[VSOCK_RXQ];
	uint8_t raw[VSOCK_HDR_LEN];
	uint32_t id, len;
	uint64_t gpa;

	if (fake_used_idx(r) == rx_seen)
		return false;
	fake_used_elem(r, rx_seen++, &id, &len);
	cr_assert(id % 2 == 0 && id < 2 * RX_BUFS, "bad used id %u", id);
	gpa = RX_GPA + (uint64_t)(id / 2) * RX_STRIDE;
	fake_read(&fm, gpa, raw, VSOCK_HDR_LEN);
	vsock_hdr_decode(raw, h);
	cr_assert_eq(len, VSOCK_HDR_LEN + h->len, "used length %u, len %u", len,
		     h->len);
	cr_assert_leq(h->len, RX_DATA);
	cr_assert_eq(h->src_cid == VSOCK_HOST_CID || h->op == VSOCK_OP_RST, 1);
	cr_assert_eq(h->dst_cid, GCID);
	cr_assert_eq(h->type, VSOCK_TYPE_STREAM);
	if (data && h->len)
		fake_read(&fm, gpa + 64, data, h->len);
	if (h->op == VSOCK_OP_RW)
		g_fwd += h->len;
	free_heads[nfree++] = (uint16_t)id;
	return true;
}

/* Send a packet with any header. */
static void gsend_hdr(const struct vsock_hdr *h, const void *payload,
		      uint32_t plen)
{
	struct fake_ring *r = &rings[VSOCK_TXQ];
	uint16_t k = (uint16_t)(tx_next++ % TX_SLOTS);
	uint64_t gpa = TX_GPA + (uint64_t)k * TX_SLOT;
	uint8_t raw[VSOCK_HDR_LEN];

	cr_assert_leq(plen, TX_SLOT - 64);
	vsock_hdr_encode(h, raw);
	fake_write(&fm, gpa, raw, VSOCK_HDR_LEN);
	if (plen) {
		fake_write(&fm, gpa + 64, payload, plen);
		fake_desc(r, (uint16_t)(2 * k), gpa, VSOCK_HDR_LEN,
			  VIRTQ_DESC_F_NEXT, (uint16_t)(2 * k + 1));
		fake_desc(r, (uint16_t)(2 * k + 1), gpa + 64, plen, 0, 0);
	} else {
		fake_desc(r, (uint16_t)(2 * k), gpa, VSOCK_HDR_LEN, 0, 0);
	}
	fake_publish(r, (uint16_t)(2 * k));
	virtio_dev_notify(&v->vdev, VSOCK_TXQ);
	loop();
}

static void gsend(uint16_t op, uint32_t src_port, uint32_t dst_port,
		  uint32_t flags, const void *payload, uint32_t plen)
{
	struct vsock_hdr h = {
	    .src_cid = GCID,
	    .dst_cid = VSOCK_HOST_CID,
	    .src_port = src_port,
	    .dst_port = dst_port,
	    .len = plen,
	    .type = VSOCK_TYPE_STREAM,
	    .op = op,
	    .flags = flags,
	    .buf_alloc = g_buf_alloc,
	    .fwd_cnt = g_fwd,
	};

	gsend_hdr(&h, payload, plen);
}

/* The next packet must be op (between ports, if given). */
static void expect(uint16_t op, uint32_t src_port, uint32_t dst_port,
		   struct vsock_hdr *out, uint8_t *data)
{
	struct vsock_hdr h;

	loop();
	cr_assert(grecv(&h, data), "no packet; expected op %u", op);
	cr_assert_eq(h.op, op, "op %u, expected %u", h.op, op);
	if (src_port)
		cr_assert_eq(h.src_port, src_port, "src port %u", h.src_port);
	if (dst_port)
		cr_assert_eq(h.dst_port, dst_port, "dst port %u", h.dst_port);
	if (out)
		*out = h;
}

static void expect_nothing(void)
{
	struct vsock_hdr h;

	loop();
	cr_assert_not(grecv(&h, NULL), "unexpected packet op %u", h.op);
}

/* Collect RW payload into buf until want bytes (or no progress); the
 * total.  Other packets fail the test unless allow_other. */
static size_t grecv_data(uint8_t *buf, size_t want)
{
	size_t got = 0;
	int idle = 0;

	while (got < want && idle < 3) {
		struct vsock_hdr h;
		bool any = false;

		loop();
		while (got < want && grecv(&h, buf + got)) {
			any = true;
			if (h.op == VSOCK_OP_CREDIT_UPDATE)
				continue;
			cr_assert_eq(h.op, VSOCK_OP_RW, "op %u", h.op);
			cr_assert_leq(got + h.len, want, "more than expected");
			got += h.len;
		}
		rx_repost();
		idle = any ? 0 : idle + 1;
	}
	return got;
}

/* ---- the host side ---- */

/* sun_path from p, which the test made short enough. */
static void sun_set(struct sockaddr_un *sa, const char *p)
{
	cr_assert_lt(strlen(p), sizeof(sa->sun_path));
	memcpy(sa->sun_path, p, strlen(p) + 1);
}

static int unix_connect(const char *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	sun_set(&sa, p);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
		     "connect %s: %s", p, strerror(errno));
	return fd;
}

static int host_listen(uint32_t port)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char p[160];

	cr_assert_geq(fd, 0);
	snprintf(p, sizeof(p), "%s_%u", path, port);
	sun_set(&sa, p);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 1024), 0);
	return fd;
}

static void host_send(int fd, const void *p, size_t len)
{
	cr_assert_eq(send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL),
		     (ssize_t)len, "host send: %s", strerror(errno));
	loop();
}

/* Read exactly len bytes, or until EOF/no progress; the count. */
static size_t host_recv(int fd, void *buf, size_t len)
{
	size_t got = 0;

	for (int idle = 0; got < len && idle < 3;) {
		ssize_t n;

		loop();
		n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n < 0) {
			cr_assert_eq(errno, EAGAIN, "recv: %s",
				     strerror(errno));
			idle++;
			continue;
		}
		got += (size_t)n;
		idle = 0;
	}
	return got;
}

/* Closed by the device: EOF, or ECONNRESET where it closed without
 * reading what we sent. */
static bool host_eof(int fd)
{
	char c;
	ssize_t n;

	loop();
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* A host-initiated connection to guest port gport, accepted by the
 * guest: the host fd, the local port through *lport. */
static int host_open(uint32_t gport, uint32_t *lport)
{
	int fd = unix_connect(path);
	struct vsock_hdr h;
	char line[32], want[32];
	size_t n;

	snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	host_send(fd, line, strlen(line));
	expect(VSOCK_OP_REQUEST, 0, gport, &h, NULL);
	cr_assert_geq(h.src_port, HOST_PORT_0);
	cr_assert_eq(h.buf_alloc, VSOCK_BUF_ALLOC);
	gsend(VSOCK_OP_RESPONSE, gport, h.src_port, 0, NULL, 0);
	snprintf(want, sizeof(want), "OK %u\n", h.src_port);
	n = host_recv(fd, line, strlen(want));
	line[n] = 0;
	cr_assert_str_eq(line, want);
	if (lport)
		*lport = h.src_port;
	rx_repost();
	return fd;
}

/* A guest-initiated connection from guest port gport to host port
 * hport, whose listener is lfd: the accepted host fd. */
static int guest_open(int lfd, uint32_t gport, uint32_t hport)
{
	int fd;

	gsend(VSOCK_OP_REQUEST, gport, hport, 0, NULL, 0);
	expect(VSOCK_OP_RESPONSE, hport, gport, NULL, NULL);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(fd, 0);
	rx_repost();
	return fd;
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 9)) ^ seed);
}

/* ---- tests ---- */

Test(vsock, identity_and_config)
{
	uint8_t b[8];

	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
	virtio_mmio_read(&v->vdev, VIRTIO_MMIO_CONFIG, b, 8);
	cr_assert_eq(get_le64(b), GCID);
	wr(VIRTIO_MMIO_QUEUE_SEL, 2);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), VSOCK_QUEUE_SIZE);
	wr(VIRTIO_MMIO_QUEUE_SEL, 3);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 */
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_FEATURES),
		     (uint32_t)(VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC));
}

Test(vsock, event_queue_accepts_buffers_and_stays_idle)
{
	struct fake_ring *r = &rings[VSOCK_EVQ];

	fake_desc(r, 0, 0x90000, 8, VIRTQ_DESC_F_WRITE, 0);
	fake_publish(r, 0);
	virtio_dev_notify(&v->vdev, VSOCK_EVQ);
	loop();
	cr_assert_eq(fake_used_idx(r), 0);
	cr_assert(virtio_dev_live(&v->vdev));
}

Test(vsock, guest_connect_without_listener_gets_rst)
{
	struct vsock_hdr h;

	gsend(VSOCK_OP_REQUEST, 1111, 1234, 0, NULL, 0);
	expect(VSOCK_OP_RST, 1234, 1111, &h, NULL);
	cr_assert_eq(h.src_cid, VSOCK_HOST_CID);
	cr_assert_eq(v->conns.nconns, 0);
}

Test(vsock, guest_connect_reaches_path_port_and_data_flows)
{
	int lfd = host_listen(1234), fd;
	uint8_t out[20000], in[20000];

	fd = guest_open(lfd, 1111, 1234);
	/* Guest to host, in pieces, byte-exact. */
	fill(out, sizeof(out), 1);
	for (size_t off = 0; off < sizeof(out); off += 5000)
		gsend(VSOCK_OP_RW, 1111, 1234, 0, out + off, 5000);
	cr_assert_eq(host_recv(fd, in, sizeof(in)), sizeof(in));
	cr_assert_arr_eq(in, out, sizeof(in));
	/* Host to guest: 4 KiB packets at most (the guest's buffers). */
	fill(out, sizeof(out), 2);
	host_send(fd, out, sizeof(out));
	memset(in, 0, sizeof(in));
	cr_assert_eq(grecv_data(in, sizeof(in)), sizeof(in));
	cr_assert_arr_eq(in, out, sizeof(in));
	cr_assert_eq(v->stats.conns_guest, 1);
	close(fd);
	close(lfd);
}

Test(vsock, host_connect_handshake_and_data_both_ways)
{
	uint8_t out[50000], in[50000];
	uint32_t lport;
	int fd = host_open(5000, &lport);

	cr_assert_eq(lport, HOST_PORT_0);
	fill(out, sizeof(out), 3);
	host_send(fd, out, sizeof(out));
	cr_assert_eq(grecv_data(in, sizeof(in)), sizeof(in));
	cr_assert_arr_eq(in, out, sizeof(in));
	fill(out, sizeof(out), 4);
	gsend(VSOCK_OP_RW, 5000, lport, 0, out, 30000);
	gsend(VSOCK_OP_RW, 5000, lport, 0, out + 30000, 20000);
	cr_assert_eq(host_recv(fd, in, sizeof(in)), sizeof(in));
	cr_assert_arr_eq(in, out, sizeof(in));
	cr_assert_eq(v->stats.conns_host, 1);
	close(fd);
}

Test(vsock, host_data_sent_right_after_connect_line_is_kept)
{
	int fd = unix_connect(path);
	const char msg[] = "CONNECT 77\nearly bytes";
	struct vsock_hdr h;
	uint8_t data[RX_DATA];
	char line[32];

	host_send(fd, msg, strlen(msg));
	expect(VSOCK_OP_REQUEST, 0, 77, &h, NULL);
	expect_nothing(); /* no data before the guest accepted */
	gsend(VSOCK_OP_RESPONSE, 77, h.src_port, 0, NULL, 0);
	expect(VSOCK_OP_RW, h.src_port, 77, &h, data);
	cr_assert_eq(h.len, strlen("early bytes"));
	cr_assert_arr_eq(data, "early bytes", h.len);
	cr_assert_eq(host_recv(fd, line, 3 + 11), 14);
	cr_assert_arr_eq(line, "OK 1073741824\n", 14);
	close(fd);
}

Test(vsock, guest_rst_to_request_closes_the_host_connection)
{
	int fd = unix_connect(path);
	struct vsock_hdr h;

	host_send(fd, "CONNECT 9\n", 10);
	expect(VSOCK_OP_REQUEST, 0, 9, &h, NULL);
	cr_assert_not(host_eof(fd));
	gsend(VSOCK_OP_RST, 9, h.src_port, 0, NULL, 0);
	cr_assert(host_eof(fd));
	cr_assert_eq(v->conns.nconns, 0);
	expect_nothing(); /* no answer to an RST */
	close(fd);
}

Test(vsock, malformed_connect_lines_close_the_connection)
{
	const char *bad[] = {
	    "CONNECT abc\n",
	    "CONNECT 99999999999\n",
	    "CONNECT 4294967295\n",
	    "HELLO 5\n",
	    "CONNECT \n",
	    "connect 5\n",
	    "CONNECT -1\n",
	    "CONNECT 5 6\n",
	    "CONNECT 1234567890123456789012345678901234567890\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = unix_connect(path);

		host_send(fd, bad[i], strlen(bad[i]));
		cr_assert(host_eof(fd), "line %zu kept open", i);
		close(fd);
	}
	/* No newline within 32 bytes, sent in two parts. */
	{
		int fd = unix_connect(path);

		host_send(fd, "CONNECT 1234", 12);
		cr_assert_not(host_eof(fd), "a partial line is waited for");
		host_send(fd, "                    ", 20);
		cr_assert(host_eof(fd));
		close(fd);
	}
	/* Half a line, then the host's EOF. */
	{
		int fd = unix_connect(path);

		host_send(fd, "CONN", 4);
		shutdown(fd, SHUT_WR);
		cr_assert(host_eof(fd));
		close(fd);
	}
	cr_assert_eq(v->conns.nconns, 0);
	expect_nothing();
}

Test(vsock, connect_before_driver_ok_is_refused)
{
	int fd;

	wr(VIRTIO_MMIO_STATUS, 0);
	fd = unix_connect(path);
	host_send(fd, "CONNECT 5\n", 10);
	cr_assert(host_eof(fd));
	close(fd);
}

Test(vsock, host_data_stops_at_guest_credit_and_resumes)
{
	static uint8_t out[30000], in[30000];
	uint32_t lport;
	int fd, rounds;

	g_buf_alloc = 10000;
	fd = host_open(5000, &lport);
	fill(out, sizeof(out), 5);
	host_send(fd, out, sizeof(out));
	/* Exactly the credit, then nothing; the loop does not spin. */
	cr_assert_eq(grecv_data(in, sizeof(in)), 10000);
	rounds = loop();
	cr_assert_lt(rounds, 3);
	expect_nothing();
	/* The guest read it all: it says so, and the next 10000 come. */
	gsend(VSOCK_OP_CREDIT_UPDATE, 5000, lport, 0, NULL, 0);
	cr_assert_eq(grecv_data(in + 10000, sizeof(in) - 10000), 10000);
	/* Credit grows with a larger buf_alloc too. */
	g_buf_alloc = 20000;
	gsend(VSOCK_OP_CREDIT_UPDATE, 5000, lport, 0, NULL, 0);
	cr_assert_eq(grecv_data(in + 20000, sizeof(in) - 20000), 10000);
	cr_assert_arr_eq(in, out, sizeof(in));
	close(fd);
}

Test(vsock, credit_request_gets_credit_update)
{
	uint32_t lport;
	int fd = host_open(5000, &lport);
	uint8_t data[1000] = {0};
	struct vsock_hdr h;

	gsend(VSOCK_OP_RW, 5000, lport, 0, data, sizeof(data));
	gsend(VSOCK_OP_CREDIT_REQUEST, 5000, lport, 0, NULL, 0);
	expect(VSOCK_OP_CREDIT_UPDATE, lport, 5000, &h, NULL);
	cr_assert_eq(h.buf_alloc, VSOCK_BUF_ALLOC);
	cr_assert_eq(h.fwd_cnt, 1000); /* the host socket took it all */
	close(fd);
}

Test(vsock, unread_guest_data_is_buffered_then_acked_when_drained)
{
	int lfd = host_listen(4000), fd;
	static uint8_t out[64 * 1024], in[64 * 1024];
	uint32_t sent = 0, acked = 0, unasked = 0;
	struct vsock_hdr h;

	fd = guest_open(lfd, 2000, 4000);
	fill(out, sizeof(out), 6);
	/* The host does not read: the socket fills, then the device's
	 * buffer, and fwd_cnt stops; the guest keeps within its credit. */
	for (int i = 0; i < 64; i++) {
		gsend(VSOCK_OP_RW, 2000, 4000, 0, out, sizeof(out));
		sent += sizeof(out);
		gsend(VSOCK_OP_CREDIT_REQUEST, 2000, 4000, 0, NULL, 0);
		expect(VSOCK_OP_CREDIT_UPDATE, 4000, 2000, &h, NULL);
		rx_repost();
		acked = h.fwd_cnt;
		cr_assert_leq(acked, sent);
		if (sent - acked >= VSOCK_BUF_ALLOC - sizeof(out))
			break;
	}
	cr_assert_geq(sent - acked, VSOCK_BUF_ALLOC - sizeof(out));
	for (unsigned s = 0; s < VSOCK_MAX_CONNS; s++)
		cr_assert_leq(v->conns.slots[s].buf_cap, VSOCK_BUF_ALLOC);
	/* The host reads everything: the buffer drains and the guest hears
	 * about the space unasked. */
	for (uint32_t got = 0; got < sent; got += sizeof(in)) {
		cr_assert_eq(host_recv(fd, in, sizeof(in)), sizeof(in));
		cr_assert_arr_eq(in, out, sizeof(in));
	}
	loop();
	while (grecv(&h, NULL)) {
		cr_assert_eq(h.op, VSOCK_OP_CREDIT_UPDATE);
		unasked = h.fwd_cnt;
	}
	cr_assert_gt(unasked, acked, "no credit update after draining");
	rx_repost();
	gsend(VSOCK_OP_CREDIT_REQUEST, 2000, 4000, 0, NULL, 0);
	expect(VSOCK_OP_CREDIT_UPDATE, 4000, 2000, &h, NULL);
	cr_assert_eq(h.fwd_cnt, sent);
	close(fd);
	close(lfd);
}

Test(vsock, guest_ignoring_credit_is_reset_and_memory_bounded)
{
	int lfd = host_listen(4000), fd;
	static uint8_t out[64 * 1024];
	struct vsock_hdr h;
	uint32_t sent = 0;
	bool reset = false;

	fd = guest_open(lfd, 2000, 4000);
	fill(out, sizeof(out), 7);
	for (int i = 0; i < 64 && !reset; i++) {
		gsend(VSOCK_OP_RW, 2000, 4000, 0, out, sizeof(out));
		sent += sizeof(out);
		for (unsigned s = 0; s < VSOCK_MAX_CONNS; s++)
			cr_assert_leq(v->conns.slots[s].buf_cap,
				      VSOCK_BUF_ALLOC);
		loop();
		while (grecv(&h, NULL))
			reset |= h.op == VSOCK_OP_RST;
		rx_repost();
	}
	cr_assert(reset, "no RST after %u bytes", sent);
	cr_assert_leq(sent, 4u << 20);
	cr_assert_eq(v->conns.nconns, 0);
	/* The host side is closed too (after what it was given). */
	{
		static uint8_t sink[1 << 20];
		size_t n = host_recv(fd, sink, sizeof(sink));

		cr_assert_lt(n, sent);
		cr_assert(host_eof(fd));
	}
	close(fd);
	close(lfd);
}

Test(vsock, half_closes_both_ways_then_full_close)
{
	int lfd = host_listen(4000), fd;
	struct vsock_hdr h;
	uint8_t data[RX_DATA];
	char buf[8];

	fd = guest_open(lfd, 2000, 4000);
	/* The guest is done sending: the host reads the data, then EOF. */
	gsend(VSOCK_OP_RW, 2000, 4000, 0, "abc", 3);
	gsend(VSOCK_OP_SHUTDOWN, 2000, 4000, VSOCK_SHUTDOWN_SEND, NULL, 0);
	cr_assert_eq(host_recv(fd, buf, 3), 3);
	cr_assert_arr_eq(buf, "abc", 3);
	cr_assert(host_eof(fd));
	/* The host can still answer. */
	host_send(fd, "xyz", 3);
	expect(VSOCK_OP_RW, 4000, 2000, &h, data);
	cr_assert_arr_eq(data, "xyz", 3);
	/* The host closes: SHUTDOWN both ways, the guest answers RST. */
	close(fd);
	expect(VSOCK_OP_SHUTDOWN, 4000, 2000, &h, NULL);
	cr_assert_eq(h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	gsend(VSOCK_OP_RST, 2000, 4000, 0, NULL, 0);
	cr_assert_eq(v->conns.nconns, 0);
	expect_nothing();
	close(lfd);
}

Test(vsock, host_half_close_sends_shutdown_send)
{
	uint32_t lport;
	int fd = host_open(5000, &lport);
	struct vsock_hdr h;
	char buf[4];

	host_send(fd, "hi", 2);
	shutdown(fd, SHUT_WR);
	expect(VSOCK_OP_RW, lport, 5000, NULL, NULL);
	expect(VSOCK_OP_SHUTDOWN, lport, 5000, &h, NULL);
	cr_assert_eq(h.flags, VSOCK_SHUTDOWN_SEND);
	/* The guest's reply still reaches the host. */
	gsend(VSOCK_OP_RW, 5000, lport, 0, "yo", 2);
	cr_assert_eq(host_recv(fd, buf, 2), 2);
	cr_assert_arr_eq(buf, "yo", 2);
	/* The guest closes: we answer RST and close the host side. */
	gsend(VSOCK_OP_SHUTDOWN, 5000, lport,
	      VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND, NULL, 0);
	expect(VSOCK_OP_RST, lport, 5000, NULL, NULL);
	cr_assert(host_eof(fd));
	cr_assert_eq(v->conns.nconns, 0);
	close(fd);
}

Test(vsock, guest_full_shutdown_delivers_data_then_resets)
{
	int lfd = host_listen(4000), fd;
	uint8_t out[40000], in[40000];

	fd = guest_open(lfd, 2000, 4000);
	fill(out, sizeof(out), 8);
	gsend(VSOCK_OP_RW, 2000, 4000, 0, out, sizeof(out));
	gsend(VSOCK_OP_SHUTDOWN, 2000, 4000,
	      VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND, NULL, 0);
	expect(VSOCK_OP_RST, 4000, 2000, NULL, NULL);
	cr_assert_eq(host_recv(fd, in, sizeof(in)), sizeof(in));
	cr_assert_arr_eq(in, out, sizeof(in));
	cr_assert(host_eof(fd));
	/* Data after that is for no connection: RST. */
	gsend(VSOCK_OP_RW, 2000, 4000, 0, "late", 4);
	expect(VSOCK_OP_RST, 4000, 2000, NULL, NULL);
	close(fd);
	close(lfd);
}

Test(vsock, silent_guest_gets_rst_after_close_timeout)
{
	uint32_t lport;
	int fd = host_open(5000, &lport);
	struct vsock_hdr h;

	close(fd);
	expect(VSOCK_OP_SHUTDOWN, lport, 5000, &h, NULL);
	cr_assert_eq(h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	cr_assert_eq(v->conns.nconns, 1);
	/* Data the guest sent meanwhile is dropped quietly. */
	gsend(VSOCK_OP_RW, 5000, lport, 0, "x", 1);
	expect_nothing();
	pthread_mutex_lock(&v->vdev.lock);
	virtio_vsock_expire(v, vsock_mux_now());
	cr_assert_eq(v->conns.nconns, 1, "expired too early");
	virtio_vsock_expire(v, vsock_mux_now() + VSOCK_CLOSE_TIMEOUT_NS);
	pthread_mutex_unlock(&v->vdev.lock);
	virtio_dev_notify(&v->vdev, VSOCK_RXQ); /* run the rx queue */
	expect(VSOCK_OP_RST, lport, 5000, NULL, NULL);
	cr_assert_eq(v->conns.nconns, 0);
}

Test(vsock, host_silent_before_connect_line_is_closed_after_timeout)
{
	int fd = unix_connect(path), fd2 = unix_connect(path);

	host_send(fd2, "CONN", 4); /* half a line, then nothing */
	loop();
	cr_assert_eq(v->conns.nconns, 2);
	pthread_mutex_lock(&v->vdev.lock);
	virtio_vsock_expire(v, vsock_mux_now());
	cr_assert_eq(v->conns.nconns, 2, "expired too early");
	virtio_vsock_expire(v, vsock_mux_now() + VSOCK_LINE_TIMEOUT_NS);
	pthread_mutex_unlock(&v->vdev.lock);
	cr_assert(host_eof(fd));
	cr_assert(host_eof(fd2));
	cr_assert_eq(v->conns.nconns, 0);
	expect_nothing(); /* the guest never heard of them */
	close(fd);
	close(fd2);
}

Test(vsock, guest_silent_on_request_is_reset_after_timeout)
{
	int fd = unix_connect(path);
	struct vsock_hdr h;

	host_send(fd, "CONNECT 7\n", 10);
	expect(VSOCK_OP_REQUEST, 0, 7, &h, NULL);
	pthread_mutex_lock(&v->vdev.lock);
	virtio_vsock_expire(v, vsock_mux_now());
	cr_assert_eq(v->conns.nconns, 1, "expired too early");
	virtio_vsock_expire(v, vsock_mux_now() + VSOCK_CONNECT_TIMEOUT_NS);
	pthread_mutex_unlock(&v->vdev.lock);
	virtio_dev_notify(&v->vdev, VSOCK_RXQ); /* run the rx queue */
	/* The host program gets EOF instead of "OK", the guest an RST. */
	cr_assert(host_eof(fd));
	expect(VSOCK_OP_RST, h.src_port, 7, NULL, NULL);
	cr_assert_eq(v->conns.nconns, 0);
	/* An answer that comes too late meets no connection: RST. */
	gsend(VSOCK_OP_RESPONSE, 7, h.src_port, 0, NULL, 0);
	expect(VSOCK_OP_RST, h.src_port, 7, NULL, NULL);
	close(fd);
}

Test(vsock, close_timer_fires_from_the_event_loop)
{
	uint32_t lport;
	int fd;

	v->conns.close_timeout_ns = 20 * 1000000ull;
	fd = host_open(5000, &lport);
	close(fd);
	expect(VSOCK_OP_SHUTDOWN, lport, 5000, NULL, NULL);
	for (int i = 0; i < 100 && v->conns.nconns; i++) {
		struct epoll_event e;

		if (epoll_wait(ep, &e, 1, 50) == 1)
			((struct ev_handler *)e.data.ptr)
			    ->fn(e.data.ptr, e.events);
	}
	expect(VSOCK_OP_RST, lport, 5000, NULL, NULL);
	cr_assert_eq(v->conns.nconns, 0);
}

Test(vsock, short_tx_packet_needs_reset)
{
	struct fake_ring *r = &rings[VSOCK_TXQ];
	uint32_t lport;
	int fd = host_open(5000, &lport);

	fake_desc(r, 0, TX_GPA, 20, 0, 0);
	fake_publish(r, 0);
	virtio_dev_notify(&v->vdev, VSOCK_TXQ);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & NR);
	cr_assert_not(virtio_dev_live(&v->vdev));
	/* The host programs are told at once. */
	cr_assert(host_eof(fd));
	cr_assert_eq(v->conns.nconns, 0);
	close(fd);
	/* A reset brings the device back. */
	wr(VIRTIO_MMIO_STATUS, 0);
	driver_init();
	fd = host_open(5001, NULL);
	close(fd);
}

Test(vsock, payload_longer_than_chain_needs_reset)
{
	struct vsock_hdr h = {.src_cid = GCID,
			      .dst_cid = VSOCK_HOST_CID,
			      .src_port = 1,
			      .dst_port = 2,
			      .len = 1000,
			      .type = VSOCK_TYPE_STREAM,
			      .op = VSOCK_OP_RW};
	struct fake_ring *r = &rings[VSOCK_TXQ];
	uint8_t raw[VSOCK_HDR_LEN];

	vsock_hdr_encode(&h, raw);
	fake_write(&fm, TX_GPA, raw, sizeof(raw));
	fake_desc(r, 0, TX_GPA, VSOCK_HDR_LEN, VIRTQ_DESC_F_NEXT, 1);
	fake_desc(r, 1, TX_GPA + 64, 999, 0, 0);
	fake_publish(r, 0);
	virtio_dev_notify(&v->vdev, VSOCK_TXQ);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & NR);
}

Test(vsock, huge_len_needs_reset)
{
	struct vsock_hdr h = {.src_cid = GCID,
			      .dst_cid = VSOCK_HOST_CID,
			      .len = UINT32_MAX,
			      .type = VSOCK_TYPE_STREAM,
			      .op = VSOCK_OP_RW};

	gsend_hdr(&h, NULL, 0);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & NR);
}

Test(vsock, rx_buffer_too_small_needs_reset)
{
	struct fake_ring *r = &rings[VSOCK_RXQ];

	while (fake_used_idx(r) != RX_BUFS) /* use up the good ones */
		gsend(VSOCK_OP_RW, 10, 20, 0, NULL, 0);
	fake_desc(r, 0, RX_GPA, 20, VIRTQ_DESC_F_WRITE, 0);
	fake_publish(r, 0);
	virtio_dev_notify(&v->vdev, VSOCK_RXQ);
	cr_assert(virtio_dev_live(&v->vdev), "nothing to send yet");
	gsend(VSOCK_OP_RW, 10, 20, 0, NULL, 0);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & NR);
}

Test(vsock, rx_buffer_with_readable_part_needs_reset)
{
	struct fake_ring *r = &rings[VSOCK_RXQ];
	struct vsock_hdr h;

	while (fake_used_idx(r) != RX_BUFS) /* use up the good ones */
		gsend(VSOCK_OP_RW, 10, 20, 0, NULL, 0);
	while (grecv(&h, NULL))
		;
	fake_desc(r, 0, RX_GPA, 64, 0, 0);
	fake_publish(r, 0);
	virtio_dev_notify(&v->vdev, VSOCK_RXQ);
	gsend(VSOCK_OP_RW, 10, 20, 0, NULL, 0);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & NR);
}

Test(vsock, wrong_cids_and_types)
{
	struct vsock_hdr h = {.src_cid = 7,
			      .dst_cid = VSOCK_HOST_CID,
			      .src_port = 1,
			      .dst_port = 2,
			      .type = VSOCK_TYPE_STREAM,
			      .op = VSOCK_OP_REQUEST};
	struct vsock_hdr got;
	int lfd = host_listen(2);

	/* Spoofed source: dropped, no connection made. */
	gsend_hdr(&h, NULL, 0);
	expect_nothing();
	cr_assert_eq(v->conns.nconns, 0);
	/* Another VM's CID: RST from that CID, no connection. */
	h.src_cid = GCID;
	h.dst_cid = 5;
	gsend_hdr(&h, NULL, 0);
	expect(VSOCK_OP_RST, 2, 1, &got, NULL);
	cr_assert_eq(got.src_cid, 5);
	cr_assert_eq(v->conns.nconns, 0);
	/* Huge CID values too. */
	h.dst_cid = UINT64_MAX;
	gsend_hdr(&h, NULL, 0);
	expect(VSOCK_OP_RST, 2, 1, NULL, NULL);
	/* SEQPACKET (type 2) is not offered. */
	h.dst_cid = VSOCK_HOST_CID;
	h.type = 2;
	gsend_hdr(&h, NULL, 0);
	expect(VSOCK_OP_RST, 2, 1, NULL, NULL);
	/* An RST is never answered. */
	h.type = VSOCK_TYPE_STREAM;
	h.op = VSOCK_OP_RST;
	h.dst_cid = 9;
	gsend_hdr(&h, NULL, 0);
	expect_nothing();
	cr_assert(virtio_dev_live(&v->vdev));
	cr_assert_eq(v->stats.bad_packets, 4 + 1);
	close(lfd);
}

Test(vsock, packets_for_no_connection_get_rst)
{
	gsend(VSOCK_OP_RW, 10, 20, 0, "x", 1);
	expect(VSOCK_OP_RST, 20, 10, NULL, NULL);
	gsend(VSOCK_OP_RESPONSE, 10, 20, 0, NULL, 0);
	expect(VSOCK_OP_RST, 20, 10, NULL, NULL);
	gsend(VSOCK_OP_SHUTDOWN, 10, 20, 3, NULL, 0);
	expect(VSOCK_OP_RST, 20, 10, NULL, NULL);
	gsend(VSOCK_OP_CREDIT_UPDATE, 10, 20, 0, NULL, 0);
	expect(VSOCK_OP_RST, 20, 10, NULL, NULL);
	gsend(42, 10, 20, 0, NULL, 0);
	expect(VSOCK_OP_RST, 20, 10, NULL, NULL);
	expect_nothing();
}

Test(vsock, protocol_confusion_resets_the_connection)
{
	uint32_t lport;
	int fd = host_open(5000, &lport);

	gsend(VSOCK_OP_RESPONSE, 5000, lport, 0, NULL, 0);
	expect(VSOCK_OP_RST, lport, 5000, NULL, NULL);
	cr_assert(host_eof(fd));
	close(fd);
	fd = host_open(5000, &lport);
	gsend(77, 5000, lport, 0, NULL, 0);
	expect(VSOCK_OP_RST, lport, 5000, NULL, NULL);
	cr_assert(host_eof(fd));
	close(fd);
	cr_assert_eq(v->conns.nconns, 0);
}

Test(vsock, rst_flood_without_rx_buffers_stays_bounded)
{
	struct vsock_hdr h;
	unsigned n = 0;

	/* Use up every rx buffer, then keep provoking RSTs. */
	for (unsigned i = 0; i < RX_BUFS + 3 * VSOCK_ORPHAN_RING; i++)
		gsend(VSOCK_OP_RW, 10 + i, 20, 0, NULL, 0);
	cr_assert_eq(v->orphan_len, VSOCK_ORPHAN_RING);
	cr_assert_gt(v->stats.orphans_dropped, 0);
	/* Buffers come back: the queued ones are delivered. */
	while (grecv(&h, NULL))
		n++;
	for (int i = 0; i < 10; i++) {
		rx_repost();
		loop();
		while (grecv(&h, NULL))
			n++;
	}
	cr_assert_eq(n, RX_BUFS + VSOCK_ORPHAN_RING);
	cr_assert_eq(v->orphan_len, 0);
}

Test(vsock, many_connections_at_once)
{
	enum { HOSTC = 40, GUESTC = VSOCK_MAX_CONNS - HOSTC };
	int lfd = host_listen(6000), hfd[HOSTC], gfd[GUESTC];
	uint32_t lport[HOSTC];
	uint8_t buf[64];

	for (int i = 0; i < HOSTC; i++)
		hfd[i] = host_open(100 + (uint32_t)i, &lport[i]);
	for (int i = 0; i < GUESTC; i++)
		gfd[i] = guest_open(lfd, 10000 + (uint32_t)i, 6000);
	cr_assert_eq(v->conns.nconns, VSOCK_MAX_CONNS);
	/* One more is refused, from either side. */
	gsend(VSOCK_OP_REQUEST, 99999, 6000, 0, NULL, 0);
	expect(VSOCK_OP_RST, 6000, 99999, NULL, NULL);
	{
		int fd = unix_connect(path);

		host_send(fd, "CONNECT 1\n", 10);
		cr_assert(host_eof(fd));
		close(fd);
	}
	/* Each carries its own bytes, both ways. */
	for (int i = 0; i < GUESTC; i++) {
		snprintf((char *)buf, sizeof(buf), "guest-%05d", i);
		gsend(VSOCK_OP_RW, 10000 + (uint32_t)i, 6000, 0, buf, 11);
	}
	for (int i = 0; i < HOSTC; i++) {
		snprintf((char *)buf, sizeof(buf), "host-%05d!", i);
		host_send(hfd[i], buf, 11);
	}
	for (int i = 0; i < GUESTC; i++) {
		char want[24];

		snprintf(want, sizeof(want), "guest-%05d", i);
		cr_assert_eq(host_recv(gfd[i], buf, 11), 11);
		cr_assert_arr_eq(buf, want, 11);
	}
	for (int got = 0; got < HOSTC;) {
		struct vsock_hdr h;
		uint8_t data[RX_DATA];
		char want[24];
		int i;

		loop();
		if (!grecv(&h, data)) {
			rx_repost();
			continue;
		}
		cr_assert_eq(h.op, VSOCK_OP_RW);
		i = (int)h.dst_port - 100;
		cr_assert(i >= 0 && i < HOSTC);
		cr_assert_eq(h.src_port, lport[i]);
		snprintf(want, sizeof(want), "host-%05d!", i);
		cr_assert_eq(h.len, 11);
		cr_assert_arr_eq(data, want, 11);
		got++;
	}
	for (int i = 0; i < HOSTC; i++)
		close(hfd[i]);
	for (int i = 0; i < GUESTC; i++)
		close(gfd[i]);
	close(lfd);
}

Test(vsock, device_reset_drops_every_connection)
{
	int lfd = host_listen(4000), a, b;

	a = host_open(5000, NULL);
	b = guest_open(lfd, 2000, 4000);
	cr_assert_eq(v->conns.nconns, 2);
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(v->conns.nconns, 0);
	cr_assert(host_eof(a));
	cr_assert(host_eof(b));
	close(a);
	close(b);
	/* A new driver starts from scratch. */
	driver_init();
	a = host_open(5000, NULL);
	close(a);
	close(lfd);
}

Test(vsock, host_close_while_guest_has_not_answered)
{
	int fd = unix_connect(path);
	struct vsock_hdr h;

	host_send(fd, "CONNECT 8\n", 10);
	expect(VSOCK_OP_REQUEST, 0, 8, &h, NULL);
	close(fd);
	loop();
	expect(VSOCK_OP_RST, h.src_port, 8, NULL, NULL);
	/* The guest's late RESPONSE: answered with RST, nothing else. */
	gsend(VSOCK_OP_RESPONSE, 8, h.src_port, 0, NULL, 0);
	expect(VSOCK_OP_RST, h.src_port, 8, NULL, NULL);
	cr_assert_eq(v->conns.nconns, 0);
}

/* ---- creating the socket ---- */

TestSuite(vsock_socket, .init = setup, .fini = teardown,
	  .timeout = SUITE_TIMEOUT);

static int try_create(const char *p)
{
	struct virtio_host host = {.mem = &fm.mem, .vm_fd = -1, .ep = ep};
	struct virtio_vsock *w = calloc(1, sizeof(*w));
	int ret;

	cr_assert_not_null(w);
	ret = virtio_vsock_create(w, p, 4, &host, 0xd0001000, 6);
	virtio_vsock_destroy(w);
	free(w);
	return ret;
}

Test(vsock_socket, destroy_unlinks_and_recreate_works)
{
	char p[160];

	snprintf(p, sizeof(p), "%s/w.sock", dir);
	cr_assert_eq(try_create(p), 0);
	cr_assert_eq(access(p, F_OK), -1, "socket left behind");
}

Test(vsock_socket, existing_paths)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char p[160], longp[200];
	int fd;

	/* A regular file is never replaced. */
	snprintf(p, sizeof(p), "%s/file", dir);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(try_create(p), -EEXIST);
	cr_assert_eq(access(p, F_OK), 0);
	/* A live socket (ours, here) is in use. */
	cr_assert_eq(try_create(path), -EADDRINUSE);
	cr_assert_eq(access(path, F_OK), 0, "live socket removed");
	/* A stale one (its VMM was killed) is replaced. */
	snprintf(p, sizeof(p), "%s/stale.sock", dir);
	sun_set(&sa, p);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	cr_assert_eq(try_create(p), 0);
	cr_assert_eq(access(p, F_OK), -1);
	/* No room for PATH_<port> in a Unix socket address. */
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	memcpy(longp, "/tmp/", 5);
	cr_assert_eq(try_create(longp), -ENAMETOOLONG);
}

Test(vsock_socket, destroy_keeps_a_socket_that_replaced_ours)
{
	struct virtio_host host = {.mem = &fm.mem, .vm_fd = -1, .ep = ep};
	struct virtio_vsock *w = calloc(1, sizeof(*w));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char p[160];
	int fd;

	snprintf(p, sizeof(p), "%s/r.sock", dir);
	cr_assert_eq(virtio_vsock_create(w, p, 4, &host, 0xd0001000, 6), 0);
	cr_assert_eq(unlink(p), 0);
	sun_set(&sa, p);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	virtio_vsock_destroy(w);
	free(w);
	cr_assert_eq(access(p, F_OK), 0, "someone else's socket removed");
	close(fd);
}

/*
 * Out of fds, the device stops watching its socket (it would stay
 * readable).  It must look again even when none of its own connections
 * closes to free one: fds freed elsewhere in the process count too.
 */
Test(vsock, accepting_resumes_after_running_out_of_fds)
{
	struct rlimit old, low;
	int c, probe;

	c = unix_connect(path); /* waits in the backlog: no fd of ours yet */
	probe = dup(0);
	cr_assert_geq(probe, 0);
	close(probe);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)probe; /* every fd below is taken */
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	loop();
	cr_assert(v->conns.mux.listen_paused, "accept did not run out of fds");
	cr_assert_eq(v->conns.nconns, 0);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	/* No connection of the device's closes; only time passes. */
	usleep((useconds_t)(2 * VSOCK_ACCEPT_RETRY_NS / 1000));
	loop();
	cr_assert_not(v->conns.mux.listen_paused);
	cr_assert_eq(v->conns.nconns, 1, "the waiting program was not taken");
	close(c);
	loop();
}

/*
 * A guest that republishes tx packets as fast as the device takes them
 * (another vCPU) must not keep the event loop in one handler: one
 * notification takes at most a queue's worth, then re-arms the queue.
 */
Test(vsock, a_driver_refilling_tx_cannot_hold_the_event_loop)
{
	struct vsock_hdr h = {.src_cid = 99, /* not our guest: dropped */
			      .dst_cid = VSOCK_HOST_CID,
			      .type = VSOCK_TYPE_STREAM,
			      .op = VSOCK_OP_RW};
	struct ring_filler rf = {.ring = &rings[VSOCK_TXQ],
				 .q = &v->vdev.queues[VSOCK_TXQ]};
	uint8_t raw[VSOCK_HDR_LEN];
	unsigned long long published;
	pthread_t t;
	uint64_t val;

	vsock_hdr_encode(&h, raw);
	fake_write(&fm, TX_GPA, raw, VSOCK_HDR_LEN);
	fake_desc(&rings[VSOCK_TXQ], 0, TX_GPA, VSOCK_HDR_LEN, 0, 0);
	for (uint16_t i = 0; i < RING; i++) /* every avail slot: head 0 */
		put_le16(
		    fake_ptr(&fm, rings[VSOCK_TXQ].avail_gpa + 4 + 2 * i, 2),
		    0);
	cr_assert_eq(pthread_create(&t, NULL, ring_keep_full, &rf), 0);
	while (atomic_load(&rf.published) == 0)
		sched_yield();
	virtio_dev_notify(&v->vdev, VSOCK_TXQ);
	published = atomic_load(&rf.published);
	atomic_store(&rf.stop, true);
	pthread_join(t, NULL);
	cr_assert_leq(published, 3u * RING,
		      "the guest published %llu packets during one "
		      "notification",
		      published);
	cr_assert_geq(v->stats.deferred, 1);
	cr_assert_eq(read(v->vdev.notify[VSOCK_TXQ].fd, &val, sizeof(val)),
		     sizeof(val));
	cr_assert(virtio_dev_live(&v->vdev));
}

/* Whoever can connect to the socket runs commands as the guest's root:
 * it is its owner's alone, whatever the umask. */
Test(vsock, the_socket_is_private_whatever_the_umask)
{
	struct guest_region r = {.gpa = 0, .size = MEM_SIZE};
	struct virtio_host host = {.mem = &fm.mem, .vm_fd = -1, .ep = -1};
	struct virtio_vsock *w = calloc(1, sizeof(*w));
	char p2[160];
	struct stat st;
	mode_t old = umask(0);
	int ret;

	(void)r;
	snprintf(p2, sizeof(p2), "%s/w.sock", dir);
	ret = virtio_vsock_create(w, p2, GCID, &host, 0xd0001000, 6);
	umask(old);
	cr_assert_eq(ret, 0);
	cr_assert_eq(stat(p2, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	virtio_vsock_destroy(w);
	free(w);
}
