// SPDX-License-Identifier: MIT
/*
 * hutch: the command table.  Each command has its usage line and help;
 * `hutch CMD --help` (or -h, before any "--") prints them, `hutch --help`
 * all usage lines.  The device options of `hutch boot` come from the
 * device table, so a new device documents itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/base/log.h"
#include "vmm/boot_options.h"
#include "vmm/cli/commands.h"
#include "vmm/snapshot.h"
#include "vmm/device_table.h"
#include "vmm/kvm.h"
#include "vmm/vm.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage; /* after "hutch " */
	const char *help;
};

static int cmd_check_kvm(int argc, char **argv);

static const char exit_help[] =
    "Exit status of run and exec: the command's (128+N if a signal N\n"
    "killed it, 124 after --timeout, 127 if it could not start).\n"
    "Exit status of boot:\n"
    "  0    the guest powered off or rebooted\n"
    "  1    hutch error (bad input, KVM unusable, host failure)\n"
    "  2    usage error\n"
    "  3    the guest kernel panicked\n"
    "  4    the guest crashed (triple fault, KVM internal error, failed\n"
    "       entry); registers are printed to stderr\n"
    "  128+N  hutch was stopped by signal N (Ctrl-A x counts as SIGINT)\n";

static const struct command commands[] = {
    {"run", cmd_run,
     "run [--rootfs IMG] [--cpus N] [--mem MiB] [--timeout S] "
     "[--kernel PATH]\n"
     "                 [--seccomp kill|log|off] [--no-jail | --jail-* ...]\n"
     "                 [--drive-limits KEY=VALUE,...] [--from SNAPSHOT]\n"
     "                 [--net user[,fwd=..]|tap=IF[,ip=..] [--allow RULE]... "
     "[--deny RULE]...\n"
     "                  [--allow-domain NAME]... [--deny-log FILE]]\n"
     "                 -- CMD [ARGS...]",
     "Boot a VM (default kernel, root image build/guest/debian.ext4 behind\n"
     "a throw-away overlay, 1 vCPU, 512 MiB), run CMD in it through the\n"
     "guest agent, stream its output and exit with its status, then tear\n"
     "the VM down.  Piped stdin becomes CMD's stdin.  Ctrl-C, SIGTERM,\n"
     "SIGHUP, SIGQUIT go to CMD; a second one, or 5 s without CMD ending,\n"
     "kills the VM.  --timeout S kills CMD after S seconds (exit 124),\n"
     "enforced on the host too (S + 10 s).  --seccomp: the VMM's syscall\n"
     "filters, as for boot.  As root the VMM is jailed (see boot's\n"
     "--jail; --no-jail: not).  --drive-limits: the root disk's rate\n"
     "limits (bps=, bps_burst=, iops=, iops_burst=; see hutch limit).\n"
     "--from SNAPSHOT: restore that snapshot (hutch snapshot) instead of\n"
     "booting.  --net user: a NIC with user-mode networking (DHCP, DNS;\n"
     "fwd=[tcp:|udp:][ADDR:]HOSTPORT:GUESTPORT forwards a host port in),\n"
     "from which nothing leaves but what --allow RULE lets out and\n"
     "--deny RULE does not ([tcp:|udp:|icmp:]ADDR[/LEN][:PORT[-PORT]])\n"
     "and --allow-domain NAME (NAME, *.SUFFIX or *, [:PORT[-PORT]]; by\n"
     "default ports 80 and 443, the connection's TLS or HTTP name checked)\n"
     "does (README.md, \"Networking\"); denials go to --deny-log FILE,\n"
     "one JSON line each.  --net tap=IFNAME[,ip=ADDR/N,gw=,dns=,in=PORT]:\n"
     "the host's TAP instead (created if missing and allowed), same\n"
     "policy.  Rate limits: --net ...,[tx_|rx_]bps=N,pps=N (hutch limit).\n"},
    {"start", cmd_start,
     "start [--rootfs IMG] [--cpus N] [--mem MiB] [--kernel PATH]\n"
     "                 [--seccomp kill|log|off] [--no-jail | --jail-* ...]\n"
     "                 [--drive-limits KEY=VALUE,...] [--net ... as run] NAME",
     "The VM of run, kept running in the background as NAME.  State lives\n"
     "in $HUTCH_STATE_DIR (default $XDG_RUNTIME_DIR/hutch, /run/hutch for\n"
     "root, ~/.local/state/hutch, else /tmp/hutch-UID), which must be a\n"
     "directory of yours with mode 0700.\n"},
    {"exec", cmd_exec, "exec [--timeout S] NAME -- CMD [ARGS...]",
     "Run CMD in the VM NAME, as run does (streams, status, signals).\n"},
    {"shell", cmd_shell, "shell NAME",
     "An interactive login shell in the VM NAME on a pseudo-terminal that\n"
     "follows the local window size.\n"},
    {"cp", cmd_cp, "cp [-p] SRC DST        (one of them NAME:/path)",
     "Copy a file into or out of the VM NAME, streamed.  A download\n"
     "replaces DST only once all of it arrived; its permission bits are\n"
     "the guest's rwx bits under your umask (-p: all bits, set-id and\n"
     "sticky included).\n"},
    {"stop", cmd_stop, "stop NAME",
     "Power the VM NAME off (then SIGTERM, then SIGKILL) and remove its\n"
     "state directory.\n"},
    {"ls", cmd_ls, "ls", "List the named VMs: name, pid, running or dead.\n"},
    {"snapshot", cmd_snapshot, "snapshot NAME DIR",
     "Save the running VM NAME (of hutch start) into the directory DIR:\n"
     "its memory, vCPU and device state, and its disk overlay.  The VM\n"
     "pauses meanwhile and then runs on.  DIR appears only once complete;\n"
     "an earlier snapshot there is replaced, anything else is refused.\n"},
    {"restore", cmd_restore,
     "restore [--seccomp ...] [--no-jail | --jail-* ...] DIR NAME",
     "Start the VM saved in DIR as NAME, running from where it was: the\n"
     "snapshot's vCPUs, memory and root image, with its own copy of the\n"
     "snapshot's overlay (restore DIR as often as you like, at once: each\n"
     "VM writes only to its own).  A damaged or mismatched snapshot is\n"
     "refused before any VM starts.  hutch run --from DIR -- CMD restores\n"
     "a throw-away VM to run CMD.\n"},
    {"limit", cmd_limit, "limit NAME DRIVE|netN KEY=VALUE[,KEY=VALUE...]",
     "Change a running VM's rate limits for drive DRIVE (0: the root\n"
     "disk): bps=, bps_burst= (bytes/s, bytes), iops=, iops_burst=\n"
     "(requests/s, requests); 0 lifts a limit.  run/start set them at\n"
     "start with --drive-limits KEY=VALUE,...  For NIC N (net: the\n"
     "first): [tx_|rx_]bps=, pps=, bps_burst=, pps_burst= (bytes and\n"
     "frames; tx: from the guest, rx: to it, neither: both), set at\n"
     "start in --net user,KEY=VALUE,...\n"},
    {"net", cmd_net, "net NAME allow|deny|allow-domain RULE",
     "Add an egress rule to the running VM NAME's NIC, for connections\n"
     "from now on (see run's --allow, --deny, --allow-domain).\n"},
    {"boot", cmd_boot,
     "boot [--kernel PATH] [--initrd PATH] [--cmdline STR] [--cpus N]\n"
     "                  [--mem MiB] [--console FILE] [--stats]\n"
     "                  [--ready-fd FD] [--seccomp kill|log|off] [--verbose]\n"
     "                  [--control PATH] [--jail [--jail-uid N] [--jail-gid "
     "N]\n"
     "                  [--jail-cpu PCT] [--jail-mem MiB] [--jail-pids N]]\n"
     "                  [DEVICE OPTIONS]",
     "Boot a Linux guest on KVM and exit with its fate.\n"
     "  --kernel PATH   ELF vmlinux (PVH entry, fastest) or bzImage;\n"
     "                  on arm64 an Image.  Default: $HUTCH_KERNEL, else\n"
     "                  <dir of hutch>/guest/vmlinux (arm64: Image), else\n"
     "                  the same name in " HUTCH_DATADIR ".\n"
     "  --initrd PATH   initramfs/initrd.  When neither --kernel nor\n"
     "                  --initrd is given, <dir of hutch>/guest/\n"
     "                  initramfs.cpio is used.\n"
     "  --cmdline STR   kernel command line, appended to\n"
     "                  \"console=ttyS0 reboot=k pci=off\" (default "
     "\"quiet\").\n"
     "                  Words after \"--\" go to the guest's init.\n"
     "  --cpus N        vCPUs, 1..254 (default 1).\n"
     "  --mem MiB       guest RAM in MiB (default 128).\n"
     "  --console FILE  the guest console to FILE (0600, emptied again at\n"
     "                  64 MiB) instead of stdout.  Input comes from stdin;\n"
     "                  on a terminal, Ctrl-A x quits.\n"
     "  --stats         timing, exit and device counters on stderr at the\n"
     "                  end.\n"
     "  --ready-fd FD   write one byte to FD, then close it, when the guest\n"
     "                  reports boot done.\n"
     "  --control PATH  a control socket (0600) for the running VM: one\n"
     "                  line \"limit virtio-blk N bps=..,iops=..\" each.\n"
     "  --jail          jail the VMM (root; README.md): namespaces, an\n"
     "                  empty root, no capabilities, uid/gid 0x40000000 +\n"
     "                  pid (--jail-uid N, --jail-gid N), rlimits; cgroup\n"
     "                  v2 limits --jail-cpu PCT, --jail-mem MiB,\n"
     "                  --jail-pids N (each implies --jail).\n"
     "  --seccomp MODE  each thread's syscall allowlist: kill (default:\n"
     "                  a syscall off the list kills hutch with SIGSYS),\n"
     "                  log (allowed, logged by the kernel: dmesg) or off.\n"
     "  --verbose       log VMM events (unclaimed accesses, init).\n"},
    {"jailer", cmd_jailer,
     "jailer --id ID --exec-file HUTCH --uid UID --gid GID\n"
     "                  [--chroot-base-dir DIR] [--netns PATH] [--daemonize]\n"
     "                  [--cgroup FILE=VALUE]... [--parent-cgroup NAME]\n"
     "                  [--resource-limit fsize=N|no-file=N]...\n"
     "                  [--cgroup-version 2] [--new-pid-ns] -- BOOT-OPTIONS",
     "Firecracker's jailer command line with the effect of hutch boot\n"
     "--jail --jail-uid UID --jail-gid GID BOOT-OPTIONS: the VMM in a\n"
     "cgroup v2 at /sys/fs/cgroup/NAME/ID (NAME: hutch) with each --cgroup\n"
     "file written, in --netns's network namespace (else a fresh one).\n"
     "--exec-file must be this hutch; no chroot directory is built (the\n"
     "jail's root is empty: every file is opened before it closes).\n"},
    {"check-kvm", cmd_check_kvm, "check-kvm",
     "Exit 0 if /dev/kvm is usable, else say why.\n"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usages(FILE *out)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "%s hutch %s\n",
			i ? "      " : "usage:", commands[i].usage);
	fprintf(out, "       hutch CMD --help | hutch --help | hutch "
		     "--version\n");
}

/* `hutch boot`'s device options, from the device table. */
static void print_device_options(FILE *out)
{
	fputs("Device options (repeat where the device allows more):\n", out);
	for (unsigned t = 0; device_types[t]; t++) {
		const struct device_type *dt = device_types[t];

		if (dt->option)
			fprintf(
			    out,
			    "  --%s %s\n                  %s (at most %u).\n",
			    dt->option, dt->option_arg, dt->option_help,
			    dt->max);
		if (dt->no_option)
			fprintf(out, "  --%s\n                  %s\n",
				dt->no_option, dt->no_option_help);
	}
	fputs("See README.md for each device's keys and behaviour.\n", out);
}

static void print_help(const struct command *c)
{
	printf("usage: hutch %s\n\n%s", c->usage, c->help);
	if (c->run == cmd_boot) {
		putchar('\n');
		print_device_options(stdout);
	}
	if (c->run == cmd_boot || c->run == cmd_run || c->run == cmd_exec) {
		putchar('\n');
		fputs(exit_help, stdout);
	}
}

static int cmd_check_kvm(int argc, char **argv)
{
	const char *path = getenv("HUTCH_KVM_DEVICE");
	int fd;

	(void)argv;
	if (argc != 1) {
		log_errx("check-kvm: takes no arguments");
		return EXIT_USAGE;
	}
	fd = kvm_open_checked(path ? path : KVM_DEFAULT_PATH);
	if (fd < 0)
		return EXIT_HUTCH_ERROR;
	close(fd);
	return 0;
}

/* What the jail's keeper may connect to: each device's host socket
 * path.  And that it can be done at all. */
static int jail_prepare(struct jail_config *j, const struct vm_config *cfg)
{
	if (geteuid() != 0) {
		log_errx("--jail needs root (namespaces, cgroups, changing "
			 "uid)");
		return -EPERM;
	}
	for (unsigned i = 0; i < cfg->ndevices; i++) {
		const struct device_config *d = &cfg->devices[i];

		if (d->type->host_network && d->type->host_network(d->cfg))
			j->keep_host_net = true;
		if (!d->type->host_path || !d->cfg ||
		    j->nprefixes == JAIL_MAX_PREFIXES)
			continue;
		j->connect_prefix[j->nprefixes++] = d->type->host_path(d->cfg);
		j->socket_path[j->nsockets++] = d->type->host_path(d->cfg);
	}
	if (cfg->control_path)
		j->socket_path[j->nsockets++] = cfg->control_path;
	return 0;
}

/* RLIMIT_FSIZE for the jailed VMM: the largest file any device writes,
 * the console file, hutch's own log.  None where the console is stdout
 * and stdout a regular file (the guest decides how much it prints). */
static uint64_t jail_fsize(const struct vm *vm)
{
	uint64_t max = LOG_MAX_BYTES + 65536;
	struct stat st;

	if (!vm->cfg->console_path &&
	    (fstat(STDOUT_FILENO, &st) < 0 || S_ISREG(st.st_mode)))
		return 0;
	if (vm->cfg->console_path && vm->cfg->console_limit + 65536 > max)
		max = vm->cfg->console_limit + 65536;
	if (vm->cfg->console_path && !vm->cfg->console_limit)
		return 0;
	for (unsigned i = 0; i < vm->ndevs; i++) {
		const struct device_instance *d = &vm->devs[i];
		uint64_t n =
		    d->type->max_file_size ? d->type->max_file_size(d->dev) : 0;

		if (n > max)
			max = n;
	}
	/* A snapshot (asked on the control socket) writes guest RAM. */
	if (vm->cfg->control_path && vm->mem.host_len + SNAPSHOT_MEM_HDR > max)
		max = vm->mem.host_len + SNAPSHOT_MEM_HDR;
	return max;
}

int boot_jail_spawn(struct boot_options *opts)
{
	int ret = jail_prepare(&opts->jail, &opts->cfg);

	return ret ? ret : jail_spawn(&opts->jail);
}

int boot_vm(struct boot_options *opts)
{
	struct jail_config *j = &opts->jail;
	struct vm vm;
	int ret, code;

	ret = cli_resolve_defaults(opts);
	if (!ret && j->enabled && !j->host_pid)
		ret = boot_jail_spawn(opts);
	if (!ret && j->enabled)
		opts->cfg.keeper_fd = j->broker_fd;
	if (ret) {
		cli_free(opts);
		return EXIT_HUTCH_ERROR;
	}
	log_set_verbose(opts->verbose);

	ret = vm_create(&vm, &opts->cfg);
	if (!ret && j->enabled) {
		/* Everything is open and no guest code has run: in. */
		j->fsize_max = jail_fsize(&vm);
		ret = jail_enter(j);
		vm.jail_spawn_ns = j->spawn_ns;
		vm.jail_enter_ns = j->enter_ns;
		vm.jail_unshare_ns = j->unshare_ns;
		vm.jail_root_ns = j->root_ns;
		log_debug("jail: spawn %.2f ms, enter %.2f ms",
			  (double)j->spawn_ns / 1e6, (double)j->enter_ns / 1e6);
	}
	if (ret) {
		vm_destroy(&vm);
		cli_free(opts);
		return EXIT_HUTCH_ERROR;
	}
	code = vm_run(&vm);
	vm_destroy(&vm);
	cli_free(opts);
	return code;
}

int cmd_boot(int argc, char **argv)
{
	struct boot_options opts;
	int ret = cli_parse_boot(argc, argv, &opts);

	if (ret == CLI_HELP) {
		cli_free(&opts);
		for (size_t i = 0; i < N_COMMANDS; i++)
			if (commands[i].run == cmd_boot)
				print_help(&commands[i]);
		return 0;
	}
	if (ret) {
		cli_free(&opts);
		return EXIT_USAGE;
	}
	return boot_vm(&opts);
}

/* --help or -h among the command's options (before any "--"). */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

/* The soft descriptor limit up to CLI_NOFILE where the hard one allows:
 * user networking holds a host socket per guest flow (up to 2048), and
 * the common default of 1024 leaves too few beside vsock's.  A jailed
 * VMM gets its own limit (JAIL_NOFILE). */
#define CLI_NOFILE 4096

static void raise_nofile(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) < 0 || r.rlim_cur >= CLI_NOFILE)
		return;
	r.rlim_cur = r.rlim_max < CLI_NOFILE ? r.rlim_max : CLI_NOFILE;
	setrlimit(RLIMIT_NOFILE, &r);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_usages(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		print_usages(stdout);
		printf("\nhutch CMD --help explains CMD.\n\n%s", exit_help);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("hutch %s\n", HUTCH_VERSION);
		return 0;
	}
	raise_nofile();
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		if (wants_help(argc - 1, argv + 1)) {
			print_help(&commands[i]);
			return 0;
		}
		return commands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "hutch: unknown command '%s' (try hutch --help)\n",
		argv[1]);
	return EXIT_USAGE;
}
