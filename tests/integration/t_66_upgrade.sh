#!/usr/bin/env bash
# t_66_upgrade: a format-1 store, written by the last release of format 1
# (built here from git history, rev $MV_OLD_REV), upgrades to format 2 and
# on to 3 (t_66_upgrade3.sh) at its first mount by this build, crash-safely:
#
#   - copies of the store are mounted and the daemon killed -9 at random
#     moments of the upgrade; each copy then mounts and serves exactly the
#     files it held, and says format=3;
#   - the upgraded store is refused by the old build (a newer format), so
#     no old daemon can write records the integrity tree does not know;
#   - an inode record put back from the format-1 copy (a replay across the
#     upgrade) reads as EIO, fsck names it; untouched files still read.
. "$(dirname "$0")/lib.sh"

need_mv
OLD_REV=${MV_OLD_REV:-acf9577}
PY=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import lmdb' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || bail "python3 with the lmdb module (scripts/install-deps.sh installs python3-lmdb)"
surg() { "$PY" "$MV_LIB_DIR/mdb_surgery.py" "$@"; }

if ! git -C "$MV_ROOT" cat-file -e "$OLD_REV^{commit}" 2>/dev/null; then
	echo "ok 1 # SKIP no git history with $OLD_REV (a format-1 build) here"
	echo "1..1"
	echo "# 1 passed, 0 failed"
	exit 0
fi

# ---- the old build
OLD=$T/old
mkdir -p "$OLD"
if git -C "$MV_ROOT" archive "$OLD_REV" | tar -x -C "$OLD" &&
   make -s -C "$OLD" -j2 BUILD="$OLD/build" "$OLD/build/medvault" >"$T/old-build.log" 2>&1; then
	ok "format-1 build $OLD_REV made"
else
	bail "cannot build $OLD_REV: $(tail -n 5 "$T/old-build.log")"
fi
OLDMV=$OLD/build/medvault

# ---- a format-1 store with a few thousand files, xattrs, links, a symlink
mv_vault_new v1
MV="$OLDMV" mv_init "$STORE" "$KS" "$PF" >/dev/null || bail "old init"
grep -qx 'format=1' "$STORE/medvault.conf" && ok "the old build makes format 1" ||
	not_ok "the old build makes format 1" "$(head -n 3 "$STORE/medvault.conf")"
MV="$OLDMV" mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "old mount"
for d in $(seq 1 30); do
	mkdir -p "$MNT/study$d"
	for f in $(seq 1 100); do printf 'study %d image %d\n' "$d" "$f" >"$MNT/study$d/img$f.dcm"; done
done
head -c 300000 /dev/urandom >"$MNT/big"
setfattr -n user.patient -v P123 "$MNT/big"
ln "$MNT/big" "$MNT/study1/big-link"
ln -s study2/img1.dcm "$MNT/shortcut"
chmod 600 "$MNT/study3/img7.dcm"
"$TOOLS/tree_digest" "$MNT" >"$T/before" || not_ok "digest before"
VICTIM_INO=$(stat -c %i "$MNT/study3/img7.dcm")
MV="$OLDMV" mv_umount "$MNT" || bail "old umount"
cp -a "$STORE" "$T/format1"
cp -a "$KS" "$T/ks-format1"	# no anchor yet: each drill below gets its own copy

# ---- crash drill: kill -9 during the upgrade, then mount again
rounds=0 good=0
for r in 1 2 3 4 5; do
	cp -a "$T/format1" "$T/r$r"
	rm -rf "$T/ks$r" && cp -a "$T/ks-format1" "$T/ks$r"	# copies share the anchor
	mkdir -p "$T/m$r"
	"$MV" mount "$T/r$r" "$T/m$r" --keystore "$T/ks$r" --passphrase-file "$PF" -f 2>"$T/r$r.log" &
	pid=$!
	sleep "0.$(( (RANDOM % 40) + 1 ))"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	is_mounted "$T/m$r" && { fusermount3 -uz "$T/m$r" 2>/dev/null || umount -l "$T/m$r"; }
	rounds=$((rounds + 1))
	if mv_mount "$T/r$r" "$T/m$r" "$T/ks$r" "$PF" 2>>"$T/r$r.log"; then
		"$TOOLS/tree_digest" "$T/m$r" >"$T/after$r" 2>&1
		if cmp -s "$T/before" "$T/after$r" && grep -qx 'format=3' "$T/r$r/medvault.conf"; then
			good=$((good + 1))
		else
			not_ok "round $r: after the kill the store mounts with the same files, format 3" \
				"$(diff "$T/before" "$T/after$r" | head -n 5)" "$(grep format= "$T/r$r/medvault.conf")"
		fi
		mv_umount "$T/m$r"
	else
		not_ok "round $r: the store mounts after a kill during its upgrade" "$(tail -n 3 "$T/r$r.log")"
	fi
	rm -rf "$T/r$r" "$T/ks$r"
done
is "$good" "$rounds" "killed during the upgrade $rounds times: each copy then mounted, same files, format 3"

# ---- the upgrade itself
mv_mount "$STORE" "$MNT" "$KS" "$PF" -f 2>"$T/upgrade.log"
if is_mounted "$MNT"; then ok "this build mounts the format-1 store"; else bail "mount: $(tail -n 3 "$T/upgrade.log")"; fi
grep -q "upgraded from format 1 to 2" "$T/upgrade.log" && grep -q "upgraded from format 2 to 3" "$T/upgrade.log" &&
	ok "the daemon logs the upgrades, 1 to 2 to 3 at one open" ||
	not_ok "the daemon logs the upgrades" "$(tail -n 3 "$T/upgrade.log")"
"$TOOLS/tree_digest" "$MNT" >"$T/after" 2>&1
if cmp -s "$T/before" "$T/after"; then ok "every file, attribute, xattr and link is as it was"
else not_ok "every file is as it was" "$(diff "$T/before" "$T/after" | head -n 5)"; fi
echo "after upgrade" >"$MNT/study1/new.dcm" && chmod 640 "$MNT/study3/img7.dcm" &&
	ok "the upgraded store takes writes" || not_ok "writes after the upgrade"
mv_umount "$MNT"
grep -qx 'format=3' "$STORE/medvault.conf" && ok "medvault.conf says format=3" ||
	not_ok "medvault.conf says format=3" "$(grep format= "$STORE/medvault.conf")"
out=$(MV="$OLDMV" mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" 2>&1)
rc=$?
if [ $rc -ne 0 ] && ! is_mounted "$MNT" && grep -qi newer <<<"$out"; then
	ok "the old build refuses the upgraded store: $out"
else
	is_mounted "$MNT" && mv_track "$MNT"
	not_ok "the old build refuses the upgraded store" "exit $rc: $out"
fi
out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
rc=$?
is "$rc" 0 "fsck of the upgraded store is clean"

# ---- a record from before the upgrade, put back
if surg put "$STORE/index" inode "$(printf '%016x' "$VICTIM_INO")" "$T/format1/index" >/dev/null; then
	ok "inode $VICTIM_INO's format-1 record (mode 600) put back over today's (640)"
else
	not_ok "surgery" "put inode $VICTIM_INO"
fi
out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "study3/img7.dcm" <<<"$out"; then ok "fsck names the replayed file (exit $rc)"
else not_ok "fsck names the replayed file" "exit $rc" "$(tail -n 3 <<<"$out")"; fi
mv_mount "$STORE" "$MNT" "$KS" "$PF" -f 2>"$T/replay.log" || bail "mount after the replay"
if cat "$MNT/study3/img7.dcm" >/dev/null 2>"$T/cat.err"; then
	not_ok "the replayed file reads as EIO" "it read"
else
	grep -q "Input/output error" "$T/cat.err" && ok "the replayed file reads as EIO" ||
		not_ok "the replayed file reads as EIO" "$(cat "$T/cat.err")"
fi
cmp -s <(cat "$MNT/study3/img8.dcm") <(printf 'study %d image %d\n' 3 8) &&
	ok "its neighbour still reads" || not_ok "its neighbour still reads"
grep -q "inode $VICTIM_INO" "$T/replay.log" && ok "the daemon's log names inode $VICTIM_INO" ||
	not_ok "the daemon's log names inode $VICTIM_INO" "$(tail -n 3 "$T/replay.log")"
mv_umount "$MNT"

summary
