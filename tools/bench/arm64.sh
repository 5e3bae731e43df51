#!/bin/sh
# The arm64 benchmark's measuring half (tools/bench/run arm64), run by
# busybox sh in tools/l1/kvm-run --arch arm64's L1: ROUNDS rounds of
#   boot  hutch boot of hutch's arm64 kernel and the test initramfs to its
#         init (the boot timer) and to power-off, with the exits returned
#         to hutch and all KVM exits (--stats, from the L1's debugfs);
#   run   hutch run --rootfs busybox.ext4 -- true, whole (busybox time:
#         10 ms steps);
#   from  hutch run --from SNAPSHOT -- true, whole: the same command from
#         a snapshot of a VM booted once on that root (its agent
#         listening), the warm-start path.
# One line per measurement on stdout: "boot BOOT_MS EXIT_MS VMM_EXITS
# KVM_EXITS", "run SECONDS" or "from SECONDS"; the host side makes the
# table.
#
#   sh tools/bench/arm64.sh HUTCH GUESTDIR ROUNDS
set -u
bin=$1 guest=$2 rounds=$3
export HUTCH_STATE_DIR=$(mktemp -d)
snap=$HUTCH_STATE_DIR/snap
"$bin" start --rootfs "$guest/busybox.ext4" warm >/dev/null 2>&1 &&
	"$bin" snapshot warm "$snap" >/dev/null 2>&1 ||
	echo "arm64.sh: no snapshot to start from" >&2
"$bin" stop warm >/dev/null 2>&1
i=0
while [ $i -lt "$rounds" ]; do
	i=$((i + 1))
	s=$("$bin" boot --stats --kernel "$guest/Image" --initrd "$guest/test-initramfs.cpio" \
		--mem 512 --cmdline quiet 2>&1 >/dev/null | grep '^hutch-stats: setup_ms')
	echo "$s" | sed -n 's/.*boot_done_ms=\([0-9.]*\) exit_ms=\([0-9.]*\) vmm_exits=\([0-9]*\) .*kvm_exits=\([0-9a-z]*\) .*/boot \1 \2 \3 \4/p'
	time -o "$HUTCH_STATE_DIR/time" -p "$bin" run --rootfs "$guest/busybox.ext4" -- true >/dev/null 2>&1
	echo "run $(sed -n 's/^real //p' "$HUTCH_STATE_DIR/time")"
	if [ -d "$snap" ] && time -o "$HUTCH_STATE_DIR/time" -p "$bin" run --from "$snap" -- true >/dev/null 2>&1; then
		echo "from $(sed -n 's/^real //p' "$HUTCH_STATE_DIR/time")"
	fi
done
