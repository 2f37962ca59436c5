#!/usr/bin/env bash
# Access-trail overhead on the CT-study workload (issue 6): 1000 files of
# 512 KiB copied in with cp from /dev/shm, then read back with cat after
# dropping caches, with the trail on (default) and off (--no-audit),
# interleaved, REPEAT times; prints each run and the medians of wall time
# and of the daemon's CPU time (less sensitive to other load on the host).
#   REPEAT=10 scripts/bench-audit.sh       (root: drop_caches, mounts)
# Quote the paired medians (last three lines); run on an idle machine.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
MV=${MEDVAULT:-build/medvault}
# a private copy: a rebuild during the run must not change the binary
cp "$MV" /tmp/medvault-bench-audit.$$ && MV=/tmp/medvault-bench-audit.$$
REPEAT=${REPEAT:-3}
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mvbench-audit.XXXXXX")
SRC=$(mktemp -d /dev/shm/mvbench-src.XXXXXX)
cleanup() {
	mountpoint -q "$W/mnt" && "$MV" umount "$W/mnt"
	rm -rf "$W" "$SRC" "$MV"
}
trap cleanup EXIT
for d in $(seq -w 1 10); do
	mkdir -p "$SRC/series$d"
	for f in $(seq -w 1 100); do head -c 524288 /dev/urandom >"$SRC/series$d/img$f.dcm"; done
done
echo "correct horse battery staple" >"$W/pass"
chmod 600 "$W/pass"
mkdir -p "$W/mnt"
now() { date +%s.%N; }
cpu_s() { # daemon pid -> user+system CPU seconds so far
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}
run() { # MODE(audit|noaudit) -> "write_s read_s cpu_s"
	local opt=() t0 t1 t2 pid cpu
	rm -rf "$W/store" "$W/ks" "$W/audit"
	[ "$1" = noaudit ] && opt=(--no-audit) || opt=(--audit-dir "$W/audit")
	"$MV" init "$W/store" --keystore "$W/ks" --passphrase-file "$W/pass" >/dev/null
	"$MV" mount "$W/store" "$W/mnt" --keystore "$W/ks" --passphrase-file "$W/pass" "${opt[@]}"
	pid=$(pgrep -f "mount $W/store $W/mnt" | head -n 1)
	sync
	t0=$(now)
	cp -r "$SRC" "$W/mnt/study"
	sync -f "$W/mnt/study"
	t1=$(now)
	echo 3 >/proc/sys/vm/drop_caches
	find "$W/mnt/study" -type f -exec cat {} + >/dev/null
	t2=$(now)
	cpu=$(cpu_s "$pid")
	"$MV" umount "$W/mnt"
	echo "$(echo "$t1 - $t0" | bc) $(echo "$t2 - $t1" | bc) $cpu"
}
declare -a AW AR NW NR AC NC
for ((i = 0; i < REPEAT; i++)); do
	order="audit noaudit"
	[ $((i % 2)) -eq 1 ] && order="noaudit audit"	# neither always goes first
	for m in $order; do
		read -r w r c < <(run $m)
		echo "run $i $m: write ${w}s read ${r}s daemon cpu ${c}s"
		if [ $m = audit ]; then AW+=("$w"); AR+=("$r"); AC+=("$c"); else NW+=("$w"); NR+=("$r"); NC+=("$c"); fi
	done
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
aw=$(med "${AW[@]}") ar=$(med "${AR[@]}") nw=$(med "${NW[@]}") nr=$(med "${NR[@]}")
ac=$(med "${AC[@]}") nc=$(med "${NC[@]}")
echo "median write: audit ${aw}s, no audit ${nw}s, overhead $(echo "scale=1; ($aw - $nw) * 100 / $nw" | bc)%"
echo "median read:  audit ${ar}s, no audit ${nr}s, overhead $(echo "scale=1; ($ar - $nr) * 100 / $nr" | bc)%"
echo "median daemon CPU: audit ${ac}s, no audit ${nc}s, overhead $(echo "scale=1; ($ac - $nc) * 100 / $nc" | bc)%"
# Each repeat ran both modes back to back, so the ratio within a pair
# cancels the slow drifts of a shared VM that unpaired medians keep.
paired() { # NAME A[] B[] -> median of A[i]/B[i]
	local -n a=$2 b=$3
	local r=() i
	for ((i = 0; i < ${#a[@]}; i++)); do r+=("$(echo "scale=4; ${a[i]} / ${b[i]}" | bc)"); done
	local m
	m=$(med "${r[@]}")
	echo "paired median $1 (audit/no audit): $m, overhead $(echo "scale=1; ($m - 1) * 100 / 1" | bc)%"
}
paired write AW NW
paired read AR NR
paired cpu AC NC
