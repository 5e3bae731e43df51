// SPDX-License-Identifier: MIT
/*
 * A NIC's thread: one poll loop over the NIC's epoll (its queue
 * notifications), its stop eventfd and its backend's descriptors.  The
 * backend and the receive ring live on this thread alone; the device
 * lock is taken for each notification (by the transport) and for the
 * receive pump after the backend ran.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "devices/net/net_backend.h"
#include "devices/net/virtio_net.h"
#include "vmm/base/log.h"
#include "vmm/base/mono_time.h"

/* The backend's descriptors per NIC: a slirp socket per guest flow, up
 * to NET_SLIRP_MAX_SOCKETS, plus those opened meanwhile (port forwards'
 * connections, flows that were already on their way). */
#define NET_POLL_MAX 4096

static void run_notifications(struct virtio_net *n)
{
	struct epoll_event evs[8];
	int k = epoll_wait(n->ep, evs, 8, 0);

	for (int i = 0; i < k; i++) {
		struct ev_handler *h = evs[i].data.ptr;

		h->fn(h, evs[i].events);
	}
}

/* The poll timeout (ms, -1: none) shortened to throttle_until. */
static int throttle_timeout(const struct virtio_net *n, int timeout)
{
	uint64_t until = __atomic_load_n(&n->throttle_until, __ATOMIC_RELAXED);
	uint64_t now, ms;

	if (!until)
		return timeout;
	now = mono_ns();
	ms = until > now ? (until - now + 999999) / 1000000 : 0;
	if (ms > 60000)
		ms = 60000;
	return timeout < 0 || (uint64_t)timeout > ms ? (int)ms : timeout;
}

static bool throttle_expired(const struct virtio_net *n)
{
	uint64_t until = __atomic_load_n(&n->throttle_until, __ATOMIC_RELAXED);

	return until && mono_ns() >= until;
}

static void *net_thread(void *arg)
{
	struct pollfd pfd[2 + NET_POLL_MAX];
	struct virtio_net *n = arg;
	struct net_backend *be = n->be;

	/* Named, so that ps, top -H and tools/seccomp-trace tell it from
	 * the others. */
	pthread_setname_np(pthread_self(), "net");
	/* Its own syscall list from here on (vmm/seccomp_net.c). */
	if (n->ctl && n->ctl->enter_thread(n->ctl->opaque, VM_THREAD_NET)) {
		vm_control_stop(n->ctl, VM_HOST_ERROR);
		return NULL;
	}
	for (;;) {
		int timeout = -1, ret;
		unsigned nbe;

		/* Before the backend is read: a driver that came or went
		 * changes what its frames may carry. */
		virtio_net_sync_offloads(n);
		pfd[0] = (struct pollfd){.fd = n->wake_efd, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = n->ep, .events = POLLIN};
		nbe = be->ops->poll_fill(be, pfd + 2, NET_POLL_MAX, &timeout);
		ret = poll(pfd, 2 + nbe, throttle_timeout(n, timeout));
		if (ret < 0 && errno != EINTR) {
			log_err(-errno, "virtio-net: poll");
			break;
		}
		if (ret > 0 && pfd[0].revents) {
			uint64_t v;

			if (__atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE))
				break;
			if (read(n->wake_efd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN) {
				log_err(-errno, "virtio-net: wake");
				break;
			}
		}
		if (ret > 0 && pfd[1].revents)
			run_notifications(n);
		be->ops->poll_done(be, pfd + 2, nbe, ret < 0);
		if (throttle_expired(n)) {
			pthread_mutex_lock(&n->vdev.lock);
			virtio_net_resume(n);
			pthread_mutex_unlock(&n->vdev.lock);
		} else if (n->rx_count) {
			pthread_mutex_lock(&n->vdev.lock);
			virtio_net_rx_pump(n);
			pthread_mutex_unlock(&n->vdev.lock);
		}
	}
	return NULL;
}

int net_thread_start(struct virtio_net *n)
{
	sigset_t all, old;
	int ret;

	/* Signals are the main thread's business (signalfd there). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&n->thread, NULL, net_thread, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		log_err(-ret, "virtio-net: cannot start its thread");
		return -ret;
	}
	n->thread_running = true;
	return 0;
}

void net_thread_wake(struct virtio_net *n)
{
	uint64_t one = 1;

	if (n->wake_efd >= 0 && write(n->wake_efd, &one, sizeof(one)) < 0)
		log_err(-errno, "virtio-net: waking its thread");
}

void net_thread_stop(struct virtio_net *n)
{
	if (!n->thread_running)
		return;
	__atomic_store_n(&n->stopping, true, __ATOMIC_RELEASE);
	net_thread_wake(n);
	pthread_join(n->thread, NULL);
	n->thread_running = false;
}
