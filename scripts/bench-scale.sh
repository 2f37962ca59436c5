#!/usr/bin/env bash
# medvault metadata scale benchmark (issue 8, item 3).
#
# Creates N empty files (then SMALL files of 4 KiB) across DIRS directories
# in a medvault mount, round-robin, and checks that create, lookup and stat
# rates at N files stay within 1.5x of those at 10k files. Also reports the
# index size per file, the store's pack count and overhead, and the store
# files per TB that follow. The same create/lookup phases run, at REF_N
# files, on medvault with its access trail, gocryptfs and plain ext4.
#
#   N=20000 SMALL=2000 REF_N=20000 scripts/bench-scale.sh     # quick (~1 min)
#   scripts/bench-scale.sh                                    # 1M files (~15 min)
#
# Environment (defaults in brackets):
#   N         empty files in the main medvault run [1000000]
#   DIRS      directories, files spread round-robin [1000]
#   SMALL     4 KiB files added after the N empty files [100000]
#   BIG_MB    one large file written last, for the large-file overhead [256] (0: none)
#   SAMPLES   names per lookup measurement [10000]
#   FIRST     the "small" measuring point, in files [10000]
#   REPS      repeats of every lookup measurement, median reported [3]
#   REF_N     files in the reference runs [100000]
#   REF_FS    reference runs [medvault-audit,gocryptfs,ext4] ("" for none)
#   BENCH_DIR where stores and mount points go (same disk as /work) [/var/tmp]
#   OUT       output stem [build/bench/scale-DATE]: OUT.txt (report),
#             OUT.tsv (fs point metric value), OUT.windows.tsv (create rate
#             for every 10k-file window)
#   MEDVAULT  medvault binary [build/medvault] (copied to the work dir first,
#             so a rebuild during the run does not change it)
#   KEEP      1 = keep the work directory
#
# The main run mounts with --no-audit (a benchmark of the filesystem, not of
# the trail); the medvault-audit reference run measures the trail's cost.
#
# Lookups: before each measurement, `echo 2 > /proc/sys/vm/drop_caches`
# drops the kernel's dentries and inodes (not the page cache, so the index
# stays in memory), and the helper waits until the daemon has handled the
# FORGETs; then SAMPLES distinct random existing names are stat(2)ed, each one
# a FUSE LOOKUP. "lookup cold" is the same after `echo 3` (page cache too: the
# index comes from the disk). "stat revalidate" stats the same names again
# after their 1 s entry/attr timeouts have expired (dentry present, the kernel
# asks the daemon again). "negative lookup" stats fresh names that do not exist.
#
# Must run as root (drop_caches). Unmounts in a trap; kills only the daemons
# it started.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
N=${N:-1000000}
DIRS=${DIRS:-1000}
SMALL=${SMALL:-100000}
BIG_MB=${BIG_MB:-256}
SAMPLES=${SAMPLES:-10000}
FIRST=${FIRST:-10000}
REPS=${REPS:-3}
REF_N=${REF_N:-100000}
REF_FS=${REF_FS-medvault-audit,gocryptfs,ext4}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
OUT=${OUT:-$BUILD/bench/scale-$(date +%Y%m%d-%H%M%S)}
OUT=${OUT%.txt}
KEEP=${KEEP:-0}
MEDVAULT_SRC=${MEDVAULT:-$BUILD/medvault}
WINDOW=10000
LIMIT=1.5

log() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for v in N DIRS SAMPLES FIRST REPS REF_N; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[[ $SMALL =~ ^[0-9]+$ ]] || die "SMALL must be a number"
[[ $BIG_MB =~ ^[0-9]+$ ]] || die "BIG_MB must be a number"
[ "$N" -gt "$FIRST" ] || die "N ($N) must be larger than FIRST ($FIRST)"
[ "$DIRS" -le 10000 ] || die "DIRS must be at most 10000"
[ "$(id -u)" -eq 0 ] || die "run as root (drop_caches)"
[ -e /dev/fuse ] || die "/dev/fuse missing"
[ -x "$MEDVAULT_SRC" ] || die "$MEDVAULT_SRC not built (make)"
command -v gcc >/dev/null || die "gcc needed for the helper"
command -v mountpoint >/dev/null || die "mountpoint (util-linux) needed"
FUSERMOUNT=$(command -v fusermount3 || command -v fusermount || true)

mkdir -p "$BUILD/bench" "$(dirname "$OUT")"
SCALE=$BUILD/bench/scale
if [ ! -x "$SCALE" ] || [ "$ROOT/scripts/bench/scale.c" -nt "$SCALE" ]; then
	gcc -O2 -Wall -o "$SCALE" "$ROOT/scripts/bench/scale.c" || die "cannot build $SCALE"
fi

WORK=$(mktemp -d "$BENCH_DIR/medvault-scale.XXXXXX")
mkdir -p "$WORK/bin"; MEDVAULT=$WORK/bin/medvault
cp "$MEDVAULT_SRC" "$MEDVAULT"
PASSFILE=$WORK/passphrase
printf 'medvault-scale-bench\n' >"$PASSFILE"
chmod 600 "$PASSFILE"
TSV=$OUT.tsv
WIN=$OUT.windows.tsv
TXT=$OUT.txt
printf 'fs\tpoint\tmetric\tvalue\n' >"$TSV"
printf 'fs\tfiles\tseconds\trate\n' >"$WIN"

MOUNTS=()        # mount points we mounted
MOUNT_KIND=()    # medvault|fuse, same index
STARTED_PIDS=()  # daemons we started

cleanup() {
	local rc=$? i m p
	trap - EXIT INT TERM
	for i in "${!MOUNTS[@]}"; do
		m=${MOUNTS[$i]}
		mountpoint -q "$m" 2>/dev/null || continue
		if [ "${MOUNT_KIND[$i]}" = medvault ]; then "$MEDVAULT" umount "$m" >/dev/null 2>&1 || true; fi
		if mountpoint -q "$m" 2>/dev/null && [ -n "$FUSERMOUNT" ]; then
			"$FUSERMOUNT" -u "$m" 2>/dev/null || "$FUSERMOUNT" -uz "$m" 2>/dev/null || true
		fi
	done
	for p in "${STARTED_PIDS[@]}"; do
		for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
		kill "$p" 2>/dev/null && log "killed leftover daemon $p"
	done
	if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TSV"; }
val() { awk -F'\t' -v f="$1" -v p="$2" -v m="$3" '$1 == f && $2 == p && $3 == m { v = $4 } END { print v }' "$TSV"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

drop() {   # LEVEL: 2 = dentries+inodes, 3 = also the page cache
	sync
	echo "$1" >/proc/sys/vm/drop_caches
}

# PID of the FUSE daemon serving MNT: holds /dev/fuse and has MNT in its argv.
fuse_daemon_pid() {
	local mnt=$1 p a
	for p in $(fuser /dev/fuse 2>/dev/null); do
		local -a args=()
		mapfile -d '' args <"/proc/$p/cmdline" 2>/dev/null || continue
		for a in "${args[@]}"; do
			[ "$(realpath -m "$a" 2>/dev/null)" = "$(realpath -m "$mnt")" ] && { echo "$p"; return 0; }
		done
	done
	return 1
}

wbytes() {   # bytes the daemon made the kernel write to storage so far (its fdatasync/msync writeback)
	[ -n "$FS_PID" ] || { echo 0; return; }
	awk '$1 == "write_bytes:" { print $2 }' "/proc/$FS_PID/io" 2>/dev/null || echo 0
}

mem_kb() {   # PID FIELD (VmRSS|VmHWM)
	[ -n "$1" ] || { echo 0; return; }
	awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

wait_mounted() {
	local m=$1 i
	for ((i = 0; i < 6000; i++)); do mountpoint -q "$m" && return 0; sleep 0.02; done
	return 1
}

# Sets FS_DIR (where files go), FS_PID (daemon or empty), FS_STORE.
fs_setup() {
	local kind=$1 d=$WORK/$1
	mkdir -p "$d"
	FS_PID=
	FS_STORE=$d/store
	case $kind in
	medvault|medvault-audit)
		"$MEDVAULT" init "$d/store" --keystore "$d/keystore" --passphrase-file "$PASSFILE" >"$d/init.log" 2>&1 \
			|| die "medvault init failed: $(cat "$d/init.log")"
		mkdir -p "$d/mnt"
		local extra=--no-audit
		[ "$kind" = medvault-audit ] && extra=
		MOUNTS+=("$d/mnt"); MOUNT_KIND+=(medvault)
		# shellcheck disable=SC2086
		"$MEDVAULT" mount "$d/store" "$d/mnt" --keystore "$d/keystore" --passphrase-file "$PASSFILE" $extra \
			>"$d/mount.log" 2>&1 </dev/null || die "medvault mount failed: $(cat "$d/mount.log")"
		wait_mounted "$d/mnt" || die "medvault: not mounted"
		FS_PID=$(fuser "$d/store/medvault.lock" 2>/dev/null | tr -s ' ' '\n' | grep -v '^$' | head -1 || true)
		[ -n "$FS_PID" ] || FS_PID=$(fuse_daemon_pid "$d/mnt" || true)
		FS_DIR=$d/mnt ;;
	gocryptfs)
		command -v gocryptfs >/dev/null || return 1
		mkdir -p "$d/store" "$d/mnt"
		gocryptfs -q -init -passfile "$PASSFILE" "$d/store" >"$d/init.log" 2>&1 || die "gocryptfs init failed"
		MOUNTS+=("$d/mnt"); MOUNT_KIND+=(fuse)
		gocryptfs -q -passfile "$PASSFILE" "$d/store" "$d/mnt" >"$d/mount.log" 2>&1 </dev/null \
			|| die "gocryptfs mount failed: $(cat "$d/mount.log")"
		wait_mounted "$d/mnt" || die "gocryptfs: not mounted"
		FS_PID=$(fuse_daemon_pid "$d/mnt" || true)
		FS_DIR=$d/mnt ;;
	ext4)
		mkdir -p "$d/dir"
		FS_STORE=$d/dir
		FS_DIR=$d/dir ;;
	*) die "unknown filesystem $kind" ;;
	esac
	if [ -n "$FS_PID" ]; then STARTED_PIDS+=("$FS_PID"); fi
	log "$kind: ready in $FS_DIR${FS_PID:+ (daemon $FS_PID)}"
}

fs_teardown() {
	local kind=$1 d=$WORK/$1 i
	case $kind in
	medvault|medvault-audit)
		sync
		for ((i = 0; i < 20; i++)); do
			"$MEDVAULT" umount "$d/mnt" >>"$d/mount.log" 2>&1 || true
			mountpoint -q "$d/mnt" || break
			sleep 0.5
		done ;;
	gocryptfs)
		for ((i = 0; i < 20; i++)); do
			"$FUSERMOUNT" -u "$d/mnt" >>"$d/mount.log" 2>&1 || true
			mountpoint -q "$d/mnt" || break
			sleep 0.5
		done ;;
	esac
	if [ -n "$FS_PID" ]; then
		for ((i = 0; i < 600; i++)); do kill -0 "$FS_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	[ "$KEEP" = 1 ] || rm -rf "$d"
}

idle() { [ -z "$FS_PID" ] || "$SCALE" idle "$FS_PID" 60 >/dev/null; }

# create KIND FROM TO SIZE PREFIX -> echoes the rate of the last window
create() {
	local kind=$1 from=$2 to=$3 size=$4 prefix=$5 out
	out=$("$SCALE" create "$FS_DIR" "$DIRS" "$from" "$to" "$size" "$WINDOW" "$prefix") || die "$kind: create failed"
	[ "$size" -eq 0 ] && awk -v f="$kind" '$1 == "window" { printf "%s\t%s\t%s\t%s\n", f, $2, $3, $4 }' <<<"$out" >>"$WIN"
	awk '$1 == "total" { t = $4 } $1 == "window" { w = $4 } END { print w, t }' <<<"$out"
}

# measure KIND POINT NFILES
measure() {
	local kind=$1 point=$2 n=$3 r s lw=() rv=() ng=() lc=()
	for ((r = 1; r <= REPS; r++)); do
		s=$((n + r))
		drop 2; idle
		"$SCALE" warmdirs "$FS_DIR" "$DIRS" || die "$kind: warmdirs failed"
		lw+=("$("$SCALE" lookup "$FS_DIR" "$DIRS" "$n" "$SAMPLES" "$s" f | awk '{ print $4 }')")
		sleep 1.2   # entry and attr timeouts (1 s) expire
		rv+=("$("$SCALE" lookup "$FS_DIR" "$DIRS" "$n" "$SAMPLES" "$s" f | awk '{ print $4 }')")
		ng+=("$("$SCALE" neg "$FS_DIR" "$DIRS" "$SAMPLES" "$((s * 7919))" | awk '{ print $4 }')")
		drop 3; idle
		"$SCALE" warmdirs "$FS_DIR" "$DIRS" || die "$kind: warmdirs failed"
		lc+=("$("$SCALE" lookup "$FS_DIR" "$DIRS" "$n" "$SAMPLES" "$((s + 1000003))" f | awk '{ print $4 }')")
	done
	rec "$kind" "$point" lookup "$(echo "${lw[*]}" | median)"
	rec "$kind" "$point" stat_reval "$(echo "${rv[*]}" | median)"
	rec "$kind" "$point" neg_lookup "$(echo "${ng[*]}" | median)"
	rec "$kind" "$point" lookup_cold "$(echo "${lc[*]}" | median)"
	rec "$kind" "$point" samples_lookup "${lw[*]}"
	rec "$kind" "$point" samples_reval "${rv[*]}"
	rec "$kind" "$point" samples_neg "${ng[*]}"
	rec "$kind" "$point" samples_cold "${lc[*]}"
	rec "$kind" "$point" rss_kb "$(mem_kb "$FS_PID" VmRSS)"
	rec "$kind" "$point" hwm_kb "$(mem_kb "$FS_PID" VmHWM)"
	rec "$kind" "$point" load "$(load)"
	log "$kind @ $n: lookup ${lw[*]} | reval ${rv[*]} | neg ${ng[*]} | cold ${lc[*]} /s; RSS $(mem_kb "$FS_PID" VmRSS) kB"
}

store_stats() {   # KIND POINT: index and packs (medvault only)
	local kind=$1 point=$2 s=$FS_STORE
	sync; sleep 2.5; sync   # a checkpoint (every 2 s) has run
	rec "$kind" "$point" index_alloc "$(du -B1 "$s/index/data.mdb" | cut -f1)"
	rec "$kind" "$point" index_apparent "$(stat -c %s "$s/index/data.mdb")"
	rec "$kind" "$point" packs "$(find "$s/packs" -type f -name '*.pack' | wc -l)"
	rec "$kind" "$point" packs_bytes "$(find "$s/packs" -type f -name '*.pack' -printf '%s\n' | awk '{ t += $1 } END { print t + 0 }')"
	rec "$kind" "$point" packs_alloc "$(find "$s/packs" -type f -name '*.pack' -printf '%b\n' | awk '{ t += $1 * 512 } END { print t + 0 }')"
	rec "$kind" "$point" store_files "$(find "$s" -type f | wc -l)"
	rec "$kind" "$point" store_alloc "$(du -s -B1 "$s" | cut -f1)"
	rec "$kind" "$point" pack_size "$(awk -F= '$1 == "pack_size" { print $2 }' "$s/medvault.conf")"
}

run_fs() {   # KIND NFILES SMALLFILES BIGMB
	local kind=$1 n=$2 small=$3 big=$4 a t0 t1 from
	log "== $kind: $n files in $DIRS dirs (load $(load))"
	fs_setup "$kind" || { log "$kind skipped (not installed)"; return 0; }
	rec "$kind" start load "$(load)"
	t0=$EPOCHREALTIME
	"$SCALE" mkdirs "$FS_DIR" "$DIRS" || die "$kind: mkdirs failed"
	[ "$kind" = medvault ] && store_stats "$kind" 0
	rec "$kind" 0 wbytes "$(wbytes)"
	read -r -a a <<<"$(create "$kind" 0 "$FIRST" 0 f)"
	rec "$kind" first create "${a[0]}"
	rec "$kind" first create_avg "${a[1]}"
	rec "$kind" first rss_created_kb "$(mem_kb "$FS_PID" VmRSS)"
	sleep 2.5; rec "$kind" first wbytes "$(wbytes)"   # after the next checkpoint
	measure "$kind" first "$FIRST"
	from=$FIRST
	if [ "$kind" = medvault ] && [ "$REF_N" -gt "$FIRST" ] && [ "$REF_N" -lt "$n" ] && [ -n "$REF_FS" ]; then
		# a measuring point at REF_N too, to compare with the reference runs
		read -r -a a <<<"$(create "$kind" "$FIRST" "$REF_N" 0 f)"
		rec "$kind" ref create "${a[0]}"
		rec "$kind" ref rss_created_kb "$(mem_kb "$FS_PID" VmRSS)"
		measure "$kind" ref "$REF_N"
		from=$REF_N
	fi
	rec "$kind" bulk wbytes0 "$(wbytes)"
	read -r -a a <<<"$(create "$kind" "$from" "$n" 0 f)"
	sleep 2.5; rec "$kind" bulk wbytes1 "$(wbytes)"
	rec "$kind" bulk from "$from"
	rec "$kind" last rss_created_kb "$(mem_kb "$FS_PID" VmRSS)"
	rec "$kind" last create "${a[0]}"
	rec "$kind" last create_avg "${a[1]}"
	log "$kind: create ${a[1]}/s on average, ${a[0]}/s in the last window"
	measure "$kind" last "$n"
	if [ "$kind" = medvault ]; then store_stats "$kind" empty; fi
	if [ "$small" -gt 0 ]; then
		read -r -a a <<<"$(create "$kind" 0 "$small" 4096 s)"
		rec "$kind" small create4k "${a[1]}"
		log "$kind: $small files of 4 KiB at ${a[1]}/s"
		if [ "$kind" = medvault ]; then store_stats "$kind" small; fi
	fi
	if [ "$big" -gt 0 ]; then
		head -c "$((big * 1048576))" /dev/urandom >"$WORK/big.bin"
		t1=$EPOCHREALTIME
		dd if="$WORK/big.bin" of="$FS_DIR/big.bin" bs=1M conv=fsync status=none || die "$kind: big write failed"
		rec "$kind" big write_mbs "$(awk -v a="$t1" -v b="$EPOCHREALTIME" -v m="$big" 'BEGIN { printf "%.1f", m * 1.048576 / (b - a) }')"
		rm -f "$WORK/big.bin"
		if [ "$kind" = medvault ]; then store_stats "$kind" big; fi
	fi
	rec "$kind" end hwm_kb "$(mem_kb "$FS_PID" VmHWM)"
	rec "$kind" end rss_kb "$(mem_kb "$FS_PID" VmRSS)"
	rec "$kind" end load "$(load)"
	rec "$kind" end seconds "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')"
	log "$kind: done; daemon VmHWM $(mem_kb "$FS_PID" VmHWM) kB"
	fs_teardown "$kind"
}

# ---------------------------------------------------------------- runs
T_START=$EPOCHREALTIME
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(cd "$ROOT" && git --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT=$COMMIT-dirty; fi
run_fs medvault "$N" "$SMALL" "$BIG_MB"
IFS=, read -r -a refs <<<"$REF_FS"
for k in "${refs[@]}"; do
	[ -n "$k" ] || continue
	run_fs "$k" "$REF_N" 0 0
done
TOTAL_S=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

# ---------------------------------------------------------------- report
PACK_SIZE=$(val medvault 0 pack_size)

verdict() { awk -v a="$1" -v b="$2" -v l="$LIMIT" 'BEGIN { if (a == "" || b == "" || b == 0) { print "n/a\tn/a"; exit } r = a / b; printf "%.2f\t%s\n", r, (r <= l ? "PASS" : "FAIL") }'; }

{
	echo "medvault scale benchmark (scripts/bench-scale.sh), $START_DATE, commit $COMMIT, $(nproc) cores, kernel $(uname -r)"
	echo "sizes: N=$N empty files, DIRS=$DIRS, SMALL=$SMALL x 4 KiB, BIG_MB=$BIG_MB, SAMPLES=$SAMPLES, FIRST=$FIRST, REPS=$REPS (median), REF_N=$REF_N"
	echo "main run: medvault mounted with --no-audit; load average at start $(val medvault start load), at end $(val medvault end load)"
	echo "run time: $TOTAL_S s"
	echo
	printf '%-36s %12s %12s %9s %s\n' "metric (ops/s)" "at $FIRST" "at $N" slowdown "(PASS if <= $LIMIT)"
	for m in create lookup stat_reval neg_lookup lookup_cold; do
		case $m in
		create) lbl="create (O_CREAT|O_EXCL+close)" ;;
		lookup) lbl="lookup (dentry dropped, index warm)" ;;
		stat_reval) lbl="stat (dentry expired, revalidate)" ;;
		neg_lookup) lbl="negative lookup (fresh names)" ;;
		lookup_cold) lbl="lookup cold (echo 3, index on disk)" ;;
		esac
		a=$(val medvault first "$m"); b=$(val medvault last "$m")
		read -r r v <<<"$(verdict "$a" "$b")"
		printf '%-36s %12.0f %12.0f %8sx %s\n' "$lbl" "${a:-0}" "${b:-0}" "$r" "$v"
	done
	echo
	echo "create windows of $WINDOW files (all of them in $(basename "$WIN")): min / median / max files/s"
	awk -F'\t' 'NR > 1 { print $1, $4 }' "$WIN" | sort -k1,1 -k2,2g | awk '
		{ v[$1] = v[$1] " " $2; n[$1]++ }
		END { for (f in v) { split(substr(v[f], 2), a, " "); printf "  %-16s %d windows: %.0f / %.0f / %.0f\n", f, n[f], a[1], a[int((n[f] + 1) / 2)], a[n[f]] } }' | sort
	echo
	echo "daemon memory (medvault, MiB): VmRSS right after creating $FIRST / $N files: $(( $(val medvault first rss_created_kb) / 1024 )) / $(( $(val medvault last rss_created_kb) / 1024 ));"
	echo "  after the lookups (kernel caches dropped, FORGETs handled): $(( $(val medvault first rss_kb) / 1024 )) / $(( $(val medvault last rss_kb) / 1024 )); VmHWM at $N: $(( $(val medvault last hwm_kb) / 1024 )), at the end: $(( $(val medvault end hwm_kb) / 1024 )) (includes the mount's KDF)"
	awk -v w0="$(val medvault 0 wbytes)" -v w1="$(val medvault first wbytes)" -v b0="$(val medvault bulk wbytes0)" -v b1="$(val medvault bulk wbytes1)" \
		-v f="$FIRST" -v from="$(val medvault bulk from)" -v n="$N" 'BEGIN {
		printf "daemon writes to storage per created file (/proc/PID/io write_bytes, checkpoints): files 0-%d: %.0f B, files %d-%d: %.0f B\n", f, (w1 - w0) / f, from, n, (b1 - b0) / (n - from) }'
	echo
	ia0=$(val medvault 0 index_alloc); ia1=$(val medvault empty index_alloc); ia2=$(val medvault small index_alloc); ia3=$(val medvault big index_alloc)
	echo "index (STORE/index/data.mdb, du -B1: allocated, the file is sparse; apparent $(val medvault empty index_apparent) B):"
	awk -v a0="$ia0" -v a1="$ia1" -v n="$N" -v d="$DIRS" 'BEGIN { printf "  after %d empty files + %d dirs: %.1f MiB, %.0f B per file (%.0f B per file net of the empty store)\n", n, d, a1 / 1048576, a1 / (n + d), (a1 - a0) / (n + d) }'
	if [ "$SMALL" -gt 0 ]; then
		awk -v a1="$ia1" -v a2="$ia2" -v n="$N" -v s="$SMALL" -v d="$DIRS" 'BEGIN { printf "  after %d more files of 4 KiB: %.1f MiB, %.0f B per file overall, %.0f B per added 4 KiB file\n", s, a2 / 1048576, a2 / (n + s + d), (a2 - a1) / s }'
		pb=$(val medvault small packs_bytes); pa=$(val medvault small packs_alloc); np=$(val medvault small packs)
		awk -v pb="$pb" -v pa="$pa" -v np="$np" -v s="$SMALL" -v ps="$PACK_SIZE" -v a1="$ia1" -v a2="$ia2" 'BEGIN {
			pt = s * 4096; o = pb / pt - 1
			printf "packs after the 4 KiB files: %d packs, %.1f MiB (allocated %.1f MiB) for %.1f MiB plaintext: overhead %.2f%% (%.0f B per 4 KiB chunk)\n", np, pb / 1048576, pa / 1048576, pt / 1048576, o * 100, (pb - pt) / s
			tb = 1e12; files = tb / 4096; packs = tb * (1 + o) / ps
			printf "per TB of 4 KiB files: %.0f packs of %d MiB (+ 256 pack directories + index, conf, lock), index %.0f GB (%.0f B per file)\n", packs, ps / 1048576, files * (a2 - a1) / s / 1e9, (a2 - a1) / s
		}'
	fi
	if [ "$BIG_MB" -gt 0 ]; then
		pb2=$(val medvault big packs_bytes); pb1=$(val medvault small packs_bytes); np2=$(val medvault big packs)
		awk -v pb1="${pb1:-0}" -v pb2="$pb2" -v mb="$BIG_MB" -v ps="$PACK_SIZE" -v np="$np2" -v i1="$ia2" -v i2="$ia3" 'BEGIN {
			pt = mb * 1048576; o = (pb2 - pb1) / pt - 1
			printf "one %d MiB file: packs grew by %.1f MiB: overhead %.3f%%, index grew by %.0f KiB (%.0f B per 64 KiB chunk); %d packs in all\n", mb, (pb2 - pb1) / 1048576, o * 100, (i2 - i1) / 1024, (i2 - i1) / (pt / 65536), np
			tb = 1e12
			printf "per TB of large files: %.0f packs of %d MiB, index about %.1f GB\n", tb * (1 + o) / ps, ps / 1048576, tb / 65536 * (i2 - i1) / (pt / 65536) / 1e9
		}'
	fi
	last_pt=empty; [ "$SMALL" -gt 0 ] && last_pt=small; [ "$BIG_MB" -gt 0 ] && last_pt=big
	echo "store files per TB = packs per TB + 4 (data.mdb, lock.mdb, medvault.conf, medvault.lock), in at most 256 pack directories"
	echo "store at the end: $(val medvault "$last_pt" store_files) files, $(( $(val medvault "$last_pt" store_alloc) / 1048576 )) MiB allocated (pack_size=$PACK_SIZE from medvault.conf)"
	if [ -n "$REF_FS" ]; then
		echo
		echo "reference runs at REF_N=$REF_N files (medians, ops/s; slowdown = at $FIRST / at $REF_N):"
		printf '%-16s %-14s %10s %10s %9s\n' fs metric "at $FIRST" "at $REF_N" slowdown
		for k in medvault "${refs[@]}"; do
			[ -n "$k" ] || continue
			[ -n "$(val "$k" first create)" ] || continue
			for m in create lookup stat_reval neg_lookup lookup_cold; do
				a=$(val "$k" first "$m")
				if [ "$k" = medvault ]; then
					b=$(val medvault ref "$m")   # the main run's point at REF_N
					[ -n "$b" ] || continue
				else
					b=$(val "$k" last "$m")
				fi
				read -r r v <<<"$(verdict "$a" "$b")"
				printf '%-16s %-14s %10.0f %10.0f %8sx\n' "$k" "$m" "$a" "$b" "$r"
			done
			case $k in
			medvault) echo "  (medvault: the main run, --no-audit, measured when it held $REF_N files)" ;;
			ext4) echo "  (ext4: load at start $(val "$k" start load), run $(val "$k" end seconds) s)" ;;
			*) echo "  ($k: daemon VmRSS $(( $(val "$k" last rss_kb) / 1024 )) MiB at $REF_N, VmHWM $(( $(val "$k" end hwm_kb) / 1024 )) MiB, load at start $(val "$k" start load), run $(val "$k" end seconds) s)" ;;
			esac
		done
	fi
} | tee "$TXT"
log "report: $TXT; data: $TSV, $WIN"
