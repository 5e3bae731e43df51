#!/bin/sh
# arm64 snapshots (issue 15), run by busybox sh on real arm64 KVM
# (tools/integration-tests arm64, in tools/l1/kvm-run --arch arm64's L1):
# build-arm64/hutch (HUTCH_BIN) snapshots a running 2-vCPU VM on the
# arm64 busybox root (HUTCH_ARM64_ROOTFS), which runs on; two clones
# restored from the snapshot carry on from where it was: a process
# started before the snapshot is still there (RAM, vCPUs, the GIC's
# interrupts), both vCPUs are online and take turns (the secondary's
# power state and redistributor), the guest's clock moved on by the
# time that passed (the virtual counter), files on the root disk and the
# agent's vsock answer, and each clone's writes stay its own.  A damaged
# snapshot is refused.  Ends with the summary line tools/check adds up.
set -u
bin=${HUTCH_BIN:?}
rootfs=${HUTCH_ARM64_ROOTFS:?}
. "$(dirname "$0")/lib.sh"

snap=$work/snap
if ! h start --rootfs "$rootfs" --cpus 2 s >"$work/start" 2>&1; then
	fail start "$(one_line "$work/start")"
	finish snapshot
	exit 1
fi
# A process that lives in RAM only, a file on the root disk, and the
# guest's clock beside the host's.
pid=$(h exec s -- sh -c 'sleep 100000 >/dev/null 2>&1 & echo $!; echo before > /root/f; sync' 2>"$work/exec.err")
t0_guest=$(h exec s -- date +%s 2>/dev/null)
t0_host=$(date +%s)
if h snapshot s "$snap" >"$work/snap.out" 2>&1 &&
	out=$(h exec s -- sh -c "kill -0 $pid && echo runs-on" 2>&1) && [ "$out" = runs-on ]; then
	pass "snapshot_is_written_and_the_vm_runs_on"
else
	fail "snapshot_is_written_and_the_vm_runs_on" "$(one_line "$work/snap.out") ${out:-}"
fi
h stop s >/dev/null 2>&1
[ -n "$pid" ] || fail "the background process" "$(one_line "$work/exec.err")"

# Time passes between the snapshot and the restores.
sleep 5
for c in c1 c2; do
	h restore "$snap" "$c" >"$work/restore-$c" 2>&1 ||
		fail "restore_$c" "$(one_line "$work/restore-$c")"
done

out=$(h exec c1 -- sh -c "kill -0 $pid && echo alive; cat /root/f; nproc" 2>&1)
rc=$?
expect_out "a_clone_carries_on_with_the_process_the_file_and_both_vcpus" "$(printf 'alive\nbefore\n2')" "$out" "$rc"

# Both vCPUs run work after the restore: two busy loops pinned one to
# each CPU finish (each needs its CPU scheduled and its timer ticking).
out=$(h exec c1 -- sh -c 'for c in 0 1; do taskset -c $c sh -c "i=0; while [ \$i -lt 20000 ]; do i=\$((i+1)); done; echo done" & done; wait' 2>&1)
rc=$?
expect_out "both_vcpus_run_work_after_the_restore" "$(printf 'done\ndone')" "$out" "$rc"

# The guest's clock moved on by about the time that passed (5 s of
# sleep and the restores), not frozen at the snapshot's time.
t1_guest=$(h exec c2 -- date +%s 2>/dev/null)
t1_host=$(date +%s)
if [ -n "$t0_guest" ] && [ -n "$t1_guest" ]; then
	skew=$(((t1_guest - t0_guest) - (t1_host - t0_host)))
	if [ "$skew" -ge -3 ] && [ "$skew" -le 3 ] && [ $((t1_guest - t0_guest)) -ge 5 ]; then
		pass "the_guest_clock_moved_on_by_the_time_that_passed"
	else
		fail "the_guest_clock_moved_on_by_the_time_that_passed" \
			"guest +$((t1_guest - t0_guest)) s, host +$((t1_host - t0_host)) s"
	fi
else
	fail "the_guest_clock_moved_on_by_the_time_that_passed" "no date from the guest"
fi

# Each clone's writes are its own (its own overlay copy).
h exec c1 -- sh -c 'echo c1 > /root/f; sync' >/dev/null 2>&1
out=$(h exec c2 -- cat /root/f 2>&1)
rc=$?
expect_out "clones_do_not_share_writes" before "$out" "$rc"

# The clones' uptime keeps counting up (the timer interrupt, through the
# restored GIC).
u1=$(h exec c2 -- cut -d. -f1 /proc/uptime 2>/dev/null)
sleep 2
u2=$(h exec c2 -- cut -d. -f1 /proc/uptime 2>/dev/null)
if [ -n "$u1" ] && [ -n "$u2" ] && [ "$u2" -gt "$u1" ]; then
	pass "a_clone_keeps_time"
else
	fail "a_clone_keeps_time" "uptime ${u1:-?} then ${u2:-?}"
fi
h stop c1 >/dev/null 2>&1
h stop c2 >/dev/null 2>&1

# A damaged state file is refused with a reason, and nothing is left
# running.
cp -r "$snap" "$work/bad"
size=$(wc -c <"$work/bad/state")
printf '\377' | dd of="$work/bad/state" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
h restore "$work/bad" b >"$work/bad.out" 2>&1
rc=$?
if [ $rc != 0 ] && grep -q '^hutch: ' "$work/bad.out" && ! h exec b -- true >/dev/null 2>&1; then
	pass "a_damaged_snapshot_is_refused"
else
	fail "a_damaged_snapshot_is_refused" "exit $rc; $(one_line "$work/bad.out")"
fi

finish snapshot
