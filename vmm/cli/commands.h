/* SPDX-License-Identifier: MIT */
/* hutch's subcommands (main.c dispatches) and what they share. */
#ifndef HUTCH_COMMANDS_H
#define HUTCH_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devices/blk/disk.h"
#include "vmm/jail.h"
#include "vmm/seccomp_filter.h"

struct agent_conn;
struct boot_options;
struct state_root;

int cmd_boot(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_shell(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_limit(int argc, char **argv);
int cmd_net(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_jailer(int argc, char **argv);

/* Boot a VM with these options (defaults resolved here) and run it to
 * its end; the process exit code.  Frees what the options own. */
int boot_vm(struct boot_options *opts);

/* Before boot_vm, for a jailed VMM: what its keeper may connect to,
 * then fork into the jail (jail_spawn: returns in the VMM, never in the
 * keeper).  0 or negative errno, reported. */
int boot_jail_spawn(struct boot_options *opts);

/* Options of run/start/exec (cmd_vm.c). */
struct vm_opts {
	const char *rootfs;
	const char *kernel;
	unsigned cpus;
	uint64_t mem_mib;
	unsigned timeout_s;
	enum seccomp_mode seccomp; /* the VMM's filters (--seccomp) */
	/* The VMM's jail (--jail, --no-jail, --jail-*; on by default for
	 * root). */
	struct jail_config jail;
	bool no_jail;
	struct blk_limits root_limits; /* --drive-limits */
	/* Restore this snapshot instead of booting (run --from, restore);
	 * --cpus and --mem, if given, must match it. */
	const char *from;
	bool cpus_given, mem_given;
	/* A NIC (--net SPEC, net_type.h) with --allow/--deny rules and a
	 * deny log (--deny-log) added to its spec; NULL: no network. */
	char *net_spec;
	const char *name; /* the VM's name, for the deny log */
};

/* argv index of the first operand, or negative errno (reported). */
int parse_vm_opts(int argc, char **argv, struct vm_opts *o, bool with_vm);

/* A VM's VMM as the front end knows it: its directory, and the process
 * itself where it is our child (hutch run). */
struct vm_proc {
	int dir_fd;
	pid_t child; /* 0: not our child (reached through the lock) */
	bool reaped;
};

/*
 * Open the state directory of the VM called name into *dir_fd (with
 * running, only if its VMM holds the lock).  0, or an exit status after
 * reporting why not.
 */
int open_named(const char *name, struct state_root *root, bool running,
	       int *dir_fd);

/*
 * Open the running VM called name: *dir_fd and a connection to its
 * agent.  0, or an exit status after reporting why not.
 */
int connect_named(const char *name, struct state_root *root,
		  struct agent_conn *c, int *dir_fd);

/* Send one line (and fds, if nfds) to the VM's control socket and read
 * its one-line answer within timeout_ms.  0 or negative errno. */
int control_request(int dir_fd, const char *line, const int *fds, unsigned nfds,
		    char *reply, size_t len, unsigned timeout_ms);

/* Restoring (cmd_snapshot.c).  restore_check: open o->from and check it
 * against --cpus/--mem; restore_prepare: that, then give the VM in
 * vm_dir its own copy of the snapshot's overlay and name the root image
 * (which *snap owns).  0, or negative errno after one line. */
struct snapshot;
int restore_check(const struct vm_opts *o, struct snapshot *snap);
int restore_prepare(const struct vm_opts *o, int vm_dir, struct snapshot *snap,
		    const char **rootfs);

/* Power the VM off through its agent (c, or a new connection if NULL),
 * then SIGTERM, then SIGKILL, each after a grace period.  0 once the VMM
 * is gone, -EBUSY if it would not go. */
int stop_vm(struct vm_proc *p, struct agent_conn *c);

#endif
