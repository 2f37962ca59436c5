#!/usr/bin/env bash
# t_20_cli_errors: every bad invocation fails with its documented status
# (medvault(1) EXIT STATUS, fs/cli/exit_codes.h: 1 failure, 2 usage error,
# 3 damage found) and exactly one line on stderr, mounts nothing, starts no
# daemon and changes no byte of any store or keystore.  --help works for
# every command, with status 0.
. "$(dirname "$0")/lib.sh"

need_mv

mv_vault_new a
A_STORE=$STORE A_KS=$KS A_PF=$PF A_MNT=$MNT
mv_vault_new b
B_STORE=$STORE B_KS=$KS B_PF=$PF B_MNT=$MNT
mkdir -p "$T/b/mnt2"
mv_init "$A_STORE" "$A_KS" "$A_PF" || bail "init vault a"
mv_init "$B_STORE" "$B_KS" "$B_PF" || bail "init vault b"
ok "init two vaults"

all_state() {
	local d
	for d in "$A_STORE" "$A_KS" "$B_STORE" "$B_KS"; do tree_state "$d"; done
}

# changed_dirs STATE: which of the four directories differ from STATE
changed_dirs() {
	local names=("$A_STORE" "$A_KS" "$B_STORE" "$B_KS") i=0 old now
	now=$(all_state)
	while IFS= read -r old; do
		[ "$old" = "$(sed -n "$((i + 1))p" <<<"$now")" ] || printf '%s ' "${names[$i]}"
		i=$((i + 1))
	done <<<"$1"
}

EX_FAILURE=1 EX_USAGE=2 EX_DAMAGE=3

# expect_fail NAME MNT WANT CMD...: the promises of a failed command.
# MNT is the mountpoint the command names ("-" if none), WANT its status.
expect_fail() {
	local name=$1 mnt=$2 want=$3 before_state before_mounts before_daemons rc lines
	shift 3
	before_state=$(all_state)
	before_mounts=$(our_mounts)
	before_daemons=$( [ "$mnt" = - ] || daemon_pids "$mnt")
	timeout --kill-after=10 "$MV_CMD_TIMEOUT" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$mnt" != - ] && is_mounted "$mnt" && [ "$before_mounts" = "$(our_mounts | grep -v " $mnt ")" ]; then
		mv_track "$mnt"	# it mounted by mistake: clean up afterwards
		mv_umount "$mnt" >/dev/null 2>&1
	fi
	if [ $rc -eq "$want" ]; then ok "$name: fails with status $want"; else not_ok "$name: fails with status $want" "status $rc"; fi
	lines=$(grep -c '' "$T/err")
	if [ "$lines" -eq 1 ]; then
		ok "$name: one line on stderr"
		echo "#   stderr: $(cat "$T/err")"
	else
		not_ok "$name: one line on stderr" "got $lines lines:" "$(head -n 10 "$T/err")"
	fi
	sleep 0.2	# a daemon forked by mistake has time to mount
	# a mountpoint already in use keeps its own daemon: compare, not absence
	if [ "$before_mounts" = "$(our_mounts)" ] &&
	   [ "$before_daemons" = "$( [ "$mnt" = - ] || daemon_pids "$mnt")" ] &&
	   [ "$before_state" = "$(all_state)" ]; then
		ok "$name: nothing mounted, started or changed"
	else
		not_ok "$name: nothing mounted, started or changed" \
			"mounts before: $before_mounts" "mounts after: $(our_mounts)" \
			"daemons for $mnt before: $before_daemons after: $( [ "$mnt" = - ] || daemon_pids "$mnt")" \
			"changed: $(changed_dirs "$before_state")"
	fi
}

mount_a() { expect_fail "$1" "${3:-$A_MNT}" $EX_FAILURE "$MV" mount "${2:-$A_STORE}" "${3:-$A_MNT}" --keystore "${4:-$A_KS}" --passphrase-file "${5:-$A_PF}"; }

# --- key problems
mv_passfile "$T/wrong" "not the passphrase"
mount_a "wrong passphrase" "$A_STORE" "$A_MNT" "$A_KS" "$T/wrong"
mount_a "missing passphrase file" "$A_STORE" "$A_MNT" "$A_KS" "$T/no-such-file"
mkdir "$T/pf-is-a-dir"
mount_a "passphrase file is a directory" "$A_STORE" "$A_MNT" "$A_KS" "$T/pf-is-a-dir"
expect_fail "mount without any key option" "$A_MNT" $EX_USAGE "$MV" mount "$A_STORE" "$A_MNT" --keystore "$A_KS"
mount_a "keystore of another volume" "$A_STORE" "$A_MNT" "$B_KS" "$B_PF"
mount_a "keystore of another volume, right passphrase of ours" "$A_STORE" "$A_MNT" "$B_KS" "$A_PF"
mount_a "keystore directory missing" "$A_STORE" "$A_MNT" "$T/no-keystore" "$A_PF"

# b's key slot file renamed to a's uuid: its associated data names b's
# volume, so it must not unlock a
a_keys=$(cd "$A_KS" && ls | head -n 1)
b_keys=$(cd "$B_KS" && ls | head -n 1)
if [ -n "$a_keys" ] && [ -n "$b_keys" ]; then
	mkdir -p "$T/swapped-ks"
	cp "$B_KS/$b_keys" "$T/swapped-ks/$a_keys"
	mount_a "another volume's key slots under our uuid" "$A_STORE" "$A_MNT" "$T/swapped-ks" "$B_PF"
else
	not_ok "each keystore holds a key file" "a: '$a_keys' b: '$b_keys'"
fi

# --- store problems
mount_a "store missing" "$T/no-store"
mkdir "$T/empty-dir"
mount_a "store is an empty directory" "$T/empty-dir"
echo "not a store" >"$T/plain-file"
mount_a "store is a regular file" "$T/plain-file"
mount_a "store is another vault's keystore" "$B_KS"

# --- medvault.conf tampering (restored after each case)
CONF=$A_STORE/medvault.conf
if [ -f "$CONF" ]; then
	cp -p "$CONF" "$T/conf.orig"
	# flip one digit of a numeric value that is not the uuid or the mac
	line=$(grep -n -E '^[a-z_]+=[0-9]+$' "$CONF" | grep -v -E '^[0-9]+:(uuid|mac|format)=' | head -n 1)
	if [ -n "$line" ]; then
		n=${line%%:*}
		# change the first digit after '=' (9 becomes 8, others grow by one)
		awk -v n="$n" 'NR == n { i = index($0, "="); d = substr($0, i + 1, 1); d = (d == "9") ? "8" : d + 1;
			$0 = substr($0, 1, i) d substr($0, i + 2) } { print }' "$T/conf.orig" >"$CONF"
		if cmp -s "$CONF" "$T/conf.orig"; then
			not_ok "medvault.conf: a value was changed for the test"
		else
			mount_a "medvault.conf with one value changed ($(sed -n "${n}p" "$T/conf.orig" | cut -d= -f1))"
		fi
	else
		not_ok "medvault.conf has a numeric key=value line to tamper with" "$(cat "$CONF")"
	fi
	# flip one byte in the middle of the file, whatever it is
	cp "$T/conf.orig" "$CONF"
	size=$(stat -c %s "$CONF")
	off=$((size / 2))
	byte=$(od -An -tu1 -j "$off" -N1 "$CONF" | tr -d ' ')
	printf "\\x$(printf %02x $(( (byte ^ 1) & 255 )))" | dd of="$CONF" bs=1 seek="$off" conv=notrunc status=none
	mount_a "medvault.conf with one byte flipped in the middle"
	cp "$T/conf.orig" "$CONF"
	head -c $((size / 2)) "$T/conf.orig" >"$CONF"
	mount_a "medvault.conf truncated to half"
	: >"$CONF"
	mount_a "medvault.conf empty"
	cp "$T/conf.orig" "$CONF"
	sed -i '/^mac=/d' "$CONF"
	mount_a "medvault.conf without its mac line"
	cp -p "$T/conf.orig" "$CONF"
	check "medvault.conf restored" cmp "$CONF" "$T/conf.orig"
else
	not_ok "the store has a medvault.conf" "$(ls -la "$A_STORE" 2>&1)"
fi

# --- mountpoint problems
mount_a "mountpoint missing" "$A_STORE" "$T/no-mountpoint"
echo file >"$T/mnt-is-file"
mount_a "mountpoint is a regular file" "$A_STORE" "$T/mnt-is-file"
if mv_mount "$B_STORE" "$B_MNT" "$B_KS" "$B_PF"; then
	ok "mount vault b (to occupy a mountpoint)"
	# written and synced now, so the daemon has nothing left to write back
	# while the failing commands below are watched
	echo "b's data" | dd of="$B_MNT/marker" conv=fsync status=none
	sleep 3
	mount_a "mountpoint already mounted" "$A_STORE" "$B_MNT"
	check "the occupied mountpoint still serves vault b" grep -q "b's data" "$B_MNT/marker"
	expect_fail "store already mounted elsewhere" "$T/b/mnt2" $EX_FAILURE \
		"$MV" mount "$B_STORE" "$T/b/mnt2" --keystore "$B_KS" --passphrase-file "$B_PF"
	check "umount vault b" mv_umount "$B_MNT"
else
	not_ok "mount vault b (to occupy a mountpoint)"
fi

# --- init problems
expect_fail "init over an existing store" - $EX_FAILURE "$MV" init "$A_STORE" --keystore "$A_KS" --passphrase-file "$A_PF"
expect_fail "init over an existing store with a new keystore" - $EX_FAILURE \
	"$MV" init "$A_STORE" --keystore "$T/fresh-ks" --passphrase-file "$A_PF"
rm -rf "$T/fresh-ks"
expect_fail "init with a missing passphrase file" - $EX_FAILURE \
	"$MV" init "$T/new-store" --keystore "$T/new-ks" --passphrase-file "$T/no-such-file"
check "a failed init leaves no store behind" test ! -e "$T/new-store/medvault.conf"

# --- every command: a usage error, a failure, and --help
U=$EX_USAGE F=$EX_FAILURE
KEYA=(--keystore "$A_KS" --passphrase-file "$A_PF")
expect_fail "no command" - $U "$MV"
expect_fail "unknown command" - $U "$MV" frobnicate
expect_fail "init without arguments" - $U "$MV" init
expect_fail "init --chunk-size that is not a size" - $U "$MV" init "$T/new-store" "${KEYA[@]}" --chunk-size lots
expect_fail "init without --keystore" - $U "$MV" init "$T/new-store" --passphrase-file "$A_PF"
expect_fail "mount without arguments" - $U "$MV" mount
expect_fail "mount with an unknown option" "$A_MNT" $U "$MV" mount "$A_STORE" "$A_MNT" "${KEYA[@]}" --bogus-option
expect_fail "mount --audit-failure with a bad value" "$A_MNT" $U "$MV" mount "$A_STORE" "$A_MNT" "${KEYA[@]}" --audit-failure=maybe
expect_fail "umount without arguments" - $U "$MV" umount
expect_fail "umount of a directory that is not mounted" - $F "$MV" umount "$A_MNT"
expect_fail "status without arguments" - $U "$MV" status
expect_fail "status of a directory that is not mounted" - $F "$MV" status "$A_MNT"
expect_fail "info with an unknown option" - $U "$MV" info "$A_STORE" --bogus
expect_fail "info of a missing store" - $F "$MV" info "$T/no-store"
expect_fail "fsck without --keystore" - $U "$MV" fsck "$A_STORE" --passphrase-file "$A_PF"
expect_fail "fsck with an unknown option" - $U "$MV" fsck "$A_STORE" "${KEYA[@]}" --bogus
expect_fail "fsck with a wrong passphrase" - $F "$MV" fsck "$A_STORE" --keystore "$A_KS" --passphrase-file "$T/wrong"
expect_fail "compact --ratio out of range" - $U "$MV" compact "$A_STORE" --ratio 7
expect_fail "compact of an unmounted store without a key" - $U "$MV" compact "$A_STORE"
expect_fail "compact of a missing store" - $F "$MV" compact "$T/no-store"
expect_fail "snapshot without DEST" - $U "$MV" snapshot "$A_STORE"
expect_fail "snapshot of a missing store" - $F "$MV" snapshot "$T/no-store" "$T/snap-dest"
rm -rf "$T/snap-dest"
expect_fail "key without a subcommand" - $U "$MV" key
expect_fail "key list with an unknown option" - $U "$MV" key list "$A_STORE" --keystore "$A_KS" --bogus
expect_fail "key add without NEW-KEY-OPTIONS" - $U "$MV" key add "$A_STORE" "${KEYA[@]}"
expect_fail "key list of a missing store" - $F "$MV" key list "$T/no-store" --keystore "$A_KS"
expect_fail "key add with a wrong passphrase" - $F "$MV" key add "$A_STORE" --keystore "$A_KS" \
	--passphrase-file "$T/wrong" --new-passphrase-file "$T/wrong"
expect_fail "audit without DIR" - $U "$MV" audit "${KEYA[@]}"
expect_fail "audit verify with a filter" - $U "$MV" audit verify "$A_KS" "${KEYA[@]}" --path /x
expect_fail "audit of a directory without a trail" - $F "$MV" audit "$T/empty-dir" "${KEYA[@]}"

# damage found: status 3 (fsck names every damaged file, so more than one
# line on stderr is fine here)
B_AUD=$(ls -d "$B_KS"/audit/*/ 2>/dev/null | head -n 1)
if [ -n "$B_AUD" ]; then
	rm -rf "$T/aud-tamper" && cp -a "$B_AUD" "$T/aud-tamper"
	f=$(ls "$T/aud-tamper"/audit-* | head -n 1)
	size=$(stat -c %s "$f")
	printf '\x55' | dd of="$f" bs=1 seek=$((size - 20)) conv=notrunc status=none
	expect_fail "audit verify of an altered trail" - $EX_DAMAGE \
		"$MV" audit verify "$T/aud-tamper" --keystore "$B_KS" --passphrase-file "$B_PF"
else
	not_ok "vault b's mount left an access trail" "$(ls -R "$B_KS" 2>&1 | head)"
fi
rm -rf "$T/b-copy" && cp -a "$B_STORE" "$T/b-copy"
pack=$(find "$T/b-copy/packs" -name '*.pack' | head -n 1)
if [ -n "$pack" ]; then
	size=$(stat -c %s "$pack")
	printf '\x55' | dd of="$pack" bs=1 seek=$((size / 2)) conv=notrunc status=none
	timeout 60 "$MV" fsck "$T/b-copy" --keystore "$B_KS" --passphrase-file "$B_PF" >/dev/null 2>"$T/err"
	rc=$?
	if [ $rc -eq $EX_DAMAGE ]; then ok "fsck of a damaged store: status 3"
	else not_ok "fsck of a damaged store: status 3" "status $rc" "$(head -n 5 "$T/err")"; fi
else
	not_ok "vault b has a pack to damage" "$(find "$T/b-copy" | head)"
fi
rm -rf "$T/b-copy" "$T/aud-tamper"

# --- help: status 0, usage on stdout, nothing on stderr
for c in "" init mount umount status info fsck compact snapshot key "key list" "key add" \
	 "key remove" "key rewrap" audit "audit verify"; do
	out=$(timeout 30 "$MV" $c --help 2>"$T/err")
	rc=$?
	if [ $rc -eq 0 ] && [ -n "$out" ] && [ ! -s "$T/err" ]; then
		ok "medvault $c --help exits 0 and prints usage"
	else
		not_ok "medvault $c --help exits 0 and prints usage" "status $rc" "$(head -n 5 <<<"$out")" "$(cat "$T/err")"
	fi
done

# --- a daemon that dies while it starts: the waiting command still says
# why in one line.  The passphrase file is a FIFO nobody writes, so the
# forked daemon blocks in its open; it is then killed by a signal, as a
# crash in LMDB would end it (SIGKILL here: a sanitizer build catches
# SIGSEGV itself and exits instead of dying by the signal).
mkfifo "$T/stuck.fifo"
"$MV" mount "$A_STORE" "$A_MNT" --keystore "$A_KS" --passphrase-file "$T/stuck.fifo" \
	>"$T/stuck.out" 2>"$T/stuck.err" &
stuck_parent=$!
stuck_child=
# it can only block there (nobody opens the FIFO for writing); wchan, when
# the kernel shows it, says so early
for i in $(seq 100); do
	stuck_child=$(pgrep -P "$stuck_parent" | head -n 1)
	if [ -n "$stuck_child" ]; then
		grep -q wait_for_partner "/proc/$stuck_child/wchan" 2>/dev/null && break
		[ "$i" -ge 20 ] && break
	fi
	sleep 0.1
done
if [ -n "$stuck_child" ]; then
	kill -KILL "$stuck_child"
	wait "$stuck_parent"
	rc=$?
	if [ "$rc" = "$EX_FAILURE" ] && [ "$(wc -l <"$T/stuck.err")" = 1 ] &&
	   grep -q 'died while starting (signal 9' "$T/stuck.err"; then
		ok "a daemon killed while starting: status 1 and one line naming the signal"
	else
		not_ok "a daemon killed while starting: status 1 and one line naming the signal" \
			"status $rc" "$(cat "$T/stuck.err")"
	fi
else
	kill "$stuck_parent" 2>/dev/null
	wait "$stuck_parent" 2>/dev/null
	not_ok "a daemon killed while starting: the daemon never blocked on the FIFO"
fi
is_mounted "$A_MNT" && not_ok "nothing is mounted after the failed start" || ok "nothing is mounted after the failed start"

# --- after all that, the vaults are intact
check "info of a good store exits 0" mv_run info "$A_STORE"
if mv_mount "$A_STORE" "$A_MNT" "$A_KS" "$A_PF"; then
	ok "vault a still mounts with the right key"
	check "umount vault a" mv_umount "$A_MNT"
else
	not_ok "vault a still mounts with the right key"
fi
summary
