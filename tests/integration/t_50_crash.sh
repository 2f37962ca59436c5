#!/usr/bin/env bash
# t_50_crash: kill -9 the daemon under a write load, again and again.
#
# Each round: two crash_writer processes rewrite, save-to-temp-and-rename,
# append to, truncate and delete files of 0..2 MiB (content derived from
# name and generation, see tests/tools/crash_common.h), fsync'ing some
# operations and journaling what was acknowledged; after 0.2..2 s the
# daemon gets SIGKILL, the dead mount is lazily unmounted and the store
# remounted, and crash_check proves that every file holds a legitimate
# version (never older than acknowledged, never a mix, never garbage,
# renames all-or-nothing, no EIO), then the mount must still be usable.
# The same store lives through every round, so damage accumulates.  At the
# end `medvault fsck` must find the store clean, both right after a kill
# and after a clean umount.
#
# Environment: CRASH_ROUNDS (default 20; stress_crash.sh uses 200),
# CRASH_SEED (default random; printed so a failing run can be replayed),
# CRASH_WRITERS (default 2), CRASH_FILES (names per writer, default 10).
. "$(dirname "$0")/lib.sh"

need_mv
need_tool crash_writer
need_tool crash_check

ROUNDS=${CRASH_ROUNDS:-20}
SEED=${CRASH_SEED:-$(( (RANDOM << 15) | RANDOM ))}
NW=${CRASH_WRITERS:-2}
NF=${CRASH_FILES:-10}
RANDOM=$SEED
echo "# $ROUNDS rounds, seed $SEED (CRASH_SEED=$SEED replays the kill times and workloads)"

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
mkdir "$MNT/w" && check "create the work directory" mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount the vault"

STATE=$T/state
: >"$STATE"
round_fail=0 lost_total=0 kill_fsck_done=0

# kill_daemon: SIGKILL the daemon of $MNT, wait for it, lazily unmount
kill_daemon() {
	local pids p
	pids=$(daemon_pids "$MNT")
	[ -n "$pids" ] || { echo "no daemon found for $MNT"; return 1; }
	for p in $pids; do kill -KILL "$p"; done
	mv_wait_gone $pids || { echo "daemon $pids survived SIGKILL"; return 1; }
	fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	! is_mounted "$MNT" || { echo "$MNT still mounted after fusermount3 -uz"; return 1; }
}

usable() {
	local f=$MNT/usable.$1
	head -c 100000 /dev/urandom >"$T/u" &&
		cp "$T/u" "$f" && cmp "$T/u" "$f" && rm "$f" && [ ! -e "$f" ]
}

for ((r = 1; r <= ROUNDS; r++)); do
	rseed=$RANDOM
	ms=$((200 + RANDOM % 1801))
	wpids=()
	for ((w = 0; w < NW; w++)); do
		"$TOOLS/crash_writer" "$MNT/w" "w${w}_" "$NF" "$STATE" "$T/j.$r.$w" "$T/acked.$r" \
			"$((rseed * 16 + w))" 2>"$T/werr.$r.$w" &
		wpids+=($!)
	done
	sleep "$(awk -v m=$ms 'BEGIN { printf "%.3f", m / 1000 }')"
	early=()
	for ((w = 0; w < NW; w++)); do
		kill -0 "${wpids[$w]}" 2>/dev/null || early+=("writer $w ended before the kill: $(cat "$T/werr.$r.$w")")
	done
	kmsg=$(kill_daemon 2>&1)
	krc=$?
	# the writers fail on the dead connection; give them a moment, then stop them
	for p in "${wpids[@]}"; do
		for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$p" 2>/dev/null && { early+=("writer pid $p still running 10 s after the kill"); kill -KILL "$p"; }
		wait "$p" 2>/dev/null
	done
	if [ $krc -ne 0 ]; then
		not_ok "round $r: kill the daemon after ${ms} ms" "$kmsg"
		round_fail=1
		break
	fi
	nops=$(cat "$T"/j.$r.* 2>/dev/null | grep -c '^E ')
	nack=$(wc -l <"$T/acked.$r" 2>/dev/null || echo 0)
	if [ $r -eq $ROUNDS ]; then
		out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
		rc=$?
		if [ $rc -eq 0 ]; then ok "fsck right after the last kill -9 finds the store clean"
		else not_ok "fsck right after the last kill -9 finds the store clean" "exit $rc" "$(tail -n 15 <<<"$out")"; fi
	fi
	if ! mv_mount "$STORE" "$MNT" "$KS" "$PF" 2>"$T/merr"; then
		not_ok "round $r: remount after kill -9" "$(cat "$T/merr")"
		round_fail=1
		break
	fi
	cout=$(timeout 120 "$TOOLS/crash_check" "$MNT/w" "$STATE" "$STATE.new" "$T/acked.$r" "$T"/j.$r.* 2>&1)
	crc=$?
	lost=$(sed -n 's/.* \([0-9]*\) closed-but-unsynced updates lost.*/\1/p' <<<"$cout")
	lost_total=$((lost_total + ${lost:-0}))
	if [ $crc -eq 0 ] && [ ${#early[@]} -eq 0 ] && usable $r; then
		ok "round $r: killed after ${ms} ms, $nops ops done, $nack acked; $(tail -n 1 <<<"$cout" | sed 's/^crash_check: //')"
		mv "$STATE.new" "$STATE"
	else
		not_ok "round $r: killed after ${ms} ms, $nops ops done, $nack acked (seed $SEED)" \
			"${early[@]}" "$(head -n 60 <<<"$cout")" "$(usable $r 2>&1 >/dev/null || echo "the remounted filesystem is not usable")"
		round_fail=1
		[ -s "$STATE.new" ] && mv "$STATE.new" "$STATE"
	fi
done
[ $lost_total -eq 0 ] || echo "# $lost_total updates that were closed (not fsync'd) were lost at a kill (allowed, not acknowledged)"

# the store after all rounds: a last write, a clean umount, fsck
if is_mounted "$MNT"; then
	check "the vault is usable after $ROUNDS crashes" usable final
	check "clean umount after the last round" mv_umount "$MNT"
fi
out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "fsck finds the store clean after $ROUNDS crashes"
else not_ok "fsck finds the store clean after $ROUNDS crashes" "exit $rc" "$(tail -n 15 <<<"$out")"; fi
summary
