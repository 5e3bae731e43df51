// SPDX-License-Identifier: MIT
#include "vmm/boot_options.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/kvm.h"
#include "vmm/base/log.h"

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/*
 * --drive path=FILE[,ro][,root][,overlay=FILE][,serial=ID]: keys in any
 * order; paths cannot contain commas.  The option string is modified (the
 * config points into argv).
 */
int cli_parse_drive(char *spec, struct drive_config *d)
{
	enum { D_PATH, D_RO, D_ROOT, D_OVERLAY, D_SERIAL };
	char *const keys[] = {"path", "ro", "root", "overlay", "serial", NULL};
	char *value, *opts = spec;

	memset(d, 0, sizeof(*d));
	while (*opts) {
		int k = getsubopt(&opts, keys, &value);
		bool needs_value =
		    k == D_PATH || k == D_OVERLAY || k == D_SERIAL;

		if (k < 0) {
			log_errx(
			    "--drive: unknown key '%s' (expected path=, ro, "
			    "root, overlay=, serial=)",
			    value);
			return -EINVAL;
		}
		if (needs_value && (!value || !*value)) {
			log_errx("--drive: %s= needs a value", keys[k]);
			return -EINVAL;
		}
		if (!needs_value && value) {
			log_errx("--drive: %s takes no value", keys[k]);
			return -EINVAL;
		}
		switch (k) {
		case D_PATH:
			d->path = value;
			break;
		case D_RO:
			d->read_only = true;
			break;
		case D_ROOT:
			d->root = true;
			break;
		case D_OVERLAY:
			d->overlay = value;
			break;
		case D_SERIAL:
			if (strlen(value) > BLK_ID_LEN) {
				log_errx("--drive: serial '%s' is longer than "
					 "%u bytes",
					 value, BLK_ID_LEN);
				return -EINVAL;
			}
			d->serial = value;
			break;
		}
	}
	if (!d->path) {
		log_errx("--drive: path=FILE is required");
		return -EINVAL;
	}
	if (d->read_only && d->overlay) {
		log_errx("--drive %s: ro and overlay= exclude each other (an "
			 "overlay exists to take writes)",
			 d->path);
		return -EINVAL;
	}
	return 0;
}

/*
 * --vsock PATH[,cid=N]: the Unix socket hutch listens on (host programs
 * connect there; guest connections to port P reach PATH_P) and the
 * guest's CID, 3 .. 2^32 - 2 (0-2 are reserved, -1 means "any").
 */
int cli_parse_vsock(char *spec, struct vm_config *cfg)
{
	enum { V_CID };
	char *const keys[] = {"cid", NULL};
	char *opts = strchr(spec, ','), *value;
	uint64_t cid = CLI_DEFAULT_CID;

	if (cfg->vsock_path) {
		log_errx("--vsock: only one vsock device");
		return -EINVAL;
	}
	if (opts)
		*opts++ = 0;
	if (!*spec) {
		log_errx("--vsock: expected PATH[,cid=N]");
		return -EINVAL;
	}
	while (opts && *opts) {
		int k = getsubopt(&opts, keys, &value);

		if (k != V_CID) {
			log_errx("--vsock: unknown key '%s' (expected cid=)",
				 value);
			return -EINVAL;
		}
		if (cli_parse_u64(value, 3, UINT32_MAX - 1, &cid)) {
			log_errx("--vsock: cid '%s': expected a number from 3 "
				 "to %u",
				 value ? value : "", UINT32_MAX - 1);
			return -EINVAL;
		}
	}
	cfg->vsock_path = spec;
	cfg->guest_cid = (uint32_t)cid;
	return 0;
}

int cli_parse_boot(int argc, char **argv, struct boot_options *o)
{
	static const struct option longopts[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"cmdline", required_argument, NULL, 'c'},
	    {"cpus", required_argument, NULL, 'n'},
	    {"mem", required_argument, NULL, 'm'},
	    {"console", required_argument, NULL, 'o'},
	    {"drive", required_argument, NULL, 'd'},
	    {"vsock", required_argument, NULL, 'V'},
	    {"stats", no_argument, NULL, 's'},
	    {"ready-fd", required_argument, NULL, 'r'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->cfg.ncpus = 1;
	o->cfg.mem_mib = CLI_DEFAULT_MEM_MIB;
	o->cfg.console_limit = CONSOLE_FILE_LIMIT;
	o->cfg.kvm_path = getenv("HUTCH_KVM_DEVICE");
	if (!o->cfg.kvm_path)
		o->cfg.kvm_path = KVM_DEFAULT_PATH;

	optind = 0; /* reinitialise getopt: tests parse many times */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			o->cfg.kernel_path = optarg;
			break;
		case 'i':
			o->cfg.initrd_path = optarg;
			break;
		case 'c':
			o->cfg.cmdline = optarg;
			break;
		case 'n':
			if (cli_parse_u64(optarg, 1, CLI_MAX_CPUS, &v)) {
				log_errx("--cpus '%s': expected a number from "
					 "1 to %d",
					 optarg, CLI_MAX_CPUS);
				return -EINVAL;
			}
			o->cfg.ncpus = (unsigned)v;
			break;
		case 'm':
			/* The host check comes later; here only the syntax
			 * and a hard ceiling of 1 TiB. */
			if (cli_parse_u64(optarg, CLI_MIN_MEM_MIB, 1ull << 20,
					  &v)) {
				log_errx("--mem '%s': expected MiB from %d to "
					 "1048576",
					 optarg, CLI_MIN_MEM_MIB);
				return -EINVAL;
			}
			o->cfg.mem_mib = v;
			break;
		case 'o':
			o->cfg.console_path = optarg;
			break;
		case 'd': {
			struct vm_config *cfg = &o->cfg;

			if (cfg->ndrives == VM_MAX_DRIVES) {
				log_errx("--drive: at most %d drives",
					 VM_MAX_DRIVES);
				return -EINVAL;
			}
			if (cli_parse_drive(optarg, &cfg->drives[cfg->ndrives]))
				return -EINVAL;
			for (unsigned i = 0; i < cfg->ndrives; i++)
				if (cfg->drives[i].root &&
				    cfg->drives[cfg->ndrives].root) {
					log_errx("--drive: only one drive can "
						 "be root");
					return -EINVAL;
				}
			cfg->ndrives++;
			break;
		}
		case 'V':
			if (cli_parse_vsock(optarg, &o->cfg))
				return -EINVAL;
			break;
		case 's':
			o->cfg.stats = true;
			break;
		case 'r':
			if (cli_parse_u64(optarg, 0, INT_MAX, &v) ||
			    fcntl((int)v, F_GETFD) < 0) {
				log_errx("--ready-fd '%s': not an open file "
					 "descriptor",
					 optarg);
				return -EINVAL;
			}
			o->cfg.has_ready_fd = true;
			o->cfg.ready_fd = (int)v;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			return CLI_HELP;
		case ':':
			log_errx("option %s needs an argument (see --help)",
				 argv[optind - 1]);
			return -EINVAL;
		default:
			log_errx("unknown option %s (see --help)",
				 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_errx("unexpected argument '%s' (quote the --cmdline value)",
			 argv[optind]);
		return -EINVAL;
	}
	return 0;
}

char *cli_beside_exe(const char *name)
{
	char exe[PATH_MAX], *path;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return NULL;
	exe[n] = 0;
	if (asprintf(&path, "%s/guest/%s", dirname(exe), name) < 0)
		return NULL;
	if (access(path, R_OK) == 0)
		return path;
	free(path);
	return NULL;
}

static char *default_kernel(void)
{
	const char *env = getenv("HUTCH_KERNEL");
	char *p;

	if (env && *env)
		return strdup(env);
	p = cli_beside_exe("vmlinux");
	if (p)
		return p;
	if (access(HUTCH_DATADIR "/vmlinux", R_OK) == 0)
		return strdup(HUTCH_DATADIR "/vmlinux");
	return NULL;
}

int cli_resolve_defaults(struct boot_options *o)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t host_mib = (uint64_t)pages * (uint64_t)psize >> 20;

	if (pages > 0 && psize > 0 && o->cfg.mem_mib > host_mib) {
		log_errx("--mem %llu MiB is more than this host's %llu MiB",
			 (unsigned long long)o->cfg.mem_mib,
			 (unsigned long long)host_mib);
		return -EINVAL;
	}
	if (!o->cfg.kernel_path) {
		o->owned[0] = default_kernel();
		if (!o->owned[0]) {
			log_errx("no --kernel given and no default kernel "
				 "found (build one with "
				 "guest-kernel-config/build, or set "
				 "HUTCH_KERNEL)");
			return -ENOENT;
		}
		o->cfg.kernel_path = o->owned[0];
		if (!o->cfg.initrd_path) {
			o->owned[1] = cli_beside_exe("initramfs.cpio");
			o->cfg.initrd_path = o->owned[1];
		}
	}
	return 0;
}

void cli_free(struct boot_options *o)
{
	free(o->owned[0]);
	free(o->owned[1]);
}
