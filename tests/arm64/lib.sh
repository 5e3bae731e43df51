# Shared by the arm64 test scripts (sourced; busybox sh in the arm64 L1):
# a private work directory with a hutch state directory in it, the
# PASS/FAIL lines, bounded hutch commands, and the closing summary in
# Criterion's format, which tools/check adds up.
work=$(mktemp -d)
export HUTCH_STATE_DIR=$work/state
mkdir -m 0700 "$HUTCH_STATE_DIR"
passed=0 failed=0

pass() { passed=$((passed + 1)); echo "[PASS] $1"; }
fail() { failed=$((failed + 1)); echo "[FAIL] $1: $2"; }
one_line() { tr '\n' ' ' <"$1" | cut -c1-400; }
# Every hutch command is bounded: a hang fails its test, not the suite.
h() { timeout -s KILL 240 "$bin" "$@"; }

finish() { # suite name
	rm -rf "$work"
	echo "arm64 $1: $passed passed, $failed failed"
	echo "[====] Synthesis: Tested: $((passed + failed)) | Passing: $passed | Failing: $failed | Crashing: 0"
	[ "$failed" = 0 ]
}

expect_out() { # test name, the output wanted, the output, its exit status
	if [ "$4" = 0 ] && [ "$3" = "$2" ]; then
		pass "$1"
	else
		fail "$1" "exit $4; $(echo "$3" | tr '\n' ' ' | cut -c1-400)"
	fi
}
