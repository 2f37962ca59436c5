#!/usr/bin/env bash
# t_80_lock: one store, one daemon.  A second mount of a mounted store
# (same or another mountpoint) fails with one line and a non-zero exit, and
# the first mount keeps serving.  A store whose medvault.conf announces a
# newer format is refused with a message saying so, even though editing
# the conf also breaks its MAC: the format is checked first.
. "$(dirname "$0")/lib.sh"

need_mv

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
ok "mount the vault"
head -c 300000 /dev/urandom >"$T/data"
cp "$T/data" "$MNT/file"
daemon=$(daemon_pids "$MNT" | head -n 1)

mkdir -p "$T/mnt2"
for target in "$T/mnt2" "$MNT"; do
	what=$([ "$target" = "$MNT" ] && echo "on the same mountpoint" || echo "on a second mountpoint")
	out=$(mv_run mount "$STORE" "$target" --keystore "$KS" --passphrase-file "$PF" 2>&1 >/dev/null)
	rc=$?
	if [ "$target" != "$MNT" ] && is_mounted "$target"; then
		mv_track "$target"
		not_ok "a second mount $what is refused" "exit $rc, and $target got mounted"
		mv_umount "$target"
	elif [ $rc -ne 0 ]; then
		ok "a second mount $what is refused (exit $rc)"
	else
		not_ok "a second mount $what is refused" "exit 0"
	fi
	if [ -n "$out" ] && [ "$(wc -l <<<"$out")" -eq 1 ]; then ok "with one line: $out"
	else not_ok "the refusal $what is one line" "$out"; fi
done
n=$(awk -v m="$MNT" '$2 == m' /proc/self/mounts | wc -l)
is "$n" 1 "$MNT is mounted exactly once"
if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then ok "the first daemon still runs"; else not_ok "the first daemon still runs"; fi
check "the first mount still serves its data" cmp "$MNT/file" "$T/data"
check "the first mount still takes writes" bash -c "echo more >'$MNT/file2' && [ \"\$(cat '$MNT/file2')\" = more ]"

# a foreground second mount is refused as well, and does not linger
out=$(timeout 20 "$MV" mount "$STORE" "$T/mnt2" --keystore "$KS" --passphrase-file "$PF" -f 2>&1 >/dev/null)
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && ! is_mounted "$T/mnt2"; then ok "a second mount with -f is refused (exit $rc)"
else is_mounted "$T/mnt2" && mv_track "$T/mnt2"; not_ok "a second mount with -f is refused" "exit $rc: $out"; fi

check "umount" mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "the store mounts again once the first daemon is gone"
ok "the store mounts again once the first daemon is gone"
check "its data is intact" cmp "$MNT/file" "$T/data"
check "umount" mv_umount "$MNT"

# a newer format
cp "$STORE/medvault.conf" "$T/conf.orig"
sed -i 's/^format=[0-9]*$/format=99/' "$STORE/medvault.conf"
if grep -q '^format=99$' "$STORE/medvault.conf"; then
	ok "medvault.conf now says format=99"
	out=$(mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" 2>&1 >/dev/null)
	rc=$?
	if [ $rc -ne 0 ] && ! is_mounted "$MNT"; then ok "a store of a newer format is refused (exit $rc)"
	else is_mounted "$MNT" && mv_track "$MNT"; not_ok "a store of a newer format is refused" "exit $rc"; fi
	if [ "$(wc -l <<<"$out")" -eq 1 ] && grep -qi 'newer' <<<"$out" && grep -qi 'format' <<<"$out"; then
		ok "with one line naming a newer format: $out"
	else
		not_ok "the refusal is one line naming a newer format" "$out"
	fi
	out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && grep -qi 'newer' <<<"$out"; then ok "fsck refuses it too, naming the newer format (exit $rc)"
	else not_ok "fsck refuses a store of a newer format, naming it" "exit $rc" "$(tail -n 3 <<<"$out")"; fi
else
	not_ok "medvault.conf has a format= line" "$(head -n 3 "$STORE/medvault.conf")"
fi
cp "$T/conf.orig" "$STORE/medvault.conf"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "with the original conf back, the store mounts"
ok "with the original conf back, the store mounts"
check "umount" mv_umount "$MNT"
summary
