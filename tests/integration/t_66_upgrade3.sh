#!/usr/bin/env bash
# t_66_upgrade3: a format-2 store, written by the last format-2 build (built
# here from git history, rev $MV_OLD_REV), upgrades to format 3 (chunk keys
# by generation, docs/FORMAT.md) at its first read-write open, crash-safely:
#
#   - a read-only mount and a check-only fsck by this build read it as
#     format 2 and leave it format 2;
#   - copies are mounted and the daemon killed -9 during the upgrade; a copy
#     the old build can still open (its card says 2) still reads there, and
#     each then mounts here with the same files, format 3;
#   - the state a crash between the two steps leaves (keygen_epoch written,
#     card still format 2), written to by the old build, upgrades again and
#     every file reads, the old build's new one included;
#   - the old build refuses the upgraded store with one line; a file written
#     before the upgrade, one written after, and one rewritten in part (old
#     and new keys in one file) read back after a remount; fsck is clean.
. "$(dirname "$0")/lib.sh"

need_mv
OLD_REV=${MV_OLD_REV3:-e3fec35}

if ! git -C "$MV_ROOT" cat-file -e "$OLD_REV^{commit}" 2>/dev/null; then
	echo "ok 1 # SKIP no git history with $OLD_REV (a format-2 build) here"
	echo "1..1"
	echo "# 1 passed, 0 failed"
	exit 0
fi

# ---- the old build
OLD=$T/old
mkdir -p "$OLD"
if git -C "$MV_ROOT" archive "$OLD_REV" | tar -x -C "$OLD" &&
   make -s -C "$OLD" -j2 BUILD="$OLD/build" "$OLD/build/medvault" >"$T/old-build.log" 2>&1; then
	ok "format-2 build $OLD_REV made"
else
	bail "cannot build $OLD_REV: $(tail -n 5 "$T/old-build.log")"
fi
OLDMV=$OLD/build/medvault

fmt() { sed -n 's/^format=//p' "$1/medvault.conf"; }

# ---- a format-2 store, written over two mounts (two epochs)
mv_vault_new v2
MV="$OLDMV" mv_init "$STORE" "$KS" "$PF" >/dev/null || bail "old init"
is "$(fmt "$STORE")" 2 "the old build makes format 2"
MV="$OLDMV" mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "old mount"
for d in $(seq 1 10); do
	mkdir -p "$MNT/study$d"
	for f in $(seq 1 50); do printf 'study %d image %d\n' "$d" "$f" >"$MNT/study$d/img$f.dcm"; done
done
head -c 1000000 /dev/urandom >"$MNT/big"
setfattr -n user.patient -v P123 "$MNT/big"
MV="$OLDMV" mv_umount "$MNT" || bail "old umount"
MV="$OLDMV" mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "old mount 2"
head -c 200000 /dev/urandom >"$MNT/second"
"$TOOLS/tree_digest" "$MNT" >"$T/before" || not_ok "digest before"
cp "$MNT/big" "$T/big" && cp "$MNT/second" "$T/second"
MV="$OLDMV" mv_umount "$MNT" || bail "old umount 2"
cp -a "$STORE" "$T/format2"
cp -a "$KS" "$T/ks-format2"

# ---- read-only by this build: read as format 2, left format 2
mv_mount "$STORE" "$MNT" "$KS" "$PF" --read-only || bail "read-only mount"
"$TOOLS/tree_digest" "$MNT" >"$T/ro" 2>&1
cmp -s "$T/before" "$T/ro" && ok "a read-only mount reads the format-2 store" ||
	not_ok "a read-only mount reads the format-2 store" "$(diff "$T/before" "$T/ro" | head -n 5)"
mv_umount "$MNT"
out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
rc=$?
is "$rc" 0 "fsck (check only) of the format-2 store is clean"
is "$(fmt "$STORE")" 2 "neither upgraded it: still format 2"

# ---- crash drill: kill -9 during the upgrade
rounds=0 good=0 oldread=0 oldtried=0
for r in 1 2 3 4; do
	cp -a "$T/format2" "$T/r$r"
	rm -rf "$T/ks$r" && cp -a "$T/ks-format2" "$T/ks$r"
	mkdir -p "$T/m$r"
	"$MV" mount "$T/r$r" "$T/m$r" --keystore "$T/ks$r" --passphrase-file "$PF" -f 2>"$T/r$r.log" &
	pid=$!
	sleep "0.$(( (RANDOM % 40) + 1 ))"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	is_mounted "$T/m$r" && { fusermount3 -uz "$T/m$r" 2>/dev/null || umount -l "$T/m$r"; }
	rounds=$((rounds + 1))
	# still format 2: the old build reads it as it was
	if [ "$(fmt "$T/r$r")" = 2 ]; then
		oldtried=$((oldtried + 1))
		if MV="$OLDMV" mv_mount "$T/r$r" "$T/m$r" "$T/ks$r" "$PF" 2>>"$T/r$r.log"; then
			"$TOOLS/tree_digest" "$T/m$r" >"$T/old$r" 2>&1
			cmp -s "$T/before" "$T/old$r" && oldread=$((oldread + 1))
			MV="$OLDMV" mv_umount "$T/m$r"
		fi
	fi
	if mv_mount "$T/r$r" "$T/m$r" "$T/ks$r" "$PF" 2>>"$T/r$r.log"; then
		"$TOOLS/tree_digest" "$T/m$r" >"$T/after$r" 2>&1
		if cmp -s "$T/before" "$T/after$r" && [ "$(fmt "$T/r$r")" = 3 ]; then
			good=$((good + 1))
		else
			not_ok "round $r: after the kill the store mounts with the same files, format 3" \
				"$(diff "$T/before" "$T/after$r" | head -n 5)" "format=$(fmt "$T/r$r")"
		fi
		mv_umount "$T/m$r"
	else
		not_ok "round $r: the store mounts after a kill during its upgrade" "$(tail -n 3 "$T/r$r.log")"
	fi
	rm -rf "$T/r$r" "$T/ks$r"
done
is "$good" "$rounds" "killed during the upgrade $rounds times: each copy then mounted, same files, format 3"
is "$oldread" "$oldtried" "copies left at format 2 by a kill ($oldtried) still read in the old build"

# ---- a crash between the steps: keygen_epoch written, card still 2.
# Made exactly: an upgrade with no write, then the format-2 card put back
# (same volume, same key: it authenticates).  The old build then writes,
# with its own epochs, under the file key; the next upgrade must not take
# those chunks for derived ones.
cp -a "$T/format2" "$T/mid" && cp -a "$T/ks-format2" "$T/ks-mid" && mkdir -p "$T/mm"
mv_mount "$T/mid" "$T/mm" "$T/ks-mid" "$PF" || bail "mount for the mid-upgrade state"
mv_umount "$T/mm"
is "$(fmt "$T/mid")" 3 "mid-upgrade drill: upgraded"
cp "$T/format2/medvault.conf" "$T/mid/medvault.conf"
if MV="$OLDMV" mv_mount "$T/mid" "$T/mm" "$T/ks-mid" "$PF" 2>"$T/mid.log"; then
	ok "the old build mounts a store whose card still says 2 after keygen_epoch was written"
	head -c 150000 /dev/urandom >"$T/mid-new" && cp "$T/mid-new" "$T/mm/by-old-build" &&
		printf 'changed\n' >"$T/mm/study1/img1.dcm"
	MV="$OLDMV" mv_umount "$T/mm"
else
	not_ok "the old build mounts the mid-upgrade store" "$(tail -n 3 "$T/mid.log")"
fi
if mv_mount "$T/mid" "$T/mm" "$T/ks-mid" "$PF" -f 2>"$T/mid2.log"; then
	if cmp -s "$T/mid-new" "$T/mm/by-old-build" && [ "$(cat "$T/mm/study1/img1.dcm")" = changed ] &&
	   cmp -s "$T/big" "$T/mm/big"; then
		ok "upgraded again: what the old build wrote meanwhile and what was there before read"
	else
		not_ok "upgraded again: every file reads" "$(tail -n 3 "$T/mid2.log")"
	fi
	mv_umount "$T/mm"
else
	not_ok "the mid-upgrade store mounts here" "$(tail -n 3 "$T/mid2.log")"
fi
is "$(fmt "$T/mid")" 3 "and it says format 3 again"
out=$(mv_run fsck "$T/mid" --keystore "$T/ks-mid" --passphrase-file "$PF" 2>&1)
is "$?" 0 "fsck of it is clean"
rm -rf "$T/mid" "$T/ks-mid"

# ---- the upgrade itself
mv_mount "$STORE" "$MNT" "$KS" "$PF" -f 2>"$T/upgrade.log"
if is_mounted "$MNT"; then ok "this build mounts the format-2 store read-write"; else bail "mount: $(tail -n 3 "$T/upgrade.log")"; fi
grep -q "upgraded from format 2 to 3" "$T/upgrade.log" && ok "the daemon logs the upgrade" ||
	not_ok "the daemon logs the upgrade" "$(tail -n 3 "$T/upgrade.log")"
"$TOOLS/tree_digest" "$MNT" >"$T/after" 2>&1
cmp -s "$T/before" "$T/after" && ok "every file, attribute and xattr is as it was" ||
	not_ok "every file is as it was" "$(diff "$T/before" "$T/after" | head -n 5)"
head -c 300000 /dev/urandom >"$T/new" && cp "$T/new" "$MNT/new" || not_ok "write after the upgrade"
# big: 16 chunks of format 2; rewrite chunks 3 and 4 under this mount's key
head -c 100000 /dev/urandom >"$T/patch"
dd if="$T/patch" of="$MNT/big" bs=1 seek=200000 conv=notrunc status=none &&
	dd if="$T/patch" of="$T/big" bs=1 seek=200000 conv=notrunc status=none
mv_umount "$MNT"
is "$(fmt "$STORE")" 3 "medvault.conf says format=3"

out=$(MV="$OLDMV" mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" 2>&1)
rc=$?
if [ $rc -ne 0 ] && ! is_mounted "$MNT" && grep -qi newer <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ]; then
	ok "the old build refuses the upgraded store in one line: $out"
else
	is_mounted "$MNT" && mv_track "$MNT"
	not_ok "the old build refuses the upgraded store in one line" "exit $rc: $out"
fi
out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
is "$?" 0 "fsck of the upgraded store is clean"

mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount after the upgrade"
cmp -s "$T/new" "$MNT/new" && ok "a file written after the upgrade reads back" ||
	not_ok "a file written after the upgrade reads back"
cmp -s "$T/big" "$MNT/big" && ok "a file rewritten in part (file-key and derived chunks) reads back" ||
	not_ok "a file rewritten in part reads back"
[ "$(cat "$MNT/study7/img9.dcm")" = "study 7 image 9" ] && cmp -s "$MNT/second" "$T/second" &&
	ok "files written before the upgrade (two format-2 epochs) read" ||
	not_ok "files written before the upgrade read"
printf 'again\n' >>"$MNT/new" && printf 'again\n' >>"$T/new"
mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount 3"
cmp -s "$T/new" "$MNT/new" && cmp -s "$T/big" "$MNT/big" &&
	ok "a later mount (a new generation) appends and reads all of it" ||
	not_ok "a later mount appends and reads"
mv_umount "$MNT"
out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
is "$?" 0 "fsck after writes over three generations is clean"

summary
