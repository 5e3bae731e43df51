// SPDX-License-Identifier: MIT
/*
 * virtio-blk in a snapshot: the transport's state, the drive's identity
 * (image path and size, read-only, overlay or not) and, for a drive with
 * an overlay, a copy of the overlay as it is once every request in
 * flight has finished.  A drive that writes into its image directly
 * cannot be snapshotted: the image goes on changing under the snapshot.
 *
 * The restored VM opens its own copy of the overlay (the front end puts
 * it in place), whose header names the base's size and fingerprint, so
 * a base image changed since the snapshot is refused when the drive is
 * opened; here the drive must also be the snapshot's size and kind.
 */
#include <errno.h>
#include <string.h>

#include "devices/blk/cow.h"
#include "devices/blk/virtio_blk.h"
#include "vmm/base/file_copy.h"
#include "vmm/base/log.h"
#include "vmm/base/snap.h"

#define BLK_SNAP_LAYOUT 1

int virtio_blk_snapshot_files(struct virtio_blk *b)
{
	if (b->disk.cow)
		return 1;
	if (!b->disk.read_only) {
		log_errx("snapshot: drive %s is written in place (give it an "
			 "overlay, or make it read-only)",
			 b->disk.path);
		return -EINVAL;
	}
	return 0;
}

int virtio_blk_save(struct virtio_blk *b, struct snap_writer *w, int file_fd)
{
	/* A request the rate limits hold was taken from the ring: it goes
	 * back there in the snapshot, and runs here as it would have. */
	uint16_t held = b->held ? 1 : 0;
	int ret;

	pthread_mutex_lock(&b->vdev.lock);
	/* Every completion lands in guest memory and the used ring before
	 * either is saved. */
	blk_aio_drain(&b->aio);
	/* And the driver is told (the drain completes requests without
	 * raising their interrupt), so that the saved InterruptStatus
	 * makes a restored VM look at them. */
	if (virtio_dev_live(&b->vdev) && b->vdev.queues[0].ready)
		virtio_dev_queue_done(&b->vdev, 0);
	if (b->disk.cow) {
		ret = file_fd >= 0 ? copy_sparse(b->disk.write_fd, file_fd)
				   : -EBADF;
		if (ret) {
			log_err(ret, "snapshot: copying the overlay of %s",
				b->disk.path);
			goto out;
		}
	}
	virtio_dev_save(&b->vdev, w, &held);
	snap_put_u32(w, BLK_SNAP_LAYOUT);
	snap_put_str(w, b->disk.path);
	snap_put_u64(w, b->disk.size);
	snap_put_u8(w, b->disk.read_only);
	snap_put_u8(w, b->disk.cow != NULL);
	ret = 0;
out:
	pthread_mutex_unlock(&b->vdev.lock);
	return ret;
}

int virtio_blk_restore(struct virtio_blk *b, struct snap_reader *r)
{
	char path[4096];
	uint32_t layout;
	uint64_t size;
	uint8_t ro, cow;
	int ret = virtio_dev_restore(&b->vdev, r);

	if (ret)
		return ret;
	layout = snap_get_u32(r);
	snap_get_str(r, path, sizeof(path));
	size = snap_get_u64(r);
	ro = snap_get_u8(r);
	cow = snap_get_u8(r);
	if (snap_reader_done(r) || layout != BLK_SNAP_LAYOUT) {
		log_errx("snapshot: drive %s: bad drive state", b->disk.path);
		return -EINVAL;
	}
	if (size != b->disk.size) {
		log_errx("snapshot: drive %s is %llu bytes; the snapshot's "
			 "was %llu",
			 b->disk.path, (unsigned long long)b->disk.size,
			 (unsigned long long)size);
		return -EINVAL;
	}
	if (ro != b->disk.read_only || cow != (b->disk.cow != NULL)) {
		log_errx("snapshot: drive %s is not set up as in the snapshot "
			 "(read-only or overlay differ)",
			 b->disk.path);
		return -EINVAL;
	}
	return 0;
}
