// SPDX-License-Identifier: MIT
/* hutch: command line entry point. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kvm.h"
#include "log.h"
#include "vm.h"

static const char usage_text[] =
    "usage: hutch boot [--kernel PATH] [--initrd PATH] [--cmdline STR]\n"
    "                  [--cpus N] [--mem MiB] [--console FILE] [--stats]\n"
    "                  [--drive path=FILE[,ro][,root][,overlay=FILE]\n"
    "                           [,serial=ID]]... [--verbose]\n"
    "       hutch check-kvm\n"
    "       hutch --help | --version\n"
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
    "  --stats         print timing and exit counts to stderr at the end.\n"
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

static int cmd_boot(int argc, char **argv)
{
	struct boot_options opts;
	struct vm vm;
	int ret, code;

	ret = cli_parse_boot(argc, argv, &opts);
	if (ret == CLI_HELP) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (ret)
		return EXIT_USAGE;
	ret = cli_resolve_defaults(&opts);
	if (ret)
		return EXIT_HUTCH_ERROR;
	log_set_verbose(opts.verbose);

	ret = vm_create(&vm, &opts.cfg);
	if (ret) {
		vm_destroy(&vm);
		cli_free(&opts);
		return EXIT_HUTCH_ERROR;
	}
	code = vm_run(&vm);
	vm_destroy(&vm);
	cli_free(&opts);
	return code;
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
	if (!strcmp(argv[1], "check-kvm"))
		return cmd_check_kvm();
	fprintf(stderr, "hutch: unknown command '%s' (try hutch --help)\n",
		argv[1]);
	return EXIT_USAGE;
}
