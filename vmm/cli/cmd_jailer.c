// SPDX-License-Identifier: MIT
/*
 * hutch jailer: Firecracker's jailer command line, for orchestrators that
 * launch their VMM that way (Kata Containers), with the effect of
 * `hutch boot --jail`:
 *
 *   hutch jailer --id ID --exec-file HUTCH --uid UID --gid GID
 *                [--chroot-base-dir DIR] [--netns PATH] [--daemonize]
 *                [--new-pid-ns] [--cgroup-version 2] [--parent-cgroup P]
 *                [--cgroup FILE=VALUE]... [--resource-limit RES=N]...
 *                -- BOOT-OPTIONS...
 *
 * The differences (README.md, "Firecracker's jailer command line"): the
 * arguments after "--" are hutch boot's, not Firecracker's; --exec-file
 * must name this hutch (nothing else is executed); no chroot directory
 * is built under --chroot-base-dir (the jail's root is an empty tmpfs
 * and every file is opened before it closes); a PID namespace is always
 * made; cgroup v2 only.  Threads: the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/base/log.h"
#include "vmm/boot_options.h"
#include "vmm/cli/commands.h"

struct jailer_args {
	const char *id, *exec_file, *netns, *parent_cgroup;
	const char *cgroup[JAIL_MAX_CGROUP_FILES];
	unsigned ncgroup;
	uint64_t uid, gid, nofile, fsize;
	bool have_uid, have_gid, daemonize;
};

/* Firecracker's rule: alphanumerics and '-', 1 to 64 of them. */
static bool valid_id(const char *id)
{
	size_t n = strlen(id);

	return n && n <= 64 &&
	       strspn(id, "abcdefghijklmnopqrstuvwxyz"
			  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == n;
}

/* FILE=VALUE with FILE a cgroup interface file name ("memory.max"). */
static bool valid_cgroup_file(const char *s)
{
	const char *eq = strchr(s, '=');
	size_t n = eq ? (size_t)(eq - s) : 0;

	return n && n < 48 && strspn(s, "abcdefghijklmnopqrstuvwxyz_.") == n &&
	       memchr(s, '.', n) && s[0] != '.' && !strchr(eq, '\n');
}

/* The same binary as this one, whatever the path says. */
static bool is_this_hutch(const char *path)
{
	struct stat a, b;

	return stat(path, &a) == 0 && stat("/proc/self/exe", &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int parse_limit_arg(const char *s, struct jailer_args *a)
{
	uint64_t v;
	const char *eq = strchr(s, '=');

	if (!eq ||
	    jail_parse_limit("--resource-limit", eq + 1, 1, 1ull << 50, &v))
		return -EINVAL;
	if (!strncmp(s, "fsize=", 6))
		a->fsize = v;
	else if (!strncmp(s, "no-file=", 8))
		a->nofile = v;
	else {
		log_errx("--resource-limit %s: expected fsize=N or no-file=N",
			 s);
		return -EINVAL;
	}
	return 0;
}

/* The jailer's options, up to "--": the index of the first boot option,
 * or -EINVAL after saying why. */
static int parse_jailer(int argc, char **argv, struct jailer_args *a)
{
	static const struct option opts[] = {
	    {"id", required_argument, NULL, 'i'},
	    {"exec-file", required_argument, NULL, 'e'},
	    {"uid", required_argument, NULL, 'u'},
	    {"gid", required_argument, NULL, 'g'},
	    {"chroot-base-dir", required_argument, NULL, 'c'},
	    {"netns", required_argument, NULL, 'n'},
	    {"daemonize", no_argument, NULL, 'd'},
	    {"new-pid-ns", no_argument, NULL, 'p'},
	    {"cgroup", required_argument, NULL, 'C'},
	    {"cgroup-version", required_argument, NULL, 'V'},
	    {"parent-cgroup", required_argument, NULL, 'P'},
	    {"resource-limit", required_argument, NULL, 'r'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			a->id = optarg;
			break;
		case 'e':
			a->exec_file = optarg;
			break;
		case 'u':
		case 'g':
			if (jail_parse_limit(c == 'u' ? "--uid" : "--gid",
					     optarg, 1, UINT32_MAX - 1,
					     c == 'u' ? &a->uid : &a->gid))
				return -EINVAL;
			*(c == 'u' ? &a->have_uid : &a->have_gid) = true;
			break;
		case 'c': /* no chroot is built: see the file's comment */
		case 'p': /* always */
			break;
		case 'n':
			a->netns = optarg;
			break;
		case 'd':
			a->daemonize = true;
			break;
		case 'C':
			if (!valid_cgroup_file(optarg) ||
			    a->ncgroup == JAIL_MAX_CGROUP_FILES) {
				log_errx("--cgroup '%s': expected FILE=VALUE "
					 "(e.g. memory.max=268435456), at most "
					 "%d",
					 optarg, JAIL_MAX_CGROUP_FILES);
				return -EINVAL;
			}
			a->cgroup[a->ncgroup++] = optarg;
			break;
		case 'V':
			if (strcmp(optarg, "2")) {
				log_errx("--cgroup-version %s: only cgroup v2",
					 optarg);
				return -EINVAL;
			}
			break;
		case 'P':
			if (!valid_id(optarg)) {
				log_errx("--parent-cgroup '%s': letters, "
					 "digits and '-'",
					 optarg);
				return -EINVAL;
			}
			a->parent_cgroup = optarg;
			break;
		case 'r':
			if (parse_limit_arg(optarg, a))
				return -EINVAL;
			break;
		default:
			log_errx("jailer: unknown option %s (see hutch jailer "
				 "--help)",
				 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (!a->id || !valid_id(a->id) || !a->exec_file || !a->have_uid ||
	    !a->have_gid) {
		log_errx("jailer: --id (letters, digits, '-'), --exec-file, "
			 "--uid and --gid are required");
		return -EINVAL;
	}
	if (!is_this_hutch(a->exec_file)) {
		log_errx("jailer: --exec-file %s is not this hutch (hutch "
			 "jails itself and runs nothing else)",
			 a->exec_file);
		return -EINVAL;
	}
	return optind; /* after "--": hutch boot's options */
}

/* Detach like Firecracker's --daemonize: a new session, stdio on
 * /dev/null, the caller gets its status at once. */
static int daemonize(void)
{
	int fd;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	setsid();
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	return 0;
}

int cmd_jailer(int argc, char **argv)
{
	struct jailer_args a = {0};
	struct boot_options opts;
	char *boot_argv[256];
	int first = parse_jailer(argc, argv, &a), n = 1, ret;

	if (first < 0)
		return EXIT_USAGE;
	if (argc - first > 254) {
		log_errx("jailer: too many boot options");
		return EXIT_USAGE;
	}
	boot_argv[0] = "boot";
	for (int i = first; i < argc; i++)
		boot_argv[n++] = argv[i];
	boot_argv[n] = NULL;
	ret = cli_parse_boot(n, boot_argv, &opts);
	if (ret) {
		cli_free(&opts);
		return ret == CLI_HELP ? 0 : EXIT_USAGE;
	}
	opts.jail.enabled = true;
	opts.jail.uid = (uid_t)a.uid;
	opts.jail.gid = (gid_t)a.gid;
	opts.jail.have_uid = opts.jail.have_gid = true;
	opts.jail.netns_path = a.netns;
	opts.jail.nofile = a.nofile;
	opts.jail.fsize_override = a.fsize;
	memcpy(opts.jail.cgroup_file, a.cgroup, sizeof(a.cgroup));
	opts.jail.ncgroup_files = a.ncgroup;
	snprintf(opts.jail.cgroup_name, sizeof(opts.jail.cgroup_name), "%s/%s",
		 a.parent_cgroup ? a.parent_cgroup : "hutch", a.id);
	if (a.daemonize && daemonize()) {
		cli_free(&opts);
		return EXIT_HUTCH_ERROR;
	}
	return boot_vm(&opts);
}
