#!/usr/bin/env bash
# t_47_privsep: a root mount gives up root once mounted.  The process that
# opened the store (LMDB included) and serves FUSE runs as the service
# account, with no capabilities and no_new_privs; a separate root part,
# which holds none of the store's files, keeps the PKCS#11 session, the
# anchor in the root-owned keystore and the unmount.  Checked: ids and
# capabilities in /proc, who owns the store, the trail and the keystore
# (an old root-owned store handed over at mount), an HSM vault whose trail
# is token-sealed and whose anchor's token copy is written after the drop,
# kill -9 of either process (no dead mount left when the server dies; the
# server stops when the root part dies), SIGTERM to either, umount,
# status, statfs, fsync below a directory only root can search, a
# snapshot on read-only media (refused unless already the account's), the
# trail's process names with hidepid on /proc (hidden without gid=, named
# with gid= of the service account's group), and a missing service
# account refused with one line.
. "$(dirname "$0")/lib.sh"

need_mv
[ "$(id -u)" = 0 ] || bail "root" "privilege separation needs a root mount"
SVC=medvault
id -u "$SVC" >/dev/null 2>&1 || bail "service account $SVC" "missing: run scripts/install-deps.sh"
SUID=$(id -u "$SVC") SGID=$(id -g "$SVC")

# server_pid MNT: the pid `medvault status` names (the serving process)
server_pid() { mv_run status "$1" 2>/dev/null | awk '/^daemon:/ { print $3 }' | tr -d ,; }
# root_part_of PID: its child, the root part
root_part_of() { pgrep -P "$1" | head -n 1; }
# field PID KEY: a line of /proc/PID/status, its values joined by blanks
field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }
wait_unmounted() {
	local i
	for ((i = 0; i < 100; i++)); do is_mounted "$1" || return 0; sleep 0.1; done
	return 1
}
wait_dead() {
	local i
	for ((i = 0; i < 100; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}

mv_vault_new v
check "init" mv_init "$STORE" "$KS" "$PF"
check "mount as root" mv_mount "$STORE" "$MNT" "$KS" "$PF"
S=$(server_pid "$MNT")
if [ -n "$S" ] && [ -r "/proc/$S/status" ]; then
	ok "medvault status names the serving process ($S)"
else
	bail "medvault status names the serving process" "$(mv_run status "$MNT" 2>&1)"
fi
is "$(field "$S" Uid)" "$SUID $SUID $SUID $SUID" "the server's uids are all $SVC's"
is "$(field "$S" Gid)" "$SGID $SGID $SGID $SGID" "the server's gids are all $SVC's"
is "$(field "$S" Groups)" "" "the server has no supplementary groups"
is "$(field "$S" CapEff)" 0000000000000000 "the server's CapEff is 0"
is "$(field "$S" CapPrm)" 0000000000000000 "the server's CapPrm is 0"
is "$(field "$S" NoNewPrivs)" 1 "the server has no_new_privs"
bad=""
for t in /proc/"$S"/task/*; do
	[ "$(awk '$1 == "CapEff:" { print $2 }' "$t/status" 2>/dev/null)" = 0000000000000000 ] || bad="$bad ${t##*/}"
done
is "$bad" "" "every thread of the server has CapEff 0"
if ls -l /proc/"$S"/fd 2>/dev/null | grep -q "$STORE/index/data.mdb"; then
	ok "the server is the process that has the store's LMDB open"
else
	not_ok "the server is the process that has the store's LMDB open" "$(ls -l /proc/"$S"/fd)"
fi
R=$(root_part_of "$S")
if [ -n "$R" ] && [ "$R" != "$S" ] && [ "$(field "$R" Uid)" = "0 0 0 0" ]; then
	ok "a separate root part ($R, $(cat /proc/"$R"/comm))"
else
	not_ok "a separate root part" "children of $S: $(pgrep -P "$S" | tr '\n' ' ')"
fi
if ls -l /proc/"$R"/fd 2>/dev/null | grep -q "$STORE"; then
	not_ok "the root part holds nothing of the store" "$(ls -l /proc/"$R"/fd)"
else
	ok "the root part holds nothing of the store"
fi
rs=$(field "$R" VmRSS | awk '{ print $1 }') ss=$(field "$S" VmRSS | awk '{ print $1 }')
if [ -n "$rs" ] && [ -n "$ss" ] && [ "$rs" -lt "$ss" ]; then
	ok "the root part is small (${rs} kB resident, the server ${ss} kB)"
else
	not_ok "the root part is small" "root part ${rs:-?} kB, server ${ss:-?} kB"
fi

# fsync makes the server sync packs and their directories: through
# descriptors, since the service account cannot walk $T (root's, 0700)
mkdir "$MNT/d" && head -c 300000 /dev/urandom | dd of="$MNT/d/img" conv=fsync status=none
is "$?" 0 "fsync after the drop, the store below a directory only root can search"
sum=$(sha256sum <"$MNT/d/img")
is "$(stat -c %U "$MNT/d/img")" root "files keep their owner inside the filesystem (root wrote it)"
if timeout 10 stat -f "$MNT" >/dev/null; then ok "statfs answers after the drop"; else not_ok "statfs answers after the drop"; fi
check "medvault status works for root" mv_run status "$MNT"
# root's snapshot of the mounted store makes its lock file the account's:
# compaction (the server) must be able to take it
check "snapshot of the mounted store" mv_run snapshot "$STORE" "$T/snap1"
sleep 3	# a checkpoint of the trail, written as the service account
others=$(find "$STORE" ! -user "$SVC" -printf '%p %u\n' | head -n 5)
is "$others" "" "everything in the store is $SVC's"
AUD=$(ls -d "$KS"/audit/*/ | head -n 1)
is "$(find "$AUD" ! -user "$SVC" | head -n 3)" "" "the access trail is $SVC's"
is "$(stat -c '%U %a' "$KS")" "root 700" "the keystore directory stays root's, 0700"
is "$(find "$KS" -maxdepth 1 -type f ! -user root | head -n 3)" "" "the keystore and anchor files stay root's"

check "umount" mv_run umount "$MNT"
if ! is_mounted "$MNT" && wait_dead "$S" && wait_dead "$R"; then
	ok "umount: both processes end, nothing mounted"
else
	not_ok "umount: both processes end, nothing mounted"
fi
is "$(ls /run/medvault/ 2>/dev/null | grep -c "$(basename "$AUD")")" 0 "the control socket is removed"
check "audit verify after the drop" mv_run audit verify "$AUD" --keystore "$KS" --passphrase-file "$PF"
check "info as root on the $SVC-owned store" mv_run info "$STORE" --keystore "$KS"
check "fsck as root on the $SVC-owned store" mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"

# a store of an older build: everything root's
chown -R root:root "$STORE" "$AUD"
check "a root-owned store mounts" mv_mount "$STORE" "$MNT" "$KS" "$PF"
is "$(find "$STORE" "$AUD" ! -user "$SVC" | head -n 3)" "" "and is handed over to $SVC at mount"
is "$(sha256sum <"$MNT/d/img")" "$sum" "its data reads back"

# ---------------------------------------------------------------- crashes

S=$(server_pid "$MNT") R=$(root_part_of "$S")
kill -9 "$S"
if wait_unmounted "$MNT" && wait_dead "$R"; then
	ok "kill -9 of the server: the root part unmounts and exits"
else
	not_ok "kill -9 of the server: the root part unmounts and exits" "$(grep "$MNT" /proc/mounts)"
fi
check "the next mount works" mv_mount "$STORE" "$MNT" "$KS" "$PF"
is "$(sha256sum <"$MNT/d/img")" "$sum" "the synced file survived"

S=$(server_pid "$MNT") R=$(root_part_of "$S")
kill -9 "$R"
if wait_dead "$S"; then
	ok "kill -9 of the root part: the server stops"
else
	not_ok "kill -9 of the root part: the server stops"
fi
# the server cannot unmount: the dead mount stays until umount, as a
# killed FUSE daemon's does
umount -l "$MNT" 2>/dev/null
check "the next mount works" mv_mount "$STORE" "$MNT" "$KS" "$PF"
is "$(sha256sum <"$MNT/d/img")" "$sum" "the data is intact"

S=$(server_pid "$MNT") R=$(root_part_of "$S")
kill -TERM "$S"
if wait_unmounted "$MNT" && wait_dead "$S" && wait_dead "$R"; then
	ok "SIGTERM to the server: unmounted, both processes end"
else
	not_ok "SIGTERM to the server: unmounted, both processes end"
fi
check "mount again" mv_mount "$STORE" "$MNT" "$KS" "$PF"
S=$(server_pid "$MNT") R=$(root_part_of "$S")
kill -TERM "$R"
if wait_unmounted "$MNT" && wait_dead "$S" && wait_dead "$R"; then
	ok "SIGTERM to the root part: passed on, unmounted, both end"
else
	not_ok "SIGTERM to the root part: passed on, unmounted, both end"
fi
check "fsck after the crashes" mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"

# ---------------------------------------------------------------- accounts

out=$(mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" --user no-such-account-47 2>&1)
rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "useradd" <<<"$out" && ! is_mounted "$MNT"; then
	ok "a missing service account: refused with one line saying how to create it"
else
	not_ok "a missing service account: refused with one line saying how to create it" "status $rc" "$out"
fi

# ---------------------------------------------------------------- read-only media

# a snapshot on a read-only filesystem: it cannot be handed over, so a
# mount of it is refused with one line, unless it already is the account's
mkdir -p "$T/ro/store" "$T/ro/mnt"
check "snapshot" mv_run snapshot "$STORE" "$T/ro/snap"
if mount --bind -o ro "$T/ro/snap" "$T/ro/store"; then
	out=$(mv_run mount "$T/ro/store" "$T/ro/mnt" --keystore "$KS" --passphrase-file "$PF" --read-only 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "Read-only file system" <<<"$out" &&
		! is_mounted "$T/ro/mnt"; then
		ok "a root-owned snapshot on read-only media: refused with one line"
	else
		is_mounted "$T/ro/mnt" && mv_track "$T/ro/mnt"
		not_ok "a root-owned snapshot on read-only media: refused with one line" "status $rc" "$out"
	fi
	chown -R "$SVC:" "$T/ro/snap"
	if mv_run mount "$T/ro/store" "$T/ro/mnt" --keystore "$KS" --passphrase-file "$PF" --read-only; then
		mv_track "$T/ro/mnt"
		is "$(sha256sum <"$T/ro/mnt/d/img")" "$sum" "once it is the account's, it mounts read-only and reads back"
		mv_umount "$T/ro/mnt"
	else
		not_ok "once it is the account's, it mounts read-only and reads back"
	fi
	umount "$T/ro/store"
else
	not_ok "bind-mount the snapshot read-only"
fi

# ---------------------------------------------------------------- hidepid

# The trail's comm comes from /proc/PID/comm, read by the server as the
# service account: with hidepid it sees only its own processes, unless
# /proc is mounted with gid= naming its group (docs/AUDIT.md).  Each run
# is in a private mount namespace with its own /proc.
# hide_run OPTS NAME: mount with /proc hidepid=OPTS, cat a file as root
# with comm NAME, umount; prints the trail's comm for that open
hide_run() {
	cp /bin/cat "$T/$2"
	unshare -m --propagation private bash -c '
		mount -t proc -o "$1" proc /proc || exit 77
		"$MV" mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" || exit 1
		"$T/$2" "$MNT/d/img" >/dev/null
		"$MV" umount "$MNT"' _ "$1" "$2" || return $?
	mv_run audit "$AUD" --keystore "$KS" --passphrase-file "$PF" --op open-r --path /d/img |
		tail -n 1 | sed -n 's/.* comm="\([^"]*\)".*/\1/p'
}
AUD=$(ls -d "$KS"/audit/*/ | head -n 1)
export MV STORE MNT KS PF T
c=$(hide_run "hidepid=invisible,gid=$SGID" reader47a)
rc=$?
if [ $rc -eq 77 ]; then
	ok "hidepid: /proc cannot be mounted here # SKIP"
else
	is "$c" reader47a "hidepid with gid= of the service account's group: the trail names the reader"
	c=$(hide_run "hidepid=invisible" reader47b)
	is "$c" "?" "hidepid without it: the reader's name is hidden from the server (documented)"
fi

# ---------------------------------------------------------------- HSM

if command -v pkcs11-tool >/dev/null; then
	mv_hsm_setup "$T/hsm"
	P11=(--pkcs11-module "$SO" --pkcs11-token "$TOK" --pin-file "$PIN")
	mv_vault_new h
	EXP=$T/exported.log
	check "init through the token" mv_run init "$STORE" --keystore "$KS" "${P11[@]}"
	mv_run mount "$STORE" "$MNT" --keystore "$KS" "${P11[@]}" --audit-export "$EXP" 2>"$T/mount.err"
	rc=$?
	is_mounted "$MNT" && mv_track "$MNT"
	is "$rc $(head -n 1 "$T/mount.err")" "0 " "an HSM vault mounts, nothing said"
	S=$(server_pid "$MNT")
	is "$(field "$S" CapEff) $(field "$S" Uid)" "0000000000000000 $SUID $SUID $SUID $SUID" "its server runs as $SVC without capabilities"
	before=$(grep -c "sealed=token" "$EXP" 2>/dev/null)
	for i in 1 2 3; do echo "study $i" >"$MNT/s$i"; done
	sync -f "$MNT/s1"
	sleep 4
	after=$(grep -c "sealed=token" "$EXP" 2>/dev/null)
	if [ "${after:-0}" -gt "${before:-0}" ]; then
		ok "checkpoints after the drop are sealed by the token ($before -> $after)"
	else
		not_ok "checkpoints after the drop are sealed by the token" "$(tail -n 3 "$EXP" 2>/dev/null)"
	fi
	check "umount" mv_run umount "$MNT"
	AUD=$(ls -d "$KS"/audit/*/ | head -n 1)
	out=$(mv_run audit verify "$AUD" --keystore "$KS" "${P11[@]}" 2>&1)
	if [ $? -eq 0 ] && grep -q "^token: the checkpoint is sealed by key" <<<"$out"; then
		ok "audit verify with the token passes"
	else
		not_ok "audit verify with the token passes" "$out"
	fi
	uuid=$(basename "$AUD")
	pkcs11-tool --module "$SO" --login --pin "$(head -n 1 "$PIN")" --read-object --type data \
		--label "medvault-anchor-$uuid" -o "$T/anchor.tok" >/dev/null 2>&1
	if [ -s "$T/anchor.tok" ] && cmp -s "$T/anchor.tok" "$KS/$uuid.anchor"; then
		ok "the anchor's token copy equals the anchor file written at umount, after the drop"
	else
		not_ok "the anchor's token copy equals the anchor file written at umount, after the drop" \
			"$(od -An -tx1 "$T/anchor.tok" 2>/dev/null | head -n 2)" "$(od -An -tx1 "$KS/$uuid.anchor" | head -n 2)"
	fi
	# the anchor the root part wrote is the clean one the next mount wants
	p11_ok() { mv_run mount "$STORE" "$MNT" --keystore "$KS" "${P11[@]}" && mv_track "$MNT"; }
	check "the HSM vault mounts again" p11_ok
	is "$(cat "$MNT/s2")" "study 2" "its data reads back"
	check "umount" mv_run umount "$MNT"
else
	not_ok "pkcs11-tool" "missing (package opensc; run scripts/install-deps.sh)"
fi

summary
