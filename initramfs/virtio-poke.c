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

/* Reset and negotiate VERSION_1 only, then queue 0 with 8 entries. */
static void setup_queue(uint8_t **desc, uint8_t **avail, uint8_t **used)
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
	wr(REG_DRV_FEAT, 0);
	wr(REG_STATUS, 1 | 2 | 8);
	wr(REG_QUEUE_SEL, 0);
	wr(REG_QUEUE_NUM, 8);
	set64(REG_DESC_LO, pd);
	set64(REG_AVAIL_LO, pa);
	set64(REG_USED_LO, pu);
	wr(REG_QUEUE_READY, 1);
	wr(REG_STATUS, 1 | 2 | 8 | 4);
	printf("status after setup: 0x%x ready %u\n", rd(REG_STATUS),
	       rd(REG_QUEUE_READY));
}

static void put_desc(uint8_t *desc, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	memcpy(desc + 16 * i, &addr, 8);
	memcpy(desc + 16 * i + 8, &len, 4);
	memcpy(desc + 16 * i + 12, &flags, 2);
	memcpy(desc + 16 * i + 14, &next, 2);
}

static void kick(uint8_t *avail, uint16_t head)
{
	uint16_t idx;

	memcpy(&idx, avail + 2, 2);
	memcpy(avail + 4 + 2 * (idx % 8), &head, 2);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	idx++;
	memcpy(avail + 2, &idx, 2);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	wr(REG_NOTIFY, 0);
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
	fprintf(stderr, "usage: see the source\n");
	return 2;
}
