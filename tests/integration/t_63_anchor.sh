#!/usr/bin/env bash
# t_63_anchor: the rollback anchor beside the keystore (issue 18, item 2)
# and read-only mounts.
#
#   a. `mount --read-only` serves the files, every change gets EROFS, and
#      afterwards the store (data.mdb, packs, everything but LMDB's reader
#      table) and the anchor are byte-identical; fsck (read-only without
#      --repair) writes nothing either;
#   b. a tampered anchor: a read-write mount is refused with one line and
#      exit status 1, touching nothing; --read-only mounts with a warning;
#      --accept-rollback mounts and writes a good anchor;
#   c. the anchor moves after writes (while mounted, at most every few
#      seconds, and at unmount);
#   d. a whole store rolled back to an older copy: refused with "N commits
#      behind", mounts --read-only (serving the old files, anchor unmoved),
#      fsck says "N commits behind", --accept-rollback mounts, is in the
#      access trail, and moves the anchor back.
#
# The anchor's counter is the index's commit counter, which grows only once
# the index keeps an integrity root (format 2).  On a format-1 index it
# stays 0: the cases that need it to grow are TAP TODOs until then (they
# report "now passes" once it does).
. "$(dirname "$0")/lib.sh"

need_mv

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"
UUID=$("$MV" info "$STORE" | awk '/^volume:/ { print $2 }')
ANCHOR=$KS/$UUID.anchor
[ -f "$ANCHOR" ] && ok "init writes the anchor $UUID.anchor beside the keystore" ||
	bail "init writes the anchor beside the keystore" "$(ls -la "$KS")"
is "$(stat -c %s "$ANCHOR")" 124 "the anchor is 124 bytes"

# the anchor's counter (big-endian u64 at offset 24) and flags (u32 at 80)
anchor_counter() { od -An -tu8 --endian=big -j24 -N8 "$ANCHOR" | tr -d ' '; }
anchor_flags() { od -An -tu4 --endian=big -j80 -N4 "$ANCHOR" | tr -d ' '; }
anchor_sum() { sha256sum <"$ANCHOR" | cut -d' ' -f1; }
NEEDS="needs the index's commit counter (format 2)"
# counted NAME CMD...: a check when the counter grows, else a TODO
counted() {
	local name=$1
	shift
	if [ "$(anchor_counter)" -gt 0 ]; then check "$name" "$@"; else todo "$name" "$NEEDS" "$@"; fi
}

# one_line NAME CMD...: CMD fails with status 1 and exactly one line on stderr
one_line() {
	local name=$1 rc
	shift
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ]; then
		ok "$name: $(cat "$T/err")"
	else
		not_ok "$name" "status $rc (want 1), stderr:" "$(head -n 5 "$T/err")"
	fi
}

# erofs NAME CMD...: CMD fails with EROFS
erofs() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		not_ok "$name: EROFS" "it succeeded"
	elif grep -q "Read-only file system" <<<"$out"; then
		ok "$name: EROFS"
	else
		not_ok "$name: EROFS" "$out"
	fi
}

mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
mkdir -p "$MNT/study"
head -c 300000 /dev/urandom >"$MNT/study/ct.dcm"
echo "report v1" >"$MNT/study/report.txt"
setfattr -n user.tag -v one "$MNT/study/report.txt" 2>/dev/null
ln -s report.txt "$MNT/study/link"
SUM_CT=$(sha256sum <"$MNT/study/ct.dcm" | cut -d' ' -f1)
check "umount" mv_umount "$MNT"
is "$(anchor_flags)" 1 "after a clean unmount the anchor is marked clean"

# ---- (a) read-only
state0=$(tree_state "$STORE")
asum0=$(anchor_sum)
amtime0=$(stat -c %Y.%y "$ANCHOR")
if mv_mount "$STORE" "$MNT" "$KS" "$PF" --read-only 2>"$T/ro.err"; then
	ok "mount --read-only"
	opts=$(awk -v m="$MNT" '$2 == m { print $4 }' /proc/self/mounts)
	case ",$opts," in *,ro,*) ok "the mount is ro ($opts)" ;; *) not_ok "the mount is ro" "$opts" ;; esac
	is "$(sha256sum <"$MNT/study/ct.dcm" | cut -d' ' -f1)" "$SUM_CT" "it serves the files (ct.dcm)"
	is "$(cat "$MNT/study/report.txt")" "report v1" "report.txt"
	is "$(readlink "$MNT/study/link")" report.txt "the symlink"
	is "$(getfattr --only-values -n user.tag "$MNT/study/report.txt" 2>/dev/null)" one "the xattr"
	is "$(ls "$MNT/study" | tr '\n' ' ')" "ct.dcm link report.txt " "the directory listing"
	erofs "create a file" bash -c "echo x >'$MNT/new'"
	erofs "write into a file" bash -c "echo x >>'$MNT/study/report.txt'"
	erofs "truncate" truncate -s 0 "$MNT/study/report.txt"
	erofs "mkdir" mkdir "$MNT/dir"
	erofs "unlink" rm -f "$MNT/study/report.txt"
	erofs "rename" mv "$MNT/study/report.txt" "$MNT/study/r2"
	erofs "chmod" chmod 600 "$MNT/study/report.txt"
	erofs "touch" touch "$MNT/study/report.txt"
	erofs "setfattr" setfattr -n user.tag -v two "$MNT/study/report.txt"
	erofs "symlink" ln -s x "$MNT/l2"
	erofs "hard link" ln "$MNT/study/report.txt" "$MNT/h2"
	sleep 3	# a flusher round (checkpoint, anchor): none of it may write
	check "umount the read-only mount" mv_umount "$MNT"
else
	not_ok "mount --read-only" "$(cat "$T/ro.err")"
fi
is "$(tree_state "$STORE")" "$state0" "the store is byte-identical after the read-only mount"
is "$(anchor_sum)" "$asum0" "the anchor is unchanged"
is "$(stat -c %Y.%y "$ANCHOR")" "$amtime0" "and not rewritten (mtime)"
out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
is "$?" 0 "fsck of the current store is clean"
is "$(tree_state "$STORE")" "$state0" "fsck (no --repair) writes nothing to the store"
is "$(anchor_sum)" "$asum0" "nor to the anchor"
check_fails "--read-only with --accept-rollback is a usage error" \
	mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" --read-only --accept-rollback
mv_mount "$STORE" "$MNT" "$KS" "$PF" -o ro && ok "-o ro means --read-only" || not_ok "-o ro mounts"
erofs "-o ro: create" bash -c "echo x >'$MNT/new'"
mv_umount "$MNT"
is "$(tree_state "$STORE")$(anchor_sum)" "$state0$asum0" "-o ro wrote nothing either"

# ---- (b) a tampered anchor
cp "$ANCHOR" "$T/anchor.good"
printf '\x55' | dd of="$ANCHOR" bs=1 seek=40 conv=notrunc status=none
atampered=$(anchor_sum)
one_line "a tampered anchor refuses a read-write mount" \
	mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF"
grep -q "fails authentication" "$T/err" && ok "the line says the anchor fails authentication" ||
	not_ok "the line says the anchor fails authentication" "$(cat "$T/err")"
is_mounted "$MNT" && { not_ok "nothing is mounted"; mv_track "$MNT"; mv_umount "$MNT"; } || ok "nothing is mounted"
is "$(tree_state "$STORE")" "$state0" "the refused mount wrote nothing to the store"
is "$(anchor_sum)" "$atampered" "nor to the anchor"
one_line "fsck --repair is refused the same way" \
	mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" --repair
mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" >"$T/fsck.out" 2>"$T/fsck.err"
rc=$?
is "$rc" 0 "fsck (read-only) of it runs (no damage in the store: exit 0)"
grep -q "anchor .* fails authentication" "$T/fsck.out" && ok "and reports the anchor" ||
	not_ok "and reports the anchor" "$(cat "$T/fsck.out" "$T/fsck.err")"
if mv_mount "$STORE" "$MNT" "$KS" "$PF" --read-only 2>"$T/ro.err"; then
	ok "--read-only mounts it"
	grep -q "warning: .*fails authentication" "$T/ro.err" && ok "with a warning: $(cat "$T/ro.err")" ||
		not_ok "with a warning" "$(cat "$T/ro.err")"
	is "$(cat "$MNT/study/report.txt")" "report v1" "and serves the files"
	mv_umount "$MNT"
else
	not_ok "--read-only mounts it" "$(cat "$T/ro.err")"
fi
is "$(anchor_sum)" "$atampered" "the read-only mount left the tampered anchor as it was"
if mv_mount "$STORE" "$MNT" "$KS" "$PF" --accept-rollback 2>"$T/acc.err"; then
	ok "--accept-rollback mounts it ($(cat "$T/acc.err"))"
	mv_umount "$MNT"
else
	not_ok "--accept-rollback mounts it" "$(cat "$T/acc.err")"
fi
check "after which a plain mount works" mv_mount "$STORE" "$MNT" "$KS" "$PF"
mv_umount "$MNT"
# accepted: one line per acceptance in the access trail
n_accepted() {
	mv_run audit "$KS" --keystore "$KS" --passphrase-file "$PF" --op accept-rollback 2>&1 |
		grep -c "op=accept-rollback"
}
is "$(n_accepted)" 1 "the acceptance is in the access trail"

# ---- (c) the anchor moves after writes
c0=$(anchor_counter)
m0=$(stat -c %Y.%y "$ANCHOR")
sleep 1
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount for writes"
for i in 1 2 3; do echo "line $i" >>"$MNT/study/log.txt"; done
head -c 200000 /dev/urandom >"$MNT/study/mr.dcm"
sync -f "$MNT/study/mr.dcm" 2>/dev/null || sync
sleep 9	# a checkpoint (2 s) and an anchor move (at most every 5 s)
c1=$(anchor_counter)
is "$(anchor_flags)" 0 "while mounted the anchor is not marked clean"
counted "the anchor moved while mounted, after the writes ($c0 -> $c1)" test "$c1" -gt "$c0"
check "umount" mv_umount "$MNT"
c2=$(anchor_counter)
[ "$(stat -c %Y.%y "$ANCHOR")" != "$m0" ] && ok "the anchor was rewritten (mtime)" ||
	not_ok "the anchor was rewritten (mtime)"
is "$(anchor_flags)" 1 "clean again after unmount"
counted "its counter grew with the writes ($c0 -> $c2)" test "$c2" -gt "$c0"

# ---- (d) a whole store rolled back
OLD=$T/old-store
check "snapshot the store (unmounted)" mv_run snapshot "$STORE" "$OLD"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount for more writes"
echo "report v2" >"$MNT/study/report.txt"
chmod 600 "$MNT/study/report.txt"
rm -f "$MNT/study/mr.dcm"
check "umount" mv_umount "$MNT"
cnew=$(anchor_counter)
NEW=$T/new-store
mv "$STORE" "$NEW" && cp -a "$OLD" "$STORE" && ok "put the older copy in the store's place" ||
	bail "put the older copy in the store's place"
# the store's data: data.mdb, the card, the packs (a copy made without
# LMDB's lock.mdb gets one at the first open, even a read-only one: that
# is LMDB's reader table, not the store's state)
store_sums() {
	(cd "$1" && find index/data.mdb medvault.conf packs -type f -print0 | sort -z | xargs -0 sha256sum) |
		sha256sum | cut -d' ' -f1
}
state1=$(store_sums "$STORE")
asum1=$(anchor_sum)
mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" >"$T/out" 2>"$T/err"
rc=$?
is_mounted "$MNT" && { mv_track "$MNT"; mv_umount "$MNT"; }
counted "the rolled-back store is refused read-write (status 1, one line)" \
	bash -c "[ $rc -eq 1 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q 'commits behind its anchor (last moved .*); mount it with --read-only to inspect, or --accept-rollback to make it current' '$T/err'"
echo "# refusal: $(cat "$T/err")"
counted "the refusal wrote nothing (store, anchor)" \
	test "$(store_sums "$STORE")$(anchor_sum)" = "$state1$asum1"
# (with a counter that never grows the mount above was not refused)
state1=$(store_sums "$STORE")
asum1=$(anchor_sum)
if mv_mount "$STORE" "$MNT" "$KS" "$PF" --read-only 2>"$T/ro.err"; then
	ok "the rolled-back store mounts --read-only"
	counted "with a warning saying how far behind" grep -q "warning: .*commits behind its anchor" "$T/ro.err"
	echo "# warning: $(cat "$T/ro.err")"
	is "$(cat "$MNT/study/report.txt")" "report v1" "it serves the old state (report v1)"
	[ -f "$MNT/study/mr.dcm" ] && ok "mr.dcm is there again" || not_ok "mr.dcm is there again"
	mv_umount "$MNT"
else
	not_ok "the rolled-back store mounts --read-only" "$(cat "$T/ro.err")"
fi
is "$(store_sums "$STORE")$(anchor_sum)" "$state1$asum1" "the read-only mount wrote nothing (data.mdb, packs, anchor)"
mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" >"$T/fsck.out" 2>"$T/fsck.err"
rc=$?
counted "fsck says how many commits behind (exit 0: a backup is not damaged)" \
	bash -c "[ $rc -eq 0 ] && grep -q '^fsck: [0-9]* commits behind its anchor' '$T/fsck.out'"
is "$(store_sums "$STORE")$(anchor_sum)" "$state1$asum1" "fsck wrote nothing (data.mdb, packs, anchor)"
if mv_mount "$STORE" "$MNT" "$KS" "$PF" --accept-rollback 2>"$T/acc.err"; then
	ok "--accept-rollback mounts the older store"
	counted "and says so" grep -q "accepted (--accept-rollback)" "$T/acc.err"
	is "$(cat "$MNT/study/report.txt")" "report v1" "it serves the older state"
	mv_umount "$MNT"
else
	not_ok "--accept-rollback mounts the older store" "$(cat "$T/acc.err")"
fi
counted "the anchor moved back (counter $cnew -> $(anchor_counter))" test "$(anchor_counter)" -lt "$cnew"
counted "the acceptance is in the access trail" test "$(n_accepted)" -eq 2
check "a plain mount works afterwards" mv_mount "$STORE" "$MNT" "$KS" "$PF"
mv_umount "$MNT"
[ -z "$(our_mounts)" ] && ok "nothing left mounted" || not_ok "nothing left mounted" "$(our_mounts)"
summary
