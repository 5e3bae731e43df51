/* SPDX-License-Identifier: MIT */
/* Parsing and validating `hutch boot` options (unit-tested). */
#ifndef HUTCH_CLI_H
#define HUTCH_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/jail.h"
#include "vmm/vm.h"

#define CLI_HELP	    1
#define CLI_MAX_CPUS	    254
#define CLI_DEFAULT_MEM_MIB 128
#define CLI_MIN_MEM_MIB	    2

struct boot_options {
	struct vm_config cfg;
	struct jail_config jail;
	bool verbose;
	char *owned[2]; /* default paths we allocated */
};

/* argv[0] is "boot".  0, CLI_HELP, or -EINVAL after printing why.  The
 * device configs may point into argv; free them with cli_free. */
int cli_parse_boot(int argc, char **argv, struct boot_options *o);

/* Add the default instance of every device type that has one (rng)
 * and none yet, unless omit[t] (the type's --no- option).  0 or -EINVAL
 * after saying why. */
int cli_add_default_devices(struct vm_config *cfg, const bool *omit);

/* "<dir of this executable>/guest/<name>" (malloc'd) if it is readable,
 * else NULL: where tools/setup puts the default kernel and images. */
char *cli_beside_exe(const char *name);

/* Strict decimal parse within [min, max].  0 or -EINVAL/-ERANGE. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* One of the --jail options (name without "--", its value or NULL) into
 * j.  1: it was one; 0: it was not; -EINVAL after saying why. */
int cli_parse_jail_option(const char *name, const char *value,
			  struct jail_config *j);

/* --cpus and --mem values, as boot, run and start take them: 0, or
 * -EINVAL after saying what is expected. */
int cli_parse_cpus(const char *s, unsigned *out);
int cli_parse_mem_mib(const char *s, uint64_t *out);

/* Fill in the default kernel/initrd and check --mem against the host.
 * 0 or negative errno, reported. */
int cli_resolve_defaults(struct boot_options *o);

void cli_free(struct boot_options *o);

#endif
