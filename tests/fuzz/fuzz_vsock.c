// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the virtio-vsock device, all three layers of it
 * (devices/vsock/: virtio_vsock.c, vsock_conn.c, vsock_unix.c), between a
 * hostile guest driver and hostile host programs.
 *
 * Each input builds the real device over fake guest memory, with the
 * real virtio-mmio transport, a real epoll loop and real Unix sockets in
 * a temporary directory (made once per process), as tests/unit/
 * test_vsock.c does.  The input is a short configuration, then a list of
 * operations: the guest's packets (any header, laid out over any chain),
 * rx buffers of every shape, notifications, register writes, lies in the
 * rings, device resets; host programs that connect, send CONNECT lines or
 * garbage, write, read, half-close and close; listeners on PATH_<port>
 * for the guest to reach; bursts of guest connections up to the device's
 * limit; a process out of fds; the close/line/connect timers.  After every
 * operation the target runs the device's handlers from its epoll until
 * nothing is ready; after every handler it plays the driver's side of the
 * used rings and checks what the device wrote.  At the end it destroys
 * the device and closes every socket.
 *
 * It aborts (besides ASan/UBSan and LeakSanitizer findings) when:
 *   - the device uses a descriptor head it was not given, or a used
 *     length beyond the chain's writable bytes (or nonzero on tx), or
 *     ever uses an event-queue buffer;
 *   - an rx packet is not to the guest's CID, not a stream packet, has an
 *     unknown op, a length that disagrees with the used length, or (except
 *     an RST answering a packet of no connection) is not from CID 2 with
 *     our buf_alloc; data is sent beyond the credit the guest advertised,
 *     or fwd_cnt counts more bytes than the guest sent;
 *   - a host program that sent CONNECT reads anything but "OK <port>\n"
 *     first, with the port of its connection;
 *   - on a host-initiated connection (whose client's first bytes were
 *     one CONNECT line; found by the client's abstract address), the
 *     guest does not receive exactly the bytes the client sent after the
 *     line, in order, or the client reads anything but a prefix of the
 *     payload the device took from the guest (guest payload byte i of a
 *     packet is pat(fill, i), so shifted, repeated or lost bytes show);
 *   - the connection layer's table is inconsistent (count, hash, work
 *     list, a dead connection that owes no RST, the multiplexer's
 *     descriptors by state), or a connection buffers more than
 *     VSOCK_BUF_ALLOC bytes;
 *   - the event loop does not go idle;
 *   - after destroy, an fd is left open, the epoll set is not empty, or
 *     the socket path still exists.
 *
 * Input (bytes; a field past the end of the input reads as 0):
 *   0   flags: bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 a 64-bit guest
 *       CID, bits 3-5 close/line/connect timeout 0 (they fire at once),
 *       bits 6-7: 0-1 full driver set-up, 2 no DRIVER_OK, 3 no VERSION_1
 *   1-3 log2 of the rx, tx, event queue sizes (mod 9)
 *   then up to MAX_OPS operations: an opcode byte (mod NOPS) and its
 *   arguments, as read by the op_* functions below.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/vsock/virtio_vsock.h"
#include "devices/vsock/vsock_conn.h"
#include "devices/vsock/vsock_mux.h"
#include "tests/support/fake_mmio.h"
#include "tests/support/fake_ring.h"
#include "vmm/base/le.h"
#include "vmm/base/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			fail(__LINE__, #cond);                                 \
	} while (0)

/* The harness's own checks: no coverage feedback from them (the fuzzer
 * should reward new behaviour of the device, not of its checker). */
#define NO_COVERAGE __attribute__((noinline, no_sanitize("coverage")))

static void fd_unlimit(void);
static void remove_dir(void);

static void fail(int line, const char *what)
{
	fd_unlimit(); /* room for the crash report's symbolizer */
	remove_dir();
	fprintf(stderr, "fuzz_vsock: line %d: check failed: %s\n", line, what);
	abort();
}

/* The sanitizers' symbolizer, started before op_fdlimit leaves no fds
 * for it (weak: the target also builds without the sanitizers). */
__attribute__((weak)) void __sanitizer_set_death_callback(void (*cb)(void));
__attribute__((weak)) void __sanitizer_symbolize_pc(void *pc, const char *fmt,
						    char *out, size_t len);

/* ---- log sink: format every message (arguments get checked by the
 * sanitizers), print none ---- */

static void sink(const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
}

#define SINK(fmt)                                                              \
	do {                                                                   \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		sink(fmt, ap);                                                 \
		va_end(ap);                                                    \
	} while (0)

void log_set_verbose(bool verbose)
{
	(void)verbose;
}
bool log_verbose(void)
{
	return false;
}
void log_err(int err, const char *fmt, ...)
{
	(void)err;
	SINK(fmt);
}
void log_errx(const char *fmt, ...)
{
	SINK(fmt);
}
void log_warnx(const char *fmt, ...)
{
	SINK(fmt);
}
void log_debug(const char *fmt, ...)
{
	SINK(fmt);
}

/* ---- the input ---- */

static const uint8_t *in_p;
static size_t in_n;

static uint8_t u8(void)
{
	if (!in_n)
		return 0;
	in_n--;
	return *in_p++;
}

static uint16_t u16(void)
{
	return (uint16_t)(u8() | u8() << 8);
}

static uint32_t u32(void)
{
	uint32_t lo = u16();

	return lo | (uint32_t)u16() << 16;
}

static uint64_t u64(void)
{
	uint64_t lo = u32();

	return lo | (uint64_t)u32() << 32;
}

/* ---- guest memory layout (4 MiB) ---- */

#define RAM_SIZE   0x400000u
#define RING_BASE  0x1000u /* queue q: desc, +0x1000 avail, +0x1400 used */
#define RING_SPAN  0x2000u
#define RAW_LO	   0x8000u /* what lying descriptors point at */
#define RAW_HI	   0xc000u
#define EVQ_LO	   0xc000u
#define EVQ_HI	   0x10000u
#define TABLES	   0x10000u /* indirect tables: 256 bytes per (queue, head) */
#define TABLE_SIZE 256u
#define TX_LO	   0x40000u
#define TX_HI	   0x200000u
#define RX_LO	   0x200000u
#define RX_HI	   0x400000u

#define MAX_SEGS  16
#define MAX_OPS	  64
#define MAX_HOST  8
#define NLISTEN	  4
#define LOOP_MAX  10000
#define MAX_PAIRS 256
#define GCID_LOW  3ull
#define GCID_HIGH 0xfffffffe00000003ull
#define LPORT	  5000u /* listeners on PATH_5000 .. PATH_5002, and: */

static const uint32_t listen_ports[NLISTEN] = {LPORT, LPORT + 1, LPORT + 2,
					       VSOCK_FIRST_LOCAL_PORT};

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

/* What the driver gave the device under one head. */
struct inflight {
	bool busy;
	uint8_t ndesc;
	uint16_t desc[MAX_SEGS]; /* ring descriptors the chain took */
	uint64_t ext_lo, ext_len;
	uint8_t nseg;
	struct seg seg[MAX_SEGS];
	uint64_t wcap;	      /* writable bytes */
	bool has_hdr;	      /* tx: the header the device will read */
	struct vsock_hdr hdr; /* (applied to the model once used) */
	uint8_t fill;	      /* tx: the payload is pat(fill, i) */
};

/* The driver's side of one queue. */
struct gq {
	struct fake_ring r;
	unsigned index;
	bool configured;
	/* A lie in the ring (or a reset behind our back): what we know of
	 * the chains no longer matches what the device sees. */
	bool tainted;
	uint16_t used_seen;
	uint16_t free_desc[VIRTQ_MAX_SIZE];
	unsigned nfree;
	uint64_t lo, hi, next; /* where this queue's buffers go */
	uint64_t hwm;	       /* highest byte we wrote, to clear later */
	struct inflight inf[VIRTQ_MAX_SIZE];
};

/* One connection as the guest sees it, keyed by (host port, guest port):
 * the credit the device heard from the guest, and the bytes each way. */
struct pair {
	uint32_t local, peer;
	uint32_t g_buf_alloc, g_fwd; /* the guest's last word on credit */
	uint32_t dev_sent;	     /* RW bytes the device sent since open */
	uint32_t g_sent;	     /* RW bytes the guest sent since open */
	uint32_t g_recv;	     /* what an honest guest reports (fwd) */
};

#define H2G_RING (512u * 1024) /* more than a Unix socket buffers */
#define MAX_RUNS 64

/* Guest payload bytes are pat(fill, i): a shifted run shows. */
struct run {
	uint8_t fill;
	uint32_t len;
};

struct host {
	int fd;
	bool client;	/* connected to PATH (else accepted from PATH_P) */
	bool sent_line; /* has sent something (CONNECT) */
	uint8_t ok;	/* "OK <port>\n" parser: 0 O, 1 K, 2 ' ', 3 digit,
			   4 digits or newline, 5 done */
	uint64_t ok_port;
	/* Byte-exact data checks, for a client whose first send was one
	 * whole CONNECT line, once the device's connection for it is known
	 * (by the client's abstract address, which the device's socket
	 * sees as its peer). */
	unsigned id;	/* "\0hutch-fuzz-vsock-<pid>-<id>" */
	bool tracked;	/* first send: one whole CONNECT line */
	bool mapped;	/* the connection (local, port) is this client's */
	bool broken;	/* something we cannot follow: checks stop */
	uint32_t port;	/* the CONNECT port: the guest's side */
	uint32_t local; /* the device's side */
	/* Host to guest: sent after the line, not yet seen on rx. */
	unsigned ring_slot;
	uint8_t *ring;
	size_t ring_head, ring_len;
	/* Guest to host: processed tx payload the host has not read. */
	struct run runs[MAX_RUNS];
	unsigned run_head, nruns;
	uint32_t run_off;
};

static struct fake_mem fm;
static int ep = -1;
static char dir[64], path[128];
static struct virtio_vsock *v;
static uint64_t gcid;
static struct gq q[3];
static struct pair pairs[MAX_PAIRS];
static unsigned npairs, pair_next;
static struct host hosts[MAX_HOST];
static unsigned nhosts;
static int lfd[NLISTEN];
static bool trace;	/* FUZZ_VSOCK_TRACE set: what each input did */
static bool fd_limited; /* op_fdlimit lowered RLIMIT_NOFILE from: */
static struct rlimit fd_rlimit;
static bool raw_used;	 /* lying descriptors: the device may write anywhere */
static bool tables_used; /* an indirect table was written */
static uint8_t scratch[1u << 18];
static uint8_t ring_store[MAX_HOST][H2G_RING];
static bool ring_busy[MAX_HOST];
static unsigned next_host_id;
static pid_t my_pid;
static uint64_t checked_h2g, checked_g2h; /* bytes compared (trace) */

static uint8_t pat(uint8_t fill, uint32_t i)
{
	return (uint8_t)(fill + i + (i >> 8) * 31u);
}

NO_COVERAGE static void fill_pat(uint8_t *p, uint8_t fill, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pat(fill, (uint32_t)i);
}

/* The tracked client on the device's connection (local, peer). */
static struct host *host_for(uint32_t local, uint32_t peer)
{
	for (unsigned i = 0; i < nhosts; i++) {
		struct host *h = &hosts[i];

		if (h->mapped && !h->broken && h->local == local &&
		    h->port == peer)
			return h;
	}
	return NULL;
}

/* ---- fds: nothing may stay open after an input ---- */

/* An input opens fewer than 300 fds (8 host programs, 4 listeners, the
 * device's own and at most 256 connections): all below this. */
#define FD_SCAN 512
static struct pollfd fd_scan[FD_SCAN];

NO_COVERAGE static void fd_snapshot(uint8_t *open_map)
{
	for (int i = 0; i < FD_SCAN; i++)
		fd_scan[i] = (struct pollfd){.fd = i};
	CHECK(poll(fd_scan, FD_SCAN, 0) >= 0);
	for (int i = 0; i < FD_SCAN; i++)
		open_map[i] = !(fd_scan[i].revents & POLLNVAL);
}

/* Watched fds in the epoll set (fdinfo lists one "tfd:" line each). */
NO_COVERAGE static unsigned epoll_watched(void)
{
	char p[64], buf[4096];
	unsigned n = 0;
	ssize_t len;
	int fd;

	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", ep);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(len >= 0);
	buf[len] = 0;
	for (char *s = buf; (s = strstr(s, "tfd:")); s += 4)
		n++;
	return n;
}

/* ---- registers ---- */

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

/* ---- the model of each connection ---- */

static struct pair *pair_get(uint32_t local, uint32_t peer, bool create)
{
	struct pair *p;

	for (unsigned i = 0; i < npairs; i++)
		if (pairs[i].local == local && pairs[i].peer == peer)
			return &pairs[i];
	if (!create)
		return NULL;
	/* Full: forget the oldest (its checks stop until it opens again). */
	if (npairs < MAX_PAIRS)
		p = &pairs[npairs++];
	else
		p = &pairs[pair_next++ % MAX_PAIRS];
	*p = (struct pair){.local = local, .peer = peer};
	return p;
}

/* A packet the device took from tx, in the order it took them. */
static void model_tx(const struct vsock_hdr *h, uint8_t fill)
{
	struct host *host;
	struct pair *p;

	if (h->src_cid != gcid || h->dst_cid != VSOCK_HOST_CID ||
	    h->type != VSOCK_TYPE_STREAM)
		return; /* dropped or answered without a connection */
	p = pair_get(h->dst_port, h->src_port, true);
	p->g_buf_alloc = h->buf_alloc;
	p->g_fwd = h->fwd_cnt;
	if (h->op == VSOCK_OP_REQUEST) {
		/* A new connection (or the end of an old one). */
		p->dev_sent = p->g_sent = p->g_recv = 0;
	}
	if (h->op == VSOCK_OP_RW)
		p->g_sent += h->len;
	/* A tracked client reads a prefix of what the device took (the
	 * first packet it refuses ends the connection). */
	host = host_for(h->dst_port, h->src_port);
	if (host && h->op == VSOCK_OP_RW && h->len) {
		if (host->nruns == MAX_RUNS) {
			host->broken = true;
			return;
		}
		host->runs[(host->run_head + host->nruns++) % MAX_RUNS] =
		    (struct run){fill, h->len};
	}
}

static void read_payload(const struct inflight *f, uint8_t *dst, uint32_t len);

/* RW payload for a tracked client: the next bytes it sent. */
NO_COVERAGE static void check_h2g(struct host *host, const struct inflight *f,
				  uint32_t len)
{
	static uint8_t got[VSOCK_MAX_PKT];

	CHECK(len <= host->ring_len);
	read_payload(f, got, len);
	for (uint32_t i = 0; i < len; i++) {
		CHECK(got[i] == host->ring[host->ring_head]);
		host->ring_head = (host->ring_head + 1) % H2G_RING;
	}
	host->ring_len -= len;
	checked_h2g += len;
}

/* A packet the device put on rx. */
static void model_rx(const struct vsock_hdr *h, uint32_t used_len,
		     const struct inflight *f)
{
	struct host *host;
	struct pair *p;

	CHECK(used_len == VSOCK_HDR_LEN + (uint64_t)h->len);
	CHECK(h->dst_cid == gcid);
	CHECK(h->type == VSOCK_TYPE_STREAM);
	CHECK(h->op >= VSOCK_OP_REQUEST && h->op <= VSOCK_OP_CREDIT_UPDATE);
	CHECK(h->op == VSOCK_OP_RW ? h->len > 0 && h->len <= VSOCK_MAX_PKT
				   : h->len == 0);
	CHECK(h->op == VSOCK_OP_SHUTDOWN ? h->flags && !(h->flags & ~3u)
					 : h->flags == 0);
	if (h->op == VSOCK_OP_RST && h->src_cid != VSOCK_HOST_CID)
		return; /* the answer to a packet of no connection */
	CHECK(h->src_cid == VSOCK_HOST_CID);
	if (h->op == VSOCK_OP_RST && h->buf_alloc == 0)
		return; /* orphan RST from CID 2: carries no credit */
	CHECK(h->buf_alloc == VSOCK_BUF_ALLOC);
	if (h->op == VSOCK_OP_RST)
		return; /* may close a connection the guest replaced */
	if (q[VSOCK_TXQ].tainted)
		return; /* we no longer know what the guest sent */
	p = pair_get(h->src_port, h->dst_port, h->op == VSOCK_OP_REQUEST);
	if (h->op == VSOCK_OP_REQUEST) {
		CHECK(h->src_port >= VSOCK_FIRST_LOCAL_PORT);
		*p = (struct pair){.local = h->src_port, .peer = h->dst_port};
		return;
	}
	if (!p)
		return; /* forgotten: nothing to check against */
	if (h->op == VSOCK_OP_RESPONSE)
		p->dev_sent = p->g_recv = 0;
	CHECK(h->fwd_cnt <= p->g_sent);
	if (h->op == VSOCK_OP_RW) {
		p->dev_sent += h->len;
		p->g_recv += h->len;
		CHECK((uint32_t)(p->dev_sent - p->g_fwd) <= p->g_buf_alloc);
		host = host_for(h->src_port, h->dst_port);
		if (host && !q[VSOCK_RXQ].tainted)
			check_h2g(host, f, h->len);
	}
}

/* ---- the driver's rings ---- */

static void gq_reset(struct gq *g, unsigned index, uint16_t size)
{
	uint64_t base = RING_BASE + (uint64_t)index * RING_SPAN;
	static const uint64_t lo[3] = {RX_LO, TX_LO, EVQ_LO};
	static const uint64_t hi[3] = {RX_HI, TX_HI, EVQ_HI};
	uint64_t hwm = g->hwm;

	memset(g, 0, sizeof(*g));
	fake_ring_init_at(&g->r, &fm, size, base, base + 0x1000, base + 0x1400);
	g->index = index;
	g->lo = g->next = lo[index];
	g->hi = hi[index];
	g->hwm = hwm > g->lo ? hwm : g->lo;
	for (unsigned i = 0; i < size; i++)
		g->free_desc[g->nfree++] = (uint16_t)(size - 1 - i);
}

NO_COVERAGE static bool overlaps(const struct gq *g, uint64_t lo, uint64_t len)
{
	for (unsigned i = 0; i < g->r.size; i++) {
		const struct inflight *f = &g->inf[i];

		if (f->busy && f->ext_len && lo < f->ext_lo + f->ext_len &&
		    f->ext_lo < lo + len)
			return true;
	}
	return false;
}

/* Room for len bytes in the queue's area, apart from chains in flight. */
static uint64_t ext_alloc(struct gq *g, uint64_t len)
{
	len = (len + 15) & ~15ull;
	if (len == 0)
		len = 16;
	if (len > g->hi - g->lo)
		return 0;
	for (int tries = 0; tries < 2; tries++) {
		if (g->next + len > g->hi)
			g->next = g->lo;
		if (!overlaps(g, g->next, len)) {
			uint64_t at = g->next;

			g->next += len;
			if (g->next > g->hwm)
				g->hwm = g->next;
			return at;
		}
		g->next = g->hi; /* wrap and try the start once */
	}
	return 0;
}

/* Publish segs as one chain (through an indirect table if asked); the
 * extent is [ext_lo, +ext_len).  False if out of descriptors. */
static bool post_chain(struct gq *g, const struct seg *segs, unsigned nseg,
		       bool indirect, uint64_t ext_lo, uint64_t ext_len,
		       const struct vsock_hdr *hdr, uint8_t fill)
{
	unsigned need = indirect ? 1 : nseg;
	struct inflight *f;
	uint16_t head;

	if (!g->configured || nseg == 0 || nseg > MAX_SEGS || g->nfree < need)
		return false;
	head = g->free_desc[g->nfree - 1];
	f = &g->inf[head];
	*f = (struct inflight){.busy = true,
			       .ext_lo = ext_lo,
			       .ext_len = ext_len,
			       .nseg = (uint8_t)nseg};
	for (unsigned i = 0; i < need; i++)
		f->desc[f->ndesc++] = g->free_desc[--g->nfree];
	for (unsigned i = 0; i < nseg; i++) {
		f->seg[i] = segs[i];
		if (segs[i].writable)
			f->wcap += segs[i].len;
	}
	if (hdr) {
		f->has_hdr = true;
		f->hdr = *hdr;
		f->fill = fill;
	}
	if (indirect) {
		uint64_t table =
		    TABLES +
		    ((uint64_t)g->index * VIRTQ_MAX_SIZE + head) * TABLE_SIZE;

		for (unsigned i = 0; i < nseg; i++)
			fake_desc_at(
			    &fm, table, (uint16_t)i, segs[i].gpa, segs[i].len,
			    (uint16_t)((segs[i].writable ? VIRTQ_DESC_F_WRITE
							 : 0) |
				       (i + 1 < nseg ? VIRTQ_DESC_F_NEXT : 0)),
			    (uint16_t)(i + 1 < nseg ? i + 1 : 0));
		fake_desc(&g->r, head, table, 16 * nseg, VIRTQ_DESC_F_INDIRECT,
			  0);
		tables_used = true;
	} else {
		for (unsigned i = 0; i < nseg; i++)
			fake_desc(
			    &g->r, f->desc[i], segs[i].gpa, segs[i].len,
			    (uint16_t)((segs[i].writable ? VIRTQ_DESC_F_WRITE
							 : 0) |
				       (i + 1 < nseg ? VIRTQ_DESC_F_NEXT : 0)),
			    i + 1 < nseg ? f->desc[i + 1] : 0);
	}
	fake_publish(&g->r, head);
	return true;
}

static void release(struct gq *g, uint16_t head)
{
	struct inflight *f = &g->inf[head];

	for (unsigned i = 0; i < f->ndesc; i++)
		g->free_desc[g->nfree++] = f->desc[i];
	f->busy = false;
}

/* The first 44 bytes the device wrote into an rx chain. */
static void read_hdr(const struct inflight *f, struct vsock_hdr *h)
{
	uint8_t raw[VSOCK_HDR_LEN];
	uint32_t done = 0;

	for (unsigned i = 0; i < f->nseg && done < VSOCK_HDR_LEN; i++) {
		uint32_t n = f->seg[i].len;

		if (n > VSOCK_HDR_LEN - done)
			n = VSOCK_HDR_LEN - done;
		if (n)
			fake_read(&fm, f->seg[i].gpa, raw + done, n);
		done += n;
	}
	CHECK(done == VSOCK_HDR_LEN);
	vsock_hdr_decode(raw, h);
}

/* len payload bytes after the header in an rx chain. */
NO_COVERAGE static void read_payload(const struct inflight *f, uint8_t *dst,
				     uint32_t len)
{
	uint64_t skip = VSOCK_HDR_LEN;

	for (unsigned i = 0; i < f->nseg && len; i++) {
		uint64_t n = f->seg[i].len;

		if (skip >= n) {
			skip -= n;
			continue;
		}
		n -= skip;
		if (n > len)
			n = len;
		fake_read(&fm, f->seg[i].gpa + skip, dst, n);
		dst += n;
		len -= (uint32_t)n;
		skip = 0;
	}
	CHECK(len == 0);
}

/* Take what the device put in the used ring of queue g. */
static void reap(struct gq *g)
{
	uint16_t idx;

	if (!g->configured)
		return;
	idx = fake_used_idx(&g->r);
	if (g->tainted) {
		g->used_seen = idx;
		return;
	}
	/* The device never runs ahead of what we published. */
	CHECK((uint16_t)(idx - g->used_seen) <= g->r.size);
	while (g->used_seen != idx) {
		uint32_t id, len;
		struct inflight *f;

		fake_used_elem(&g->r, g->used_seen++, &id, &len);
		CHECK(g->index != VSOCK_EVQ);
		CHECK(id < g->r.size && g->inf[id].busy);
		f = &g->inf[id];
		if (g->index == VSOCK_TXQ) {
			CHECK(len == 0);
			if (f->has_hdr)
				model_tx(&f->hdr, f->fill);
		} else {
			struct vsock_hdr h;

			CHECK(len >= VSOCK_HDR_LEN && len <= f->wcap);
			read_hdr(f, &h);
			model_rx(&h, len, f);
		}
		release(g, (uint16_t)id);
	}
}

/* After each handler: tx first (the device handles a tx notification
 * before it pumps rx, so credit changes come before the packets that
 * depend on them). */
static void sync_rings(void)
{
	reap(&q[VSOCK_TXQ]);
	reap(&q[VSOCK_RXQ]);
	reap(&q[VSOCK_EVQ]);
}

/* ---- the device's internal state ---- */

NO_COVERAGE static void check_device(void)
{
	struct vsock_conns *cs = &v->conns;
	unsigned live = 0, queued = 0;
	const struct vsock_conn *prev = NULL;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &cs->slots[i];
		/* The multiplexer holds slot i's Unix connection as id i. */
		int fd = cs->mux.socks[i].fd;

		CHECK(c->buf_len <= VSOCK_BUF_ALLOC &&
		      c->buf_cap <= VSOCK_BUF_ALLOC);
		CHECK((uint64_t)c->buf_off + c->buf_len <= c->buf_cap);
		CHECK(c->prefix_off <= c->prefix_len);
		if (c->state == VS_FREE) {
			CHECK(!c->queued && !c->hashed && fd < 0 && !c->buf);
			continue;
		}
		live++;
		queued += c->queued;
		if (c->state == VS_LINE || c->state == VS_CONNECTING ||
		    c->state == VS_OPEN)
			CHECK(fd >= 0);
		else
			CHECK(fd < 0 && !c->buf);
		CHECK(c->hashed == (c->state != VS_LINE));
		if (c->hashed)
			CHECK(vsock_conns_find(cs, c->local_port,
					       c->peer_port) == c);
		if (c->state == VS_DEAD)
			CHECK(c->queued && vsock_conn_owes_rst(c));
	}
	CHECK(live == cs->nconns);
	for (const struct vsock_conn *c = cs->work_head; c; c = c->wnext) {
		CHECK(c->queued && c->state != VS_FREE && c->wprev == prev);
		prev = c;
		CHECK(queued-- > 0);
	}
	CHECK(queued == 0 && cs->work_tail == prev);
	CHECK(v->orphan_len <= VSOCK_ORPHAN_RING);
}

/* Run the device's handlers until nothing is ready. */
static void loop(void)
{
	struct epoll_event evs[16];

	for (int rounds = 0;; rounds++) {
		int n;

		CHECK(rounds < LOOP_MAX); /* never idle: a spinning device */
		n = epoll_wait(ep, evs, 16, 0);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			struct ev_handler *h = evs[i].data.ptr;

			h->fn(h, evs[i].events);
			sync_rings();
		}
	}
}

/* ---- driver set-up ---- */

/* What we know of the chains on g no longer holds: neither does what we
 * expect of the data on any connection. */
static void taint(struct gq *g)
{
	g->tainted = true;
	for (unsigned i = 0; i < nhosts; i++)
		hosts[i].broken = true;
}

static void taint_all(void)
{
	for (unsigned i = 0; i < 3; i++)
		taint(&q[i]);
}

static void driver_init(uint8_t flags, const uint8_t log2size[3])
{
	uint32_t features = 0;
	unsigned mode = flags >> 6;

	wr(VIRTIO_MMIO_STATUS, 0);
	for (unsigned i = 0; i < 3; i++)
		gq_reset(&q[i], i, (uint16_t)(1u << (log2size[i] % 9)));
	npairs = pair_next = 0;
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	if (flags & 1)
		features |= (uint32_t)VIRTIO_F_EVENT_IDX;
	if (flags & 2)
		features |= (uint32_t)VIRTIO_F_INDIRECT_DESC;
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, features);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, mode == 3 ? 0 : 1); /* VERSION_1 */
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE |
				   VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK);
	for (unsigned i = 0; i < 3; i++) {
		q[i].configured = fake_ring_attach(&v->vdev, i, &q[i].r);
	}
	if (mode < 2)
		wr(VIRTIO_MMIO_STATUS,
		   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	sync_rings();
}

/* ---- operations: the guest ---- */

/* Ports of a connection the guest knows, of a listener, any, or a
 * guess at the ports the device gives host-initiated connections. */
static void choose_port(uint32_t *src, uint32_t *dst, unsigned mode)
{
	uint8_t b = u8();

	if (mode == 0 && npairs) {
		const struct pair *p = &pairs[b % npairs];

		*src = p->peer;
		*dst = p->local;
		return;
	}
	switch (mode) {
	case 0:
	case 1:
		*src = 1000 + (b & 3u);
		*dst = listen_ports[(b >> 2) & 3];
		return;
	case 2:
		*src = u32();
		*dst = u32();
		return;
	default:
		*src = 1000 + (b & 3u);
		*dst = VSOCK_FIRST_LOCAL_PORT + ((b >> 2) & 7u);
		return;
	}
}

static void kick(unsigned qi, unsigned how)
{
	switch (how) {
	case 0:
		virtio_dev_notify(&v->vdev, qi);
		sync_rings();
		break;
	case 1: /* through the register: the loop runs it */
		wr(VIRTIO_MMIO_QUEUE_NOTIFY, qi);
		break;
	default: /* batch: the driver kicks later, or never */
		break;
	}
}

static void op_tx(void)
{
	static const uint64_t bad_cids[4] = {0, 1, 5, UINT64_MAX};
	static const uint16_t bad_ops[4] = {0, 8, 77, 0xffff};
	struct gq *g = &q[VSOCK_TXQ];
	uint8_t opb = u8(), mode = u8(), lay = u8(), credit = u8();
	uint32_t plen = u16(), fill = u8();
	struct vsock_hdr h = {.src_cid = gcid,
			      .dst_cid = VSOCK_HOST_CID,
			      .type = VSOCK_TYPE_STREAM};
	struct seg s[MAX_SEGS];
	unsigned n = 0, layout = lay & 7;
	uint8_t raw[VSOCK_HDR_LEN];
	uint64_t at, total;
	struct pair *p;

	h.op = opb & 0x80 ? bad_ops[opb & 3] : (uint16_t)(1 + opb % 7);
	switch (mode & 3) {
	case 1:
		h.src_cid = mode & 4 ? u64() : bad_cids[(mode >> 3) & 3];
		break;
	case 2:
		h.dst_cid = mode & 4 ? u64() : bad_cids[(mode >> 3) & 3];
		break;
	case 3:
		if (mode & 4)
			h.type = u16();
		else
			h.type = 2; /* SEQPACKET */
		break;
	default:
		break;
	}
	choose_port(&h.src_port, &h.dst_port, (mode >> 5) & 3);
	if (h.op == VSOCK_OP_SHUTDOWN)
		h.flags = credit & 0x80 ? u32() : (uint32_t)(1 + credit % 3);
	else if (mode & 0x80)
		h.flags = u32();
	p = pair_get(h.dst_port, h.src_port, false);
	h.buf_alloc = VSOCK_BUF_ALLOC;
	h.fwd_cnt = p ? p->g_recv : 0;
	switch ((credit >> 2) & 3) {
	case 1:
		h.buf_alloc = u16();
		break;
	case 2:
		h.buf_alloc = u32();
		h.fwd_cnt = u32();
		break;
	case 3:
		h.buf_alloc = 0;
		break;
	default:
		break;
	}
	if (lay & 0x80)
		plen *= 4; /* up to 256 KiB: more than any credit */
	if (h.op != VSOCK_OP_RW && !(lay & 0x40))
		plen = 0;
	h.len = plen;
	if (layout == 5) { /* a length beyond the chain, or short of it */
		uint32_t by = u8();

		if (by & 0x80)
			h.len = plen + 1 + (by & 0x7f);
		else
			h.len = plen - (by < plen ? by : plen);
	}
	vsock_hdr_encode(&h, raw);

	total = VSOCK_HDR_LEN + (uint64_t)plen + 64;
	at = ext_alloc(g, total);
	if (!at)
		return;
	fake_write(&fm, at, raw, VSOCK_HDR_LEN);
	if (plen) {
		fill_pat(fake_ptr(&fm, at + VSOCK_HDR_LEN, plen), (uint8_t)fill,
			 plen);
	}
	switch (layout) {
	case 0: /* one buffer: header and payload */
	case 5: /* (with a lie in the header) */
		s[n++] = (struct seg){at, VSOCK_HDR_LEN + plen, false};
		break;
	case 2: { /* header, then the payload in k pieces */
		unsigned k = 2 + u8() % 14;
		uint32_t off = 0;

		s[n++] = (struct seg){at, VSOCK_HDR_LEN, false};
		for (unsigned i = 0; i < k && n < MAX_SEGS; i++) {
			uint32_t piece = i + 1 == k ? plen - off
					 : plen	    ? u8() % (plen - off + 1)
						    : 0;

			s[n++] = (struct seg){at + VSOCK_HDR_LEN + off, piece,
					      false};
			off += piece;
		}
		if (off < plen) /* the rest, when the pieces ran out */
			s[n - 1].len += plen - off;
		break;
	}
	case 3: { /* the header itself split */
		uint32_t cut = 1 + u8() % (VSOCK_HDR_LEN - 1);

		s[n++] = (struct seg){at, cut, false};
		s[n++] =
		    (struct seg){at + cut, VSOCK_HDR_LEN - cut + plen, false};
		break;
	}
	case 6: { /* shorter than a header */
		uint32_t cut = u8() % VSOCK_HDR_LEN;

		s[n++] = (struct seg){at, cut, false};
		break;
	}
	case 7: /* a zero-length piece, and a writable tail it ignores */
		s[n++] = (struct seg){at, VSOCK_HDR_LEN, false};
		s[n++] = (struct seg){at + VSOCK_HDR_LEN, 0, false};
		if (plen)
			s[n++] = (struct seg){at + VSOCK_HDR_LEN, plen, false};
		s[n++] = (struct seg){at + VSOCK_HDR_LEN + plen, 16, true};
		break;
	default: /* 1, 4: header, then payload (4: indirect) */
		s[n++] = (struct seg){at, VSOCK_HDR_LEN, false};
		if (plen)
			s[n++] = (struct seg){at + VSOCK_HDR_LEN, plen, false};
		break;
	}
	if (!post_chain(g, s, n, layout == 4 || (lay & 8), at, total, &h,
			(uint8_t)fill))
		return;
	kick(VSOCK_TXQ, (lay >> 4) & 3);
}

static void op_rx(void)
{
	struct gq *g = &q[VSOCK_RXQ];
	unsigned count = 1 + u8() % 8;
	uint8_t how = u8();

	for (unsigned k = 0; k < count; k++) {
		uint8_t shape = u8();
		struct seg s[MAX_SEGS];
		unsigned n = 0;
		uint64_t at, total;
		uint32_t a, b;

		switch (shape & 7) {
		case 0: /* as Linux posts them: header, then 4 KiB */
			a = VSOCK_HDR_LEN, b = 4096;
			break;
		case 1: /* one buffer of any size from a header up */
			a = VSOCK_HDR_LEN + u16() % 8192, b = 0;
			break;
		case 2: /* header only */
			a = VSOCK_HDR_LEN, b = 0;
			break;
		case 3: /* too small for a header */
			a = u8() % VSOCK_HDR_LEN, b = 0;
			break;
		case 4: /* more than the largest packet */
			a = VSOCK_HDR_LEN, b = VSOCK_MAX_PKT + 4096;
			break;
		default: /* pieces */
			a = 0, b = 0;
			break;
		}
		total = (uint64_t)a + b + 16 * MAX_SEGS * 64;
		at = ext_alloc(g, total);
		if (!at)
			return;
		switch (shape & 7) {
		case 5: { /* k small pieces (the header spread over them) */
			unsigned pieces = 2 + u8() % (MAX_SEGS - 1);
			uint64_t off = 0;

			for (unsigned i = 0; i < pieces; i++) {
				uint32_t len = u8() % 64;

				s[n++] = (struct seg){at + off, len, true};
				off += len;
			}
			break;
		}
		case 6: /* a device-readable part first */
			s[n++] = (struct seg){at, VSOCK_HDR_LEN, false};
			s[n++] = (struct seg){at + 64, 4096, true};
			break;
		case 7: /* zero-length pieces around a header and data */
			s[n++] = (struct seg){at, 0, true};
			s[n++] = (struct seg){at, VSOCK_HDR_LEN, true};
			s[n++] = (struct seg){at + 64, 0, true};
			s[n++] = (struct seg){at + 64, 1 + u8(), true};
			break;
		default:
			s[n++] = (struct seg){at, a, true};
			if (b)
				s[n++] = (struct seg){at + ((a + 15) & ~15u), b,
						      true};
			break;
		}
		if (shape & 8) /* make the last one read-only */
			s[n - 1].writable = shape & 0x10 ? false : true;
		if (!post_chain(g, s, n, shape & 0x20, at, total, NULL, 0))
			return;
	}
	kick(VSOCK_RXQ, how & 3);
}

/* Buffers for the event queue, which the device must never use. */
static void op_evq(void)
{
	struct gq *g = &q[VSOCK_EVQ];
	uint8_t how = u8();
	struct seg s;
	uint64_t at = ext_alloc(g, 8);

	if (!at)
		return;
	s = (struct seg){at, 8, true};
	if (post_chain(g, &s, 1, false, at, 8, NULL, 0))
		kick(VSOCK_EVQ, how & 3);
}

static void op_notify(void)
{
	uint8_t b = u8();

	switch (b % 4) {
	case 0:
		kick(b / 4 % 3, 0);
		break;
	case 1:
		kick(b / 4 % 3, 1);
		break;
	case 2: /* a queue that does not exist */
		wr(VIRTIO_MMIO_QUEUE_NOTIFY, 3u + b / 4);
		virtio_dev_notify(&v->vdev, 3u + b / 4 % 2);
		break;
	default: /* every queue */
		for (unsigned i = 0; i < 3; i++)
			kick(i, 0);
		break;
	}
}

/* Lies in the rings. */
static void op_raw(void)
{
	static const uint64_t addrs[6] = {RAW_LO,    RAW_LO + 0x1000,
					  RING_BASE, RAM_SIZE - 8,
					  RAM_SIZE,  UINT64_MAX - 7};
	uint8_t b = u8();
	struct gq *g = &q[b % 3];
	uint16_t i;

	if (!g->configured)
		return;
	switch ((b >> 2) & 3) {
	case 0: /* avail->idx moved by any amount */
		fake_set_avail_idx(&g->r, (uint16_t)(g->r.avail_idx + u8()));
		taint(g);
		break;
	case 1: /* any head */
		fake_publish(&g->r, u16());
		taint(g);
		break;
	case 2: /* any descriptor, then its head */
		i = (uint16_t)(u8() % g->r.size);
		{
			uint8_t a = u8();
			uint64_t addr = addrs[a % 6];
			uint32_t len = a & 0x80 ? u32() : u8();

			if (addr == RAW_LO || addr == RAW_LO + 0x1000)
				len %= RAW_HI - (uint32_t)addr + 1;
			raw_used = true;
			fake_desc(&g->r, i, addr, len, u16(), u16());
		}
		fake_publish(&g->r, i);
		taint(g);
		break;
	default: /* interrupt suppression: any values, no lie */
		fake_set_avail_flags(&g->r, u16());
		fake_set_used_event(&g->r, u16());
		break;
	}
	kick(g->index, (b >> 4) & 3);
}

/* Register accesses: b bits 0-3 the register, bits 4-5 a 32-bit write,
 * a 32-bit read, a read of any width anywhere (config space included),
 * a write of another width or alignment (ignored); bit 6 keeps a status
 * value to its low byte. */
static void op_mmio(void)
{
	static const uint16_t regs[16] = {
	    VIRTIO_MMIO_DEVICE_FEATURES_SEL,
	    VIRTIO_MMIO_DRIVER_FEATURES,
	    VIRTIO_MMIO_DRIVER_FEATURES_SEL,
	    VIRTIO_MMIO_QUEUE_SEL,
	    VIRTIO_MMIO_QUEUE_NUM,
	    VIRTIO_MMIO_QUEUE_READY,
	    VIRTIO_MMIO_QUEUE_NOTIFY,
	    VIRTIO_MMIO_INTERRUPT_ACK,
	    VIRTIO_MMIO_STATUS,
	    VIRTIO_MMIO_QUEUE_DESC_LOW,
	    VIRTIO_MMIO_QUEUE_DESC_HIGH,
	    VIRTIO_MMIO_QUEUE_DRIVER_LOW,
	    VIRTIO_MMIO_QUEUE_DEVICE_LOW,
	    VIRTIO_MMIO_DEVICE_FEATURES,
	    VIRTIO_MMIO_QUEUE_NUM_MAX,
	    VIRTIO_MMIO_CONFIG_GENERATION,
	};
	uint8_t b = u8();
	uint32_t val = u32();
	uint64_t off = regs[b & 15];
	struct virtq before[VIRTIO_MAX_QUEUES];
	uint8_t buf[8];

	switch ((b >> 4) & 3) {
	case 1:
		(void)rd(off);
		return;
	case 2:
		virtio_mmio_read(&v->vdev,
				 (val >> 8) % (VIRTIO_MMIO_CONFIG + 16), buf,
				 1 + (val & 7));
		return;
	case 3:
		put_le32(buf, val);
		virtio_mmio_write(&v->vdev, off + (val & 3), buf,
				  1 + ((val >> 2) & 3));
		return;
	default:
		break;
	}
	if (off == VIRTIO_MMIO_STATUS && (b & 0x40))
		val &= 0xff;
	memcpy(before, v->vdev.queues, sizeof(before));
	wr(off, val);
	(void)rd(VIRTIO_MMIO_INTERRUPT_STATUS);
	/* A reset or a queue set up behind our back: the rings restart or
	 * move, and what we know of the chains no longer holds. */
	for (unsigned i = 0; i < 3; i++) {
		const struct virtq *a = &before[i], *z = &v->vdev.queues[i];

		if (a->ready != z->ready || a->size != z->size ||
		    a->desc_gpa != z->desc_gpa ||
		    a->avail_gpa != z->avail_gpa || a->used_gpa != z->used_gpa)
			taint_all();
	}
	if (v->vdev.status == 0)
		taint_all();
	sync_rings();
}

static void op_reset(void)
{
	uint8_t flags = u8(), sizes[3] = {u8(), u8(), u8()};

	driver_init(flags, sizes);
}

static void op_expire(void)
{
	uint8_t b = u8();
	uint64_t deltas[6] = {0,
			      1000000,
			      v->conns.close_timeout_ns,
			      v->conns.line_timeout_ns,
			      v->conns.connect_timeout_ns,
			      UINT64_MAX / 4};

	pthread_mutex_lock(&v->vdev.lock);
	virtio_vsock_expire(v, vsock_mux_now() + deltas[b % 6]);
	pthread_mutex_unlock(&v->vdev.lock);
	/* What the timer's kick does: run the rx queue for the RSTs. */
	virtio_dev_notify(&v->vdev, VSOCK_RXQ);
	sync_rings();
}

/* ---- operations: host programs ---- */

static void add_host(int fd, bool client, unsigned id)
{
	unsigned slot = 0;

	if (nhosts == MAX_HOST) {
		close(fd);
		return;
	}
	while (ring_busy[slot])
		slot++;
	ring_busy[slot] = true;
	hosts[nhosts++] = (struct host){.fd = fd,
					.client = client,
					.id = id,
					.ring_slot = slot,
					.ring = ring_store[slot]};
}

static void remove_host(struct host *h)
{
	close(h->fd);
	ring_busy[h->ring_slot] = false;
	*h = hosts[--nhosts];
}

/* A client's abstract address: the device's socket sees it as its
 * peer, which tells us which connection is whose. */
static socklen_t host_addr(struct sockaddr_un *sa, unsigned id)
{
	int n;

	*sa = (struct sockaddr_un){.sun_family = AF_UNIX};
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
		     "hutch-fuzz-vsock-%d-%u", (int)my_pid, id);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			   (size_t)n);
}

/* Find the device's connection of each tracked client once the device
 * has read its CONNECT line (in the operation that sent it, or once the
 * listener accepts it: before the guest can answer, so no data of it is
 * missed). */
static void map_clients(void)
{
	bool any = false;

	for (unsigned i = 0; i < nhosts; i++)
		any |= hosts[i].tracked && !hosts[i].mapped && !hosts[i].broken;
	if (!any)
		return;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns.slots[i];
		int fd = v->conns.mux.socks[i].fd;
		struct sockaddr_un peer, want;
		socklen_t len = sizeof(peer);

		if (fd < 0 || c->state == VS_LINE ||
		    getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
			continue;
		for (unsigned k = 0; k < nhosts; k++) {
			struct host *h = &hosts[k];
			socklen_t wlen = host_addr(&want, h->id);

			if (!h->tracked || h->mapped || h->broken ||
			    len != wlen || memcmp(&peer, &want, len))
				continue;
			/* The device took the port from the line we sent. */
			CHECK(c->peer_port == h->port);
			if (c->state != VS_CONNECTING) {
				h->broken = true; /* answered already */
				break;
			}
			h->mapped = true;
			h->local = c->local_port;
			break;
		}
	}
}

static void op_hconnect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX}, me;
	unsigned id = next_host_id++;
	int fd;

	if (nhosts == MAX_HOST)
		return;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return; /* out of fds (op_fdlimit) */
	strcpy(sa.sun_path, path);
	if (bind(fd, (struct sockaddr *)&me, host_addr(&me, id)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return;
	}
	add_host(fd, true, id);
}

static struct host *pick_host(void)
{
	uint8_t b = u8();

	return nhosts ? &hosts[b % nhosts] : NULL;
}

NO_COVERAGE static void h2g_record(struct host *h, const uint8_t *p, size_t n)
{
	if (!h->tracked || h->broken || !n)
		return;
	if (h->ring_len + n > H2G_RING) {
		h->broken = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		h->ring[(h->ring_head + h->ring_len + i) % H2G_RING] = p[i];
	h->ring_len += n;
}

/* Send, and remember what the guest should receive: everything after
 * the first line, if the first send was one whole CONNECT line (of
 * line_len bytes). */
static void hsend(struct host *h, const void *p, size_t len, size_t line_len)
{
	bool first = !h->sent_line;
	ssize_t n = send(h->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n <= 0)
		return;
	h->sent_line = true;
	if (first) {
		h->tracked = h->client && line_len && (size_t)n == len;
		h2g_record(h, (const uint8_t *)p + line_len,
			   (size_t)n - line_len);
		return;
	}
	h2g_record(h, p, (size_t)n);
}

static void op_hsend(void)
{
	struct host *h = pick_host();
	uint8_t kind = u8();
	char line[64];
	int n;

	if (!h)
		return;
	switch (kind % 6) {
	case 0:
	case 5: { /* CONNECT <port>, maybe data right behind it */
		static const uint32_t ports[4] = {1024, 5000, 0, 4294967295u};
		uint8_t b = u8();
		uint32_t port = b & 4 ? u32() : ports[b & 3];

		n = snprintf(line, sizeof(line), "CONNECT %u\n%s", port,
			     kind % 6 == 5 ? "early bytes" : "");
		if (!h->sent_line)
			h->port = port;
		hsend(h, line, (size_t)n, strchr(line, '\n') + 1 - line);
		break;
	}
	case 1: /* half a line */
		hsend(h, "CONNECT 12", 10, 0);
		break;
	case 2: { /* anything, from the input */
		size_t len = u8() % 48;

		if (len > in_n)
			len = in_n;
		hsend(h, in_p, len, 0);
		in_p += len;
		in_n -= len;
		break;
	}
	case 3: /* overlong */
		hsend(h, "CONNECT 123456789012345678901234567890\n", 39, 0);
		break;
	default: { /* data, maybe lots */
		uint8_t b = u8();
		size_t len = u16();

		if (b & 1)
			len *= 4;
		if (len > sizeof(scratch))
			len = sizeof(scratch);
		fill_pat(scratch, b, len);
		hsend(h, scratch, len, 0);
		break;
	}
	}
}

/* Check what a device-socket client reads: "OK <port>\n" first.  The
 * bytes of it in p[0..n). */
static size_t ok_parse(struct host *h, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && h->ok < 5; i++) {
		uint8_t c = p[i];

		switch (h->ok) {
		case 0:
			CHECK(c == 'O');
			h->ok = 1;
			break;
		case 1:
			CHECK(c == 'K');
			h->ok = 2;
			break;
		case 2:
			CHECK(c == ' ');
			h->ok = 3;
			break;
		case 3:
			CHECK(c >= '0' && c <= '9');
			h->ok = 4;
			h->ok_port = (uint64_t)(c - '0');
			break;
		default:
			CHECK(c == '\n' || (c >= '0' && c <= '9'));
			if (c != '\n') {
				h->ok_port =
				    h->ok_port * 10 + (uint64_t)(c - '0');
				CHECK(h->ok_port <= UINT32_MAX);
				break;
			}
			h->ok = 5;
			/* The port the device gave the connection. */
			CHECK(h->ok_port >= VSOCK_FIRST_LOCAL_PORT);
			CHECK(!h->mapped || h->ok_port == h->local);
			break;
		}
	}
	return i;
}

/* Bytes a tracked client reads after "OK": the guest's payload, in
 * order. */
NO_COVERAGE static void check_g2h(struct host *h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct run *r;

		while (h->nruns && h->run_off == h->runs[h->run_head].len) {
			h->run_head = (h->run_head + 1) % MAX_RUNS;
			h->nruns--;
			h->run_off = 0;
		}
		CHECK(h->nruns > 0); /* more than the guest sent */
		r = &h->runs[h->run_head];
		CHECK(p[i] == pat(r->fill, h->run_off));
		h->run_off++;
	}
	checked_g2h += n;
}

static void op_hread(void)
{
	struct host *h = pick_host();
	size_t want = (size_t)u16() * 4;

	if (!h)
		return;
	if (want > sizeof(scratch))
		want = sizeof(scratch);
	while (want) {
		ssize_t n = recv(h->fd, scratch, want, MSG_DONTWAIT);

		if (n <= 0)
			break;
		if (h->client) {
			size_t k;

			CHECK(h->sent_line); /* nothing before CONNECT */
			k = ok_parse(h, scratch, (size_t)n);
			if (h->mapped && !h->broken)
				check_g2h(h, scratch + k, (size_t)n - k);
		}
		want -= (size_t)n;
	}
}

static void op_hshut(void)
{
	struct host *h = pick_host();
	static const int how[3] = {SHUT_WR, SHUT_RD, SHUT_RDWR};
	uint8_t b = u8();

	if (h)
		shutdown(h->fd, how[b % 3]);
}

static void op_hclose(void)
{
	struct host *h = pick_host();

	if (h)
		remove_host(h);
}

static void listen_path(char *p, size_t len, unsigned k)
{
	snprintf(p, len, "%s_%u", path, listen_ports[k]);
}

static void op_listen(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint8_t b = u8();
	unsigned k = b % NLISTEN;
	int fd;

	if (lfd[k] >= 0)
		return;
	listen_path(sa.sun_path, sizeof(sa.sun_path), k);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return; /* out of fds (op_fdlimit) */
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	/* A small backlog, where the device's connect may find it full, or
	 * room for every connection the device can make. */
	CHECK(listen(fd, b & 0x10 ? 2 * VSOCK_MAX_CONNS : (b >> 2) % 4) == 0);
	lfd[k] = fd;
}

static void unlisten(unsigned k)
{
	char p[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (lfd[k] < 0)
		return;
	close(lfd[k]);
	lfd[k] = -1;
	listen_path(p, sizeof(p), k);
	CHECK(unlink(p) == 0);
}

static void op_accept(void)
{
	unsigned k = u8() % NLISTEN;
	int fd;

	if (lfd[k] < 0 || nhosts == MAX_HOST)
		return;
	fd = accept4(lfd[k], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0)
		add_host(fd, false, next_host_id++);
}

static void op_unlisten(void)
{
	unlisten(u8() % NLISTEN);
}

/* Many guest connection requests at once (towards the 256-connection
 * limit), from ports 2000 + i to a listener. */
static void op_burst(void)
{
	struct gq *g = &q[VSOCK_TXQ];
	unsigned n = 1 + u8() % 128;
	uint32_t dst = listen_ports[u8() % NLISTEN];
	uint16_t base = u16();

	for (unsigned i = 0; i < n; i++) {
		struct vsock_hdr h = {.src_cid = gcid,
				      .dst_cid = VSOCK_HOST_CID,
				      .src_port = 2000u + base + i,
				      .dst_port = dst,
				      .type = VSOCK_TYPE_STREAM,
				      .op = VSOCK_OP_REQUEST,
				      .buf_alloc = VSOCK_BUF_ALLOC};
		uint8_t raw[VSOCK_HDR_LEN];
		uint64_t at = ext_alloc(g, VSOCK_HDR_LEN);
		struct seg s = {at, VSOCK_HDR_LEN, false};

		if (!at)
			break;
		vsock_hdr_encode(&h, raw);
		fake_write(&fm, at, raw, VSOCK_HDR_LEN);
		if (!post_chain(g, &s, 1, false, at, VSOCK_HDR_LEN, &h, 0))
			break;
	}
	kick(VSOCK_TXQ, 0);
}

/* Few fds left: the device's accept and connect fail with EMFILE. */
static void op_fdlimit(void)
{
	struct rlimit rl;
	int lowest = dup(0);

	if (lowest < 0 || getrlimit(RLIMIT_NOFILE, &rl))
		return;
	close(lowest);
	if (!fd_limited)
		fd_rlimit = rl;
	rl.rlim_cur = (rlim_t)lowest + u8() % 8;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		fd_limited = true;
}

static void fd_unlimit(void)
{
	if (!fd_limited)
		return;
	fd_limited = false;
	CHECK(setrlimit(RLIMIT_NOFILE, &fd_rlimit) == 0);
}

static void (*const ops[])(void) = {
    op_tx,     op_tx,	    op_tx,    op_rx,	  op_rx,     op_evq,
    op_notify, op_raw,	    op_mmio,  op_reset,	  op_expire, op_hconnect,
    op_hsend,  op_hsend,    op_hread, op_hshut,	  op_hclose, op_listen,
    op_accept, op_unlisten, op_burst, op_fdlimit,
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))
static const char *const op_names[NOPS] = {
    "tx",     "tx",	  "tx",	   "rx",      "rx",	"evq",
    "notify", "raw",	  "mmio",  "reset",   "expire", "hconnect",
    "hsend",  "hsend",	  "hread", "hshut",   "hclose", "listen",
    "accept", "unlisten", "burst", "fdlimit",
};

/* ---- one input ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct guest_region r = {.gpa = 0, .size = RAM_SIZE};

	(void)argc;
	(void)argv;
	/* tmpfs where there is one: binding a socket on a disk file system
	 * costs more than the rest of an input. */
	snprintf(dir, sizeof(dir), "/dev/shm/hutch-fuzz-vsock-XXXXXX");
	if (!mkdtemp(dir) &&
	    (snprintf(dir, sizeof(dir), "/tmp/hutch-fuzz-vsock-XXXXXX") < 0 ||
	     !mkdtemp(dir))) {
		perror("fuzz_vsock: mkdtemp");
		abort();
	}
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	fake_mem_init_regions(&fm, &r, 1);
	ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0);
	for (unsigned k = 0; k < NLISTEN; k++)
		lfd[k] = -1;
	trace = getenv("FUZZ_VSOCK_TRACE");
	my_pid = getpid();
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(remove_dir);
	if (__sanitizer_symbolize_pc) {
		char where[256];

		__sanitizer_symbolize_pc(__builtin_return_address(0), "%F",
					 where, sizeof(where));
	}
	return 0;
}

/* The socket directory goes at exit, or when a check or a sanitizer
 * ends the process (not after a timeout: libFuzzer's _exit). */
static void remove_dir(void)
{
	char p[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (!dir[0])
		return;
	unlink(path);
	for (unsigned k = 0; k < NLISTEN; k++) {
		listen_path(p, sizeof(p), k);
		unlink(p);
	}
	rmdir(dir);
}

__attribute__((destructor)) static void cleanup_dir(void)
{
	remove_dir();
}

NO_COVERAGE static void clear_ram(void)
{
	/* Everything the driver or the device may have written; the rings
	 * are cleared by their next set-up. */
	for (unsigned i = 0; i < 3; i++) {
		if (q[i].hwm > q[i].lo)
			memset(fake_ptr(&fm, q[i].lo, q[i].hwm - q[i].lo), 0,
			       q[i].hwm - q[i].lo);
		q[i].hwm = q[i].lo;
	}
	/* Lying descriptors may have had the device write anywhere below
	 * the tx area (from the rings up), or at the very end of RAM. */
	if (raw_used) {
		memset(fm.host, 0, TX_LO);
		memset(fm.host + RAM_SIZE - 4096, 0, 4096);
	} else if (tables_used) {
		memset(fake_ptr(&fm, TABLES, TX_LO - TABLES), 0,
		       TX_LO - TABLES);
	}
	raw_used = tables_used = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t fds_before[FD_SCAN], fds_after[FD_SCAN];
	struct virtio_host host = {.mem = &fm.mem, .vm_fd = -1, .ep = ep};
	uint8_t flags, sizes[3];
	struct stat st;

	if (size < 4)
		return 0;
	in_p = data;
	in_n = size;
	flags = u8();
	sizes[0] = u8(), sizes[1] = u8(), sizes[2] = u8();
	fd_snapshot(fds_before);

	gcid = flags & 4 ? GCID_HIGH : GCID_LOW;
	v = calloc(1, sizeof(*v));
	CHECK(v);
	CHECK(virtio_vsock_create(v, path, gcid, &host, 0xd0000000, 5) == 0);
	if (flags & 8)
		v->conns.close_timeout_ns = 0;
	if (flags & 16)
		v->conns.line_timeout_ns = 0;
	if (flags & 32)
		v->conns.connect_timeout_ns = 0;
	driver_init(flags, sizes);
	loop();

	for (unsigned n = 0; n < MAX_OPS && in_n; n++) {
		unsigned op = u8() % NOPS;

		ops[op]();
		loop();
		map_clients();
		check_device();
		if (trace)
			fprintf(
			    stderr,
			    "op %2u: %-8s status 0x%02x conns %u rx used %u "
			    "tx used %u hosts %u\n",
			    n, op_names[op], v->vdev.status, v->conns.nconns,
			    fake_used_idx(&q[0].r), fake_used_idx(&q[1].r),
			    nhosts);
	}
	if (trace)
		fprintf(stderr,
			"end: conns host %llu guest %llu, bytes to guest %llu "
			"from guest %llu, rst %llu, bad %llu; bytes checked "
			"%llu to guest, %llu from guest\n",
			(unsigned long long)v->stats.conns_host,
			(unsigned long long)v->stats.conns_guest,
			(unsigned long long)v->stats.rx_bytes,
			(unsigned long long)v->stats.tx_bytes,
			(unsigned long long)v->stats.rst_sent,
			(unsigned long long)v->stats.bad_packets,
			(unsigned long long)checked_h2g,
			(unsigned long long)checked_g2h);

	fd_unlimit();
	virtio_vsock_destroy(v);
	free(v);
	v = NULL;
	while (nhosts)
		remove_host(&hosts[0]);
	for (unsigned k = 0; k < NLISTEN; k++)
		unlisten(k);
	clear_ram();

	CHECK(epoll_watched() == 0);
	CHECK(lstat(path, &st) < 0 && errno == ENOENT);
	fd_snapshot(fds_after);
	CHECK(memcmp(fds_before, fds_after, sizeof(fds_before)) == 0);
	return 0;
}
