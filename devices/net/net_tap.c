// SPDX-License-Identifier: MIT
/*
 * The `tap` backend: guest frames to and from a host TAP device, each
 * behind a virtio-net header (IFF_VNET_HDR, 12 bytes: the mergeable
 * buffers' layout).  From the guest: TCP segmentation frames (HOST_TSO4/
 * 6, up to 64 KiB, checked by the policy like any frame) go to the TAP
 * with the guest's header, and the kernel segments them and completes
 * their checksums; other frames have had their checksums completed by
 * the device, and go with an empty header.  To the guest: the TAP's
 * offloads (TUNSETOFFLOAD) follow what the driver acked, so for a driver
 * with GUEST_CSUM and GUEST_TSO4/6 the kernel hands over partial
 * checksums and segmentation frames of up to 64 KiB, one read each
 * instead of one per MTU frame; their header goes on to the guest
 * (checked by the device).  Without, MTU-sized frames with complete
 * checksums.
 *
 * Backpressure: while the NIC's receive ring is full the TAP is not
 * polled for reading, so frames wait in the kernel's queue (and past its
 * length the kernel drops them, as a full NIC would); a frame the TAP
 * cannot take now (EAGAIN) is dropped and counted.
 */
#include "devices/net/net_tap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/net/net_backend.h"
#include "devices/net/virtio_net.h"
#include "vmm/base/evloop.h"
#include "vmm/base/log.h"

/* Frames read per wake-up before the thread looks at its queues. */
#define TAP_READ_BATCH 64

struct net_tap {
	struct net_backend be;
	int fd;
	bool created; /* by us: gone with the descriptor */
	bool dead;    /* the TAP went away: no more polling */
	char name[IFNAMSIZ];
	uint64_t tx_full, tx_errors, rx_errors;
	/* Frames hutch made, behind an empty header (reads go straight
	 * into the NIC's receive slots). */
	uint8_t buf[VIRTIO_NET_HDR_LEN + NET_FRAME_MAX + 64];
};

static struct net_tap *to_tap(struct net_backend *be)
{
	return container_of(be, struct net_tap, be);
}

static int tap_send(struct net_backend *be, const uint8_t *hdr,
		    const uint8_t *frame, size_t len)
{
	struct net_tap *t = to_tap(be);
	ssize_t n;

	if (!hdr || frame != hdr + VIRTIO_NET_HDR_LEN) {
		/* A frame hutch made: an empty header in front. */
		if (len > sizeof(t->buf) - VIRTIO_NET_HDR_LEN)
			return -EMSGSIZE;
		memset(t->buf, 0, VIRTIO_NET_HDR_LEN);
		memcpy(t->buf + VIRTIO_NET_HDR_LEN, frame, len);
		hdr = t->buf;
	}
	n = write(t->fd, hdr, VIRTIO_NET_HDR_LEN + len);
	if (n == (ssize_t)(VIRTIO_NET_HDR_LEN + len))
		return 0;
	if (n < 0 && errno == EAGAIN)
		t->tx_full++;
	else
		t->tx_errors++; /* EIO: the host side is down */
	return n < 0 ? -errno : -EIO;
}

static unsigned tap_poll_fill(struct net_backend *be, struct pollfd *pfd,
			      unsigned max, int *timeout_ms)
{
	struct net_tap *t = to_tap(be);

	(void)timeout_ms;
	if (t->dead || max == 0 || !virtio_net_rx_room(be->nic))
		return 0;
	pfd[0] = (struct pollfd){.fd = t->fd, .events = POLLIN};
	return 1;
}

static void tap_poll_done(struct net_backend *be, const struct pollfd *pfd,
			  unsigned n, bool error)
{
	struct net_tap *t = to_tap(be);

	if (error || n == 0 || !pfd[0].revents)
		return;
	if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
		log_errx("virtio-net: the TAP %s went away; the NIC has no "
			 "link from now on",
			 t->name);
		t->dead = true;
		return;
	}
	for (unsigned i = 0; i < TAP_READ_BATCH; i++) {
		struct iovec iov[2];
		ssize_t k;

		/* Into the NIC's next receive slot: a 64 KiB segment is
		 * copied once more only, into the guest. */
		if (!virtio_net_rx_place(be->nic, iov))
			break;
		k = readv(t->fd, iov, 2);
		if (k < 0 && errno == EAGAIN)
			break;
		if (k <= VIRTIO_NET_HDR_LEN) {
			t->rx_errors++;
			break;
		}
		/* Runt or bad frames are dropped and counted there. */
		virtio_net_rx_commit(be->nic, (size_t)k);
	}
}

static int tap_set_offloads(struct net_backend *be, uint64_t features)
{
	struct net_tap *t = to_tap(be);
	unsigned long off = 0;

	if (features & VIRTIO_NET_F_GUEST_CSUM) {
		off |= TUN_F_CSUM;
		/* Segmentation needs the checksum offload (as in virtio). */
		if (features & VIRTIO_NET_F_GUEST_TSO4)
			off |= TUN_F_TSO4;
		if (features & VIRTIO_NET_F_GUEST_TSO6)
			off |= TUN_F_TSO6;
	}
	if (ioctl(t->fd, TUNSETOFFLOAD, off) < 0) {
		int ret = -errno;

		log_err(ret, "virtio-net: the TAP %s's offloads", t->name);
		return ret;
	}
	log_debug("virtio-net: TAP %s offloads to the guest: 0x%lx", t->name,
		  off);
	return 0;
}

static void tap_print_stats(struct net_backend *be, FILE *out)
{
	struct net_tap *t = to_tap(be);

	fprintf(out,
		" tap=%s tap_created=%d tap_tx_full=%" PRIu64
		" tap_tx_errors=%" PRIu64 " tap_rx_errors=%" PRIu64,
		t->name, t->created, t->tx_full, t->tx_errors, t->rx_errors);
}

static void tap_destroy(struct net_backend *be)
{
	struct net_tap *t = to_tap(be);

	/* A TAP we created is not persistent: this close removes it. */
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

static const struct net_backend_ops tap_ops = {
    .name = "tap",
    .takes_gso = true,
    .set_offloads = tap_set_offloads,
    .send = tap_send,
    .poll_fill = tap_poll_fill,
    .poll_done = tap_poll_done,
    .print_stats = tap_print_stats,
    .destroy = tap_destroy,
};

/* Up, as `ip link set NAME up` would: a TAP we made is down at first. */
static int tap_bring_up(const char *name)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (s < 0)
		return -errno;
	memcpy(ifr.ifr_name, name, strnlen(name, IFNAMSIZ - 1));
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		ret = -errno;
	} else if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			ret = -errno;
	}
	close(s);
	return ret;
}

int net_tap_create(const char *name, struct net_backend **out)
{
	struct ifreq ifr = {0};
	struct net_tap *t;
	bool existed;
	int ret, hdr_len;

	if (!name[0] || strlen(name) >= IFNAMSIZ || strchr(name, '/')) {
		log_errx("--net tap=%s: expected an interface name of 1 to %d "
			 "characters",
			 name, IFNAMSIZ - 1);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->be.ops = &tap_ops;
	memcpy(t->name, name, strlen(name) + 1);
	existed = if_nametoindex(name) != 0;
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		ret = -errno;
		log_err(ret, "--net tap=%s: /dev/net/tun", name);
		goto fail;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		if (existed)
			log_err(ret,
				"--net tap=%s: cannot attach to it (not a "
				"TAP, in use, or another user's)",
				name);
		else
			log_err(ret,
				"--net tap=%s: no such TAP, and creating one "
				"needs CAP_NET_ADMIN (or make it first: "
				"tools/net-tap-setup)",
				name);
		goto fail;
	}
	hdr_len = VIRTIO_NET_HDR_LEN;
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		ret = -errno;
		log_err(ret, "--net tap=%s: its virtio-net header", name);
		goto fail;
	}
	t->created = !existed;
	if (t->created) {
		ret = tap_bring_up(name);
		if (ret) {
			log_err(ret, "--net tap=%s: bringing it up", name);
			goto fail;
		}
	}
	log_debug("virtio-net: TAP %s (%s)", name,
		  t->created ? "created, removed on exit" : "existing");
	*out = &t->be;
	return 0;
fail:
	tap_destroy(&t->be);
	return ret;
}
