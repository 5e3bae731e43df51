#!/bin/sh
# arm64 agent, disk and vsock tests (issue 15), run by busybox sh on real
# arm64 KVM (tools/integration-tests arm64, in tools/l1/kvm-run --arch
# arm64's L1).  build-arm64/hutch (HUTCH_BIN) with its defaults beside it
# (build-arm64/guest: hutch's arm64 kernel and the agent's initramfs) and
# the arm64 busybox root image (HUTCH_ARM64_ROOTFS): run's output and exit
# status through the agent over virtio-vsock, stdin, start/exec/cp/stop,
# files written on the root disk (virtio-blk) across execs, a megabyte
# each way through cp, the root image unchanged by all of it (the
# overlay), vCPUs and the RNG as the guest sees them, and user networking
# with the egress policy.  Ends with the summary line tools/check adds
# up (tests/arm64/lib.sh).
set -u
bin=${HUTCH_BIN:?}
rootfs=${HUTCH_ARM64_ROOTFS:?}
. "$(dirname "$0")/lib.sh"

image_sum=$(sha256sum "$rootfs" | cut -d' ' -f1)

h run --rootfs "$rootfs" -- sh -c 'echo hello from $(uname -m); echo to-stderr >&2; exit 7' >"$work/run" 2>"$work/run.err"
rc=$?
if [ $rc = 7 ] && grep -qx "hello from aarch64" "$work/run" && grep -qx "to-stderr" "$work/run.err"; then
	pass "run_streams_output_and_propagates_the_exit_status"
else
	fail "run_streams_output_and_propagates_the_exit_status" "exit $rc; $(one_line "$work/run") / $(one_line "$work/run.err")"
fi

out=$(printf 'line one\nline two\n' | h run --rootfs "$rootfs" --cpus 2 -- sh -c 'cat; nproc' 2>&1)
rc=$?
expect_out stdin_reaches_the_command_and_two_vcpus_are_online "$(printf 'line one\nline two\n2')" "$out" "$rc"

if h start --rootfs "$rootfs" v >"$work/start" 2>&1; then
	head -c 1048576 /dev/urandom >"$work/up"
	h cp "$work/up" v:/root/up >"$work/cp" 2>&1 &&
		h exec v -- sh -c 'sha256sum /root/up; cp /root/up /root/down; echo kept > /root/note; sync' >"$work/exec" 2>&1 &&
		h cp v:/root/down "$work/down" >>"$work/cp" 2>&1
	rc=$?
	if [ $rc = 0 ] && cmp -s "$work/up" "$work/down" &&
		grep -q "^$(sha256sum "$work/up" | cut -d' ' -f1) " "$work/exec"; then
		pass "cp_carries_a_megabyte_each_way_intact"
	else
		fail "cp_carries_a_megabyte_each_way_intact" "exit $rc; $(one_line "$work/cp") $(one_line "$work/exec")"
	fi
	out=$(h exec v -- sh -c 'cat /root/note; cat /sys/class/misc/hw_random/rng_current' 2>&1)
	rc=$?
	expect_out the_root_disk_keeps_files_between_execs_and_the_rng_is_virtio "$(printf 'kept\nvirtio_rng.0')" "$out" "$rc"
	h stop v >"$work/stop" 2>&1
	rc=$?
	if [ $rc = 0 ] && [ -z "$(ls "$HUTCH_STATE_DIR")" ]; then
		pass "stop_powers_off_and_leaves_no_state"
	else
		fail "stop_powers_off_and_leaves_no_state" "exit $rc; $(one_line "$work/stop"); left: $(ls "$HUTCH_STATE_DIR")"
	fi
else
	fail "start" "$(one_line "$work/start")"
fi

# virtio-net with user networking: DHCP's address, and a server on the
# L1's loopback (10.0.2.2 to the guest) that --allow lets through, while
# a port no rule allows stays shut.  (busybox-static:arm64's wget -T
# crashed in the guest on a connection that succeeded: timeout instead.)
mkdir -p "$work/www"
echo hello-arm64-net >"$work/www/index.html"
ip link set lo up 2>/dev/null
busybox httpd -f -p 127.0.0.1:18080 -h "$work/www" &
srv=$!
out=$(h run --rootfs "$rootfs" --net user --allow 10.0.2.2:18080 -- sh -c \
	'ip -4 -o addr show dev eth0 | tr -s " " | cut -d" " -f4; wget -q -O - http://10.0.2.2:18080/; timeout 6 wget -q -O - http://10.0.2.2:18081/ 2>/dev/null || echo shut' 2>&1)
rc=$?
kill $srv 2>/dev/null
if [ $rc = 0 ] && [ "$out" = "$(printf '10.0.2.15/24\nhello-arm64-net\nshut')" ]; then
	pass "user_networking_dhcp_and_the_egress_policy"
else
	fail "user_networking_dhcp_and_the_egress_policy" "exit $rc; $(echo "$out" | tr '\n' ' ' | cut -c1-400)"
fi

if [ "$(sha256sum "$rootfs" | cut -d' ' -f1)" = "$image_sum" ]; then
	pass "the_root_image_is_unchanged"
else
	fail "the_root_image_is_unchanged" "writes reached $rootfs"
fi

h stop v >/dev/null 2>&1
finish agent
