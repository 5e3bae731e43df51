#!/bin/sh
# arm64 boot tests (issue 15), run by busybox sh on real arm64 KVM
# (tools/integration-tests arm64: inside tools/l1/kvm-run --arch arm64).
# hutch (HUTCH_BIN, the cross build) boots the arm64 test guest
# (HUTCH_ARM64_GUEST: Image and initramfs.cpio from tools/cross/arm64-guest,
# whose init is tests/arm64/init): boot to init with 1 and 4 vCPUs, the
# device tree's devices and command line as the guest sees them, poweroff
# and reboot exit 0, bad kernels and too little memory refused with one
# line.  Ends with the summary line tools/check adds up.
set -u
bin=${HUTCH_BIN:?}
guest=${HUTCH_ARM64_GUEST:?}
kernel=$guest/Image
work=$(mktemp -d)
passed=0 failed=0

pass() { passed=$((passed + 1)); echo "[PASS] $1"; }
fail() { failed=$((failed + 1)); echo "[FAIL] $1: $2"; }

# Each boot is bounded: a guest that hangs fails its test, not the suite.
boot() { # output file, hutch boot's extra arguments...
	out=$1
	shift
	timeout -s KILL 180 "$bin" boot --kernel "$kernel" --initrd "$guest/initramfs.cpio" --mem 512 "$@" >"$out" 2>&1
}

boot "$work/one" --cmdline "quiet hutch.test=none"
rc=$?
if [ $rc = 0 ] && grep -q "^GUEST cpus=1" "$work/one" && grep -q "^GUEST powering off" "$work/one"; then
	pass "boots_to_init_and_poweroff_exits_0"
else
	fail "boots_to_init_and_poweroff_exits_0" "exit $rc; $(tail -n 3 "$work/one" | tr '\n' ' ')"
fi
# The device tree's UART and devices, and hutch's words then the user's.
if grep -q "^GUEST uart=1" "$work/one" && grep -q "^GUEST virtio=1" "$work/one" &&
	grep -q "^GUEST cmdline=console=ttyS0 earlycon quiet hutch.test=none" "$work/one"; then
	pass "the_guest_sees_the_device_tree_and_command_line"
else
	fail "the_guest_sees_the_device_tree_and_command_line" "$(grep ^GUEST "$work/one" | tr '\n' ' ')"
fi

boot "$work/four" --cpus 4 --cmdline quiet
rc=$?
if [ $rc = 0 ] && grep -q "^GUEST cpus=4" "$work/four"; then
	pass "four_vcpus_online"
else
	fail "four_vcpus_online" "exit $rc; $(grep ^GUEST "$work/four" | tr '\n' ' ')"
fi

boot "$work/reboot" --cmdline "quiet hutch.test=reboot"
rc=$?
if [ $rc = 0 ] && grep -q "^GUEST rebooting" "$work/reboot" && ! grep -q "^GUEST powering off" "$work/reboot"; then
	pass "reboot_exits_0"
else
	fail "reboot_exits_0" "exit $rc; $(tail -n 3 "$work/reboot" | tr '\n' ' ')"
fi

# Bad input: one "hutch:" line naming the problem, a non-zero exit.
refused() { # name, expected words, hutch boot arguments...
	name=$1 words=$2
	shift 2
	timeout -s KILL 60 "$bin" boot "$@" >"$work/bad" 2>&1
	rc=$?
	if [ $rc != 0 ] && [ "$(grep -c '^hutch:' "$work/bad")" = 1 ] && grep -q "$words" "$work/bad"; then
		pass "$name"
	else
		fail "$name" "exit $rc; $(tr '\n' ' ' <"$work/bad" | cut -c1-300)"
	fi
}
refused not_an_image_is_refused "not an arm64 Image" --kernel "$guest/initramfs.cpio" --mem 512
head -c 63 "$kernel" >"$work/short"
refused a_truncated_header_is_refused "header" --kernel "$work/short" --mem 512
refused too_little_memory_asks_for_more "raise --mem" --kernel "$kernel" --mem 16

rm -rf "$work"
echo "arm64 boot: $passed passed, $failed failed"
echo "[====] Synthesis: Tested: $((passed + failed)) | Passing: $passed | Failing: $failed | Crashing: 0"
[ "$failed" = 0 ]
