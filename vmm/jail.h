/* SPDX-License-Identifier: MIT */
/*
 * The jail: the VMM process as the second wall behind the VM boundary.
 *
 *   jail_spawn   (before the VM is made) the process forks into a fresh
 *                PID namespace.  The child, PID 1 there, goes on to
 *                become the VMM; the parent stays outside as its keeper:
 *                it puts the child into a cgroup v2 with the limits
 *                asked for, forwards stop signals, connects Unix sockets
 *                for it (vsock's PATH_<port>: only paths of that shape)
 *                and exits with its status, removing the cgroup.
 *   jail_enter   (the VM made, every file and device open, no vCPU
 *                running yet) the child moves into fresh mount, IPC, UTS
 *                and network namespaces, pivots into an empty read-only
 *                tmpfs, closes the state directory, sets rlimits (no
 *                core dumps, descriptors, file size), drops every
 *                capability and becomes an unprivileged uid/gid with
 *                no_new_privs, and clears its environment.  From there
 *                on it reaches only the descriptors it holds.
 *
 * Needs root.  Threads: both run on the main thread while it is the only
 * thread; the broker (host_connect.h) is called from the event loop.
 */
#ifndef HUTCH_JAIL_H
#define HUTCH_JAIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define JAIL_MAX_PREFIXES 4
/* The uid and gid of a jailed VMM unless given: this plus its pid on the
 * host, so no two live VMMs share one (and no account has it). */
#define JAIL_ID_BASE 0x40000000u
#define JAIL_NOFILE                                                            \
	4096 /* vsock's 256 connections, user networking's                     \
		2048 host sockets, the VM's fds */
#define JAIL_CGROUP_ROOT      "/sys/fs/cgroup"
#define JAIL_MAX_CGROUP_FILES 16

struct jail_config {
	bool enabled;
	bool have_uid, have_gid;
	uid_t uid;
	gid_t gid;
	/* cgroup v2 limits (0: none).  With any, the VMM runs in
	 * JAIL_CGROUP_ROOT/hutch/vm-<host pid>. */
	uint64_t cpu_pct;  /* percent of one CPU (cpu.max) */
	uint64_t mem_mib;  /* memory.max (and no swap) */
	uint64_t pids_max; /* pids.max: threads count */
	/* The broker connects only to "<prefix>_<port>" for these. */
	const char *connect_prefix[JAIL_MAX_PREFIXES];
	unsigned nprefixes;
	/* Sockets the VMM listens on: the keeper removes them once the
	 * VMM is gone, unless someone listens there again. */
	const char *socket_path[JAIL_MAX_PREFIXES + 1];
	unsigned nsockets;
	/* A directory descriptor the keeper keeps (the connect prefixes
	 * name it through /proc/self/fd/) and the VMM closes when it
	 * enters the jail; -1: none. */
	int dir_fd;
	/* Largest size a file the VMM writes may reach (RLIMIT_FSIZE). */
	uint64_t fsize_max;
	/* Firecracker's jailer command line (hutch jailer): the cgroup's
	 * name below JAIL_CGROUP_ROOT ("" : hutch/vm-<pid>), more of its
	 * files ("file=value"), a network namespace to join instead of a
	 * fresh one, rlimits instead of the defaults (0: default). */
	char cgroup_name[64];
	const char *cgroup_file[JAIL_MAX_CGROUP_FILES];
	unsigned ncgroup_files;
	const char *netns_path;
	/* A device reaches the host's network itself (user networking):
	 * keep the host's network namespace. */
	bool keep_host_net;
	uint64_t nofile, fsize_override;

	/* Filled in by jail_spawn and jail_enter. */
	pid_t host_pid;	     /* the VMM's pid on the host */
	int broker_fd;	     /* the VMM's end of the keeper's socket */
	uint64_t enter_ns;   /* time jail_enter took */
	uint64_t unshare_ns; /* ... of which making the namespaces */
	uint64_t root_ns;    /* ... and the new root */
	uint64_t spawn_ns;   /* time from jail_spawn to the VMM going on */
	char cgroup[320];    /* "" or the cgroup's path */
};

/* Fork into a fresh PID namespace.  Returns 0 in the child (the VMM to
 * be); the parent becomes the keeper and never returns (it exits with
 * the child's status).  Negative errno, reported, if nothing was
 * forked. */
int jail_spawn(struct jail_config *j);

/* Enter the jail (see above).  0 or negative errno, reported; the
 * caller must then not run the guest. */
int jail_enter(struct jail_config *j);

/* Parsing a "--jail-*" number; 0 or -EINVAL after one line. */
int jail_parse_limit(const char *opt, const char *s, uint64_t min, uint64_t max,
		     uint64_t *out);

#endif
