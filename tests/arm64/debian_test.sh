#!/bin/sh
# The arm64 Debian root (issue 15), run by busybox sh on real arm64 KVM
# (tools/integration-tests arm64-debian, in tools/l1/kvm-run --arch arm64's
# L1): build-arm64/hutch (HUTCH_BIN) runs Python, git and dpkg from the
# arm64 Debian image tools/mkrootfs --arch arm64 debian builds
# (HUTCH_ARM64_DEBIAN), with 4 vCPUs, and a file made there comes back
# through cp.  Ends with the summary line tools/check adds up.
set -u
bin=${HUTCH_BIN:?}
debian=${HUTCH_ARM64_DEBIAN:?}
. "$(dirname "$0")/lib.sh"

out=$(h run --rootfs "$debian" --cpus 4 -- sh -c "python3 -c 'print(6*7)'; nproc; dpkg --print-architecture" 2>&1)
rc=$?
expect_out python3_runs_on_the_arm64_debian_root "$(printf '42\n4\narm64')" "$out" "$rc"

if h start --rootfs "$debian" d >"$work/start" 2>&1; then
	h exec d -- sh -c 'cd /root && git init -q r && cd r && echo arm64 > f && git add f && git -c user.email=t@t -c user.name=t commit -qm one && git log --oneline | wc -l' >"$work/git" 2>&1
	rc=$?
	h cp d:/root/r/f "$work/f" >/dev/null 2>&1
	if [ $rc = 0 ] && [ "$(cat "$work/git")" = 1 ] && [ "$(cat "$work/f")" = arm64 ]; then
		pass "git_commits_in_the_guest_and_cp_brings_the_file_back"
	else
		fail "git_commits_in_the_guest_and_cp_brings_the_file_back" "exit $rc; $(tr '\n' ' ' <"$work/git")"
	fi
	h stop d >/dev/null 2>&1
else
	fail "start" "$(tr '\n' ' ' <"$work/start")"
fi

finish debian
