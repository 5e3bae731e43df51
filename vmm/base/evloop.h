/* SPDX-License-Identifier: MIT */
/*
 * The main thread's event loop is one epoll instance.  Each watched fd
 * carries a struct ev_handler; its owner embeds it and recovers itself
 * with container_of.  Handlers run on the main thread only.
 */
#ifndef HUTCH_EVLOOP_H
#define HUTCH_EVLOOP_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#define container_of(ptr, type, member)                                        \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct ev_handler {
	void (*fn)(struct ev_handler *h, uint32_t events);
};

/* 0 or negative errno. */
static inline int evloop_add(int ep, int fd, uint32_t events,
			     struct ev_handler *h)
{
	struct epoll_event ev = {.events = events, .data.ptr = h};

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static inline int evloop_mod(int ep, int fd, uint32_t events,
			     struct ev_handler *h)
{
	struct epoll_event ev = {.events = events, .data.ptr = h};

	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

static inline void evloop_del(int ep, int fd)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
}

#endif
