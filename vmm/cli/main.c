// SPDX-License-Identifier: MIT
/* hutch: command line entry point. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/boot_options.h"
#include "vmm/cli/commands.h"
#include "vmm/kvm.h"
#include "vmm/base/log.h"
#include "vmm/vm.h"

static const char usage_text[] =
    "usage: hutch run [--rootfs IMG] [--cpus N] [--mem MiB] [--timeout S]\n"
    "                 [--kernel PATH] -- CMD [ARGS...]\n"
    "       hutch start [--rootfs IMG] [--cpus N] [--mem MiB] NAME\n"
    "       hutch exec [--timeout S] NAME -- CMD [ARGS...]\n"
    "       hutch shell NAME\n"
    "       hutch cp SRC DST        (one of them NAME:/path)\n"
    "       hutch stop NAME\n"
    "       hutch ls\n"
    "       hutch boot [--kernel PATH] [--initrd PATH] [--cmdline STR]\n"
    "                  [--cpus N] [--mem MiB] [--console FILE] [--stats]\n"
    "                  [--drive path=FILE[,ro][,root][,overlay=FILE]\n"
    "                           [,serial=ID]]... [--vsock PATH[,cid=N]]\n"
    "                  [--ready-fd FD] [--verbose]\n"
    "       hutch check-kvm\n"
    "       hutch --help | --version\n"
    "\n"
    "hutch run: boot a VM (default kernel, root image build/guest/\n"
    "  debian.ext4 behind a throw-away overlay, 1 vCPU, 512 MiB), run CMD\n"
    "  in it through the guest agent, stream its output, exit with its\n"
    "  status (128+N if killed by signal N, 124 after --timeout), and\n"
    "  tear the VM down.  Piped stdin becomes CMD's stdin.\n"
    "hutch start NAME: the same VM kept running in the background;\n"
    "  exec runs a command in it, shell opens an interactive shell (a\n"
    "  pseudo-terminal that follows window size changes), cp copies files\n"
    "  in or out, stop powers it off, ls lists VMs.  State lives in\n"
    "  $HUTCH_STATE_DIR (default $XDG_RUNTIME_DIR/hutch or\n"
    "  /tmp/hutch-UID).\n"
    "\n"
    "hutch boot: boot a Linux guest on KVM and exit with its fate.\n"
    "  --kernel PATH   ELF vmlinux (PVH entry, fastest) or bzImage.\n"
    "                  Default: $HUTCH_KERNEL, else the kernel built by\n"
    "                  guest-kernel-config/build next to the binary\n"
    "                  (<dir of hutch>/guest/vmlinux), else\n"
    "                  " HUTCH_DATADIR "/vmlinux.\n"
    "  --initrd PATH   initramfs/initrd.  When neither --kernel nor\n"
    "                  --initrd is given, the default test initramfs\n"
    "                  (<dir of hutch>/guest/initramfs.cpio) is used.\n"
    "  --cmdline STR   kernel command line, appended to\n"
    "                  \"console=ttyS0 reboot=k pci=off\" (default: "
    "\"quiet\").\n"
    "                  Words after \"--\" go to the guest's init.\n"
    "  --cpus N        vCPUs, 1..254 (default 1).\n"
    "  --mem MiB       guest RAM in MiB (default 128).\n"
    "  --console FILE  write the guest console to FILE instead of stdout.\n"
    "                  Guest input comes from stdin; on a terminal,\n"
    "                  Ctrl-A x quits.\n"
    "  --drive SPEC    a virtio-blk disk; repeat for more (vda, vdb, ...,\n"
    "                  at most 8).  path=FILE: raw image, a multiple of\n"
    "                  512 bytes.  ro: read-only for the guest.  root:\n"
    "                  the guest's root file system (root=/dev/vdX).\n"
    "                  overlay=FILE: copy-on-write; FILE is never the\n"
    "                  image, which stays unchanged; created if empty.\n"
    "                  serial=ID: what the guest reads as the disk id\n"
    "                  (default hutch-N).  Paths cannot contain commas.\n"
    "  --vsock SPEC    a virtio-vsock device, PATH[,cid=N]: the guest's\n"
    "                  CID is N (3..4294967294, default 3); the host is\n"
    "                  CID 2.  hutch listens on the Unix socket PATH (it\n"
    "                  must not exist, or be a stale socket, which is\n"
    "                  replaced; it is removed at exit).  A host program\n"
    "                  connects to PATH and writes \"CONNECT <port>\\n\";\n"
    "                  once the guest accepts, it reads \"OK <host port>\\n\"\n"
    "                  and then talks to the guest's socket.  A guest\n"
    "                  connecting to host port P reaches whoever listens\n"
    "                  on the Unix socket PATH_P (e.g. v.sock_5000).\n"
    "  --stats         print timing and exit counts to stderr at the end.\n"
    "  --ready-fd FD   write one byte to FD, then close it, when the guest\n"
    "                  reports boot done (the hutch agent does once it\n"
    "                  listens on vsock): wait for the VM without polling.\n"
    "  --verbose       log VMM events (unclaimed port accesses, init).\n"
    "\n"
    "hutch check-kvm: exit 0 if /dev/kvm is usable, else explain.\n"
    "\n"
    "Exit status:\n"
    "  0    the guest powered off or rebooted\n"
    "  1    hutch error (bad input, KVM unusable, host failure)\n"
    "  2    usage error\n"
    "  3    the guest kernel panicked\n"
    "  4    the guest crashed (triple fault, KVM internal error, failed\n"
    "       entry); registers are printed to stderr\n"
    "  128+N  hutch was stopped by signal N (Ctrl-A x counts as SIGINT)\n";

static int cmd_check_kvm(void)
{
	const char *path = getenv("HUTCH_KVM_DEVICE");
	int fd = kvm_open_checked(path ? path : KVM_DEFAULT_PATH);

	if (fd < 0)
		return EXIT_HUTCH_ERROR;
	close(fd);
	return 0;
}

int boot_vm(struct boot_options *opts)
{
	struct vm vm;
	int ret, code;

	ret = cli_resolve_defaults(opts);
	if (ret) {
		cli_free(opts);
		return EXIT_HUTCH_ERROR;
	}
	log_set_verbose(opts->verbose);

	ret = vm_create(&vm, &opts->cfg);
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
		fputs(usage_text, stdout);
		return 0;
	}
	if (ret)
		return EXIT_USAGE;
	return boot_vm(&opts);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("hutch %s\n", HUTCH_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "boot"))
		return cmd_boot(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "start"))
		return cmd_start(argc - 1, argv + 1);
	if (!strcmp(argv[1], "exec"))
		return cmd_exec(argc - 1, argv + 1);
	if (!strcmp(argv[1], "shell"))
		return cmd_shell(argc - 1, argv + 1);
	if (!strcmp(argv[1], "cp"))
		return cmd_cp(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stop"))
		return cmd_stop(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ls"))
		return cmd_ls(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check-kvm"))
		return cmd_check_kvm();
	fprintf(stderr, "hutch: unknown command '%s' (try hutch --help)\n",
		argv[1]);
	return EXIT_USAGE;
}
