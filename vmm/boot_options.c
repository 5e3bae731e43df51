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

#include "vmm/arch.h"
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

int cli_parse_cpus(const char *s, unsigned *out)
{
	uint64_t v;

	if (cli_parse_u64(s, 1, CLI_MAX_CPUS, &v)) {
		log_errx("--cpus '%s': expected a number from 1 to %d", s,
			 CLI_MAX_CPUS);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

/* Only the syntax and a hard ceiling of 1 TiB: the host check comes
 * later (cli_resolve_defaults). */
int cli_parse_mem_mib(const char *s, uint64_t *out)
{
	if (cli_parse_u64(s, CLI_MIN_MEM_MIB, 1ull << 20, out)) {
		log_errx("--mem '%s': expected MiB from %d to 1048576", s,
			 CLI_MIN_MEM_MIB);
		return -EINVAL;
	}
	return 0;
}

/* Options of the device table: 'D' + index for --<option>, 'N' + index
 * for --no-<...>, above anything getopt returns for a letter. */
#define OPT_DEVICE    0x1000
#define OPT_NO_DEVICE 0x2000

static const struct option base_opts[] = {
    {"kernel", required_argument, NULL, 'k'},
    {"initrd", required_argument, NULL, 'i'},
    {"cmdline", required_argument, NULL, 'c'},
    {"cpus", required_argument, NULL, 'n'},
    {"mem", required_argument, NULL, 'm'},
    {"console", required_argument, NULL, 'o'},
    {"stats", no_argument, NULL, 's'},
    {"ready-fd", required_argument, NULL, 'r'},
    {"verbose", no_argument, NULL, 'v'},
    {"seccomp", required_argument, NULL, 'S'},
    {"control", required_argument, NULL, 'C'},
    {"jail", no_argument, NULL, 'J'},
    {"jail-uid", required_argument, NULL, 'J'},
    {"jail-gid", required_argument, NULL, 'J'},
    {"jail-cpu", required_argument, NULL, 'J'},
    {"jail-mem", required_argument, NULL, 'J'},
    {"jail-pids", required_argument, NULL, 'J'},
    {"help", no_argument, NULL, 'h'},
};

#define N_BASE_OPTS (sizeof(base_opts) / sizeof(base_opts[0]))
#define N_TYPES_MAX 16

/* The base options, then each device type's. */
static void build_longopts(struct option *out)
{
	unsigned n = 0;

	for (unsigned i = 0; i < N_BASE_OPTS; i++)
		out[n++] = base_opts[i];
	for (unsigned t = 0; device_types[t]; t++) {
		const struct device_type *dt = device_types[t];

		if (dt->option)
			out[n++] =
			    (struct option){dt->option, required_argument, NULL,
					    (int)(OPT_DEVICE + t)};
		if (dt->no_option)
			out[n++] =
			    (struct option){dt->no_option, no_argument, NULL,
					    (int)(OPT_NO_DEVICE + t)};
	}
	out[n] = (struct option){NULL, 0, NULL, 0};
}

/* One more instance of type t from its option's value. */
static int add_device(struct boot_options *o, unsigned t, char *value)
{
	const struct device_type *dt = device_types[t];
	struct vm_config *cfg = &o->cfg;
	void *earlier[VM_MAX_DEVICES];
	unsigned n = 0;
	void *dev_cfg;
	int ret;

	for (unsigned i = 0; i < cfg->ndevices; i++)
		if (cfg->devices[i].type == dt)
			earlier[n++] = cfg->devices[i].cfg;
	if (n >= dt->max) {
		log_errx("--%s: given more than %u times: at most %u allowed",
			 dt->option, dt->max, dt->max);
		return -EINVAL;
	}
	if (cfg->ndevices == VM_MAX_DEVICES) {
		log_errx("--%s: at most %d devices in all", dt->option,
			 VM_MAX_DEVICES);
		return -EINVAL;
	}
	ret = dt->parse(value, &dev_cfg, earlier, n);
	if (ret)
		return ret;
	cfg->devices[cfg->ndevices++] =
	    (struct device_config){.type = dt, .cfg = dev_cfg, .owned = true};
	return 0;
}

int cli_add_default_devices(struct vm_config *cfg, const bool *omit)
{
	for (unsigned t = 0; device_types[t]; t++) {
		const struct device_type *dt = device_types[t];
		bool have = false;

		if (!dt->no_option || (omit && omit[t]))
			continue;
		for (unsigned i = 0; i < cfg->ndevices; i++)
			have |= cfg->devices[i].type == dt;
		if (have)
			continue;
		if (cfg->ndevices == VM_MAX_DEVICES) {
			log_errx("too many devices for the default %s",
				 dt->name);
			return -EINVAL;
		}
		cfg->devices[cfg->ndevices++] =
		    (struct device_config){.type = dt};
	}
	return 0;
}

/* The table's order (the order of virtio slots), and within a type the
 * order the options came in. */
static void sort_devices(struct vm_config *cfg)
{
	struct device_config sorted[VM_MAX_DEVICES];
	unsigned n = 0;

	for (unsigned t = 0; device_types[t]; t++)
		for (unsigned i = 0; i < cfg->ndevices; i++)
			if (cfg->devices[i].type == device_types[t])
				sorted[n++] = cfg->devices[i];
	memcpy(cfg->devices, sorted, n * sizeof(sorted[0]));
	cfg->ndevices = n;
}

int cli_parse_boot(int argc, char **argv, struct boot_options *o)
{
	struct option longopts[N_BASE_OPTS + 2 * N_TYPES_MAX + 1];
	bool omit[N_TYPES_MAX] = {false};
	uint64_t v;
	int c, idx = 0;

	build_longopts(longopts);
	memset(o, 0, sizeof(*o));
	o->cfg.ncpus = 1;
	o->cfg.mem_mib = CLI_DEFAULT_MEM_MIB;
	o->cfg.console_limit = CONSOLE_FILE_LIMIT;
	o->cfg.seccomp = seccomp_default_mode();
	o->cfg.keeper_fd = -1;
	o->cfg.kvm_path = getenv("HUTCH_KVM_DEVICE");
	if (!o->cfg.kvm_path)
		o->cfg.kvm_path = KVM_DEFAULT_PATH;

	optind = 0; /* reinitialise getopt: tests parse many times */
	opterr = 0;
	o->jail.dir_fd = -1;
	while ((c = getopt_long(argc, argv, "+", longopts, &idx)) != -1) {
		switch (c) {
		case 'J':
			if (cli_parse_jail_option(longopts[idx].name, optarg,
						  &o->jail) < 0)
				return -EINVAL;
			break;
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
			if (cli_parse_cpus(optarg, &o->cfg.ncpus))
				return -EINVAL;
			break;
		case 'm':
			if (cli_parse_mem_mib(optarg, &o->cfg.mem_mib))
				return -EINVAL;
			break;
		case 'o':
			o->cfg.console_path = optarg;
			break;
		case 'C':
			o->cfg.control_path = optarg;
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
		case 'S':
			if (seccomp_parse_mode(optarg, &o->cfg.seccomp)) {
				log_errx("--seccomp '%s': expected kill, log "
					 "or off",
					 optarg);
				return -EINVAL;
			}
			break;
		case 'h':
			return CLI_HELP;
		case ':':
			log_errx("option %s needs an argument (see --help)",
				 argv[optind - 1]);
			return -EINVAL;
		default:
			if (c >= OPT_DEVICE && c < OPT_DEVICE + N_TYPES_MAX) {
				if (add_device(o, (unsigned)(c - OPT_DEVICE),
					       optarg))
					return -EINVAL;
				break;
			}
			if (c >= OPT_NO_DEVICE &&
			    c < OPT_NO_DEVICE + N_TYPES_MAX) {
				omit[c - OPT_NO_DEVICE] = true;
				break;
			}
			log_errx("unknown option %s (see --help)",
				 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (cli_add_default_devices(&o->cfg, omit))
		return -EINVAL;
	sort_devices(&o->cfg);
	if (optind < argc) {
		log_errx("unexpected argument '%s' (quote the --cmdline value)",
			 argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int cli_parse_jail_option(const char *name, const char *value,
			  struct jail_config *j)
{
	uint64_t v;
	char opt[32];

	snprintf(opt, sizeof(opt), "--%s", name);
	if (!strcmp(name, "jail")) {
		j->enabled = true;
		return 1;
	}
	if (strncmp(name, "jail-", 5))
		return 0;
	if (!strcmp(name, "jail-uid") || !strcmp(name, "jail-gid")) {
		/* Not root, and not the "-1" of set*id(2). */
		if (jail_parse_limit(opt, value, 1, UINT32_MAX - 1, &v))
			return -EINVAL;
		if (name[5] == 'u') {
			j->uid = (uid_t)v;
			j->have_uid = true;
		} else {
			j->gid = (gid_t)v;
			j->have_gid = true;
		}
	} else if (!strcmp(name, "jail-cpu")) {
		if (jail_parse_limit(opt, value, 1, 100000, &j->cpu_pct))
			return -EINVAL;
	} else if (!strcmp(name, "jail-mem")) {
		if (jail_parse_limit(opt, value, 16, 1ull << 24, &j->mem_mib))
			return -EINVAL;
	} else if (!strcmp(name, "jail-pids")) {
		if (jail_parse_limit(opt, value, 1, 1u << 22, &j->pids_max))
			return -EINVAL;
	} else {
		return 0;
	}
	j->enabled = true;
	return 1;
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
	p = cli_beside_exe(arch_default_kernel);
	if (p)
		return p;
	if (asprintf(&p, "%s/%s", HUTCH_DATADIR, arch_default_kernel) < 0)
		return NULL;
	if (access(p, R_OK) == 0)
		return p;
	free(p);
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
	for (unsigned i = 0; i < o->cfg.ndevices; i++) {
		struct device_config *d = &o->cfg.devices[i];

		if (d->owned && d->type->free_config)
			d->type->free_config(d->cfg);
		d->cfg = NULL;
	}
	o->cfg.ndevices = 0;
	free(o->owned[0]);
	free(o->owned[1]);
}
