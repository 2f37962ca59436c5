#!/usr/bin/env bash
# Run medvault's test programs and add up their results.
#
#   scripts/run-tests.sh [unit|integration|stress|all]   (default: all =
#   unit then integration; stress is never part of the default run)
#
# Every program prints TAP and ends with "# N passed, M failed".  A program
# that crashes, times out or exits non-zero without that line counts as one
# failure, so a dead test can never look like a passing one.  The last line
# is always "TOTAL: N passed, M failed"; the exit status is non-zero if
# anything failed.
#
# Environment: BUILD (default build), TEST_TIMEOUT (seconds per program,
# default 600), MV (medvault binary, default $BUILD/medvault), SAN_LOG_DIR
# (a sanitizer build: every ASan/UBSan report, the background daemons'
# included, whose stderr is /dev/null, is written there, and any report
# counts as a failure).
set -u

cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "run-tests: no build dir '${BUILD}'" >&2; exit 2; }
export BUILD
TEST_TIMEOUT=${TEST_TIMEOUT:-600}

total_pass=0
total_fail=0
broken=()

# run_one LABEL CMD...: run one program, echo its output, add up its summary.
run_one() {
	local label=$1 out rc summary pass fail
	shift
	out=$(mktemp "${TMPDIR:-/tmp}/run-tests.XXXXXX") || exit 2
	echo "=== $label"
	# --kill-after: a test stuck in an uninterruptible FUSE wait still ends
	timeout --kill-after=30 "$TEST_TIMEOUT" "$@" </dev/null 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	summary=$(grep -E '^# [0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	rm -f "$out"
	if [ -z "$summary" ]; then
		case $rc in
		124|137) echo "not ok - $label timed out after ${TEST_TIMEOUT}s" ;;
		*) echo "not ok - $label ended (status $rc) without a summary line" ;;
		esac
		total_fail=$((total_fail + 1))
		broken+=("$label")
		return
	fi
	pass=$(sed -E 's/^# ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$summary")
	fail=$(sed -E 's/^# ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$summary")
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	if [ "$fail" -gt 0 ]; then
		broken+=("$label")
	elif [ "$rc" -ne 0 ]; then
		# a clean summary followed by a crash (e.g. in cleanup) is still a failure
		echo "not ok - $label printed no failures but exited with status $rc"
		total_fail=$((total_fail + 1))
		broken+=("$label")
	fi
}

run_unit() {
	local t found=0
	# the layering of docs/DESIGN.md, checked on the include graph
	run_one "layers" python3 scripts/check-layers.py --objects "$BUILD"
	for t in "$BUILD"/tests/*/test_*; do
		[ -x "$t" ] && [ -f "$t" ] || continue
		found=1
		run_one "unit/${t#"$BUILD"/tests/}" "$t"
	done
	[ $found -eq 1 ] || echo "# no unit test binaries in $BUILD/tests"
}

# run_scripts GLOB-PREFIX: tests/integration/PREFIX*.sh in lexical order
run_scripts() {
	local t found=0
	for t in tests/integration/"$1"*.sh; do
		[ -f "$t" ] || continue
		found=1
		run_one "integration/$(basename "$t")" bash "$t"
	done
	[ $found -eq 1 ] || echo "# no tests/integration/$1*.sh scripts"
}

if [ -n "${SAN_LOG_DIR:-}" ]; then
	mkdir -p "$SAN_LOG_DIR" && rm -f "$SAN_LOG_DIR"/asan.* "$SAN_LOG_DIR"/ubsan.*
	export ASAN_OPTIONS="log_path=$SAN_LOG_DIR/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	export UBSAN_OPTIONS="log_path=$SAN_LOG_DIR/ubsan:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
fi

mode=${1:-all}
case $mode in
unit) run_unit ;;
integration) run_scripts t_ ;;
stress) run_scripts stress_ ;;
all) run_unit; run_scripts t_ ;;
-h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "run-tests: unknown mode '$mode' (unit|integration|stress|all)" >&2; exit 2 ;;
esac

if [ -n "${SAN_LOG_DIR:-}" ]; then
	reports=$(find "$SAN_LOG_DIR" -type f \( -name 'asan.*' -o -name 'ubsan.*' \) | sort)
	if [ -n "$reports" ]; then
		echo "not ok - sanitizer reports in $SAN_LOG_DIR:"
		sed 's/^/#   /' <<<"$reports"
		head -n 40 $reports | sed 's/^/# /'
		total_fail=$((total_fail + 1))
		broken+=("sanitizers")
	else
		echo "ok - no sanitizer report (daemons included)"
		total_pass=$((total_pass + 1))
	fi
fi

if [ ${#broken[@]} -gt 0 ]; then
	echo "# failing: ${broken[*]}"
fi
echo "TOTAL: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
