// SPDX-License-Identifier: MIT
#include "devices/blk/blk_req.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "vmm/base/le.h"

/* Collect the iovecs for bytes [skip, skip + len) of bufs[from, to). */
static void gather(struct blk_req *r, const struct virtq_chain *c,
		   unsigned from, unsigned to, uint64_t skip, uint64_t len)
{
	r->niov = 0;
	for (unsigned i = from; i < to && len; i++) {
		const struct virtq_buf *b = &c->bufs[i];
		uint64_t n;

		if (skip >= b->len) {
			skip -= b->len;
			continue;
		}
		n = b->len - skip;
		if (n > len)
			n = len;
		r->iov[r->niov++] =
		    (struct iovec){.iov_base = b->hva + skip, .iov_len = n};
		len -= n;
		skip = 0;
	}
}

/* [off, off + len) inside a disk of cap bytes, without overflow. */
static bool in_range(uint64_t off, uint64_t len, uint64_t cap)
{
	return off <= cap && len <= cap - off;
}

static void parse_dz(struct blk_req *r, const struct virtq_chain *c,
		     uint64_t cap)
{
	uint8_t seg[BLK_DZ_SEG_LEN];
	uint64_t sector;
	uint32_t n;

	/* We offer one segment per request (max_*_seg = 1). */
	if (c->readable_len != BLK_HDR_LEN + BLK_DZ_SEG_LEN ||
	    virtq_chain_read(c, BLK_HDR_LEN, seg, sizeof(seg))) {
		r->verdict = VIRTIO_BLK_S_IOERR;
		return;
	}
	sector = get_le64(seg);
	n = get_le32(seg + 8);
	r->dz_flags = get_le32(seg + 12);
	if ((r->type == VIRTIO_BLK_T_DISCARD && r->dz_flags) ||
	    (r->dz_flags & ~VIRTIO_BLK_WZ_UNMAP)) {
		r->verdict = VIRTIO_BLK_S_UNSUPP;
		return;
	}
	if (sector > UINT64_MAX / BLK_SECTOR ||
	    !in_range(sector * BLK_SECTOR, (uint64_t)n * BLK_SECTOR, cap)) {
		r->verdict = VIRTIO_BLK_S_IOERR;
		return;
	}
	r->offset = sector * BLK_SECTOR;
	r->len = (uint64_t)n * BLK_SECTOR;
}

int blk_req_parse(const struct virtq_chain *c, uint64_t cap, bool read_only,
		  struct blk_req *r)
{
	uint8_t hdr[BLK_HDR_LEN];
	const struct virtq_buf *last;
	uint64_t data_in, data_out;

	memset(r, 0, offsetof(struct blk_req, iov));
	r->niov = 0;
	r->status = NULL;
	if (c->nbufs == 0 || c->readable_len < BLK_HDR_LEN ||
	    virtq_chain_read(c, 0, hdr, sizeof(hdr)))
		return -EPROTO;
	last = &c->bufs[c->nbufs - 1];
	if (!last->writable || last->len == 0)
		return -EPROTO;
	r->status = last->hva + last->len - 1;
	r->type = get_le32(hdr);
	r->sector = get_le64(hdr + 8);
	r->verdict = BLK_NO_STATUS_YET;
	/* Data the device may read (after the header) or write (before the
	 * status byte). */
	data_out = c->readable_len - BLK_HDR_LEN;
	data_in = c->writable_len - 1;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool in = r->type == VIRTIO_BLK_T_IN;

		r->len = in ? data_in : data_out;
		if ((in ? data_out : data_in) != 0 || r->len % BLK_SECTOR ||
		    r->sector > UINT64_MAX / BLK_SECTOR ||
		    !in_range(r->sector * BLK_SECTOR, r->len, cap)) {
			r->verdict = VIRTIO_BLK_S_IOERR;
			break;
		}
		if (!in && read_only) {
			r->verdict = VIRTIO_BLK_S_IOERR;
			break;
		}
		r->offset = r->sector * BLK_SECTOR;
		if (in)
			gather(r, c, c->nreadable, c->nbufs, 0, r->len);
		else
			gather(r, c, 0, c->nreadable, BLK_HDR_LEN, r->len);
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		break;
	case VIRTIO_BLK_T_GET_ID:
		if (data_out != 0) {
			r->verdict = VIRTIO_BLK_S_IOERR;
			break;
		}
		r->len = data_in < BLK_ID_LEN ? data_in : BLK_ID_LEN;
		gather(r, c, c->nreadable, c->nbufs, 0, r->len);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (read_only) {
			r->verdict = VIRTIO_BLK_S_IOERR;
			break;
		}
		parse_dz(r, c, cap);
		break;
	default:
		r->verdict = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	return 0;
}
