// SPDX-License-Identifier: MIT
#include "vmm/base/file_copy.h"

#include <errno.h>
#include <unistd.h>

/* Bytes [off, end) of src to the same place in dst. */
static int copy_range(int src, int dst, off_t off, off_t end)
{
	while (off < end) {
		off_t in = off, out = off;
		ssize_t n = copy_file_range(src, &in, dst, &out,
					    (size_t)(end - off), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the source shrank under us */
		off += n;
	}
	return 0;
}

int copy_sparse(int src, int dst)
{
	off_t size = lseek(src, 0, SEEK_END), off = 0;

	if (size < 0)
		return -errno;
	if (ftruncate(dst, size) < 0)
		return -errno;
	while (off < size) {
		off_t data = lseek(src, off, SEEK_DATA), hole;
		int ret;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (data < 0)
			return -errno;
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if (hole > size)
			hole = size;
		ret = copy_range(src, dst, data, hole);
		if (ret)
			return ret;
		off = hole;
	}
	return 0;
}
