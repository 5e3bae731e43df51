/* SPDX-License-Identifier: MIT */
/*
 * hutch-agent internals.  One process, one thread, one epoll loop:
 *
 *   agent.c       main, the loop, signals, the listener, deferred frees
 *   agent_init.c  PID 1 duties: mounts, root disk, cgroup, power off
 *   agent_conn.c  connections: frame parsing, write queue, flow control
 *   agent_spawn.c starting a command: fork, the child's set-up, exec
 *   agent_proc.c  a running command: stdio, signals, timeout, exit
 *   agent_file.c  PUT and GET
 *
 * Objects that own epoll registrations (connections, processes) are never
 * freed while an epoll batch is being handled: they are marked dead,
 * unlinked from every list, and freed after the batch (agent_bury_*).
 * Handlers ignore events for dead objects.
 */
#ifndef HUTCH_AGENT_H
#define HUTCH_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent_codec.h"
#include "agent_proto.h"

#define AGENT_NAME "hutch-agent 0.1"

/*
 * Flow control, per connection (PROTOCOL.md, "Flow control").  Output of
 * processes and GET files is read only while the write queue is under
 * WQ_PAUSE (resumed under WQ_RESUME); the host's frames are parsed only
 * while it is under WQ_INPUT_MAX and less than STDIN_MAX bytes of stdin
 * wait for processes that do not read.  So a connection holds at most
 * about WQ_INPUT_MAX + one PONG + one chunk per process of output, one
 * frame of input and STDIN_MAX + one frame of stdin.
 */
#define WQ_PAUSE     (1024u * 1024)
#define WQ_RESUME    (512u * 1024)
#define WQ_INPUT_MAX (2048u * 1024)
#define STDIN_MAX    (1024u * 1024)

/* The read buffer's usual size; it grows to one whole frame when needed. */
#define RBUF_MIN (AGENT_HDR_LEN + AGENT_MAX_CHUNK)

#define MAX_CONNS 256
#define MAX_PROCS 1024

#define container_of(ptr, type, member)                                        \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))

/* Intrusive doubly linked list; an unlinked node points to itself. */
struct list {
	struct list *prev, *next;
};

static inline void list_init(struct list *l)
{
	l->prev = l;
	l->next = l;
}

static inline bool list_empty(const struct list *l)
{
	return l->next == l;
}

static inline void list_add_tail(struct list *head, struct list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

#define list_for_each_safe(pos, tmp, head)                                     \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);       \
	     (pos) = (tmp), (tmp) = (pos)->next)

/* Every epoll registration carries one; owners embed it. */
struct ev_handler {
	void (*fn)(struct ev_handler *h, uint32_t events);
};

/* One queued byte run: a whole frame on a write queue, or stdin bytes. */
struct chunk {
	struct list link;
	size_t len, off;
	uint8_t data[];
};

struct conn {
	struct ev_handler ev;
	int fd;
	uint32_t events;   /* epoll interest now (fd always registered) */
	struct list link;  /* agent.conns */
	struct list dirty; /* agent.dirty; self-linked when not dirty */

	uint8_t *rbuf;
	size_t rlen, rcap;

	struct list wq; /* struct chunk, whole frames */
	size_t wq_bytes;

	struct list procs;  /* struct proc.link */
	struct list xfers;  /* struct xfer.link */
	size_t stdin_bytes; /* unwritten stdin of all its processes */

	bool out_paused; /* output sources stopped: wq over WQ_PAUSE */
	bool eof;	 /* the host closed its side */
	bool closing;	 /* flush what is queued, then close */
	bool dead;
};

/* One fd of a process; events is the registered interest (0: not in
 * epoll, so a hung-up pipe we do not want to read cannot spin the loop). */
struct pfd {
	struct ev_handler ev;
	int fd;
	uint32_t events;
	struct proc *proc;
};

struct proc {
	struct list link; /* conn->procs */
	struct list all;  /* agent.procs, for the reaper */
	struct conn *conn;
	uint32_t id;
	pid_t pid;
	bool pty;
	bool started;	/* STARTED sent */
	bool reaped;	/* wstatus valid */
	bool timed_out; /* killed by its timeout */
	bool stdin_eof; /* close stdin once stdin_q is written */
	bool pty_eof;	/* the pty master read EIO (kept open till reaped) */
	bool dead;
	int wstatus;
	/* Pipe mode: in, out, err.  PTY mode: out is the master (stdin is
	 * written there too), in and err are -1. */
	struct pfd in, out, err, timer, exec;
	struct list stdin_q; /* struct chunk */
	size_t stdin_bytes;
};

/* A PUT or GET on a connection. */
struct xfer {
	struct list link; /* conn->xfers */
	uint32_t id;
	int fd;
	bool get;
	bool failed; /* PUT: ERROR sent, discard DATA up to DATA_END */
	uint64_t bytes;
};

struct agent {
	int ep;
	bool pid1;
	/* Where commands and files live: "/newroot" with a root disk, else
	 * NULL (the agent's own root). */
	const char *chroot_dir;
	int root_fd;	/* O_PATH of that root, for PUT/GET */
	int cgroup_fd;	/* cgroup.procs of the commands' cgroup, or -1 */
	bool reset_oom; /* children set oom_score_adj to 0 */
	struct list conns, procs, dirty, dead_conns, dead_procs;
	unsigned nconns, nprocs;
	int shutdown; /* 0, or the reboot(2) command to end with */
	bool stop;    /* leave the loop (not PID 1) */
	bool listen_paused;
};

extern struct agent agent;

/* agent.c */
void agent_log(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* With strerror(-err) appended. */
void agent_log_err(int err, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Set the epoll interest of fd to want (0: unregistered); 0 or -errno. */
int ev_set(int fd, uint32_t *cur, uint32_t want, struct ev_handler *h);
/* Unregister (whatever the interest) and close; *fd becomes -1. */
void ev_close(int *fd, uint32_t *cur);
void agent_listen_resume(void);
/* Close every connection, which kills its commands. */
void kill_all_commands(void);

/* agent_init.c */
int pid1_setup(void);
/* Tell the VMM we listen: 123 to the boot timer port (PID 1 only). */
void boot_done(void);
int cgroup_setup(const char *dir, long long memory_max, long pids_max);
/* Kill every process, sync, unmount the root disk, reboot(how). */
void pid1_finish(int how) __attribute__((noreturn));

/* agent_conn.c */
void conn_new(int fd);
void conn_close(struct conn *c);
void conn_dirty(struct conn *c);
void conn_service_dirty(void);
void conn_free(struct conn *c);
/* Queue a frame; payload may be NULL when len is 0. */
void conn_send(struct conn *c, uint16_t type, uint32_t id, const void *payload,
	       size_t len);
/* ERROR for id: err is a positive errno. */
void conn_send_error(struct conn *c, uint32_t id, int err, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
/* Pause or resume output sources and input after the queues changed. */
void conn_update_flow(struct conn *c);
bool conn_id_in_use(struct conn *c, uint32_t id);

/* Send a payload built with the codec; a buffer that ran out of memory
 * drops the connection (a hole in the stream cannot be repaired). */
void conn_send_msg(struct conn *c, uint16_t type, uint32_t id,
		   struct agent_wbuf *b);

/* agent_spawn.c */
/* Pipes or pty, timer, exec-status pipe (registered), fork; 0 or -errno.
 * On failure the caller buries p, which closes what was opened. */
int proc_spawn(struct proc *p, const struct agent_exec_req *req);
/* The set-up step a child reported failing at. */
const char *exec_step_name(int step);

/* agent_proc.c */
void proc_exec(struct conn *c, uint32_t id, const uint8_t *p, size_t len);
void proc_stdin(struct conn *c, uint32_t id, const uint8_t *p, size_t len);
void proc_stdin_eof(struct conn *c, uint32_t id, size_t len);
void proc_signal(struct conn *c, uint32_t id, const uint8_t *p, size_t len);
void proc_resize(struct conn *c, uint32_t id, const uint8_t *p, size_t len);
struct proc *proc_find(struct conn *c, uint32_t id);
/* SIGKILL its process group, drop it (the reaper collects the zombie). */
void proc_kill(struct proc *p);
void proc_reaped(pid_t pid, int wstatus);
void proc_sync_events(struct proc *p);
void proc_free(struct proc *p);

/* agent_file.c */
void xfer_put(struct conn *c, uint32_t id, const uint8_t *p, size_t len);
void xfer_get(struct conn *c, uint32_t id, const uint8_t *p, size_t len);
void xfer_data(struct conn *c, uint32_t id, const uint8_t *p, size_t len);
void xfer_data_end(struct conn *c, uint32_t id, size_t len);
/* Read GET files into the write queue up to WQ_PAUSE; true if any. */
bool xfer_pump(struct conn *c);
bool xfer_get_pending(struct conn *c);
struct xfer *xfer_find(struct conn *c, uint32_t id);
void xfer_free(struct xfer *x);

#endif
