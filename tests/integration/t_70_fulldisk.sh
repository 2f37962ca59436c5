#!/usr/bin/env bash
# t_70_fulldisk: the store's filesystem fills up.
#
# The store lives on a 64 MiB ext4 image (loop mount; tmpfs size=64m when
# loop devices are unavailable), the keystore elsewhere.  A non-store
# filler file takes 8 MiB first.  Writing 4 MiB files with fsync must end
# with ENOSPC (from write, fsync or close; within a time limit, no hang, no
# daemon crash); files written before stay exact; the mount keeps serving;
# once the filler is removed (compaction does not exist yet, so deleting
# vault files frees no pack space) deletes and new writes work; after a
# remount everything that was written successfully is intact and fsck is
# clean.
. "$(dirname "$0")/lib.sh"

need_mv

# the small filesystem lives outside $T so mv_cleanup can remove $T after
# we unmount it; our own trap runs mv_cleanup (FUSE first) and then that
D=$(mktemp -d "${TMPDIR:-/tmp}/mvdisk.XXXXXX") || bail "mktemp"
disk_cleanup() {
	mv_cleanup
	if awk -v m="$D/fs" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; then
		umount "$D/fs" 2>/dev/null || umount -l "$D/fs"
	fi
	[ -n "${LOOPDEV:-}" ] && losetup -d "$LOOPDEV" 2>/dev/null
	rm -rf "$D"
}
trap disk_cleanup EXIT

mkdir -p "$D/fs"
KIND=
truncate -s 64M "$D/img"
if mkfs.ext4 -q -F -m 0 "$D/img" 2>/dev/null && LOOPDEV=$(losetup -f --show "$D/img" 2>/dev/null) &&
	mount "$LOOPDEV" "$D/fs" 2>/dev/null; then
	KIND="ext4 on $LOOPDEV"
elif mount -t tmpfs -o size=64m mvfull "$D/fs"; then
	KIND="tmpfs"
	[ -n "${LOOPDEV:-}" ] && losetup -d "$LOOPDEV" && LOOPDEV=
else
	bail "a 64 MiB filesystem for the store (loop device or tmpfs)"
fi
ok "a 64 MiB filesystem for the store ($KIND)"

head -c $((8 << 20)) /dev/zero >"$D/fs/filler" && sync
mv_vault_new
STORE=$D/fs/store	# keystore, passphrase and mountpoint stay in $T
check "init a vault on the small filesystem" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"
daemon=$(daemon_pids "$MNT" | head -n 1)

head -c $((4 << 20)) /dev/urandom >"$T/rand4M"
early=()
for i in 1 2 3 4 5; do
	head -c $((1 << 20)) /dev/urandom >"$T/early$i"
	cp "$T/early$i" "$MNT/early$i" && early+=("early$i")
done
sync -f "$MNT/early1" 2>/dev/null
is "${#early[@]}" 5 "five 1 MiB files written before the disk fills"

# fill: dd with fsync; stop at the first failure
filled=() enospc=0 hung=0 other=
for ((i = 1; i <= 40; i++)); do
	timeout -k 5 60 dd if="$T/rand4M" of="$MNT/fill$i" bs=1M conv=fsync status=none 2>"$T/dd.err"
	rc=$?
	if [ $rc -eq 0 ]; then
		filled+=("fill$i")
		continue
	fi
	if [ $rc -ge 124 ]; then hung=1
	elif grep -q 'No space left on device' "$T/dd.err"; then enospc=1
	else other=$(cat "$T/dd.err"); fi
	failed_file=fill$i
	break
done
echo "# $((${#filled[@]} * 4)) MiB written before the failure; df of the store: $(df -k --output=avail "$D/fs" | tail -n 1) KiB free"
if [ $enospc -eq 1 ]; then ok "writing fails with ENOSPC once the store is full ($(sed 's/^dd: //' "$T/dd.err" | head -n 1))"
elif [ $hung -eq 1 ]; then not_ok "writing fails with ENOSPC once the store is full" "dd hung for 60 s on $failed_file"
elif [ -n "$other" ]; then not_ok "writing fails with ENOSPC once the store is full" "other error: $other"
else not_ok "writing fails with ENOSPC once the store is full" "40 x 4 MiB fitted on a 64 MiB filesystem?"; fi

# a second attempt fails the same way (no hang on a store that stays full)
timeout -k 5 60 dd if="$T/rand4M" of="$MNT/again" bs=1M conv=fsync status=none 2>"$T/dd2.err"
rc=$?
if [ $rc -ne 0 ] && [ $rc -lt 124 ] && grep -q 'No space left on device' "$T/dd2.err"; then ok "a second write on the full store fails with ENOSPC too"
else not_ok "a second write on the full store fails with ENOSPC too" "status $rc: $(cat "$T/dd2.err")"; fi

if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null && is_mounted "$MNT"; then ok "the daemon survives the full disk"
else bail "the daemon survives the full disk"; fi

# the index's map must grow on the full disk: the commit that needs it
# fails with ENOSPC and the daemon lives (a store into an unwritten part of
# the map would be SIGBUS)
out=$(timeout -k 5 120 python3 - "$MNT/xattrs" <<'PY' 2>&1
import errno, os, sys
open(sys.argv[1], "w").close()
val = os.urandom(60000)
for i in range(3000):
    try:
        os.setxattr(sys.argv[1], "user.grow%d" % i, val)
    except OSError as e:
        print("%s after %d values" % (errno.errorcode.get(e.errno, e.errno), i))
        sys.exit(0)
print("no error after %d values" % 3000)
PY
)
case $out in
ENOSPC*) ok "growing the index on the full disk fails with ENOSPC ($out)" ;;
*) not_ok "growing the index on the full disk fails with ENOSPC" "$out" ;;
esac
if kill -0 "$daemon" 2>/dev/null && is_mounted "$MNT"; then ok "the daemon survives the index's growth on the full disk"
else bail "the daemon survives the index's growth on the full disk"; fi
check "the file with the xattrs can be removed" rm -f "$MNT/xattrs"

verify_all() {	# verify early and filled files
	local f bad=0
	for f in "${early[@]}"; do cmp -s "$MNT/$f" "$T/$f" || { echo "$f differs"; bad=1; }; done
	for f in "${filled[@]}"; do cmp -s "$MNT/$f" "$T/rand4M" || { echo "$f differs"; bad=1; }; done
	return $bad
}
check "files written before the disk filled read back exactly" verify_all
check "the mount keeps serving (ls, stat, small read)" bash -c "ls -l '$MNT' >/dev/null && stat '$MNT/early1' >/dev/null && head -c 10 '$MNT/early2' >/dev/null"

# free space outside the vault, then deletes and writes work again
rm -f "$D/fs/filler"
free_after_free=$(df -k --output=avail "$D/fs" | tail -n 1)
check "delete the file that hit ENOSPC" rm -f "$MNT/${failed_file:-none}" "$MNT/again"
check "delete one earlier file" rm "$MNT/early5"
unset 'early[4]'
head -c $((2 << 20)) /dev/urandom >"$T/after"
free_after_rm=$(df -k --output=avail "$D/fs" | tail -n 1)
if timeout -k 5 60 dd if="$T/after" of="$MNT/after" bs=1M conv=fsync status=none 2>"$T/dd3.err"; then
	ok "write a 2 MiB file with fsync after 8 MiB were freed"
else
	not_ok "write a 2 MiB file with fsync after 8 MiB were freed" "$(cat "$T/dd3.err")" \
		"free KiB: $free_after_free after removing the filler, $free_after_rm after deleting vault files, $(df -k --output=avail "$D/fs" | tail -n 1) now" \
		"packs (KiB): $(du -sk "$STORE"/packs/* | awk '{ printf "%s ", $1 }')"
fi
check "it reads back exactly" cmp "$MNT/after" "$T/after"
check "earlier files are still exact" verify_all

check "umount" mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount"
check "after remount, files written before the disk filled are intact" verify_all
check "after remount, the file written after freeing space is intact" cmp "$MNT/after" "$T/after"
check "after remount, the deleted files stay deleted" bash -c "[ ! -e '$MNT/early5' ] && [ ! -e '$MNT/${failed_file:-none}' ]"
check "umount after remount" mv_umount "$MNT"
out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "fsck finds the store clean"
else not_ok "fsck finds the store clean" "exit $rc" "$(tail -n 15 <<<"$out")"; fi
summary
