#!/usr/bin/env bash
# t_10_posix: the POSIX battery inside a mounted vault, then persistence:
# a manifest of the whole tree (names, types, modes, owners, sizes, times,
# links, xattrs, content hashes) taken before unmount must be identical
# after a remount, and again after changes made in the second session.
. "$(dirname "$0")/lib.sh"

need_mv
need_tool posix_check
need_tool tree_digest

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
ok "mount the vault"

daemon=$(daemon_pids "$MNT" | head -n 1)
if [ -n "$daemon" ]; then ok "found the daemon serving $MNT (pid $daemon)"; else not_ok "found the daemon serving $MNT"; fi
# the daemon lifts the kernel's FUSE defaults (128 KiB readahead, 1% of the
# dirty threshold): both matter for throughput, see fs/daemon/daemon.c tune_bdi
bdi=/sys/class/bdi/$(mountpoint -d "$MNT")
is "$(cat "$bdi/read_ahead_kb" 2>&1)" 1024 "the mount's readahead is 1 MiB"
is "$(cat "$bdi/max_ratio" 2>&1)" 10 "the mount may hold 10% of the dirty page cache"
fds_before=$( [ -n "$daemon" ] && ls "/proc/$daemon/fd" 2>/dev/null | wc -l)

mkdir -p "$MNT/pc"
tap_include posix_check "$TOOLS/posix_check" --keep "$MNT/pc"

# a tree with one of everything for the persistence manifest
P=$MNT/persist
build_tree() {
	set -e
	mkdir -p "$P/dir/sub" "$P/empty" "$P/private"
	chmod 0700 "$P/private"
	chmod 1777 "$P/dir/sub"
	: >"$P/size0"
	printf x >"$P/size1"
	head -c 4095 /dev/urandom >"$P/size4095"
	head -c 4096 /dev/urandom >"$P/size4096"
	head -c $((1024 * 1024 + 1)) /dev/urandom >"$P/size1M+1"
	head -c $((5 * 1024 * 1024 + 333)) /dev/urandom >"$P/dir/random5M"
	truncate -s 100M "$P/sparse100M"
	printf tail | dd of="$P/sparse100M" bs=1 seek=$((100 * 1024 * 1024 - 4)) conv=notrunc status=none
	printf 'hole in the middle' | dd of="$P/sparse100M" bs=1 seek=$((37 * 1024 * 1024 + 5)) conv=notrunc status=none
	ln "$P/size4096" "$P/dir/hardlink"
	ln "$P/size4096" "$P/dir/sub/hardlink2"
	ln -s size1 "$P/symlink"
	ln -s /nowhere/at/all "$P/dir/dangling"
	mkfifo "$P/fifo"
	mknod "$P/chardev" c 1 7
	setfattr -n user.study -v "CT thorax 2024" "$P/size1"
	setfattr -n user.empty "$P/size1"
	setfattr -n user.dirattr -v 0x00ff00ff "$P/dir"
	chown 1234:5678 "$P/size4095"
	chmod 6755 "$P/size4095"
	chmod 0400 "$P/size0"
	touch -h -d '2001-02-03 04:05:06.123456789' "$P/symlink"
	touch -d '1999-12-31 23:59:59.999999999' "$P/size1M+1"
	printf 'é' >"$P/$(printf 'name\nwith\tcontrol\001bytes')"
}
check "build a tree with every kind of object" build_tree

digest() { "$TOOLS/tree_digest" "$MNT" >"$1"; }
check "manifest of the mounted tree" digest "$T/m1"
check "the manifest is not empty (>1000 entries)" test "$(wc -l <"$T/m1")" -gt 1000

if [ -n "$daemon" ]; then
	fds_after=$(ls "/proc/$daemon/fd" 2>/dev/null | wc -l)
	# all files are closed now; a per-open or per-inode fd leak shows up
	# as thousands after posix_check, pack and index fds as a handful
	if [ $((fds_after - fds_before)) -le 16 ]; then
		ok "no fd leak in the daemon ($fds_before fds after mount, $fds_after now)"
	else
		not_ok "no fd leak in the daemon" "$fds_before fds after mount, $fds_after after posix_check"
	fi
fi

check "umount" mv_umount "$MNT"
if [ -n "$daemon" ]; then
	if mv_wait_gone "$daemon"; then ok "the daemon exits after umount"; else not_ok "the daemon exits after umount"; fi
fi
check "nothing is mounted on $MNT after umount" bash -c "! awk -v m='$MNT' '\$2 == m { f = 1 } END { exit !f }' /proc/self/mounts"

mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount the vault"
ok "remount the vault"
check "manifest after remount" digest "$T/m2"
if diff "$T/m1" "$T/m2" >"$T/d12"; then
	ok "the tree is identical after remount"
else
	not_ok "the tree is identical after remount" "$(head -c 3000 "$T/d12")"
fi

# changes in the second session persist too
change_tree() {
	set -e
	printf 'appended' >>"$P/size1M+1"
	rm "$P/dir/hardlink"
	mv "$P/dir/random5M" "$P/empty/moved5M"
	setfattr -x user.study "$P/size1"
	truncate -s 10 "$P/size4096"
	mkdir "$P/new dir"
	head -c 300000 /dev/urandom >"$P/new dir/new file"
}
check "change the tree after remount" change_tree
check "manifest after the changes" digest "$T/m3"
check "umount after the changes" mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount a third time"
check "manifest after the third mount" digest "$T/m4"
if diff "$T/m3" "$T/m4" >"$T/d34"; then
	ok "the changes made in the second session persist"
else
	not_ok "the changes made in the second session persist" "$(head -c 3000 "$T/d34")"
fi
check "final umount" mv_umount "$MNT"
summary
