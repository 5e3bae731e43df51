/* SPDX-License-Identifier: MIT */
/*
 * Named VMs' state directories, reached without trusting paths.
 *
 *   <root>/NAME/lock         the VMM holds a POSIX write lock on it while
 *                            it lives: running <=> locked, and F_GETLK
 *                            names the holder's pid (never recycled while
 *                            it holds the lock)
 *   <root>/NAME/pid          the VMM's pid, for people; never trusted
 *   <root>/NAME/vsock.sock   the VM's vsock socket (agent: port 1024)
 *   <root>/NAME/overlay.cow  the root disk's writes
 *   <root>/NAME/console.log  the guest console; NAME/vmm.log hutch's own
 *
 * The root is checked once when opened (a real directory, ours, no access
 * for anyone else) and everything below it is reached through directory
 * descriptors with O_NOFOLLOW, so another local user can neither plant a
 * directory for us to use nor swap a file for a symbolic link.  Programs
 * that need a path (sockets, the VMM's files) get one through
 * /proc/self/fd/N/, which names the opened directory itself.
 */
#ifndef HUTCH_STATE_DIR_H
#define HUTCH_STATE_DIR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define STATE_NAME_MAX 64

struct state_root {
	int fd;
	char path[PATH_MAX];
};

/*
 * Open (creating it if missing) the state root: $HUTCH_STATE_DIR, else
 * $XDG_RUNTIME_DIR/hutch, else /run/hutch for root, else
 * $HOME/.local/state/hutch, else /tmp/hutch-UID.  Refused unless it is a
 * directory (not a symbolic link) owned by this user with mode 0700 or
 * stricter.  0 or negative errno, reported.
 */
int state_root_open(struct state_root *r);
void state_root_close(struct state_root *r);

/* Letters, digits, '-', '_', '.', not starting with '.', 1..64 bytes. */
bool state_valid_name(const char *name);

/*
 * NAME's directory as a descriptor, checked like the root.  create: make
 * it (mode 0700) first, -EEXIST if it exists.  Negative errno otherwise
 * (-ENOENT: no such VM), not reported.
 */
int state_vm_open(const struct state_root *r, const char *name, bool create);

/* A new directory "run-XXXXXX" for a throw-away VM; its name into name
 * (at least 16 bytes).  Descriptor or negative errno, not reported. */
int state_vm_create_temp(const struct state_root *r, char *name,
			 size_t name_len);

/* Remove NAME's files and directory (what hutch puts there, nothing
 * else: a directory holding other files stays). */
void state_vm_remove(const struct state_root *r, const char *name);

/* Create or open `file` in dir for writing, mode 0600, never following a
 * symbolic link; trunc empties it.  Descriptor or negative errno. */
int state_open_file(int dir_fd, const char *file, bool trunc);

/* "/proc/self/fd/<dir_fd>/<file>" in buf. */
const char *state_path(int dir_fd, const char *file, char *buf, size_t len);

/* In the VMM: take NAME/lock for the process's lifetime.  The lock's
 * descriptor (keep it open) or negative errno (-EBUSY: someone has it). */
int state_lock_take(int dir_fd);

/* The pid of the process holding the lock; 0 if none (the VM is not
 * running); negative errno. */
pid_t state_lock_holder(int dir_fd);

/*
 * Send sig to the VMM holding dir's lock, race-free: through a pidfd
 * opened on the holder and checked to still hold the lock, so a recycled
 * pid is never signalled.  0, -ESRCH if nothing holds it, negative errno.
 */
int state_vm_kill(int dir_fd, int sig);

#endif
