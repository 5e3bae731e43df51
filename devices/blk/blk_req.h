/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk requests (virtio 1.x, 5.2.6), parsed from a descriptor chain
 * into a checked struct before any I/O happens: the header is readable,
 * the data buffers point the right way for the request type, lengths are
 * whole sectors, the range lies inside the disk without overflow, and the
 * status byte is writable.
 */
#ifndef HUTCH_BLK_REQ_H
#define HUTCH_BLK_REQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/virtio/virtq.h"

#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_WZ_UNMAP 1u

#define BLK_SECTOR	  512u
#define BLK_HDR_LEN	  16u
#define BLK_ID_LEN	  20u
#define BLK_DZ_SEG_LEN	  16u
#define BLK_NO_STATUS_YET 0xff

struct blk_req {
	uint32_t type;
	uint64_t sector; /* from the header (IN/OUT) */
	uint64_t offset; /* bytes: IN/OUT data, or DISCARD/WRITE_ZEROES range */
	uint64_t len;
	uint32_t dz_flags;
	/* IN: where to read into; OUT: what to write; GET_ID: the id. */
	struct iovec iov[VIRTQ_MAX_SIZE];
	unsigned niov;
	uint8_t *status; /* the request's last byte, device-writable */
	/* VIRTIO_BLK_S_* if the request is already decided (bad range,
	 * read-only disk, unsupported type), else BLK_NO_STATUS_YET. */
	uint8_t verdict;
};

/*
 * 0 with *r filled (r->verdict says whether I/O is needed), or -EPROTO if
 * the chain cannot be a request at all (no readable header or no writable
 * status byte): the driver broke the protocol.
 */
int blk_req_parse(const struct virtq_chain *c, uint64_t capacity_bytes,
		  bool read_only, struct blk_req *r)
    __attribute__((warn_unused_result));

#endif
