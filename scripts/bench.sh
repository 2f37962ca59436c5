#!/usr/bin/env bash
# medvault benchmark (issue 8): medvault against gocryptfs, CryFS, securefs and
# libfuse's unencrypted passthrough_ll, all backed by the same disk.
#
#   scripts/install-bench-deps.sh              # once: peers, fio, passthrough_ll
#   scripts/bench.sh                           # full run (issue sizes)
#   QUICK=1 scripts/bench.sh                   # smoke test, small sizes
#   REPEAT=3 OUT=build/bench/r.tsv scripts/bench.sh
#   FS=medvault,gocryptfs,passthrough scripts/bench.sh
#
# Workloads are interleaved: for each workload, every filesystem runs it in
# turn (the order rotates from one repeat to the next), so machine noise hits
# all of them alike. REPEAT=N repeats everything; the table shows medians.
#
# Environment (defaults in brackets; QUICK=1 defaults in braces):
#   FS        filesystems to run [medvault,gocryptfs,cryfs,securefs,passthrough]
#   REPEAT    repeats, medians reported [1]
#   QUICK     1 = small sizes for smoke testing [0]
#   SEQ_MB    sequential file size, MiB [1024] {64}
#   CT_DIRS   CT study: series directories [10] {2}
#   CT_FILES  CT study: files per series [100] {10}
#   CT_KB     CT study: file size, KiB [512]
#   TREE_SRC  paths under / tarred for the untar tree [usr/include usr/share/doc]
#             {usr/include/linux}
#   FIO_MB    fio file size, MiB [256] {16}
#   RUNTIME   fio seconds per random workload [15] {2}
#   OUT       medians TSV [build/bench/bench-DATE.tsv]; beside it OUT's stem
#             with .raw.tsv (every sample), .targets.tsv and .txt (report)
#   BENCH_DIR where stores and mountpoints go (must be the disk) [/var/tmp]
#   VERIFY    1 = compare read-back data with the source (untimed) [QUICK]
#   KEEP      1 = keep the work and RAM directories [0]
#   MEDVAULT  medvault binary [build/medvault]
#   MEDVAULT_MOUNT_OPTS  extra words appended to `medvault mount` []
#   PASSTHROUGH_LL  passthrough_ll binary [build/bench/passthrough_ll]
#
# Must run as root (drop_caches); mounts only under a fresh temp directory,
# unmounts in a trap and kills only the daemons it started.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
QUICK=${QUICK:-0}
REPEAT=${REPEAT:-1}
FS=${FS:-medvault,gocryptfs,cryfs,securefs,passthrough}
if [ "$QUICK" = 1 ]; then
	SEQ_MB=${SEQ_MB:-64}; CT_DIRS=${CT_DIRS:-2}; CT_FILES=${CT_FILES:-10}
	CT_KB=${CT_KB:-512}; TREE_SRC=${TREE_SRC:-usr/include/linux}
	FIO_MB=${FIO_MB:-16}; RUNTIME=${RUNTIME:-2}; VERIFY=${VERIFY:-1}
else
	SEQ_MB=${SEQ_MB:-1024}; CT_DIRS=${CT_DIRS:-10}; CT_FILES=${CT_FILES:-100}
	CT_KB=${CT_KB:-512}; TREE_SRC=${TREE_SRC:-usr/include usr/share/doc}
	FIO_MB=${FIO_MB:-256}; RUNTIME=${RUNTIME:-15}; VERIFY=${VERIFY:-0}
fi
BENCH_DIR=${BENCH_DIR:-/var/tmp}
KEEP=${KEEP:-0}
MEDVAULT=${MEDVAULT:-$BUILD/medvault}
MEDVAULT_MOUNT_OPTS=${MEDVAULT_MOUNT_OPTS:-}
PASSTHROUGH_LL=${PASSTHROUGH_LL:-$BUILD/bench/passthrough_ll}
OUT=${OUT:-$BUILD/bench/bench-$(date +%Y%m%d-%H%M%S).tsv}
STEM=${OUT%.tsv}
RAW_OUT=$STEM.raw.tsv
TGT_OUT=$STEM.targets.tsv
TXT_OUT=$STEM.txt

ALL_FS=(medvault gocryptfs cryfs securefs passthrough)
PASS=medvault-bench-passphrase

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
NOTES=()
note() { NOTES+=("$*"); log "note: $*"; }

# ---------------------------------------------------------------- metrics
declare -A LABEL UNIT BETTER
defm() { LABEL[$1]=$2; UNIT[$1]=$3; BETTER[$1]=$4; }
defm seq_write      "seq write ${SEQ_MB} MiB (fsync)" MB/s    h
defm seq_read_cold  "seq read ${SEQ_MB} MiB cold"     MB/s    h
defm ct_write       "CT ${CT_DIRS}x${CT_FILES}x${CT_KB}K cp -r+sync" MB/s h
defm ct_read_cold   "CT study read cold"              MB/s    h
defm pacs_ingest    "PACS ingest (fsync/file)"        files/s h
defm untar          "untar tree (+sync)"              files/s h
defm find_cold      "find tree cold"                  s       l
defm lsR_cold       "ls -lR tree cold"                s       l
defm du_cold        "du -s tree cold"                 s       l
defm rand_write     "fio randwrite 4K QD1"            IOPS    h
defm rand_read_cold "fio randread 4K QD1 cold"        IOPS    h
defm mount          "mount (cold, populated)"         s       l
defm rss_peak       "daemon RSS peak, seq write"      MiB     l
defm rss_hwm        "daemon VmHWM after seq write"    MiB     l
defm store_mib      "backing store allocated"         MiB     l
defm store_files    "backing store files"             files   l
defm store_overhead "store overhead vs plaintext"     %       l
METRICS=(seq_write seq_read_cold ct_write ct_read_cold pacs_ingest untar find_cold
         lsR_cold du_cold rand_write rand_read_cold mount rss_peak rss_hwm
         store_mib store_files store_overhead)

# medvault targets: METRIC BASELINE(gocryptfs|passthrough|abs) OP THRESHOLD
TARGETS=(
	"seq_write gocryptfs >= 1.1" "seq_write passthrough >= 0.9"
	"seq_read_cold gocryptfs >= 1.1" "seq_read_cold passthrough >= 0.9"
	"ct_write gocryptfs >= 2" "ct_read_cold gocryptfs >= 1.2"
	"pacs_ingest gocryptfs >= 1.5" "untar gocryptfs >= 2"
	"lsR_cold gocryptfs <= 0.5"
	"rand_write gocryptfs >= 1" "rand_read_cold gocryptfs >= 1"
	"rss_peak abs <= 256" "mount abs <= 1"
)

REPORT=${REPORT:-}
if [ -n "$REPORT" ]; then
	# Re-render the table from an earlier run's samples; nothing is mounted.
	[ -r "$REPORT" ] || die "REPORT=$REPORT not readable"
	STEM=${REPORT%.raw.tsv}
	OUT=$STEM.tsv; RAW_OUT=$REPORT; TGT_OUT=$STEM.targets.tsv; TXT_OUT=$STEM.txt
	RUN_FS=()
	for fs in "${ALL_FS[@]}"; do
		if awk -F'\t' -v f="$fs" 'NR > 1 && $3 == f { found = 1 } END { exit !found }' "$REPORT"; then RUN_FS+=("$fs"); fi
	done
	REPEAT=$(awk -F'\t' 'NR > 1 && $1 > m { m = $1 } END { print m + 0 }' "$REPORT")
	# Machine lines and run time from the earlier report, if it is there.
	INFO=$(sed -n '2,/^sizes:/p' "$TXT_OUT" 2>/dev/null || true)
	[ -n "$INFO" ] || INFO="(re-rendered from $REPORT)"
	TOTAL_S=$(awk '/^run time:/ { print $3; exit }' "$TXT_OUT" 2>/dev/null || true)
	TOTAL_S=${TOTAL_S:-0}
	declare -A MED
else
for v in REPEAT SEQ_MB CT_DIRS CT_FILES CT_KB FIO_MB RUNTIME; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[ "$(id -u)" -eq 0 ] || die "run as root (drop_caches, FUSE mounts of all peers)"
[ -e /dev/fuse ] || die "/dev/fuse missing"
FUSERMOUNT=$(command -v fusermount3 || command -v fusermount || true)
[ -n "$FUSERMOUNT" ] || die "fusermount3 not found (apt-get install fuse3)"
command -v gcc >/dev/null || die "gcc needed for the ingest helper"
command -v mountpoint >/dev/null || die "mountpoint (util-linux) needed"
HAVE_FIO=1
command -v fio >/dev/null || { HAVE_FIO=0; note "fio not installed: random 4 KiB workloads skipped (scripts/install-bench-deps.sh)"; }

# ---------------------------------------------------------------- FS choice
RUN_FS=()
IFS=, read -r -a want <<<"$FS"
for fs in "${want[@]}"; do
	[ "$fs" = passthrough_ll ] && fs=passthrough
	case $fs in
	medvault)
		if [ -x "$MEDVAULT" ]; then RUN_FS+=(medvault)
		else note "medvault skipped: $MEDVAULT not built yet (make)"; fi ;;
	gocryptfs|cryfs|securefs)
		if command -v "$fs" >/dev/null; then RUN_FS+=("$fs")
		else note "$fs skipped: not installed (scripts/install-bench-deps.sh)"; fi ;;
	passthrough)
		if [ -x "$PASSTHROUGH_LL" ]; then RUN_FS+=(passthrough)
		else note "passthrough skipped: $PASSTHROUGH_LL missing (scripts/install-bench-deps.sh builds it)"; fi ;;
	"") ;;
	*) die "unknown filesystem '$fs' (known: ${ALL_FS[*]})" ;;
	esac
done
[ ${#RUN_FS[@]} -gt 0 ] || die "no filesystem left to benchmark"

# ---------------------------------------------------------------- helpers
mkdir -p "$BUILD/bench" "$(dirname "$OUT")"
INGEST=$BUILD/bench/ingest
if [ ! -x "$INGEST" ] || [ "$ROOT/scripts/bench/ingest.c" -nt "$INGEST" ]; then
	gcc -O2 -Wall -o "$INGEST" "$ROOT/scripts/bench/ingest.c" || die "cannot build $INGEST"
fi

WORK=$(mktemp -d "$BENCH_DIR/medvault-bench.XXXXXX")
RAM=$(mktemp -d /dev/shm/medvault-bench.XXXXXX)
PASSFILE=$WORK/passphrase
printf '%s\n' "$PASS" >"$PASSFILE"
chmod 600 "$PASSFILE"
: >"$RAW_OUT.tmp"

declare -A MNT STORE DPID BROKEN MED
STARTED_PIDS=()   # every daemon we started, for the trap
SAMPLER_PID=

cleanup() {
	local rc=$? fs p
	trap - EXIT INT TERM
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
	for fs in "${RUN_FS[@]}"; do
		[ -n "${MNT[$fs]:-}" ] || continue
		if mountpoint -q "${MNT[$fs]}" 2>/dev/null; then
			if [ "$fs" = medvault ]; then "$MEDVAULT" umount "${MNT[$fs]}" >/dev/null 2>&1 || true; fi
			mountpoint -q "${MNT[$fs]}" && { "$FUSERMOUNT" -u "${MNT[$fs]}" 2>/dev/null || "$FUSERMOUNT" -uz "${MNT[$fs]}" 2>/dev/null || umount -l "${MNT[$fs]}" 2>/dev/null || true; }
		fi
	done
	for p in "${STARTED_PIDS[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
		kill "$p" 2>/dev/null && log "killed leftover daemon $p"
	done
	if [ "$KEEP" = 1 ]; then
		log "kept $WORK and $RAM"
	else
		rm -rf "$WORK" "$RAM"
	fi
	rm -f "$RAW_OUT.tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }'; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
record() { printf '%s\t%s\t%s\t%s\n' "$REP" "$1" "$2" "$3" >>"$RAW_OUT.tmp"; }

DROP_OK=1
drop_caches() {
	sync
	if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		if [ "$DROP_OK" = 1 ]; then note "cannot write /proc/sys/vm/drop_caches: 'cold' results are warm"; fi
		DROP_OK=0
	fi
}

# PID of the FUSE daemon serving $1: holds /dev/fuse and has $1 in its argv.
daemon_pid() {
	local mnt=$1 p a cands
	if command -v fuser >/dev/null; then
		cands=$(fuser /dev/fuse 2>/dev/null || true)
	else
		cands=$(cd /proc && printf '%s\n' [0-9]*)
	fi
	for p in $cands; do
		[ -r "/proc/$p/cmdline" ] || continue
		local -a args=()
		mapfile -d '' args <"/proc/$p/cmdline" 2>/dev/null || continue
		for a in "${args[@]}"; do
			if [ "$a" = "$mnt" ]; then echo "$p"; return 0; fi
		done
	done
	return 1
}

fs_init() {
	local fs=$1 d=$WORK/$1
	rm -rf "$d"
	mkdir -p "$d/mnt" "$d/state"
	MNT[$fs]=$d/mnt
	STORE[$fs]=$d/store
	BROKEN[$fs]=0
	case $fs in
	medvault)
		if ! "$MEDVAULT" init "$d/store" --keystore "$d/keystore" --passphrase-file "$PASSFILE" >"$d/init.log" 2>&1; then
			# Maybe it wants an existing (empty) directory.
			mkdir -p "$d/store"
			"$MEDVAULT" init "$d/store" --keystore "$d/keystore" --passphrase-file "$PASSFILE" >>"$d/init.log" 2>&1 || return 1
		fi ;;
	gocryptfs)
		mkdir -p "$d/store"
		gocryptfs -q -init -passfile "$PASSFILE" "$d/store" >"$d/init.log" 2>&1 || return 1 ;;
	cryfs)
		mkdir -p "$d/store" ;;   # created by the first mount
	securefs)
		mkdir -p "$d/store"
		securefs create --pass "$PASS" "$d/store" >"$d/init.log" 2>&1 || return 1 ;;
	passthrough)
		mkdir -p "$d/store" ;;
	esac
}

fs_mount() {
	local fs=$1 d=$WORK/$1 i
	local m=${MNT[$fs]} s=${STORE[$fs]}
	case $fs in
	medvault)
		# shellcheck disable=SC2086  # MEDVAULT_MOUNT_OPTS is a word list
		"$MEDVAULT" mount "$s" "$m" --keystore "$d/keystore" --passphrase-file "$PASSFILE" \
			$MEDVAULT_MOUNT_OPTS >>"$d/mount.log" 2>&1 </dev/null || return 1 ;;
	gocryptfs)
		gocryptfs -q -passfile "$PASSFILE" "$s" "$m" >>"$d/mount.log" 2>&1 </dev/null || return 1 ;;
	cryfs)
		CRYFS_FRONTEND=noninteractive CRYFS_NO_UPDATE_CHECK=1 XDG_DATA_HOME=$d/state HOME=$d/state \
			cryfs --logfile "$d/cryfs.log" "$s" "$m" <<<"$PASS" >>"$d/mount.log" 2>&1 || return 1 ;;
	securefs)
		securefs mount -b --log "$d/securefs.log" --pass "$PASS" "$s" "$m" >>"$d/mount.log" 2>&1 </dev/null || return 1 ;;
	passthrough)
		"$PASSTHROUGH_LL" -o source="$s" "$m" >>"$d/mount.log" 2>&1 </dev/null || return 1 ;;
	esac
	for ((i = 0; i < 12000; i++)); do   # up to 120 s
		mountpoint -q "$m" && break
		sleep 0.01
	done
	mountpoint -q "$m" || { log "$fs: not mounted after 120 s (see $d/mount.log)"; return 1; }
	DPID[$fs]=$(daemon_pid "$m" || true)
	if [ -n "${DPID[$fs]}" ]; then STARTED_PIDS+=("${DPID[$fs]}"); fi
}

fs_umount() {
	local fs=$1 m=${MNT[$1]} p=${DPID[$1]:-} i
	if mountpoint -q "$m"; then
		sync
		for ((i = 0; i < 20; i++)); do
			if [ "$fs" = medvault ]; then
				"$MEDVAULT" umount "$m" >>"$WORK/$fs/mount.log" 2>&1 || true
			else
				"$FUSERMOUNT" -u "$m" >>"$WORK/$fs/mount.log" 2>&1 || true
			fi
			mountpoint -q "$m" || break
			sleep 0.5
		done
		mountpoint -q "$m" && { log "$fs: cannot unmount $m"; return 1; }
	fi
	# The daemon may still be flushing (CryFS writes its cache on exit).
	if [ -n "$p" ]; then
		for ((i = 0; i < 1200; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$p" 2>/dev/null; then log "$fs: daemon $p still alive 120 s after unmount; killing it"; kill "$p" 2>/dev/null || true; fi
	fi
	DPID[$fs]=
}

# Unmount, drop every cache, mount again; the mount is timed and recorded.
cold_remount() {
	local fs=$1 t0
	fs_umount "$fs" || return 1
	drop_caches
	t0=$EPOCHREALTIME
	fs_mount "$fs" || return 1
	record mount "$fs" "$(elapsed "$t0")"
}

ensure_mounted() {
	local fs=$1
	mountpoint -q "${MNT[$fs]}" && return 0
	log "$fs: not mounted any more; remounting"
	fs_umount "$fs" 2>/dev/null || true
	fs_mount "$fs" || { BROKEN[$fs]=1; note "$fs broke during repeat $REP; its later workloads are missing"; }
}

rss_sampler() {   # PID STOPFILE OUTFILE: max VmRSS (kB) while STOPFILE is absent
	local pid=$1 stop=$2 out=$3 max=0 k v
	echo 0 >"$out"
	while [ ! -e "$stop" ] && [ -r "/proc/$pid/status" ]; do
		while read -r k v _; do
			if [ "$k" = VmRSS: ]; then
				if [ "$v" -gt "$max" ]; then max=$v; echo "$max" >"$out"; fi
				break
			fi
		done <"/proc/$pid/status" 2>/dev/null || true
		sleep 0.05
	done
}

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# ---------------------------------------------------------------- workloads
SEQ_BYTES=$((SEQ_MB * 1048576))
CT_N=$((CT_DIRS * CT_FILES))
CT_BYTES=$((CT_N * CT_KB * 1024))

wl_seq_write() {
	local fs=$1 m=${MNT[$1]} p=${DPID[$1]:-} t0 dt stop=$WORK/rss.stop out=$WORK/rss.max
	rm -f "$stop"
	sync
	if [ -n "$p" ]; then rss_sampler "$p" "$stop" "$out" & SAMPLER_PID=$!; fi
	t0=$EPOCHREALTIME
	dd if="$RAM/seq.bin" of="$m/seq.bin" bs=1M conv=fsync status=none || return 1
	dt=$(elapsed "$t0")
	if [ -n "$p" ]; then
		touch "$stop"; wait "$SAMPLER_PID" || true; SAMPLER_PID=
		record rss_peak "$fs" "$(calc "$(cat "$out") / 1024")"
		record rss_hwm "$fs" "$(calc "$(status_kb "$p" VmHWM) / 1024")"
	else
		note "$fs: daemon PID not found; no RSS figures"
	fi
	record seq_write "$fs" "$(calc "$SEQ_BYTES / 1e6 / $dt")"
}

wl_seq_read_cold() {
	local fs=$1 m=${MNT[$1]} t0 dt
	cold_remount "$fs" || return 1
	t0=$EPOCHREALTIME
	dd if="$m/seq.bin" of=/dev/null bs=1M status=none || return 1
	dt=$(elapsed "$t0")
	record seq_read_cold "$fs" "$(calc "$SEQ_BYTES / 1e6 / $dt")"
	if [ "$VERIFY" = 1 ]; then cmp "$RAM/seq.bin" "$m/seq.bin" || { log "$fs: seq.bin differs"; return 1; }; fi
}

wl_ct_write() {
	local fs=$1 m=${MNT[$1]} t0 dt
	sync
	t0=$EPOCHREALTIME
	cp -r "$RAM/ct" "$m/ct" || return 1
	sync
	dt=$(elapsed "$t0")
	record ct_write "$fs" "$(calc "$CT_BYTES / 1e6 / $dt")"
}

wl_ct_read_cold() {
	local fs=$1 m=${MNT[$1]} t0 dt
	cold_remount "$fs" || return 1
	t0=$EPOCHREALTIME
	(cd "$m/ct" && find . -type f -print0 | sort -z | xargs -0 cat >/dev/null) || return 1
	dt=$(elapsed "$t0")
	record ct_read_cold "$fs" "$(calc "$CT_BYTES / 1e6 / $dt")"
	if [ "$VERIFY" = 1 ]; then diff -r "$RAM/ct" "$m/ct" >/dev/null || { log "$fs: ct tree differs"; return 1; }; fi
}

wl_pacs_ingest() {
	local fs=$1 m=${MNT[$1]} t0 dt
	sync
	t0=$EPOCHREALTIME
	"$INGEST" "$RAM/ct" "$m/pacs" >/dev/null || return 1
	dt=$(elapsed "$t0")
	record pacs_ingest "$fs" "$(calc "$CT_N / $dt")"
	if [ "$VERIFY" = 1 ]; then diff -r "$RAM/ct" "$m/pacs" >/dev/null || { log "$fs: pacs tree differs"; return 1; }; fi
}

wl_untar() {
	local fs=$1 m=${MNT[$1]} t0 dt
	mkdir -p "$m/tree" || return 1
	sync
	t0=$EPOCHREALTIME
	tar xf "$RAM/tree.tar" --no-same-owner -C "$m/tree" || return 1
	sync
	dt=$(elapsed "$t0")
	record untar "$fs" "$(calc "$TREE_FILES / $dt")"
}

cold_tree_cmd() {   # FS METRIC CMD...: cold remount, time CMD on the tree
	local fs=$1 metric=$2 t0
	shift 2
	cold_remount "$fs" || return 1
	t0=$EPOCHREALTIME
	"$@" >/dev/null || return 1
	record "$metric" "$fs" "$(elapsed "$t0")"
}
wl_find_cold() { cold_tree_cmd "$1" find_cold find "${MNT[$1]}/tree"; }
wl_lsR_cold() { cold_tree_cmd "$1" lsR_cold ls -lR "${MNT[$1]}/tree"; }
wl_du_cold() { cold_tree_cmd "$1" du_cold du -s "${MNT[$1]}/tree"; }

FIO_COMMON=(--bs=4k --ioengine=psync --iodepth=1 --randrepeat=1 --invalidate=1
            --output-format=terse --terse-version=3)

wl_rand_write() {
	local fs=$1 m=${MNT[$1]} t0 dt kb
	[ "$HAVE_FIO" = 1 ] || return 0
	# Lay the file out first (untimed) so fio measures overwrites only.
	dd if="$RAM/fio.bin" of="$m/fio.bin" bs=1M conv=fsync status=none || return 1
	sync
	t0=$EPOCHREALTIME
	kb=$(fio --name=randwrite --filename="$m/fio.bin" --size="${FIO_MB}M" --rw=randwrite \
		--runtime="$RUNTIME" --time_based --end_fsync=1 "${FIO_COMMON[@]}" 2>>"$WORK/fio.err" |
		awk -F';' '$1 == 3 { print $47 }') || return 1
	dt=$(elapsed "$t0")   # wall clock, so the final fsync counts
	[ -n "$kb" ] || { log "$fs: fio randwrite failed (see $WORK/fio.err)"; return 1; }
	record rand_write "$fs" "$(calc "$kb / 4 / $dt")"
}

wl_rand_read_cold() {
	local fs=$1 m=${MNT[$1]} iops
	[ "$HAVE_FIO" = 1 ] || return 0
	cold_remount "$fs" || return 1
	# Random map: each 4 KiB block is read at most once, so the page cache
	# above FUSE never serves a hit; stops after RUNTIME or one full pass.
	iops=$(fio --name=randread --filename="$m/fio.bin" --size="${FIO_MB}M" --rw=randread \
		--runtime="$RUNTIME" "${FIO_COMMON[@]}" 2>>"$WORK/fio.err" |
		awk -F';' '$1 == 3 { print $8 }') || return 1
	[ -n "$iops" ] || { log "$fs: fio randread failed (see $WORK/fio.err)"; return 1; }
	record rand_read_cold "$fs" "$iops"
}

# After all writes: logical bytes seen through the mount vs the backing store.
wl_store() {
	local fs=$1 m=${MNT[$1]} s=${STORE[$1]} logical alloc files
	logical=$(du -sb "$m" | awk '{ print $1 }') || return 1
	fs_umount "$fs" || return 1
	alloc=$(du -s -B1 "$s" | awk '{ print $1 }')
	files=$(find "$s" -type f | wc -l)
	record store_mib "$fs" "$(calc "$alloc / 1048576")"
	record store_files "$fs" "$files"
	record store_overhead "$fs" "$(calc "($alloc / $logical - 1) * 100")"
}

WORKLOADS=(seq_write seq_read_cold ct_write ct_read_cold pacs_ingest untar
           find_cold lsR_cold du_cold rand_write rand_read_cold)
# WL=ct_write,pacs_ingest runs a subset (cold reads need their write first)
if [ -n "${WL:-}" ]; then
	IFS=, read -r -a WORKLOADS <<<"$WL"
	for wl in "${WORKLOADS[@]}"; do
		declare -F "wl_$wl" >/dev/null || die "WL: unknown workload $wl"
	done
fi

# ---------------------------------------------------------------- setup
machine_info() {
	local dev
	dev=$(findmnt -n -o SOURCE -T "$BENCH_DIR" 2>/dev/null || echo '?')
	echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "host:      nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel:    $(uname -r)"
	echo "disk:      $BENCH_DIR on $dev ($(findmnt -n -o FSTYPE -T "$BENCH_DIR" 2>/dev/null || echo '?')), rotational=$(cat "/sys/block/$(basename "$dev")/queue/rotational" 2>/dev/null || echo '?')"
	echo "versions:  $(for f in "${RUN_FS[@]}"; do
		case $f in
		gocryptfs) printf 'gocryptfs %s; ' "$(gocryptfs -version 2>/dev/null | awk '{ sub(/;$/, "", $2); print $2; exit }')" ;;
		cryfs) printf 'cryfs %s; ' "$(dpkg-query -W -f='${Version}' cryfs 2>/dev/null || echo '?')" ;;
		securefs) printf 'securefs %s; ' "$(dpkg-query -W -f='${Version}' securefs 2>/dev/null || echo '?')" ;;
		passthrough) printf 'passthrough_ll (libfuse %s); ' "$(pkg-config --modversion fuse3 2>/dev/null || echo '?')" ;;
		medvault) printf 'medvault %s; ' "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')" ;;
		esac
	done)fio $(fio --version 2>/dev/null || echo none)"
	echo "sizes:     SEQ_MB=$SEQ_MB CT=${CT_DIRS}x${CT_FILES}x${CT_KB}KiB FIO_MB=$FIO_MB RUNTIME=${RUNTIME}s TREE_SRC='$TREE_SRC' ($TREE_FILES files, $TREE_ENTRIES entries) REPEAT=$REPEAT QUICK=$QUICK"
}

need_mb=$(( (SEQ_MB + 2 * CT_N * CT_KB / 1024 + FIO_MB + 400) * 2 * ${#RUN_FS[@]} ))
avail_mb=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
[ "$avail_mb" -gt "$need_mb" ] || die "need ~${need_mb} MiB free in $BENCH_DIR, have ${avail_mb}"

log "generating source data in $RAM (tmpfs)"
head -c "$SEQ_BYTES" /dev/urandom >"$RAM/seq.bin"
head -c "$((FIO_MB * 1048576))" /dev/urandom >"$RAM/fio.bin"
for ((i = 1; i <= CT_DIRS; i++)); do
	sd=$(printf '%s/ct/series_%03d' "$RAM" "$i")
	mkdir -p "$sd"
	head -c "$((CT_FILES * CT_KB * 1024))" /dev/urandom |
		split -b "${CT_KB}K" -a 4 -d --additional-suffix=.dcm - "$sd/img_"
done
read -r -a tree_src <<<"$TREE_SRC"
tar cf "$RAM/tree.tar" -C / "${tree_src[@]}" 2>/dev/null || [ -s "$RAM/tree.tar" ] || die "cannot tar $TREE_SRC"
TREE_FILES=$(tar tvf "$RAM/tree.tar" | grep -c '^-')
TREE_ENTRIES=$(tar tf "$RAM/tree.tar" | wc -l)

INFO=$(machine_info)
printf '%s\n' "$INFO" >&2
log "filesystems: ${RUN_FS[*]}; work dir $WORK"

# ---------------------------------------------------------------- run
T_START=$EPOCHREALTIME
for ((REP = 1; REP <= REPEAT; REP++)); do
	n=${#RUN_FS[@]}
	order=()
	for ((i = 0; i < n; i++)); do order+=("${RUN_FS[$(((i + REP - 1) % n))]}"); done
	log "repeat $REP/$REPEAT, order: ${order[*]}"
	for fs in "${order[@]}"; do
		if ! fs_init "$fs" || ! fs_mount "$fs"; then
			BROKEN[$fs]=1
			note "$fs: init/mount failed in repeat $REP (see $WORK/$fs/*.log)"
			if [ "$KEEP" != 1 ]; then sed 's/^/    /' "$WORK/$fs"/*.log >&2 2>/dev/null || true; fi
		fi
	done
	for wl in "${WORKLOADS[@]}"; do
		for fs in "${order[@]}"; do
			[ "${BROKEN[$fs]}" = 0 ] || continue
			log "  $wl on $fs"
			if ! "wl_$wl" "$fs"; then
				note "$wl failed on $fs in repeat $REP"
				[ -n "$SAMPLER_PID" ] && { kill "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=; }
				ensure_mounted "$fs"
			fi
		done
	done
	for fs in "${order[@]}"; do
		[ "${BROKEN[$fs]}" = 0 ] || { fs_umount "$fs" 2>/dev/null || true; continue; }
		wl_store "$fs" || note "store statistics failed on $fs in repeat $REP"
		fs_umount "$fs" || true
		[ "$KEEP" = 1 ] || rm -rf "${STORE[$fs]}"
	done
done
TOTAL_S=$(elapsed "$T_START")
mv "$RAW_OUT.tmp" "$RAW_OUT.body"
{ printf 'repeat\tmetric\tfs\tvalue\n'; cat "$RAW_OUT.body"; } >"$RAW_OUT"
rm -f "$RAW_OUT.body"
fi   # end of the measuring part (skipped with REPORT=)

# ---------------------------------------------------------------- report

# medians: metric fs median n values
{
	printf 'metric\tunit\tbetter\tfs\tmedian\tn\tvalues\n'
	awk -F'\t' 'NR > 1 { k = $2 "\t" $3; if (n[k]++) v[k] = v[k] "," $4; else v[k] = $4 } END { for (k in v) print k "\t" v[k] }' "$RAW_OUT" |
	while IFS=$'\t' read -r metric fs vals; do
		med=$(tr , '\n' <<<"$vals" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$metric" "${UNIT[$metric]}" "${BETTER[$metric]}" "$fs" "$med" "$(tr , '\n' <<<"$vals" | wc -l)" "$vals"
	done | sort
} >"$OUT"
while IFS=$'\t' read -r metric _ _ fs med _ _; do
	[ "$metric" = metric ] && continue
	MED[$metric|$fs]=$med
done <"$OUT"

fmt() {   # UNIT VALUE
	[ -n "$2" ] || { echo -; return; }
	case $1 in
	s) printf '%.3f' "$2" ;;
	MB/s|MiB|%) printf '%.1f' "$2" ;;
	*) printf '%.0f' "$2" ;;
	esac
}
ratio() {   # METRIC PEER -> medvault/peer or empty
	local a=${MED[$1|medvault]:-} b=${MED[$1|$2]:-}
	[ -n "$a" ] && [ -n "$b" ] || return 0
	awk -v a="$a" -v b="$b" 'BEGIN { if (b != 0) printf "%.2f", a / b }'
}
check() {   # VALUE OP THRESHOLD -> PASS|MISS
	awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "PASS" : "MISS" }'
}

printf 'metric\tbaseline\top\tthreshold\tvalue\tresult\n' >"$TGT_OUT"
declare -A TGT_TXT TGT_RES
for t in "${TARGETS[@]}"; do
	read -r metric base op thr <<<"$t"
	if [ "$base" = abs ]; then
		val=${MED[$metric|medvault]:-}
		txt="$op$thr ${UNIT[$metric]}"
	else
		val=$(ratio "$metric" "$base")
		case $base in gocryptfs) ab=go ;; passthrough) ab=pt ;; *) ab=$base ;; esac
		txt="${op}${thr}x $ab"
	fi
	if [ -n "$val" ]; then res=$(check "$val" "$op" "$thr"); else res=n/a; fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$metric" "$base" "$op" "$thr" "${val:--}" "$res" >>"$TGT_OUT"
	TGT_TXT[$metric]=${TGT_TXT[$metric]:+${TGT_TXT[$metric]}, }$txt
	TGT_RES[$metric]=${TGT_RES[$metric]:+${TGT_RES[$metric]},}$res
done

table() {
	local metric fs line
	printf '%-34s %-7s' workload unit
	for fs in "${RUN_FS[@]}"; do printf ' %11s' "$fs"; done
	printf ' %8s %8s  %-24s %s\n' mv/go mv/pt "target (medvault)" result
	for metric in "${METRICS[@]}"; do
		line=0
		for fs in "${RUN_FS[@]}"; do [ -n "${MED[$metric|$fs]:-}" ] && line=1; done
		[ "$line" = 1 ] || continue
		printf '%-34s %-7s' "${LABEL[$metric]}" "${UNIT[$metric]}"
		for fs in "${RUN_FS[@]}"; do printf ' %11s' "$(fmt "${UNIT[$metric]}" "${MED[$metric|$fs]:-}")"; done
		local rg rp
		rg=$(ratio "$metric" gocryptfs); rp=$(ratio "$metric" passthrough)
		printf ' %8s %8s  %-24s %s\n' "${rg:--}" "${rp:--}" "${TGT_TXT[$metric]:-}" "${TGT_RES[$metric]:-}"
	done
}

{
	echo "== medvault benchmark =="
	printf '%s\n' "$INFO"
	echo "run time:  $(printf '%.0f' "$TOTAL_S") s"
	echo
	table
	echo
	echo "Values are medians over $REPEAT repeat(s). MB/s = 10^6 bytes/s. 'cold' = unmount,"
	echo "sync, drop_caches, mount (that mount is the 'mount' row). mv/go and mv/pt = medvault"
	echo "value / gocryptfs or passthrough value (for s and MiB rows lower is better)."
	if [ ${#NOTES[@]} -gt 0 ]; then
		echo
		echo "Notes:"
		printf '  - %s\n' "${NOTES[@]}"
	fi
	echo
	echo "results: $OUT (medians), $RAW_OUT (samples), $TGT_OUT (targets)"
} | tee "$TXT_OUT"
