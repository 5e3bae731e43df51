// SPDX-License-Identifier: MIT
/*
 * Test tool for the guest: plays a hostile virtio-mmio driver against the
 * device at a physical address, through /dev/mem, to show that the VMM
 * survives it and flags the device instead.  Unbind the kernel's driver
 * from the device first.
 *
 *   virtio-poke garbage BASE SEED COUNT   random register reads and writes
 *   virtio-poke loop BASE                 set up queue 0 with a looping
 *                                         descriptor chain and kick it;
 *                                         prints "needs-reset: yes|no"
 *   virtio-poke getid BASE                reset, then a well-formed GET_ID
 *                                         request on queue 0; prints
 *                                         "id: <serial> status <s>"
 *   virtio-poke write BASE                a well-formed OUT request of one
 *                                         sector of 0xab at sector 0 (past
 *                                         the kernel's read-only check);
 *                                         prints "write status <s>"
 *   virtio-poke nettx BASE                virtio-net: six frames with bad
 *                                         headers or sizes, then a good
 *                                         ARP request, on the transmit
 *                                         queue; prints "nettx used <n>
 *                                         needs-reset: yes|no", then a
 *                                         chain the device would have to
 *                                         write: "nettx-write needs-reset:
 *                                         yes|no"
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define REG_STATUS	0x070
#define REG_INT_STATUS	0x060
#define REG_INT_ACK	0x064
#define REG_QUEUE_SEL	0x030
#define REG_QUEUE_NUM	0x038
#define REG_QUEUE_READY 0x044
#define REG_NOTIFY	0x050
#define REG_DRV_FEAT	0x020
#define REG_DRV_SEL	0x024
#define REG_DESC_LO	0x080
#define REG_DESC_HI	0x084
#define REG_AVAIL_LO	0x090
#define REG_AVAIL_HI	0x094
#define REG_USED_LO	0x0a0
#define REG_USED_HI	0x0a4

static volatile uint32_t *regs;

static void wr(unsigned off, uint32_t v)
{
	regs[off / 4] = v;
}

static uint32_t rd(unsigned off)
{
	return regs[off / 4];
}

/* A locked page of our own and its guest-physical address. */
static uint8_t *phys_page(uint64_t *pa)
{
	uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
	uint64_t entry;
	int fd;

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, 4096);
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0 ||
	    pread(fd, &entry, 8, (off_t)((uintptr_t)p / 4096 * 8)) != 8 ||
	    !(entry >> 63)) {
		perror("pagemap");
		exit(1);
	}
	close(fd);
	*pa = (entry & ((1ull << 55) - 1)) * 4096;
	return p;
}

static void set64(unsigned lo, uint64_t v)
{
	wr(lo, (uint32_t)v);
	wr(lo + 4, (uint32_t)(v >> 32));
}

/* Reset and negotiate VERSION_1 and the low feature bits given, then
 * queue q with 8 entries. */
static void setup_queue_n(unsigned q, uint32_t feat_lo, uint8_t **desc,
			  uint8_t **avail, uint8_t **used)
{
	uint64_t pd, pa, pu;

	*desc = phys_page(&pd);
	*avail = phys_page(&pa);
	*used = phys_page(&pu);
	wr(REG_STATUS, 0);
	wr(REG_STATUS, 1);
	wr(REG_STATUS, 1 | 2);
	wr(REG_DRV_SEL, 1);
	wr(REG_DRV_FEAT, 1); /* VIRTIO_F_VERSION_1 */
	wr(REG_DRV_SEL, 0);
	wr(REG_DRV_FEAT, feat_lo);
	wr(REG_STATUS, 1 | 2 | 8);
	wr(REG_QUEUE_SEL, q);
	wr(REG_QUEUE_NUM, 8);
	set64(REG_DESC_LO, pd);
	set64(REG_AVAIL_LO, pa);
	set64(REG_USED_LO, pu);
	wr(REG_QUEUE_READY, 1);
	wr(REG_STATUS, 1 | 2 | 8 | 4);
	printf("status after setup: 0x%x ready %u\n", rd(REG_STATUS),
	       rd(REG_QUEUE_READY));
}

static void setup_queue(uint8_t **desc, uint8_t **avail, uint8_t **used)
{
	setup_queue_n(0, 0, desc, avail, used);
}

static void put_desc(uint8_t *desc, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	memcpy(desc + 16 * i, &addr, 8);
	memcpy(desc + 16 * i + 8, &len, 4);
	memcpy(desc + 16 * i + 12, &flags, 2);
	memcpy(desc + 16 * i + 14, &next, 2);
}

static void kick_q(uint8_t *avail, uint16_t head, unsigned q)
{
	uint16_t idx;

	memcpy(&idx, avail + 2, 2);
	memcpy(avail + 4 + 2 * (idx % 8), &head, 2);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	idx++;
	memcpy(avail + 2, &idx, 2);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	wr(REG_NOTIFY, q);
}

static void kick(uint8_t *avail, uint16_t head)
{
	kick_q(avail, head, 0);
}

static int wait_for(int (*cond)(void *), void *arg)
{
	for (int i = 0; i < 2000; i++) {
		struct timespec ts = {0, 1000000};

		if (cond(arg))
			return 1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int needs_reset(void *arg)
{
	(void)arg;
	return (rd(REG_STATUS) & 64) != 0;
}

static int used_moved(void *used)
{
	uint16_t idx;

	memcpy(&idx, (uint8_t *)used + 2, 2);
	return idx != 0;
}

static uint16_t used_idx(const uint8_t *used)
{
	uint16_t idx;

	memcpy(&idx, used + 2, 2);
	return idx;
}

/* virtio-net's transmit queue (1), CSUM negotiated: bad frames, each in
 * its own one-descriptor chain, then a good one; the device must drop and
 * count the bad ones, not break, and send the good one. */
static int net_tx(void)
{
	uint8_t *desc, *avail, *used, *buf;
	uint64_t pbuf;
	/* virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start,
	 * csum_offset, num_buffers (little endian). */
	static const uint8_t bad_hdrs[4][12] = {
	    {0, 1, 54, 0, 0xff, 0xff},	    /* TCPV4 GSO, not offered */
	    {0x80},			    /* an unknown flag */
	    {1, 0, 0, 0, 0, 0, 0x60, 0xea}, /* csum_start past the frame */
	    {1, 0, 0, 0, 0, 0, 14, 0, 0x60, 0xea}, /* csum_offset past it */
	};
	/* ARP: who has 10.0.2.2, tell 10.0.2.15, from 52:54:00:12:34:56. */
	static const uint8_t arp[42] = {
	    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34,
	    0x56, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6,    4,	  0x00, 0x01,
	    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10,   0,    2,	  15,	0,
	    0,	  0,	0,    0,    0,	  10,	0,    2,    2};
	unsigned i, n = 0;

	setup_queue_n(1, 1 /* CSUM */, &desc, &avail, &used);
	buf = phys_page(&pbuf);
	for (i = 0; i < 4; i++, n++) {
		memcpy(buf + 512 * i, bad_hdrs[i], 12);
		memcpy(buf + 512 * i + 12, arp, sizeof(arp));
		put_desc(desc, i, pbuf + 512 * i, 12 + sizeof(arp), 0, 0);
		kick_q(avail, (uint16_t)i, 1);
	}
	/* Shorter than the header; larger than any frame (4000 bytes, the
	 * rest of the page). */
	put_desc(desc, 4, pbuf + 2048, 8, 0, 0);
	kick_q(avail, 4, 1);
	put_desc(desc, 5, pbuf, 4000, 0, 0);
	kick_q(avail, 5, 1);
	n += 2;
	/* The good one. */
	memset(buf + 3072, 0, 12);
	memcpy(buf + 3072 + 12, arp, sizeof(arp));
	put_desc(desc, 6, pbuf + 3072, 12 + sizeof(arp), 0, 0);
	kick_q(avail, 6, 1);
	n++;
	for (i = 0; i < 2000 && used_idx(used) != n; i++) {
		struct timespec ts = {0, 1000000};

		nanosleep(&ts, NULL);
	}
	printf("nettx used %u needs-reset: %s\n", used_idx(used),
	       needs_reset(NULL) ? "yes" : "no");
	/* A transmit buffer the device would have to write: the driver
	 * broke the protocol, and the device says so. */
	put_desc(desc, 7, pbuf, 64, 2 /* WRITE */, 0);
	kick_q(avail, 7, 1);
	printf("nettx-write needs-reset: %s\n",
	       wait_for(needs_reset, NULL) ? "yes" : "no");
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t *desc, *avail, *used;
	uint64_t base;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: see the source\n");
		return 2;
	}
	base = strtoull(argv[2], NULL, 0);
	fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		perror("/dev/mem");
		return 1;
	}
	regs = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)base);
	if (regs == MAP_FAILED) {
		perror("mmap /dev/mem");
		return 1;
	}
	if (!strcmp(argv[1], "garbage") && argc == 5) {
		unsigned seed = (unsigned)strtoul(argv[3], NULL, 0);
		unsigned long n = strtoul(argv[4], NULL, 0);

		srand(seed);
		for (unsigned long i = 0; i < n; i++) {
			unsigned off = ((unsigned)rand() % 0x200) & ~3u;
			uint32_t v =
			    (uint32_t)rand() ^ ((uint32_t)rand() << 16);

			/* Small values reach more states than random ones. */
			if (rand() % 2)
				v &= 0xff;
			if (rand() % 3 == 0)
				(void)rd(off);
			else
				wr(off, v);
		}
		printf("garbage done: status 0x%x\n", rd(REG_STATUS));
		return 0;
	}
	if (!strcmp(argv[1], "loop")) {
		setup_queue(&desc, &avail, &used);
		/* Descriptor 0 points at itself: a chain with no end. */
		put_desc(desc, 0, 0x100000, 16, 1 /* NEXT */, 0);
		kick(avail, 0);
		printf("needs-reset: %s\n",
		       wait_for(needs_reset, NULL) ? "yes" : "no");
		printf("config interrupt: %s\n",
		       rd(REG_INT_STATUS) & 2 ? "yes" : "no");
		wr(REG_INT_ACK, rd(REG_INT_STATUS));
		return 0;
	}
	if (!strcmp(argv[1], "getid")) {
		uint64_t phdr, pbuf;
		uint8_t *hdr = phys_page(&phdr), *buf = phys_page(&pbuf);
		uint32_t type = 8; /* VIRTIO_BLK_T_GET_ID */

		setup_queue(&desc, &avail, &used);
		memcpy(hdr, &type, 4);
		put_desc(desc, 0, phdr, 16, 1, 1);
		put_desc(desc, 1, pbuf, 20, 1 | 2 /* NEXT | WRITE */, 2);
		put_desc(desc, 2, pbuf + 64, 1, 2, 0);
		buf[64] = 0xee;
		kick(avail, 0);
		if (!wait_for(used_moved, used)) {
			printf("id: no answer (status 0x%x)\n", rd(REG_STATUS));
			return 1;
		}
		printf("id: %.20s status %u\n", (char *)buf, buf[64]);
		wr(REG_STATUS, 0);
		return 0;
	}
	if (!strcmp(argv[1], "write")) {
		uint64_t phdr, pbuf;
		uint8_t *hdr = phys_page(&phdr), *buf = phys_page(&pbuf);
		uint32_t type = 1; /* VIRTIO_BLK_T_OUT, sector 0 */

		setup_queue(&desc, &avail, &used);
		memcpy(hdr, &type, 4);
		memset(buf, 0xab, 512);
		put_desc(desc, 0, phdr, 16, 1, 1);
		put_desc(desc, 1, pbuf, 512, 1, 2);
		put_desc(desc, 2, pbuf + 1024, 1, 2, 0);
		buf[1024] = 0xee;
		kick(avail, 0);
		if (!wait_for(used_moved, used)) {
			printf("write: no answer (status 0x%x)\n",
			       rd(REG_STATUS));
			return 1;
		}
		printf("write status %u\n", buf[1024]);
		wr(REG_STATUS, 0);
		return 0;
	}
	if (!strcmp(argv[1], "nettx"))
		return net_tx();
	fprintf(stderr, "usage: see the source\n");
	return 2;
}
