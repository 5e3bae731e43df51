// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: a hostile guest driver against the virtqueue walker
 * and the virtio-blk request parser.
 *
 * The input is ring parameters followed by the contents of fake guest
 * RAM (two regions with a hole between them).  The target starts a
 * queue on it, pops chains until the queue is empty or refused, parses
 * each as a block request, touches every byte the request would do I/O
 * on, writes the status and pushes the chain back, as the device would.
 * Besides AddressSanitizer's checks, it aborts if any buffer, iovec or
 * status pointer leaves the guest RAM region it must lie in, or if a
 * chain or request breaks the invariants virtq.h and blk_req.h promise.
 *
 * Input layout (little endian):
 *   0   u8  log2 of the queue size (mod 9: 1..256)
 *   1   u8  bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 read-only disk
 *   2   u16 descriptor table address / 16
 *   4   u16 avail ring address / 2
 *   6   u16 used ring address / 4
 *   8   u32 disk capacity in sectors
 *   12  RAM contents from guest address 0 (region 0, then region 1)
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/blk/blk_req.h"
#include "devices/virtio/virtq.h"
#include "tests/support/fake_ring.h"
#include "vmm/base/le.h"

#define R0_GPA	0x0ull
#define R0_SIZE 0x10000ull /* 64 KiB */
#define R1_GPA	0x20000ull /* after a 64 KiB hole */
#define R1_SIZE 0x4000ull
#define HDR_LEN 12

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fake_mem fm;
static struct virtq q;
static struct virtq_chain ch;
static struct blk_req req;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

/* [p, p + len) inside one region's host memory. */
static bool in_one_region(const uint8_t *p, uint64_t len)
{
	for (unsigned i = 0; i < fm.mem.nr_regions; i++) {
		const struct guest_region *r = &fm.mem.regions[i];

		if (p >= r->hva && p <= r->hva + r->size &&
		    len <= (uint64_t)(r->hva + r->size - p))
			return true;
	}
	return false;
}

/* [p, p + len) inside one buffer of the chain (of the given direction). */
static bool in_one_buf(const uint8_t *p, uint64_t len, bool writable)
{
	for (unsigned i = 0; i < ch.nbufs; i++) {
		const struct virtq_buf *b = &ch.bufs[i];

		if (b->writable == writable && p >= b->hva &&
		    p <= b->hva + b->len &&
		    len <= (uint64_t)(b->hva + b->len - p))
			return true;
	}
	return false;
}

static void check_chain(void)
{
	uint64_t rlen = 0, wlen = 0;

	CHECK(ch.head < q.size);
	CHECK(ch.nbufs >= 1 && ch.nbufs <= VIRTQ_MAX_SIZE);
	CHECK(ch.nreadable <= ch.nbufs);
	for (unsigned i = 0; i < ch.nbufs; i++) {
		const struct virtq_buf *b = &ch.bufs[i];

		CHECK(b->writable == (i >= ch.nreadable));
		CHECK(in_one_region(b->hva, b->len ? b->len : 1));
		if (b->writable)
			wlen += b->len;
		else
			rlen += b->len;
	}
	CHECK(rlen == ch.readable_len && wlen == ch.writable_len);
	CHECK(rlen + wlen <= UINT32_MAX);
}

/* Do what the device would with the request's buffers: read what it
 * would write to disk, fill what it would read from disk. */
static uint32_t touch_request(void)
{
	uint64_t total = 0;
	volatile uint8_t sink = 0;

	for (unsigned i = 0; i < req.niov; i++) {
		uint8_t *p = req.iov[i].iov_base;
		size_t n = req.iov[i].iov_len;
		bool dev_writes = req.type != VIRTIO_BLK_T_OUT;

		CHECK(n > 0);
		CHECK(in_one_buf(p, n, dev_writes));
		if (dev_writes)
			memset(p, 0x5a, n);
		else
			for (size_t k = 0; k < n; k++)
				sink ^= p[k];
		total += n;
	}
	(void)sink;
	switch (req.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		CHECK(total == req.len && req.len % BLK_SECTOR == 0);
		CHECK(req.offset / BLK_SECTOR == req.sector);
		break;
	case VIRTIO_BLK_T_GET_ID:
		CHECK(total == req.len && req.len <= BLK_ID_LEN);
		break;
	default:
		CHECK(req.niov == 0);
		break;
	}
	return req.type == VIRTIO_BLK_T_IN || req.type == VIRTIO_BLK_T_GET_ID
		   ? (uint32_t)total
		   : 0;
}

static void run_request(uint64_t cap, bool read_only)
{
	uint8_t verdict = VIRTIO_BLK_S_OK;
	uint32_t written = 0;
	uint8_t hdr[BLK_HDR_LEN];

	/* The chain reader agrees with the walker's lengths. */
	CHECK(virtq_chain_read(&ch, 0, hdr, sizeof(hdr)) ==
	      (ch.readable_len >= sizeof(hdr) ? 0 : -EFAULT));
	if (blk_req_parse(&ch, cap, read_only, &req)) {
		/* Not a request: the device would break, not push. */
		CHECK(ch.readable_len < BLK_HDR_LEN ||
		      !ch.bufs[ch.nbufs - 1].writable ||
		      ch.bufs[ch.nbufs - 1].len == 0);
		return;
	}
	CHECK(req.status && in_one_buf(req.status, 1, true));
	CHECK(req.status ==
	      ch.bufs[ch.nbufs - 1].hva + ch.bufs[ch.nbufs - 1].len - 1);
	if (req.verdict == BLK_NO_STATUS_YET) {
		if (req.type == VIRTIO_BLK_T_IN || req.type == VIRTIO_BLK_T_OUT)
			CHECK(req.offset <= cap && req.len <= cap - req.offset);
		if (req.type == VIRTIO_BLK_T_OUT ||
		    req.type == VIRTIO_BLK_T_DISCARD ||
		    req.type == VIRTIO_BLK_T_WRITE_ZEROES)
			CHECK(!read_only);
		if (req.type == VIRTIO_BLK_T_DISCARD ||
		    req.type == VIRTIO_BLK_T_WRITE_ZEROES)
			CHECK(req.offset <= cap && req.len <= cap - req.offset);
		written = touch_request();
	} else {
		verdict = req.verdict;
		CHECK(verdict == VIRTIO_BLK_S_IOERR ||
		      verdict == VIRTIO_BLK_S_UNSUPP);
	}
	*req.status = verdict;
	virtq_push(&q, ch.head, written + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t cap;
	bool read_only;
	unsigned budget;

	if (!fm.host) {
		struct guest_region r[2] = {
		    {.gpa = R0_GPA, .size = R0_SIZE},
		    {.gpa = R1_GPA, .size = R1_SIZE},
		};

		fake_mem_init_regions(&fm, r, 2);
	}
	if (size < HDR_LEN)
		return 0;
	memset(fm.host, 0, fm.len);
	memcpy(fm.host, data + HDR_LEN,
	       size - HDR_LEN < fm.len ? size - HDR_LEN : fm.len);

	memset(&q, 0, sizeof(q));
	q.size = (uint16_t)(1u << (data[0] % 9));
	q.event_idx = data[1] & 1;
	q.indirect = data[1] & 2;
	read_only = data[1] & 4;
	/* Addresses over the RAM, the hole and a little beyond. */
	q.desc_gpa = (get_le16(data + 2) * 16ull) % (R1_GPA + 2 * R1_SIZE);
	q.avail_gpa = (get_le16(data + 4) * 2ull) % (R1_GPA + 2 * R1_SIZE);
	q.used_gpa = (get_le16(data + 6) * 4ull) % (R1_GPA + 2 * R1_SIZE);
	cap = (uint64_t)get_le32(data + 8) * BLK_SECTOR;
	if (virtq_start(&q, &fm.mem))
		return 0;

	/* At most a queue's worth of chains, twice: the driver may have
	 * set avail->idx anywhere. */
	for (budget = 2u * q.size + 2; budget; budget--) {
		int ret = virtq_pop(&q, &ch);

		if (ret == 0)
			break;
		if (ret < 0) {
			CHECK(ret == -EPROTO && q.error);
			break;
		}
		CHECK(ret == 1);
		check_chain();
		run_request(cap, read_only);
		(void)virtq_should_notify(&q);
	}
	return 0;
}
