#!/usr/bin/env bash
# t_95_backup: encrypted backups of a live store (issue 5).
#
#   a. `medvault snapshot` while the vault is mounted and written: the copy
#      fscks clean, mounts with the original keystore, and every file
#      written before the snapshot started has exactly its content;
#   b. incremental rsync of a second snapshot sends about the changed bytes
#      plus the index (plain `rsync -a` and `rsync -a --no-whole-file`);
#   c. restore drill: backup -> new place -> mount -> identical tree
#      (contents, modes, mtime/ctime ns, hard links, symlinks, xattrs);
#   M. scripts/medvault-backup: rotations, --link-dest sharing, --keep,
#      restore from a rotation, one-line output and errors;
#   d. compaction shrinks the store, an older snapshot survives it, and a
#      held snapshot lock keeps emptied packs until it is released;
#   e. kill -9 of the daemon at random moments during compaction: after a
#      lazy unmount and remount every file is intact and fsck is clean.
#
# Environment: BACKUP_MB (archive size, default 200; the issue's 1 GiB
# figure is BACKUP_MB=1024, run by stress_compact.sh in `make stress`),
# COMPACT_CRASH_ROUNDS (default 4), BACKUP_SEED (for $RANDOM).
. "$(dirname "$0")/lib.sh"

need_mv
need_tool tree_digest
command -v rsync >/dev/null || bail "rsync is not installed"

BACKUP_MB=${BACKUP_MB:-200}
ROUNDS=${COMPACT_CRASH_ROUNDS:-4}
RANDOM=${BACKUP_SEED:-$$}
BACKUP_SCRIPT=$MV_ROOT/scripts/medvault-backup
KiB=1024
MiB=$((1024 * 1024))
echo "# archive ${BACKUP_MB} MiB, $ROUNDS compaction crash rounds, seed ${BACKUP_SEED:-$$}"

t_start=$(date +%s)
elapsed() { echo $(($(date +%s) - t_start)); }
ms() { date +%s%3N; }

mv_vault_new main
check "init a vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
ok "mount the vault"

# digest DIR MANIFEST: a failed read (EIO...) is a failure of its own
digest() {
	if ! "$TOOLS/tree_digest" "$1" >"$2" 2>"$T/digest.err"; then
		not_ok "manifest of $1 reads every entry" "$(head -n 5 "$T/digest.err")"
		return 1
	fi
}
same_tree() {	# NAME MANIFEST-A MANIFEST-B
	if diff "$2" "$3" >"$T/diff.out"; then
		ok "$1"
	else
		not_ok "$1" "$(head -c 3000 "$T/diff.out")"
	fi
}
# A copy has the store's volume id, so by default its mount would write the
# original's access trail (KS/audit/<uuid>): copies get their own trail.
# A copy also shares the store's rollback anchor (KS/<uuid>.anchor) and is
# behind it: copies that are only read mount --read-only (which never moves
# the anchor); one that is written must be accepted (--accept-rollback).
mv_mount_copy() {
	local store=$1 mnt=$2
	shift 2
	mv_mount "$store" "$mnt" "$KS" "$PF" --audit-dir "$T/audit-$(basename "$store")" "$@"
}
fsck_clean() { mv_run fsck "$1" --keystore "$KS" --passphrase-file "$PF"; }
store_bytes() { du -sb --apparent-size "$1/packs" | cut -f1; }
npacks() { find "$1/packs" -type f -name '*.pack' | wc -l; }
# writable MNT NAME: a new file can be created and written (a snapshot
# must not disturb the daemon)
writable() { head -c 100000 /dev/urandom >"$1/.probe-$2" && rm -f "$1/.probe-$2"; }

# ---------------------------------------------------------------- data set
# DICOM-like: files of 256 KiB .. 4 MiB up to BACKUP_MB, one large file
# (BACKUP_MB/8), and one of every kind of object the manifest checks.
D=$MNT/data
BIG_MB=$((BACKUP_MB / 8))
[ $BIG_MB -ge 2 ] || BIG_MB=2
make_data() {
	set -e
	mkdir -p "$D/studies" "$D/misc/sub"
	head -c $((BIG_MB * MiB)) /dev/urandom >"$D/big.wsi"
	local total=$((BIG_MB * MiB)) want=$((BACKUP_MB * MiB)) i=0 sz dir
	while [ $total -lt $want ]; do
		sz=$(((256 + RANDOM % 3841) * KiB))
		dir=$D/studies/s$((i / 20))
		[ -d "$dir" ] || mkdir "$dir"
		head -c $sz /dev/urandom >"$dir/img$i.dcm"
		echo "$dir/img$i.dcm" >>"$T/files.list"
		total=$((total + sz))
		i=$((i + 1))
	done
	local m=$D/misc
	: >"$m/empty"
	printf 'hello\n' >"$m/hello"
	ln "$m/hello" "$m/sub/hello.hardlink"
	ln "$m/hello" "$m/hello.hardlink2"
	ln -s hello "$m/hello.symlink"
	ln -s /nowhere/at/all "$m/dangling"
	mkfifo "$m/fifo"
	setfattr -n user.study -v "CT thorax 2024" "$m/hello"
	setfattr -n user.empty "$m/hello"
	setfattr -n user.bin -v 0x00ff00ff "$m/sub"
	chmod 0600 "$m/empty"
	chmod 2750 "$m/sub"
	chown 1234:5678 "$m/empty"
	touch -d '1999-12-31 23:59:59.123456789' "$m/hello"
	touch -h -d '2001-02-03 04:05:06.987654321' "$m/hello.symlink"
	truncate -s 20M "$m/sparse"
	printf tail | dd of="$m/sparse" bs=1 seek=$((20 * MiB - 4)) conv=notrunc status=none
	sync
}
t0=$(ms)
check "write a ${BACKUP_MB} MiB archive" make_data
echo "# wrote $(wc -l <"$T/files.list") files + ${BIG_MB} MiB large file in $(($(ms) - t0)) ms"

# ================================================================ a
# snapshot while a writer runs
mkdir -p "$MNT/live" "$T/pool"
for p in 0 1 2 3; do head -c $((MiB + p * 4099)) /dev/urandom >"$T/pool/$p"; done
declare -A POOLSUM
for p in 0 1 2 3; do POOLSUM[$p]=$(sha256sum <"$T/pool/$p" | cut -d' ' -f1); done
digest "$D" "$T/m_data_a"

writer() {
	local i=0
	while [ ! -e "$T/stop" ] && [ $i -lt 5000 ]; do
		if cp "$T/pool/$((i % 4))" "$MNT/live/w$i" 2>>"$T/writer.err"; then
			echo "$i" >>"$T/writer.done"
		else
			echo "FAIL $i" >>"$T/writer.done"
		fi
		i=$((i + 1))
	done
}
: >"$T/writer.done"
writer &
wpid=$!
sleep 1.5
n_before=$(grep -c '^[0-9]' "$T/writer.done")
t0=$(ms)
SNAP1=$T/snap1
if out=$(mv_run snapshot "$STORE" "$SNAP1" 2>&1); then
	ok "snapshot while mounted and written ($(($(ms) - t0)) ms, writer had finished $n_before files)"
	echo "#   $(tail -n 1 <<<"$out")"
else
	not_ok "snapshot while mounted and written" "$out"
fi
sleep 1.5
touch "$T/stop"
wait $wpid
n_all=$(grep -c '^[0-9]' "$T/writer.done")
if grep -q FAIL "$T/writer.done"; then
	not_ok "the writer saw no error around the snapshot ($n_all files written)" \
		"$(grep -c FAIL "$T/writer.done") failed writes, first: $(grep -m1 FAIL "$T/writer.done")" \
		"$(head -n 3 "$T/writer.err")"
else
	ok "the writer saw no error around the snapshot ($n_all files written)"
fi
check "a file can be created right after the snapshot" writable "$MNT" a

check "fsck of the snapshot (taken during writes) is clean" fsck_clean "$SNAP1"
SMNT=$T/snap1.mnt
mkdir -p "$SMNT"
if mv_mount_copy "$SNAP1" "$SMNT" --accept-rollback; then
	ok "the snapshot mounts with the original keystore"
	digest "$SMNT/data" "$T/m_data_snap1"
	same_tree "the archive in the snapshot is identical (manifest of data/)" "$T/m_data_a" "$T/m_data_snap1"
	bad=0 badlist=
	for ((i = 0; i < n_before; i++)); do
		s=$(sha256sum <"$SMNT/live/w$i" 2>/dev/null | cut -d' ' -f1)
		if [ "$s" != "${POOLSUM[$((i % 4))]}" ]; then
			bad=$((bad + 1))
			badlist="$badlist w$i"
		fi
	done
	if [ $bad -eq 0 ]; then
		ok "all $n_before files completed before the snapshot have their content in it"
	else
		not_ok "all $n_before files completed before the snapshot have their content in it" "$bad differ:${badlist:0:300}"
	fi
	# the snapshot's packs are hard links to the live store's: writing to
	# the mounted snapshot must not change a byte of the original
	before=$(find "$STORE/packs" -type f -printf '%p %s %T@\n' | sort | sha256sum)
	check "the mounted snapshot is writable" bash -c "head -c 3000000 /dev/urandom >'$SMNT/copy-write' && sync"
	check "umount the snapshot" mv_umount "$SMNT"
	after=$(find "$STORE/packs" -type f -printf '%p %s %T@\n' | sort | sha256sum)
	is "$after" "$before" "writing to the snapshot left the original store's packs untouched"
else
	not_ok "the snapshot mounts with the original keystore"
fi

# ================================================================ b
# incremental: baseline snapshot -> BK; changes; second snapshot -> BK
SNAPB=$T/snapB
BK=$T/backup
check "quiescent baseline snapshot" mv_run snapshot "$STORE" "$SNAPB"
check "a file can be created after the baseline snapshot" writable "$MNT" b
t0=$(ms)
check "first rsync -a of the snapshot to the backup dir" rsync -a "$SNAPB/" "$BK/"
t_full=$(($(ms) - t0))
echo "# first (full) rsync: $(du -sb "$BK" | cut -f1) bytes in $t_full ms"
cp -al "$BK" "$BK.nwf"	# same baseline for the --no-whole-file run (rsync never writes in place)

changes() {
	set -e
	mkdir -p "$D/new"
	for i in $(seq 1 20); do
		dd if=/dev/urandom of="$D/new/n$i.dcm" bs=512K count=1 conv=fsync status=none
	done
	# 64 KiB in the middle of the large file, aligned on a chunk
	dd if=/dev/urandom of="$D/big.wsi" bs=64K seek=$((BIG_MB * 8)) count=1 conv=notrunc,fsync status=none
}
check "add 20 x 512 KiB files and rewrite 64 KiB of the large file (fsync)" changes
digest "$MNT" "$T/m_full2"
SNAP2=$T/snap2
check "second snapshot" mv_run snapshot "$STORE" "$SNAP2"
check "a file can be created after the second snapshot" writable "$MNT" c
changed=$((20 * 512 * KiB + 64 * KiB))
idx=$(stat -c %s "$SNAP2/index/data.mdb")

num() { sed -n "s/^$1: *\([0-9,]*\).*/\1/p" "$2" | tr -d ,; }
rsync_run() {	# LABEL DEST OPTS...
	local label=$1 dest=$2 out=$T/rsync.$1 t0 tt tr lit sent limit
	shift 2
	t0=$(ms)
	if ! rsync -a --delete --stats -i "$@" "$SNAP2/" "$dest/" >"$out" 2>&1; then
		not_ok "incremental rsync ($label)" "$(tail -n 5 "$out")"
		return
	fi
	tt=$(($(ms) - t0))
	tr=$(num 'Total transferred file size' "$out")
	lit=$(num 'Literal data' "$out")
	sent=$(num 'Total bytes sent' "$out")
	limit=$((changed * 3 / 2 + idx))
	echo "# rsync $label: transferred file size $tr, literal data $lit, bytes sent $sent, $tt ms;" \
		"changed $changed + index $idx; limit $limit"
	awk -v t="$tr" -v l="$lit" -v s="$sent" -v c="$changed" -v i="$idx" 'BEGIN {
		printf "#   ratio transferred/changed %.3f, (transferred-index)/changed %.3f, literal/changed %.3f, sent/changed %.3f\n",
			t / c, (t - i) / c, l / c, s / c }'
	echo "#   files sent:"
	grep -E '^[<>]f' "$out" | sed 's/^/#     /' | head -n 20
	if [ -n "$tr" ] && [ "$tr" -le "$limit" ] && [ -n "$sent" ] && [ "$sent" -le $((limit + limit / 10)) ]; then
		ok "incremental rsync ($label) sends <= 1.5 x changed + index ($tr <= $limit)"
	else
		not_ok "incremental rsync ($label) sends <= 1.5 x changed + index" "transferred ${tr:-?}, sent ${sent:-?}, limit $limit" \
			"$(grep -E '^[<>]f' "$out" | head -n 20)"
	fi
}
rsync_run whole-file "$BK"
rsync_run no-whole-file "$BK.nwf" --no-whole-file
rm -rf "$BK.nwf"

# ================================================================ c
# restore drill
RESTORE=$T/restore
RMNT=$T/restore.mnt
mkdir -p "$RMNT"
t0=$(ms)
check "rsync the backup to a new place" rsync -a "$BK/" "$RESTORE/"
echo "# restore copy: $(($(ms) - t0)) ms"
check "fsck of the restored copy is clean" fsck_clean "$RESTORE"
if mv_mount_copy "$RESTORE" "$RMNT" --read-only; then
	ok "the restored copy mounts with the keystore"
	t0=$(ms)
	digest "$RMNT" "$T/m_restore"
	echo "# manifest of the restored tree: $(($(ms) - t0)) ms"
	same_tree "restored tree = original at snapshot time (sha256, modes, mtime/ctime ns, links, symlinks, xattrs)" \
		"$T/m_full2" "$T/m_restore"
	check "umount the restored copy" mv_umount "$RMNT"
else
	not_ok "the restored copy mounts with the keystore"
fi
rm -rf "$RESTORE" "$SNAP1" "$SNAPB"

# ================================================================ M
# scripts/medvault-backup
if [ -x "$BACKUP_SCRIPT" ]; then
	TGT=$T/rotations
	mb() { MEDVAULT=$MV "$BACKUP_SCRIPT" "$@"; }
	line_re='^medvault-backup: ok .* -> .*/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z(-[0-9]+)? \([0-9]+ packs, [0-9.]+ MiB sent, [0-9]+ s(, [0-9]+ old removed)?\)$'
	mb_check() {	# NAME ARGS...
		local name=$1 out rc
		shift
		out=$(mb "$@" 2>&1)
		rc=$?
		if [ $rc -eq 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -Eq "$line_re" <<<"$out"; then
			ok "$name"
			echo "#   $out"
		else
			not_ok "$name" "status $rc, output:" "$out"
		fi
	}
	mb_check "medvault-backup run 1: one ok line" "$STORE" "$TGT" --keep 2
	check "a file can be created after medvault-backup" writable "$MNT" d
	check "change the archive between runs" bash -c "head -c 700000 /dev/urandom >'$D/new/between.dcm' && sync"
	mb_check "medvault-backup run 2: one ok line" "$STORE" "$TGT" --keep 2
	rot=$(find "$TGT" -mindepth 1 -maxdepth 1 -type d -name '20*' | wc -l)
	is "$rot" 2 "two rotations after two runs"
	r1=$(find "$TGT" -mindepth 1 -maxdepth 1 -type d -name '20*' | sort | head -n 1)
	r2=$(find "$TGT" -mindepth 1 -maxdepth 1 -type d -name '20*' | sort | tail -n 1)
	is "$(readlink "$TGT/latest")" "$(basename "$r2")" "TARGET/latest points to the newest rotation"
	p=$(cd "$r1" && find packs -type f -name '*.pack' | sort | head -n 1)
	if [ -n "$p" ] && [ "$(stat -c %h "$r2/$p")" -ge 2 ] && [ "$(stat -c %i "$r1/$p")" = "$(stat -c %i "$r2/$p")" ]; then
		ok "an unchanged pack is one hard link across rotations ($p: $(stat -c %h "$r2/$p") links)"
	else
		not_ok "an unchanged pack is one hard link across rotations" "pack '$p': $(stat -c '%h %i' "$r1/$p" "$r2/$p" 2>&1)"
	fi
	is "$(find "$TGT" -name '*.keys' | wc -l)" 0 "no keystore file in the backup target"
	is "$(find "$(dirname "$STORE")" -maxdepth 1 -name '.medvault-backup.*' -type d | wc -l)" 0 "the temp snapshot is removed"
	digest "$MNT" "$T/m_rot"
	mb_check "medvault-backup run 3 with --keep 2: one ok line" "$STORE" "$TGT" --keep 2
	is "$(find "$TGT" -mindepth 1 -maxdepth 1 -type d -name '20*' | wc -l)" 2 "--keep 2: the oldest rotation is deleted"
	[ -d "$r1" ] && not_ok "the oldest rotation is the one deleted" || ok "the oldest rotation is the one deleted"
	# restore from the newest rotation
	R2=$T/restore2
	R2M=$T/restore2.mnt
	mkdir -p "$R2M"
	check "rsync the latest rotation to a new place" rsync -a "$TGT/latest/" "$R2/"
	if mv_mount_copy "$R2" "$R2M" --read-only; then
		ok "the restored rotation mounts"
		digest "$R2M" "$T/m_r2"
		same_tree "the restored rotation matches the archive" "$T/m_rot" "$T/m_r2"
		check "umount the restored rotation" mv_umount "$R2M"
	else
		not_ok "the restored rotation mounts"
	fi
	rm -rf "$R2"
	out=$(mb "$T/no-such-store" "$TGT" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q '^medvault-backup: FAILED' <<<"$out"; then
		ok "medvault-backup fails with one line on a bad store ($out)"
	else
		not_ok "medvault-backup fails with one line on a bad store" "status $rc" "$out"
	fi
	out=$(mb "$STORE" "$TGT" --keep 0 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ]; then ok "medvault-backup refuses --keep 0 with one line"; else not_ok "medvault-backup refuses --keep 0 with one line" "status $rc" "$out"; fi
	rm -rf "$TGT"
else
	not_ok "scripts/medvault-backup exists and is executable"
fi

# ================================================================ d
# compaction and snapshots
SNAPC=$T/snapC
digest "$MNT" "$T/m_before_compact"
check "snapshot before compaction" mv_run snapshot "$STORE" "$SNAPC"
mapfile -t files <"$T/files.list"
half=$((${#files[@]} / 2))
# Measured before the deletes: a burst of them trips the daemon's own
# compaction (256 MiB of dead data), which may free the space before
# `medvault compact` asks; the store must shrink either way.
b0=$(store_bytes "$STORE")
p0=$(npacks "$STORE")
for ((i = 0; i < half; i++)); do rm -f "${files[$i]}"; done
rm -rf "$MNT/live"
sync
digest "$MNT" "$T/m_deleted"
t0=$(ms)
if out=$(mv_run compact "$STORE" 2>&1); then
	ok "medvault compact of the mounted store ($(($(ms) - t0)) ms)"
	echo "#   $out"
else
	not_ok "medvault compact of the mounted store" "$out"
fi
b1=$(store_bytes "$STORE")
p1=$(npacks "$STORE")
echo "# packs: $p0 -> $p1, pack bytes $b0 -> $b1 after deleting $half of ${#files[@]} files"
if [ "$b1" -lt $((b0 * 3 / 4)) ]; then ok "the store shrinks ($b0 -> $b1 bytes)"; else not_ok "the store shrinks" "$b0 -> $b1 bytes"; fi
digest "$MNT" "$T/m_compacted"
same_tree "compaction changed no file" "$T/m_deleted" "$T/m_compacted"
check "fsck of the pre-compaction snapshot is clean" fsck_clean "$SNAPC"
CMNT=$T/snapC.mnt
mkdir -p "$CMNT"
if mv_mount_copy "$SNAPC" "$CMNT" --read-only; then
	ok "the pre-compaction snapshot mounts after compaction"
	digest "$CMNT" "$T/m_snapC"
	same_tree "the pre-compaction snapshot still holds every file, deleted ones included" "$T/m_before_compact" "$T/m_snapC"
	check "umount the pre-compaction snapshot" mv_umount "$CMNT"
else
	not_ok "the pre-compaction snapshot mounts after compaction"
fi
rm -rf "$SNAPC"

# a snapshot in progress (its shared lock) keeps emptied packs; taken
# before the deletes, so a background compaction meanwhile keeps them too
exec 9<>"$STORE/snapshot.lock"
flock -s 9
p0=$(npacks "$STORE")
b0=$(store_bytes "$STORE")
for ((i = half; i < half + half / 2; i++)); do rm -f "${files[$i]}"; done
sync
digest "$MNT" "$T/m_deleted2"
out=$(mv_run compact "$STORE" --ratio 0.9 2>&1)
rc=$?
exec 9>&-
p1=$(npacks "$STORE")
echo "#   while a snapshot holds the lock: $out; packs $p0 -> $p1"
if [ $rc -eq 0 ] && grep -q 'kept' <<<"$out" && [ "$p1" -ge "$p0" ]; then
	ok "compaction during a snapshot deletes no pack and reports them kept"
else
	not_ok "compaction during a snapshot deletes no pack and reports them kept" "status $rc: $out" "packs $p0 -> $p1"
fi
out=$(mv_run compact "$STORE" --ratio 0.9 2>&1)
rc=$?
p2=$(npacks "$STORE")
b2=$(store_bytes "$STORE")
echo "#   after the lock is released: $out; packs $p1 -> $p2, bytes $b0 -> $b2"
if [ $rc -eq 0 ] && [ "$p2" -lt "$p1" ] && [ "$b2" -lt "$b0" ]; then
	ok "after the snapshot ends, compaction deletes the kept packs"
else
	not_ok "after the snapshot ends, compaction deletes the kept packs" "status $rc: $out" "packs $p1 -> $p2, bytes $b0 -> $b2"
fi
digest "$MNT" "$T/m_compacted2"
same_tree "no file changed through both compactions" "$T/m_deleted2" "$T/m_compacted2"

# ================================================================ e
# kill -9 during compaction
crash_round() {	# ROUND
	local r=$1 j delay pid out rc
	# fresh dead bytes: new files, then every other surviving file goes
	mkdir -p "$D/crash$r"
	for j in $(seq 1 8); do head -c $(((512 + RANDOM % 1536) * KiB)) /dev/urandom >"$D/crash$r/c$j"; done
	find "$D" -type f -name '*.dcm' | sort | awk 'NR % 2 == 0' | head -n 12 | xargs -r rm -f
	sync
	digest "$MNT" "$T/m_crash_before"
	delay=$((RANDOM % 400))
	pid=$(cat "$STORE/medvault.lock" 2>/dev/null)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || pid=$(daemon_pids "$MNT" | head -n 1)
	mv_run compact "$STORE" --ratio 1 >"$T/compact.out" 2>&1 &
	local cpid=$!
	sleep "$(awk -v d=$delay 'BEGIN { printf "%.3f", d / 1000 }')"
	kill -9 "$pid" 2>/dev/null
	wait $cpid
	rc=$?
	echo "#   round $r: kill -9 after ${delay} ms; compact status $rc: $(tail -n 1 "$T/compact.out")"
	[ $rc -ne 0 ] && CRASH_HITS=$((CRASH_HITS + 1))
	fusermount3 -uz "$MNT" 2>/dev/null
	mv_wait_gone "$pid"
	if ! fsck_clean "$STORE" >"$T/fsck.out" 2>&1; then
		not_ok "crash round $r: fsck clean after kill -9 during compaction" "$(tail -n 5 "$T/fsck.out")"
	else
		ok "crash round $r: fsck clean after kill -9 during compaction"
	fi
	if ! mv_mount "$STORE" "$MNT" "$KS" "$PF"; then
		bail "crash round $r: remount after kill -9"
	fi
	digest "$MNT" "$T/m_crash_after"
	same_tree "crash round $r: every file intact after remount" "$T/m_crash_before" "$T/m_crash_after"
}
CRASH_HITS=0
for ((r = 1; r <= ROUNDS; r++)); do crash_round $r; done
echo "# the kill interrupted a running compaction in $CRASH_HITS of $ROUNDS rounds"
out=$(mv_run compact "$STORE" --ratio 1 2>&1)
check "a full compaction after the crash rounds succeeds" test $? -eq 0
echo "#   $out"
digest "$MNT" "$T/m_final"
same_tree "files intact after the last compaction" "$T/m_crash_after" "$T/m_final"

check "final umount" mv_umount "$MNT"
check "final fsck is clean" fsck_clean "$STORE"
# ================================================================ audit
# A copy mounted with the default --audit-dir while the original is mounted
# shares the original's trail (same volume id): either that mount is refused
# or both trails stay valid; the original must still mount afterwards.
uuid=$(sed -n 's/^uuid=//p' "$STORE/medvault.conf")
if mv_mount "$STORE" "$MNT" "$KS" "$PF"; then
	SNAPX=$T/snapX
	XMNT=$T/snapX.mnt
	mkdir -p "$XMNT"
	mv_run snapshot "$STORE" "$SNAPX" >/dev/null 2>&1
	if mv_mount "$SNAPX" "$XMNT" "$KS" "$PF" 2>"$T/xmount.err"; then
		echo "# a copy mounted with the original's audit trail while the original is mounted"
		echo x >"$XMNT/copy-file"
		echo y >"$MNT/orig-file"
		mv_umount "$XMNT"
	else
		echo "# a copy's mount with the original's audit trail was refused: $(tail -n 1 "$T/xmount.err")"
	fi
	mv_umount "$MNT"
	check "the original's audit trail verifies after a copy was mounted beside it" \
		mv_run audit verify "$KS/audit/$uuid" --keystore "$KS" --passphrase-file "$PF"
	if mv_mount "$STORE" "$MNT" "$KS" "$PF" 2>"$T/remount.err"; then
		ok "the original mounts after a copy was mounted beside it"
		mv_umount "$MNT"
	else
		not_ok "the original mounts after a copy was mounted beside it" "$(tail -n 2 "$T/remount.err")"
	fi
else
	not_ok "mount the store for the audit-trail check"
fi

echo "# t_95 took $(elapsed) s"
summary
