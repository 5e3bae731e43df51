/* SPDX-License-Identifier: MIT */
/* Running the hutch binary from integration tests and capturing output. */
#ifndef HUTCH_TEST_RUN_H
#define HUTCH_TEST_RUN_H

#include <stddef.h>
#include <sys/types.h>

struct run_result {
	int status; /* exit code, or 128+signal, or -1 on timeout */
	char *out;  /* NUL-terminated stdout */
	size_t out_len;
	char *err; /* NUL-terminated stderr */
	size_t err_len;
};

/* Paths from the environment (set by tools/check and meson test), with
 * defaults relative to the build directory. */
const char *hutch_bin(void);
const char *guest_file(const char *name); /* <guest dir>/<name> */
/* The guest kernel hutch boots by default on this architecture, in the
 * guest dir: the vmlinux (PVH) on x86, the Image on arm64. */
const char *guest_kernel(void);

/*
 * Run argv (argv[0] is the program) with stdin from /dev/null, killing it
 * after timeout_s seconds.  run_as_uid >= 0 drops to that uid first.
 */
void run_cmd(const char *const argv[], unsigned timeout_s, uid_t run_as_uid,
	     struct run_result *r);
/* The same with input written to the program's stdin (then closed). */
void run_cmd_input(const char *const argv[], const char *input,
		   unsigned timeout_s, struct run_result *r);
/* Like run_cmd, but SIGKILL the program as soon as its stdout contains
 * marker (status then reads 128 + 9). */
void run_cmd_kill_on(const char *const argv[], const char *marker,
		     unsigned timeout_s, struct run_result *r);
void run_free(struct run_result *r);

/* Run a printf-formatted shell command line (system(3)): its exit
 * code, or 128 + the signal that ended it. */
int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The output of a printf-formatted shell command line (its first 64 KiB,
 * trailing newlines dropped; "" if it could not run), malloc'd. */
char *sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Number of lines in s. */
unsigned count_lines(const char *s);

#endif
