#!/usr/bin/env bash
# t_67_scrub: `medvault scrub MOUNTPOINT` on a mounted store (issue 18,
# item 4).  The daemon runs with -f, so its syslog lines reach its stderr.
#
#   a  a clean store: scrub --wait exits 0, at no more than --scrub-rate
#      (N MB at R MB/s takes at least N/R s); a second request while one
#      runs says so; status shows the scrub; unmount stops a running one
#   b  a byte flipped in a sealed chunk of a pack (unmounted): scrub
#      --wait exits 3 and names the file (path and inode), the daemon's
#      log names the inode, status shows the finding; untouched files read
#   c  a chunk record put back from an older copy of the index: the same
#   d  the schedule: nothing at mount, a run once the interval is over
. "$(dirname "$0")/lib.sh"

need_mv
CS=65536
PY=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import lmdb' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || bail "python3 with the lmdb module (scripts/install-deps.sh installs python3-lmdb)"
surg() { "$PY" "$MV_LIB_DIR/mdb_surgery.py" "$@"; }
ck() { printf '%016x%016x' "$1" "$2"; }	# chunk key

head -c $((3 * CS + 100)) /dev/urandom >"$T/victim.src"
head -c $((3 * CS + 100)) /dev/urandom >"$T/victim.new"
head -c 5000 /dev/urandom >"$T/keep.src"
head -c $((6 * 1024 * 1024)) /dev/urandom >"$T/big.src"

# mount_fg CASE [ARGS...]: the current vault in the foreground, its
# stderr in $LOG
mount_fg() {
	local c=$1
	shift
	LOG=$T/$c.log
	mv_mount "$STORE" "$MNT" "$KS" "$PF" -f "$@" 2>>"$LOG"
}

log_text() { sed "s|$T|T|g" "$LOG"; }

now() { date +%s.%N; }

# scrub_wait CASE: medvault scrub --wait; output in $SOUT, status in $SRC,
# seconds in $SECS
scrub_wait() {
	local t0
	t0=$(now)
	SOUT=$(mv_run scrub "$MNT" --wait 2>&1)
	SRC=$?
	SECS=$(echo "$(now) - $t0" | bc)
	echo "# $1: scrub --wait ($SRC, ${SECS}s):"
	sed 's/^/#   /' <<<"$SOUT" | sed "s|$T|T|g"
}

# ---------------------------------------------------------------- a: clean
mv_vault_new a
mv_init "$STORE" "$KS" "$PF" >/dev/null || bail "init"
RATE=2	# MB/s
mount_fg a --scrub-rate $RATE --scrub-interval 0 || bail "mount"
cp "$T/big.src" "$MNT/big" && cp "$T/victim.src" "$MNT/victim" && mkdir "$MNT/sub" &&
	cp "$T/keep.src" "$MNT/sub/keep" && sync -f "$MNT" || bail "populate"

out=$(mv_run status "$MNT" 2>&1)
grep -q "^scrub: *none since mount; none scheduled$" <<<"$out" &&
	ok "a: status: no scrub yet, none scheduled (--scrub-interval 0)" || not_ok "a: status: no scrub yet" "$out"

scrub_wait a
is "$SRC" 0 "a: scrub --wait of a clean store exits 0"
grep -q "; 0 findings in 0 files$" <<<"$SOUT" && ok "a: it says 0 findings" || not_ok "a: it says 0 findings" "$SOUT"
bytes=$(sed -n 's/.* chunks (\([0-9]*\) bytes) read.*/\1/p' <<<"$SOUT" | head -n 1)
chunks=$(sed -n 's/.*: \([0-9]*\) chunks (.*/\1/p' <<<"$SOUT" | head -n 1)
want=$(( (6 * 1024 * 1024 + 3 * CS + 100 + 5000 + CS - 1) / CS ))
[ "${chunks:-0}" -ge "$want" ] 2>/dev/null && ok "a: every chunk read ($chunks >= $want)" ||
	not_ok "a: every chunk read" "chunks '$chunks', want $want"
# N MB at R MB/s: at least N/R seconds (less 5% for timer slack)
min=$(echo "scale=2; ${bytes:-0} / ($RATE * 1000000) * 0.95" | bc)
if [ -n "$bytes" ] && [ "$(echo "$SECS >= $min" | bc)" = 1 ]; then
	ok "a: the rate holds: $bytes bytes at $RATE MB/s took ${SECS}s (>= ${min}s)"
else
	not_ok "a: the rate holds" "$bytes bytes at $RATE MB/s took ${SECS}s, less than ${min}s"
fi
if [ "$(echo "$SECS < $min * 2 + 5" | bc)" = 1 ]; then ok "a: and not much slower (${SECS}s)"
else not_ok "a: and not much slower" "${SECS}s for ${min}s of data"; fi
out=$(mv_run status "$MNT" 2>&1)
grep -Eq "^scrub: *done [0-9]+ s ago after [0-9]+ s: $chunks chunks, 0 findings in 0 files; none scheduled$" <<<"$out" &&
	ok "a: status shows the last scrub" || not_ok "a: status shows the last scrub" "$(grep scrub <<<"$out")"
log_text | grep -q "scrub: finished: .* 0 findings" && ok "a: the daemon logs the clean run" ||
	not_ok "a: the daemon logs the clean run" "$(log_text | grep scrub)"

out=$(mv_run scrub "$MNT" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^scrub 2 started on " <<<"$out" && ok "a: scrub without --wait starts run 2 and returns" ||
	not_ok "a: scrub without --wait starts run 2 and returns" "$rc: $out"
out=$(mv_run scrub "$MNT" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^scrub 2 already running on " <<<"$out" && ok "a: a second request: already running" ||
	not_ok "a: a second request: already running" "$rc: $out"
sleep 1
out=$(mv_run status "$MNT" 2>&1)
grep -Eq "^scrub: *running for [0-9]+ s \((records|chunks)\): [0-9]+ of $chunks chunks" <<<"$out" &&
	ok "a: status shows the running scrub" || not_ok "a: status shows the running scrub" "$(grep scrub <<<"$out")"
t0=$(now)
check "a: unmount while a scrub runs" mv_umount "$MNT"
secs=$(echo "$(now) - $t0" | bc)
[ "$(echo "$secs < 5" | bc)" = 1 ] && ok "a: the unmount does not wait for the scrub (${secs}s)" ||
	not_ok "a: the unmount does not wait for the scrub" "${secs}s"
log_text | grep -q "scrub: stopped" && ok "a: the daemon logs the scrub stopped" ||
	not_ok "a: the daemon logs the scrub stopped" "$(log_text | grep scrub)"
mv_wait_gone "$MNT" 2>/dev/null

check_fails "a: scrub of a directory that is not a mount fails" mv_run scrub "$MNT"
out=$(mv_run scrub 2>&1); rc=$?
is "$rc" 2 "a: scrub without MOUNTPOINT is a usage error"
out=$(mv_run scrub --help 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^usage: medvault scrub MOUNTPOINT \[--wait\]" <<<"$out" && ok "a: scrub --help" ||
	not_ok "a: scrub --help" "$out"

# populate CASE: a fresh vault holding victim (written first: pack 1
# starts with its chunks) then sub/keep, unmounted; VICTIM its inode
populate() {
	mv_vault_new "$1"
	mv_init "$STORE" "$KS" "$PF" >/dev/null || return 1
	mount_fg "$1" --scrub-interval 0 || return 1
	cp "$T/victim.src" "$MNT/victim" && sync -f "$MNT" && mkdir "$MNT/sub" &&
		cp "$T/keep.src" "$MNT/sub/keep" && sync -f "$MNT" || return 1
	VICTIM=$(stat -c %i "$MNT/victim")
	mv_umount "$MNT"
}

# found CASE: scrub --wait on the damaged store: exit 3, the victim named
# by path and inode, the log names the inode, status the finding, and the
# untouched file still reads
found() {
	local c=$1 l
	scrub_wait "$c"
	is "$SRC" 3 "$c: scrub --wait exits 3 (damage found)"
	grep -q "^damaged: $MNT/victim (inode $VICTIM): " <<<"$SOUT" &&
		ok "$c: it names the file: $(grep "^damaged: $MNT/victim" <<<"$SOUT" | head -n 1 | sed "s|$T|T|g")" ||
		not_ok "$c: it names the file (inode $VICTIM)" "$SOUT"
	! grep "^damaged: " <<<"$SOUT" | grep -qv "inode $VICTIM)" && ok "$c: and no other file" ||
		not_ok "$c: and no other file" "$SOUT"
	l=$(log_text | grep -E "scrub: inode $VICTIM: " | head -n 1)
	[ -n "$l" ] && ok "$c: the daemon's log names inode $VICTIM: ${l#*: }" ||
		not_ok "$c: the daemon's log names inode $VICTIM" "$(log_text | grep scrub)"
	log_text | grep "scrub: inode" | grep -q "/victim" && not_ok "$c: the log carries no path" ||
		ok "$c: the log carries no path"
	out=$(mv_run status "$MNT" 2>&1)
	grep -Eq "^scrub: *done .*: [0-9]+ chunks, [1-9][0-9]* findings in 1 files, inodes $VICTIM;" <<<"$out" &&
		ok "$c: status shows the findings and the inode" ||
		not_ok "$c: status shows the findings and the inode" "$(grep scrub <<<"$out")"
	cmp -s "$MNT/sub/keep" "$T/keep.src" && ok "$c: the untouched file reads back" ||
		not_ok "$c: the untouched file reads back"
}

# ---------------------------------------------------------------- b: flipped byte
if populate b; then
	PACK=$(find "$STORE/packs" -name '*.pack' | sort | head -n 1)
	# victim's chunks fill the pack's first 4 KiB (keep was written later)
	printf '\x5a' | dd of="$PACK" bs=1 seek=$((32 + 1000)) conv=notrunc status=none &&
		ok "b: a byte of one of victim's chunks changed in $(basename "$PACK")" || not_ok "b: flip a byte"
	if mount_fg b --scrub-interval 0; then
		found b
		grep -Eq "^damaged: $MNT/victim \(inode $VICTIM\): chunk [0-9]+ \(pack 1, .*fails authentication$" <<<"$SOUT" &&
			ok "b: a chunk in pack 1, failing authentication" ||
			not_ok "b: a chunk in pack 1, failing authentication" "$SOUT"
		mv_umount "$MNT"
	else
		not_ok "b: mount" "$(tail -n 3 "$LOG")"
	fi
else
	not_ok "b: populate"
fi

# ---------------------------------------------------------------- c: replayed chunk record
if populate c; then
	rm -rf "$T/c.old" && cp -a "$STORE/index" "$T/c.old"
	if mount_fg c --scrub-interval 0; then
		dd if="$T/victim.new" of="$MNT/victim" bs=$CS skip=1 seek=1 count=1 conv=notrunc status=none &&
			sync -f "$MNT" && ok "c: victim's chunk 1 rewritten" || not_ok "c: rewrite chunk 1"
		mv_umount "$MNT"
	fi
	surg put "$STORE/index" chunk "$(ck "$VICTIM" 1)" "$T/c.old" &&
		ok "c: its old chunk 1 record put back from the older index" || not_ok "c: replay chunk 1"
	if mount_fg c --scrub-interval 0; then
		found c
		grep -q "^damaged: $MNT/victim (inode $VICTIM): its chunk records" <<<"$SOUT" &&
			ok "c: its chunk records, named" || not_ok "c: its chunk records, named" "$SOUT"
		mv_umount "$MNT"
	else
		not_ok "c: mount" "$(tail -n 3 "$LOG")"
	fi
else
	not_ok "c: populate"
fi

# ---------------------------------------------------------------- d: the schedule
mv_vault_new d
mv_init "$STORE" "$KS" "$PF" >/dev/null || bail "init d"
# 0.00005 days: 4 s
if mount_fg d --scrub-interval 0.00005; then
	cp "$T/victim.src" "$MNT/victim"
	out=$(mv_run status "$MNT" 2>&1)
	grep -Eq "^scrub: *none since mount; next in [0-9]+ h$" <<<"$out" &&
		ok "d: no scrub at mount, one scheduled" || not_ok "d: no scrub at mount, one scheduled" "$(grep scrub <<<"$out")"
	for i in $(seq 1 40); do
		out=$(mv_run status "$MNT" 2>&1)
		grep -q "^scrub: *done" <<<"$out" && break
		sleep 0.5
	done
	grep -q "^scrub: *done .* 0 findings" <<<"$out" && ok "d: the scheduled scrub ran once the interval was over" ||
		not_ok "d: the scheduled scrub ran" "$(grep scrub <<<"$out")"
	log_text | grep -q "scrub: started on" && ok "d: the daemon logs its start" ||
		not_ok "d: the daemon logs its start" "$(log_text | grep scrub)"
	mv_umount "$MNT"
else
	not_ok "d: mount" "$(tail -n 3 "$LOG")"
fi
check_fails "d: --scrub-interval takes a number of days" mv_run mount "$STORE" "$MNT" --keystore "$KS" \
	--passphrase-file "$PF" --scrub-interval soon
check_fails "d: --scrub-rate must be positive" mv_run mount "$STORE" "$MNT" --keystore "$KS" \
	--passphrase-file "$PF" --scrub-rate 0

summary
