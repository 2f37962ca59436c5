#!/usr/bin/env bash
# t_38_control: the CLI reaches a mounted store's daemon over its control
# socket (/run/medvault/<volume id>.sock) and nothing else.  snapshot and
# compact never signal the pid written in STORE/medvault.lock (a file the
# store's owner can write): a foreign process whose pid is planted there
# survives them, mounted or not.  status keeps its output; seal makes data
# written just before a snapshot part of it; umount returns once the store
# is released; a killed daemon's stale socket does not stop the next mount.
. "$(dirname "$0")/lib.sh"
need_mv
[ "$(id -u)" -eq 0 ] || bail "run as root (the run directory is /run/medvault)"

mv_vault_new
mv_init "$STORE" "$KS" "$PF" >/dev/null || bail "init"
uuid=$(sed -n 's/^uuid=//p' "$STORE/medvault.conf")
SOCK=/run/medvault/$uuid.sock
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"
ok "mount"
dpid=$(daemon_pids "$MNT" | head -n 1)

# ---------------------------------------------------------------- socket
if [ -S "$SOCK" ] && [ "$(stat -c '%a %u' "$SOCK")" = "600 0" ]; then
	ok "the daemon listens on $SOCK (0600, root's)"
else
	not_ok "the daemon listens on $SOCK (0600, root's)" "$(ls -l "$SOCK" 2>&1)"
fi
is "$(stat -c '%a' /run/medvault)" 700 "/run/medvault is 0700 (which volumes are mounted is nobody else's business)"
[ ! -e "/run/medvault/$uuid.status" ] && ok "no status file in /run" || not_ok "no status file in /run"

# ---------------------------------------------------------------- status
out=$(mv_run status "$MNT" 2>&1)
rc=$?
keys=$(cut -d: -f1 <<<"$out" | tr '\n' '|')
is "$keys" "mountpoint|store|daemon|open files|dirty data|chunk cache|last checkpoint|pending compaction|scrub|" \
	"status prints its nine lines (status $rc)"
grep -q "^daemon: *pid $dpid, up [0-9]* s$" <<<"$out" && ok "status names the daemon's pid" ||
	not_ok "status names the daemon's pid" "$out"
grep -q "^store: *$STORE$" <<<"$out" && ok "status names the store" || not_ok "status names the store" "$out"

# ---------------------------------------------------------------- foreign pid
sleep 600 &
victim=$!
echo "$victim" >"$STORE/medvault.lock"
check "snapshot of the mounted store with a foreign pid in medvault.lock" mv_run snapshot "$STORE" "$T/snap1"
out=$(mv_run compact "$STORE" 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q '^compact: ' <<<"$out"; then ok "the daemon compacts the mounted store: $out"
else not_ok "the daemon compacts the mounted store" "status $rc: $out"; fi
kill -0 "$victim" 2>/dev/null && ok "the foreign process survives snapshot and compact" ||
	not_ok "the foreign process survives snapshot and compact"
for f in seal.request compact.request compact.done; do
	[ ! -e "$STORE/$f" ] && ok "no $f in STORE" || not_ok "no $f in STORE"
done

# ---------------------------------------------------------------- seal
# written without fsync just before the snapshot: the seal writes it back
head -c 300000 /dev/urandom >"$T/fresh"
cp "$T/fresh" "$MNT/fresh"
check "snapshot right after a write" mv_run snapshot "$STORE" "$T/snap2"

# ---------------------------------------------------------------- umount
check "umount" mv_run umount "$MNT"
if flock -n "$STORE/medvault.lock" true; then ok "umount returns once the store is released"
else not_ok "umount returns once the store is released"; fi
[ ! -e "$SOCK" ] && ok "the socket is gone after umount" || not_ok "the socket is gone after umount"
mv_wait_gone "$dpid" && ok "the daemon has exited" || not_ok "the daemon has exited"

# read-only: a snapshot shares the store's rollback anchor, and a
# read-write mount would move it to the snapshot's state
if mv_mount "$T/snap2" "$MNT" "$KS" "$PF" --read-only; then
	cmp -s "$T/fresh" "$MNT/fresh" && ok "the snapshot holds the file written just before it" ||
		not_ok "the snapshot holds the file written just before it"
	mv_umount "$MNT"
else
	not_ok "mount the snapshot"
fi

# unmounted, but its lock held by another process (as fsck holds it), with
# the foreign pid in it
echo "$victim" >"$STORE/medvault.lock"
exec 8<"$STORE/medvault.lock"
flock -x 8
out=$(mv_run compact "$STORE" 2>&1)
rc=$?
[ $rc -ne 0 ] && grep -q 'in use' <<<"$out" && ok "compact of a store held by another process: $out" ||
	not_ok "compact of a store held by another process says it is in use" "status $rc: $out"
check "snapshot of a store held by another process" mv_run snapshot "$STORE" "$T/snap3"
kill -0 "$victim" 2>/dev/null && ok "the foreign process survives them too" ||
	not_ok "the foreign process survives them too"
exec 8<&-
kill "$victim" 2>/dev/null
wait "$victim" 2>/dev/null

# ---------------------------------------------------------------- stale socket
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount"
# both processes of a root mount (t_47_privsep: the root part alone
# would remove the socket of a killed server)
dpids=$(daemon_pids "$MNT")
kill -9 $dpids
mv_wait_gone $dpids
fusermount3 -uz "$MNT" 2>/dev/null
[ -S "$SOCK" ] && ok "a killed daemon leaves its socket behind" || not_ok "a killed daemon leaves its socket behind"
out=$(mv_run compact "$STORE" 2>&1)
rc=$?
[ $rc -ne 0 ] && grep -q 'not mounted' <<<"$out" && ok "compact sees no daemon behind a stale socket: $out" ||
	not_ok "compact sees no daemon behind a stale socket" "status $rc: $out"
if mv_mount "$STORE" "$MNT" "$KS" "$PF"; then
	ok "mount replaces the stale socket"
	out=$(mv_run status "$MNT" 2>&1) && ok "status answers after the remount" ||
		not_ok "status answers after the remount" "$out"
	check "umount after the remount" mv_run umount "$MNT"
else
	not_ok "mount replaces the stale socket"
fi
summary
