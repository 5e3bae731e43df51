/* SPDX-License-Identifier: MIT */
/* hutch's subcommands (main.c dispatches) and what they share. */
#ifndef HUTCH_COMMANDS_H
#define HUTCH_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct agent_conn;

int cmd_boot(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_shell(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_ls(int argc, char **argv);

/* Options of run/start/exec (cmd_vm.c). */
struct vm_opts {
	const char *rootfs;
	const char *kernel;
	const char *cpus;
	const char *mem;
	unsigned timeout_s;
};

/* argv index of the first operand, or negative errno (reported). */
int parse_vm_opts(int argc, char **argv, struct vm_opts *o, bool with_vm);

/* Named VMs' state directories. */
const char *state_root(char *buf, size_t len);
int vm_dir(const char *name, char *buf, size_t len);
char *path_in(const char *dir, const char *file);
pid_t read_pid(const char *dir);
bool alive(pid_t pid);
void remove_dir(const char *dir);
/* 0, or an exit status after reporting why not. */
int connect_named(const char *name, struct agent_conn *c, char *dir,
		  size_t len);
void stop_vm(struct agent_conn *c, const char *dir, pid_t pid, bool own_child);

#endif
