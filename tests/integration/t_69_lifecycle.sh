#!/usr/bin/env bash
# t_69_lifecycle: a store is free again as soon as its mount is gone.
# `mount` (and fsck) right after umount(8) or fusermount3 -u wait for the
# old daemon's write-back instead of failing, 50 times in a row; a second
# mount of a live mount is still refused at once.  `medvault umount` of a
# busy mount says busy and leaves it mounted.  A check-only fsck leaves
# every file of the store and the keystore byte for byte as it was, a
# damaged store's included.
. "$(dirname "$0")/lib.sh"

need_mv
LOOPS=${MV_LIFECYCLE_LOOPS:-50}

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"

# ---- umount; mount, LOOPS times, each with a write the daemon must flush
fails=0 waited=0
for ((i = 1; i <= LOOPS; i++)); do
	if ! out=$(mv_mount "$STORE" "$MNT" "$KS" "$PF" 2>&1); then
		fails=$((fails + 1))
		echo "# round $i: mount failed: $out"
		continue
	fi
	grep -q "waiting for" <<<"$out" && waited=$((waited + 1))
	head -c 3000000 /dev/urandom >"$MNT/f$((i % 5))"
	if [ $((i % 2)) -eq 0 ]; then umount "$MNT"; else fusermount3 -u "$MNT"; fi ||
		{ fails=$((fails + 1)); echo "# round $i: umount failed"; }
done
is "$fails" 0 "$LOOPS rounds of umount(8) or fusermount3 -u, then mount at once: no failure ($waited waited)"
mv_umount "$MNT" >/dev/null 2>&1

# fsck right after an unmount waits as well
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"
head -c 20000000 /dev/urandom >"$MNT/big"
umount "$MNT"
check "fsck right after umount(8) waits for the daemon, then runs" \
	mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"

# ---- a live mount is refused at once, not waited for
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"
mkdir -p "$T/mnt2"
start=$SECONDS
out=$(mv_run mount "$STORE" "$T/mnt2" --keystore "$KS" --passphrase-file "$PF" 2>&1)
rc=$?
is_mounted "$T/mnt2" && { mv_track "$T/mnt2"; mv_umount "$T/mnt2"; }
if [ $rc -ne 0 ] && [ $((SECONDS - start)) -lt 10 ] && grep -q "in use" <<<"$out" && ! grep -q waiting <<<"$out"
then ok "a second mount of a live mount is refused at once: $out"
else not_ok "a second mount of a live mount is refused at once" "exit $rc after $((SECONDS - start)) s" "$out"; fi

# ---- umount of a busy mount
( cd "$MNT" && exec sleep 30 ) &
holder=$!
sleep 0.5
out=$(mv_run umount "$MNT" 2>&1)
rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q busy <<<"$out"; then
	ok "umount of a busy mount fails, saying busy: $out"
else
	not_ok "umount of a busy mount fails, saying busy" "exit $rc" "$out"
fi
is_mounted "$MNT" && ok "the busy mount is still mounted" || not_ok "the busy mount is still mounted"
check "and still serves" test -s "$MNT/big"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
check "umount once it is no longer busy" mv_run umount "$MNT"

# ---- a check-only fsck writes nothing
# every file of the store and keystore, lock.mdb and the trail included
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum; find . -printf '%p %y %m %s\n' | sort); }
fsck_leaves_all() {
	local what=$1 want=$2 s1 k1 out rc
	s1=$(sums "$STORE") k1=$(sums "$KS")
	out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
	rc=$?
	if [ "$want" = pass ] && [ $rc -ne 0 ]; then not_ok "fsck of $what passes" "exit $rc" "$out"; fi
	if [ "$want" = fail ] && [ $rc -eq 0 ]; then not_ok "fsck of $what reports it" "exit 0" "$out"; fi
	is "$(sums "$STORE")" "$s1" "fsck (check only) of $what: every store file byte-identical (exit $rc)"
	is "$(sums "$KS")" "$k1" "fsck (check only) of $what: every keystore file byte-identical"
}
fsck_leaves_all "a healthy store" pass
# behind its anchor: a check reports it and moves nothing
cp -a "$STORE" "$T/old"
mv_mount "$STORE" "$MNT" "$KS" "$PF" && echo newer >"$MNT/newer" && mv_umount "$MNT"
rm -rf "$STORE" && cp -a "$T/old" "$STORE"
fsck_leaves_all "a store behind its anchor" any
rm -rf "$STORE/index/lock.mdb"
fsck_leaves_all "a store without index/lock.mdb" any
[ -e "$STORE/index/lock.mdb" ] && not_ok "a check-only fsck made no lock.mdb" "$(ls -l "$STORE/index")"
# a few bytes flipped in every pack, just past its header
for pack in $(find "$STORE/packs" -name '*.pack'); do
	printf 'XXXX' | dd of="$pack" bs=1 seek=200 conv=notrunc 2>/dev/null
done
fsck_leaves_all "a store with damaged packs" fail
truncate -s 12288 "$STORE/index/data.mdb"
fsck_leaves_all "a store with a truncated data.mdb" fail
is "$(stat -c %s "$STORE/index/data.mdb")" 12288 "the truncated data.mdb did not grow"

summary
