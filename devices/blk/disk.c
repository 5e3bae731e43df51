// SPDX-License-Identifier: MIT
#include "devices/blk/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vmm/base/log.h"
#include "devices/blk/cow.h"

#define ZERO_CHUNK   (64u << 10)
#define READ_EXTENTS 64 /* mapped per step of a synchronous read */

/*
 * Open an O_DIRECT twin of the file open as ref_fd (by path again, so it
 * must still be the same file: one swapped in meanwhile is not used); -1
 * where the file system refuses O_DIRECT.
 */
static int open_direct(const char *path, int ref_fd, int flags, unsigned *align)
{
	struct statx stx;
	struct stat a, b;
	int fd = open(path, flags | O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &a) < 0 || fstat(ref_fd, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		close(fd);
		return -1;
	}
	/* Linux >= 6.1 tells the alignment; otherwise assume a page, which
	 * covers every logical block size in use. */
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		unsigned al = stx.stx_dio_offset_align > stx.stx_dio_mem_align
				  ? stx.stx_dio_offset_align
				  : stx.stx_dio_mem_align;

		if (al > *align)
			*align = al;
	} else if (*align < 4096) {
		*align = 4096;
	}
	return fd;
}

/*
 * Open one of a drive's files: it must be a regular file, and it is
 * locked against other VMs (and other drives of this one) with flock:
 * lock is LOCK_EX for the file the drive writes to, LOCK_SH for one it
 * only reads, so a file written by one is used by no other, while any
 * number may share a base or a read-only image.  A file created here
 * (O_CREAT: overlays) is private to the user (0600), and a path that is
 * a symbolic link is refused where flags has O_NOFOLLOW.  Returns the fd,
 * or negative errno with one line reported.
 */
static int open_image(const char *path, int flags, int lock, const char *what,
		      uint64_t *size)
{
	struct stat st;
	int fd = open(path, flags | O_CLOEXEC, 0600);
	int err;

	if (fd < 0) {
		err = -errno;
		if (err == -ELOOP && (flags & O_NOFOLLOW))
			log_errx("%s %s is a symbolic link (refused: name the "
				 "file itself)",
				 what, path);
		else
			log_err(err, "cannot open %s %s", what, path);
		return err;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_errx("%s %s is not a regular file", what, path);
		err = -EINVAL;
		goto err_close;
	}
	if (flock(fd, lock | LOCK_NB) < 0) {
		err = -errno;
		if (err == -EWOULDBLOCK) {
			err = -EBUSY;
			if (lock == LOCK_EX)
				log_errx("%s %s is in use by another VM or "
					 "drive",
					 what, path);
			else
				log_errx("%s %s is being written by another "
					 "VM or drive",
					 what, path);
			goto err_close;
		}
		if (err != -ENOLCK && err != -EOPNOTSUPP) {
			log_err(err, "cannot lock %s %s", what, path);
			goto err_close;
		}
		/* A file system without flock: nothing to hold. */
		log_debug("%s %s: not locked (%s)", what, path, strerror(-err));
	}
	if (size)
		*size = (uint64_t)st.st_size;
	return fd;

err_close:
	close(fd);
	return err;
}

int disk_open(struct disk *d, const struct drive_config *cfg, unsigned index)
{
	bool writes_to_image = !cfg->read_only && !cfg->overlay;
	const char *why = NULL;
	int ret;

	memset(d, 0, sizeof(*d));
	d->fd = d->write_fd = d->direct_fd = d->write_direct_fd = -1;
	d->path = cfg->path;
	d->read_only = cfg->read_only;
	d->dio_align = 512;
	if (cfg->serial)
		snprintf(d->serial, sizeof(d->serial), "%s", cfg->serial);
	else
		snprintf(d->serial, sizeof(d->serial), "hutch-%u", index);

	ret = open_image(cfg->path, writes_to_image ? O_RDWR : O_RDONLY,
			 writes_to_image ? LOCK_EX : LOCK_SH, "disk image",
			 &d->size);
	if (ret < 0)
		return ret;
	d->fd = ret;
	if (d->size == 0 || d->size % BLK_SECTOR) {
		log_errx("disk image %s: size %llu is not a positive multiple "
			 "of %u bytes",
			 cfg->path, (unsigned long long)d->size, BLK_SECTOR);
		return -EINVAL;
	}
	d->direct_fd =
	    open_direct(cfg->path, d->fd, writes_to_image ? O_RDWR : O_RDONLY,
			&d->dio_align);
	if (writes_to_image) {
		d->write_fd = d->fd;
		d->write_direct_fd = d->direct_fd;
	}
	if (!cfg->overlay)
		return 0;

	/* Created if missing; never through a symbolic link, which could
	 * make hutch create or overwrite a file elsewhere. */
	ret = open_image(cfg->overlay, O_RDWR | O_CREAT | O_NOFOLLOW, LOCK_EX,
			 "overlay", NULL);
	if (ret < 0)
		return ret;
	d->write_fd = ret;
	d->cow = calloc(1, sizeof(*d->cow));
	if (!d->cow) {
		log_errx("overlay %s: out of memory", cfg->overlay);
		return -ENOMEM;
	}
	ret = cow_open(d->cow, d->write_fd, d->fd, d->size, cfg->path, &why);
	if (ret) {
		log_errx("overlay %s: %s", cfg->overlay, why);
		free(d->cow);
		d->cow = NULL;
		return ret;
	}
	d->write_direct_fd = open_direct(cfg->overlay, d->write_fd,
					 O_RDWR | O_NOFOLLOW, &d->dio_align);
	return 0;
}

void disk_close(struct disk *d)
{
	int fds[] = {d->fd, d->write_fd, d->direct_fd, d->write_direct_fd};

	if (d->cow) {
		cow_close(d->cow);
		free(d->cow);
		d->cow = NULL;
	}
	for (unsigned i = 0; i < 4; i++) {
		bool dup = false;

		for (unsigned j = 0; j < i; j++)
			dup |= fds[j] == fds[i];
		if (fds[i] >= 0 && !dup)
			close(fds[i]);
	}
	d->fd = d->write_fd = d->direct_fd = d->write_direct_fd = -1;
}

unsigned iov_slice(const struct iovec *iov, unsigned niov, uint64_t skip,
		   uint64_t len, struct iovec *out, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < niov && len && n < max; i++) {
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		out[n++] = (struct iovec){.iov_base =
					      (uint8_t *)iov[i].iov_base + skip,
					  .iov_len = l};
		len -= l;
		skip = 0;
	}
	return n;
}

static int rw_full(int fd, bool write, struct iovec *iov, unsigned niov,
		   uint64_t off)
{
	while (niov) {
		ssize_t n = write ? pwritev(fd, iov, (int)niov, (off_t)off)
				  : preadv(fd, iov, (int)niov, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		off += (uint64_t)n;
		while (niov && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			niov--;
		}
		if (niov) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int disk_map_read(const struct disk *d, uint64_t off, uint64_t len, bool direct,
		  struct disk_extent *out, unsigned max)
{
	struct cow_extent ext[READ_EXTENTS];
	int base_fd = direct ? d->direct_fd : d->fd;
	int ov_fd = direct ? d->write_direct_fd : d->write_fd;
	int n;

	if (max == 0 || len == 0)
		return 0;
	if (!d->cow) {
		if (base_fd < 0)
			return -EOPNOTSUPP;
		out[0] = (struct disk_extent){
		    .fd = base_fd, .file_offset = off, .len = len};
		return 1;
	}
	if (max > READ_EXTENTS)
		max = READ_EXTENTS;
	n = cow_map_read(d->cow, off, len, ext, max);
	for (int i = 0; i < n; i++) {
		int fd = ext[i].in_overlay ? ov_fd : base_fd;

		if (fd < 0)
			return -EOPNOTSUPP;
		out[i] = (struct disk_extent){.fd = fd,
					      .file_offset = ext[i].file_offset,
					      .len = ext[i].len};
	}
	return n;
}

int disk_write_begin(struct disk *d, uint64_t off, uint64_t len, uint64_t *pos)
{
	int ret;

	*pos = off;
	if (!d->cow)
		return 0;
	ret = cow_write_begin(d->cow, d->fd, off, len);
	if (ret)
		return ret;
	*pos = cow_data_pos(d->cow, off);
	return 0;
}

int disk_write_end(struct disk *d, uint64_t off, uint64_t len, bool ok)
{
	if (!d->cow)
		return 0;
	return cow_write_end(d->cow, off, len, ok);
}

int disk_read_sync(struct disk *d, const struct iovec *iov, unsigned niov,
		   uint64_t off, uint64_t len)
{
	struct iovec part[VIRTQ_MAX_SIZE];
	struct disk_extent ext[READ_EXTENTS];
	uint64_t done = 0; /* bytes of the request read so far */
	int n, ret;

	/* Any number of extents (clusters that alternate between base and
	 * overlay): mapped and read a batch at a time. */
	while (done < len) {
		n = disk_map_read(d, off + done, len - done, false, ext,
				  READ_EXTENTS);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			unsigned k = iov_slice(iov, niov, done, ext[i].len,
					       part, VIRTQ_MAX_SIZE);

			ret = rw_full(ext[i].fd, false, part, k,
				      ext[i].file_offset);
			if (ret)
				return ret;
			done += ext[i].len;
		}
	}
	return 0;
}

int disk_write_sync(struct disk *d, const struct iovec *iov, unsigned niov,
		    uint64_t off)
{
	struct iovec part[VIRTQ_MAX_SIZE];
	uint64_t len = 0, pos;
	int ret, end;

	for (unsigned i = 0; i < niov; i++)
		len += iov[i].iov_len;
	ret = disk_write_begin(d, off, len, &pos);
	if (ret)
		return ret;
	niov = iov_slice(iov, niov, 0, len, part, VIRTQ_MAX_SIZE);
	ret = rw_full(d->write_fd, true, part, niov, pos);
	end = disk_write_end(d, off, len, ret == 0);
	return ret ? ret : end;
}

int disk_flush(struct disk *d)
{
	if (d->write_fd < 0)
		return 0;
	return fdatasync(d->write_fd) < 0 ? -errno : 0;
}

static int write_zero_bytes(int fd, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[ZERO_CHUNK];

	while (len) {
		size_t n = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;
		struct iovec iov = {.iov_base = (void *)zeros, .iov_len = n};
		int ret = rw_full(fd, true, &iov, 1, off);

		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

int disk_discard(struct disk *d, uint64_t off, uint64_t len)
{
	uint64_t cs, first, end;

	if (!d->cow) {
		/* Best effort: a file system that cannot punch holes keeps
		 * the data, which DISCARD allows. */
		if (fallocate(d->write_fd,
			      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len) < 0 &&
		    errno != EOPNOTSUPP)
			return -errno;
		return 0;
	}
	/* Only whole clusters can leave the overlay's data; they then read
	 * as zeros, never as the base's old contents. */
	cs = d->cow->cluster_size;
	first = (off + cs - 1) / cs;
	end = (off + len) / cs;
	if ((off + len) == d->size)
		end = (d->size + cs - 1) / cs;
	if (end <= first)
		return 0;
	return disk_write_zeroes(d, first * cs,
				 (end * cs > d->size ? d->size : end * cs) -
				     first * cs);
}

static int zero_range(int fd, uint64_t pos, uint64_t len)
{
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)pos, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	return write_zero_bytes(fd, pos, len);
}

int disk_write_zeroes(struct disk *d, uint64_t off, uint64_t len)
{
	uint64_t pos;
	int ret, end;

	ret = disk_write_begin(d, off, len, &pos);
	if (ret)
		return ret;
	ret = zero_range(d->write_fd, pos, len);
	end = disk_write_end(d, off, len, ret == 0);
	return ret ? ret : end;
}
