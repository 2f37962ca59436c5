#!/usr/bin/env bash
# t_96_rsync_plain: plaintext copies with rsync through a mounted vault.
#
#   1. rsync -aHAX from a plain (ext4/tmpfs) tree into a fresh mount, and
#      from the mount back to a plain directory: contents, modes, owners,
#      mtimes (ns), hard links, symlinks, FIFOs, sparse files, user.* xattrs
#      and POSIX ACLs (system.posix_acl_*) are preserved (ctime cannot be:
#      rsync does not carry it);
#   2. rsync's temp-file-and-rename pattern: rsync into the mount over
#      existing files (whole-file, --no-whole-file delta, --inplace), with
#      changed contents, sizes, modes, times, links and xattrs, leaves the
#      same tree as the source and no temp files; the result persists across
#      a remount.
# If -A (ACLs) fails, the rest runs with -aHX and the ACL check fails.
. "$(dirname "$0")/lib.sh"

need_mv
need_tool tree_digest
command -v rsync >/dev/null || bail "rsync is not installed"

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
ok "mount the vault"

KiB=1024
MiB=$((1024 * 1024))
SRC=$T/plain
OUT=$T/out
have_acl=0
command -v setfacl >/dev/null && command -v getfacl >/dev/null && have_acl=1

# pin_times R: symlinks and directories get times far from "now".  rsync
# (3.5.0 here, on ext4 as well) leaves a re-created symlink's or a
# directory's mtime unset when the source's is in the current second: it
# compares whole seconds there.  That is rsync's doing, not the vault's.
pin_times() {
	find "$SRC" -type l -exec touch -h -d "@$((1500000000 + $1 * 1000)).25" {} +
	find "$SRC" -type d -exec touch -d "@$((1500000000 + $1 * 1000)).75" {} +
	# rsync skips setting a time it thinks unchanged at one-second
	# granularity; special files too need a time in the past
	find "$SRC" -type p -exec touch -d "@$((1500000000 + $1 * 1000)).5" {} +
}
make_plain() {
	set -e
	mkdir -p "$SRC/study/series1" "$SRC/study/series2" "$SRC/empty dir" "$SRC/private"
	local i
	for i in $(seq 1 30); do
		head -c $(((RANDOM % 900 + 1) * KiB + RANDOM)) /dev/urandom >"$SRC/study/series$((i % 2 + 1))/im$i.dcm"
	done
	head -c $((9 * MiB + 17)) /dev/urandom >"$SRC/study/large.bin"
	: >"$SRC/zero"
	printf 'report\n' >"$SRC/report.txt"
	ln "$SRC/report.txt" "$SRC/study/report.hardlink"
	ln "$SRC/report.txt" "$SRC/private/report.hardlink2"
	ln -s report.txt "$SRC/report.symlink"
	ln -s ../../nowhere "$SRC/study/dangling"
	mkfifo "$SRC/fifo"
	truncate -s 30M "$SRC/sparse"
	printf 'middle' | dd of="$SRC/sparse" bs=1 seek=$((13 * MiB + 3)) conv=notrunc status=none
	setfattr -n user.patient -v "ID-0042" "$SRC/report.txt"
	setfattr -n user.empty "$SRC/report.txt"
	setfattr -n user.binary -v 0x00010203fffe "$SRC/study/large.bin"
	setfattr -n user.dir -v series "$SRC/study/series1"
	chmod 0700 "$SRC/private"
	chmod 0640 "$SRC/study/series1/im1.dcm" 2>/dev/null || chmod 0640 "$SRC/study/series2/im1.dcm"
	chmod 4755 "$SRC/zero"
	chmod 1777 "$SRC/empty dir"
	chown 1234:5678 "$SRC/report.txt"
	chown -h 99:99 "$SRC/report.symlink"
	pin_times 0
	touch -d '2003-04-05 06:07:08.123456789' "$SRC/study/large.bin"
	touch -h -d '1990-01-01 00:00:00.5' "$SRC/report.symlink"
	touch -d '2020-02-29 12:00:00.000000001' "$SRC/study"
	if [ $have_acl -eq 1 ]; then
		setfacl -m u:1234:rw-,g:5678:r-- "$SRC/study/large.bin"
		setfacl -d -m u:1234:rwx "$SRC/study/series2"
	fi
}
check "build a plain source tree" make_plain

# manifests without ctime (rsync cannot set it)
digest() { "$TOOLS/tree_digest" "$1" | sed -E 's/ ctime=[0-9.]+//' >"$2"; }
same_tree() {	# NAME A B
	if diff "$2" "$3" >"$T/diff.out"; then
		ok "$1"
	else
		not_ok "$1" "$(head -c 3000 "$T/diff.out")"
	fi
}
no_temp_files() {	# DIR: rsync's temp files are .NAME.XXXXXX
	local left
	left=$(find "$1" -name '.*.??????' | head -n 5)
	[ -z "$left" ] || { echo "left behind: $left"; return 1; }
}

# RSYNC_OPTS: -aHAX if ACLs copy into the vault, else -aHX (reported)
RSYNC_OPTS=(-aHAX)
mkdir -p "$MNT/in"
if out=$(rsync -aHAX "$SRC/" "$MNT/in/" 2>&1); then
	ok "rsync -aHAX plain -> mount"
else
	not_ok "rsync -aHAX plain -> mount (POSIX ACLs, -A)" "$(tail -n 5 <<<"$out")"
	RSYNC_OPTS=(-aHX)
	check "rsync -aHX plain -> mount (without ACLs)" rsync -aHX "$SRC/" "$MNT/in/"
fi
digest "$SRC" "$T/m_src"
digest "$MNT/in" "$T/m_in"
same_tree "the tree in the mount equals the source (${RSYNC_OPTS[*]})" "$T/m_src" "$T/m_in"
if [ $have_acl -eq 1 ]; then
	# file by file in sorted order (getfacl -R follows readdir order)
	a=$(cd "$SRC" && find . ! -type l | sort | xargs -d '\n' getfacl -p 2>/dev/null)
	b=$(cd "$MNT/in" && find . ! -type l | sort | xargs -d '\n' getfacl -p 2>/dev/null)
	if [ "$a" = "$b" ] && grep -q 'user:1234:rw-' <<<"$b"; then
		ok "POSIX ACLs (access and default) copied into the mount"
	else
		not_ok "POSIX ACLs (access and default) copied into the mount" "$(diff <(echo "$a") <(echo "$b") | head -n 20)"
	fi
fi
same_links() {	# DIR: the three report names are one inode with 3 links
	local i1 i2 i3
	i1=$(stat -c '%i %h' "$1/report.txt") i2=$(stat -c '%i %h' "$1/study/report.hardlink") i3=$(stat -c '%i %h' "$1/private/report.hardlink2")
	[ "$i1" = "$i2" ] && [ "$i2" = "$i3" ] && [ "${i1#* }" = 3 ]
}
check "hard links are one inode in the mount" same_links "$MNT/in"
check "the sparse file reads back as the source" cmp "$SRC/sparse" "$MNT/in/sparse"

check "rsync ${RSYNC_OPTS[*]} mount -> plain" rsync "${RSYNC_OPTS[@]}" "$MNT/in/" "$OUT/"
digest "$OUT" "$T/m_out"
same_tree "the plain copy out of the mount equals the source" "$T/m_src" "$T/m_out"
check "hard links are one inode in the plain copy" same_links "$OUT"
check "no rsync temp files in the mount" no_temp_files "$MNT"

# ---------------------------------------------------------------- rewrite
# change the source, then rsync over the existing files in the mount
modify_src() {	# ROUND
	set -e
	local r=$1 f
	for f in "$SRC"/study/series1/im*.dcm; do
		case $((RANDOM % 4)) in
		# rsync's quick check compares whole seconds: new content must not
		# keep the previous sync's second, or rsync rightly skips it
		0) head -c $((RANDOM * 7 + 1)) /dev/urandom >"$f"	# new content and size
		   touch -d "@$((1650000000 + r * 100000 + RANDOM)).25" "$f" ;;
		1) dd if=/dev/urandom of="$f" bs=4096 seek=1 count=2 conv=notrunc status=none	# same size
		   touch -d "@$((1650000000 + r * 100000 + RANDOM)).75" "$f" ;;
		2) touch -d "@$((1600000000 + RANDOM)).$RANDOM" "$f" ;;	# time only
		3) chmod 0$((RANDOM % 8))$((RANDOM % 8))0 "$f"; chmod u+r "$f" ;;
		esac
	done
	# a block in the middle of the large file: the delta algorithm's case
	dd if=/dev/urandom of="$SRC/study/large.bin" bs=64K seek=$((40 + r)) count=1 conv=notrunc status=none
	touch -d "@$((1660000000 + r * 1000)).5" "$SRC/study/large.bin"
	printf 'appended %s\n' "$r" >>"$SRC/report.txt"
	setfattr -n user.patient -v "ID-00$r" "$SRC/report.txt"
	setfattr -x user.binary "$SRC/study/large.bin" 2>/dev/null || setfattr -n user.binary -v 0x01 "$SRC/study/large.bin"
	rm -f "$SRC/study/report.hardlink"
	ln "$SRC/report.txt" "$SRC/study/new.hardlink$r"
	ln -sfn "target$r" "$SRC/report.symlink"
	rm -f "$SRC/study/series2/im$((2 * r)).dcm"
	head -c 100000 /dev/urandom >"$SRC/study/series2/new$r.dcm"
	pin_times "$r"
}
round=0
for mode in whole-file no-whole-file inplace; do
	round=$((round + 1))
	case $mode in
	whole-file) extra=() ;;
	no-whole-file) extra=(--no-whole-file) ;;
	inplace) extra=(--no-whole-file --inplace) ;;
	esac
	check "change the source (round $round)" modify_src $round
	if out=$(rsync "${RSYNC_OPTS[@]}" --delete --stats "${extra[@]}" "$SRC/" "$MNT/in/" 2>&1); then
		ok "rsync ${RSYNC_OPTS[*]} --delete ${extra[*]} over existing files in the mount"
		echo "#   $(grep -E '^(Literal data|Matched data)' <<<"$out" | tr '\n' ' ')"
	else
		not_ok "rsync ${RSYNC_OPTS[*]} --delete ${extra[*]} over existing files in the mount" "$(tail -n 5 <<<"$out")"
	fi
	digest "$SRC" "$T/m_src$round"
	digest "$MNT/in" "$T/m_in$round"
	same_tree "after rsync ($mode) the mount equals the changed source" "$T/m_src$round" "$T/m_in$round"
	check "no rsync temp files left in the mount ($mode)" no_temp_files "$MNT"
done

check "umount" mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount"
digest "$MNT/in" "$T/m_in_remount"
same_tree "the rsynced tree persists across a remount" "$T/m_src$round" "$T/m_in_remount"
check "umount after remount" mv_umount "$MNT"
check "fsck is clean" mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"
summary
