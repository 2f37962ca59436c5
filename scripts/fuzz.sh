#!/usr/bin/env bash
# Build and run medvault's libFuzzer targets (tests/fuzz/fuzz_*.c).
#
#   scripts/fuzz.sh [TARGET...]          build, then run each target
#   FUZZ_SECONDS=60   seconds per target (default 60)
#   FUZZ_JOBS=1       targets run at the same time (default 1)
#   FUZZ_BUILD_ONLY=1 only build
#   FUZZ_SAVE_CORPUS=1 add inputs that found new coverage to tests/fuzz/corpus/
#
# Targets are built with clang -fsanitize=fuzzer,address,undefined against
# the project sources (compiled again with the same sanitizers) into
# build/fuzz/.  Each run starts from tests/fuzz/corpus/<target>/ (read only
# unless FUZZ_SAVE_CORPUS=1; new inputs go to build/fuzz/corpus/<target>/).
# Prints one line per target:
#   fuzz_<x>: N runs in S s, clean
#   fuzz_<x>: CRASH after N runs (reproducer: tests/fuzz/crashes/...)
# and exits non-zero if any target crashed.  Reproduce a crash with
#   build/fuzz/fuzz_<x> tests/fuzz/crashes/<file>
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
OUT=build/fuzz
SECS=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
CC=${FUZZ_CC:-clang}
PKGS="fuse3 libsodium lmdb p11-kit-1 libcrypto"

command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CPPFLAGS="-Iinclude -Icrypto -Itests/fuzz -D_GNU_SOURCE -DFUSE_USE_VERSION=312 $(pkg-config --cflags $PKGS)"
CFLAGS="-std=c11 -g -O1 -Wall -Wextra -pthread $SAN"
LIBS="$(pkg-config --libs $PKGS) -ldl -pthread"

# ---- build: the library once (fuzzer-instrumented), then each target
mkdir -p "$OUT/obj" "$OUT/corpus" || exit 2
objs=()
for src in fs/*/*.c crypto/*.c; do
	case $src in fs/cli/*) continue ;; esac
	obj=$OUT/obj/${src//\//_}
	obj=${obj%.c}.o
	objs+=("$obj")
	# rebuild when the source or any header is newer
	if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] ||
	   [ -n "$(find include fs crypto -name "*.h" -newer "$obj" -print -quit)" ]; then
		$CC $CPPFLAGS $CFLAGS -fsanitize=fuzzer-no-link -c -o "$obj" "$src" ||
			{ echo "fuzz: cannot compile $src" >&2; exit 2; }
	fi
done
rm -f "$OUT/libmedvault-fuzz.a"
ar rcs "$OUT/libmedvault-fuzz.a" "${objs[@]}" || exit 2

targets=()
if [ $# -gt 0 ]; then
	for t in "$@"; do targets+=("${t%.c}"); done
else
	for f in tests/fuzz/fuzz_*.c; do t=${f##*/}; targets+=("${t%.c}"); done
fi
for t in "${targets[@]}"; do
	t=${t##*/}
	[ -f "tests/fuzz/$t.c" ] || { echo "fuzz: no tests/fuzz/$t.c" >&2; exit 2; }
	if [ ! -e "$OUT/$t" ] || [ -n "$(find "tests/fuzz/$t.c" tests/fuzz/fuzz_common.h "$OUT/libmedvault-fuzz.a" -newer "$OUT/$t" -print -quit)" ]; then
		$CC $CPPFLAGS $CFLAGS -fsanitize=fuzzer -o "$OUT/$t" "tests/fuzz/$t.c" \
			"$OUT/libmedvault-fuzz.a" $LIBS || { echo "fuzz: cannot build $t" >&2; exit 2; }
	fi
done
[ -n "${FUZZ_BUILD_ONLY:-}" ] && { echo "fuzz: built ${targets[*]} in $OUT"; exit 0; }

# ---- run
run_one() {
	local t=${1##*/} seeds=tests/fuzz/corpus/${1##*/} work=$OUT/corpus/${1##*/}
	local log=$OUT/$t.log art=$OUT/artifacts/$t/ rc runs secs crash
	rm -rf "$art"	# a reproducer left by an earlier run is not this run's
	mkdir -p "$work" "$art" "$OUT/tmp/$t"
	[ -d "$seeds" ] || mkdir -p "$seeds"
	# -rss_limit_mb: the keystore and audit targets map files; 2 GiB is ample.
	# TMPDIR: the targets' scratch files (a crash skips their atexit cleanup)
	TMPDIR=$ROOT/$OUT/tmp/$t "$OUT/$t" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=25 \
		-print_final_stats=1 -artifact_prefix="$art" "$work" "$seeds" >"$log" 2>&1
	rc=$?
	rm -rf "${OUT:?}/tmp/$t"
	runs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log" | tail -n 1)
	secs=$(awk '/stat::average_exec_per_sec:/ { e = $2 } END { print e }' "$log")
	crash=$(ls -t "$art" 2>/dev/null | head -n 1)
	if [ $rc -eq 0 ] && [ -z "$crash" ]; then
		echo "$t: ${runs:-?} runs in $SECS s, clean (${secs:-?} exec/s, corpus $(ls "$work" | wc -l))"
		if [ -n "${FUZZ_SAVE_CORPUS:-}" ]; then
			"$OUT/$t" -merge=1 "$seeds" "$work" >/dev/null 2>&1
		fi
		return 0
	fi
	mkdir -p tests/fuzz/crashes
	if [ -n "$crash" ]; then
		cp "$art/$crash" "tests/fuzz/crashes/$t-$crash"
		echo "$t: CRASH after ${runs:-?} runs (status $rc; reproducer: tests/fuzz/crashes/$t-$crash; log: $log)"
	else
		echo "$t: FAILED (status $rc, no reproducer; log: $log)"
	fi
	grep -m 3 -E 'ERROR: |runtime error|invariant failed|SUMMARY' "$log" | sed 's/^/    /'
	return 1
}

fail=0
if [ "$JOBS" -le 1 ]; then
	for t in "${targets[@]}"; do run_one "$t" || fail=1; done
else
	pids=()
	for t in "${targets[@]}"; do
		while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
		run_one "$t" >"$OUT/${t##*/}.result" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || fail=1; done
	for t in "${targets[@]}"; do cat "$OUT/${t##*/}.result"; done
fi
exit $fail
