#!/bin/sh
# arm64 boot tests (issue 15), run by busybox sh on real arm64 KVM
# (tools/integration-tests arm64: inside tools/l1/kvm-run --arch arm64).
# hutch (HUTCH_BIN, the cross build) boots the arm64 test guest
# (HUTCH_ARM64_GUEST: hutch's arm64 Image and test-initramfs.cpio from
# tools/cross/arm64-guest, whose init is tests/arm64/init): boot to init
# with 1 and 4 vCPUs, the device tree's devices and command line as the
# guest sees them, poweroff and reboot exit 0, a panic exits 3, a
# hostile driver breaks only its own device, bad kernels and too little
# memory refused with one line.  Ends with the summary line tools/check
# adds up (tests/arm64/lib.sh).
set -u
bin=${HUTCH_BIN:?}
guest=${HUTCH_ARM64_GUEST:?}
kernel=$guest/Image
. "$(dirname "$0")/lib.sh"

# Each boot is bounded: a guest that hangs fails its test, not the suite.
boot() { # output file, hutch boot's extra arguments...
	out=$1
	shift
	timeout -s KILL 180 "$bin" boot --kernel "$kernel" --initrd "$guest/test-initramfs.cpio" --mem 512 "$@" >"$out" 2>&1
}

boot "$work/one" --cmdline "quiet hutch.test=none"
rc=$?
if [ $rc = 0 ] && grep -q "^GUEST cpus=1" "$work/one" && grep -q "^GUEST powering off" "$work/one"; then
	pass "boots_to_init_and_poweroff_exits_0"
else
	fail "boots_to_init_and_poweroff_exits_0" "exit $rc; $(tail -n 3 "$work/one" | tr '\n' ' ')"
fi
# The device tree's UART and devices, and hutch's words then the user's;
# the virtio-rng device (hutch boot's one default device) probed by the
# guest's driver.
if grep -q "^GUEST uart=1" "$work/one" && grep -q "^GUEST virtio=1" "$work/one" &&
	grep -q "^GUEST hwrng=virtio_rng" "$work/one" &&
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

boot "$work/panic" --cmdline "quiet hutch.test=panic"
rc=$?
if [ $rc = 3 ] && grep -q "^GUEST panicking" "$work/panic"; then
	pass "a_panic_exits_3"
else
	fail "a_panic_exits_3" "exit $rc; $(tail -n 3 "$work/panic" | tr '\n' ' ')"
fi

# A hostile driver (virtio-poke through /dev/mem) breaks only its own
# device: a looping chain sets DEVICE_NEEDS_RESET, a reset brings it
# back, random register traffic leaves hutch running, and the other
# drive's data comes back intact.
truncate -s 64M "$work/a.img" "$work/b.img"
boot "$work/poke" --drive "path=$work/a.img" --drive "path=$work/b.img,serial=poke-me" --cmdline "quiet hutch.test=poke"
rc=$?
if [ $rc = 0 ] && grep -q "needs-reset: yes" "$work/poke" && grep -q "id: poke-me status 0" "$work/poke" &&
	grep -q "garbage done" "$work/poke" && grep -q "^GUEST vda-intact" "$work/poke" &&
	grep -q "guest driver error" "$work/poke"; then
	pass "a_hostile_driver_breaks_only_its_device"
else
	fail "a_hostile_driver_breaks_only_its_device" "exit $rc; $(grep -E 'GUEST|poke|needs|id:|garbage|hutch' "$work/poke" | tr '\n' ' ' | cut -c1-600)"
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
refused too_little_memory_asks_for_more "raise --mem" --kernel "$kernel" --mem 4

finish boot
