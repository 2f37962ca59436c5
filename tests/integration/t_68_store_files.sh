#!/usr/bin/env bash
# t_68_store_files: nothing planted in STORE or KSDIR is followed or waited
# on.  A symbolic link (to a file of ours that must stay untouched) and a
# FIFO are planted in turn at every file the daemon and the commands open:
# medvault.conf, medvault.lock, index/data.mdb, index/lock.mdb, a pack, the
# keystore, the anchor, the access trail's checkpoint and log file.  Each
# command refuses with one line, within its timeout, and the link's target
# keeps its bytes.  A store or keystore directory writable by group or
# others, or owned by another account, is refused with one line too; so is
# a file of the store owned by another account.
. "$(dirname "$0")/lib.sh"

need_mv
CMD_T=20	# seconds; a command that takes longer has hung on a FIFO

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
head -c 200000 /dev/urandom >"$T/data"
cp "$T/data" "$MNT/file"
mv_umount "$MNT" || bail "unmount the vault"
UUID=$(basename "$(ls "$KS"/*.keys)" .keys)
AUD=$KS/audit/$UUID
PACK=$(find "$STORE/packs" -name '*.pack' | head -n 1)
LOG=$(ls "$AUD"/audit-*.log | head -n 1)
[ -n "$PACK" ] && [ -n "$LOG" ] && [ -f "$AUD/checkpoint" ] || bail "the store has a pack and a trail"

# the file a planted link points at: root's, so following it would be a
# real write through the link
TARGET=$T/victim
printf 'precious\n' >"$TARGET"
TSUM=$(sha256sum <"$TARGET")

# run_cmd NAME: one command against the vault; sets OUT and RC
run_cmd() {
	case $1 in
	mount) OUT=$(timeout -k 5 $CMD_T "$MV" mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" 2>&1 >/dev/null) ;;
	info) OUT=$(timeout -k 5 $CMD_T "$MV" info "$STORE" --keystore "$KS" 2>&1 >/dev/null) ;;
	fsck) OUT=$(timeout -k 5 $CMD_T "$MV" fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1 >/dev/null) ;;
	snapshot) rm -rf "$T/snap"
		OUT=$(timeout -k 5 $CMD_T "$MV" snapshot "$STORE" "$T/snap" 2>&1 >/dev/null) ;;
	esac
	RC=$?
	if is_mounted "$MNT"; then
		mv_track "$MNT"
		mv_umount "$MNT" >/dev/null 2>&1
	fi
}

# planted KIND PATH CMD...: PATH replaced by a link to TARGET or a FIFO;
# each CMD must fail, quickly, saying so in one line
planted() {
	local kind=$1 path=$2 c what
	shift 2
	what=${path#$T/vault/}
	mv "$path" "$path.orig" || { not_ok "move $what aside"; return; }
	if [ "$kind" = link ]; then ln -s "$TARGET" "$path"; else mkfifo "$path"; fi
	for c in "$@"; do
		run_cmd "$c"
		if [ $RC -eq 124 ] || [ $RC -eq 137 ]; then
			not_ok "$c with a $kind at $what: does not hang" "timed out after $CMD_T s"
		elif [ $RC -ne 0 ] && [ -n "$OUT" ] && [ "$(wc -l <<<"$OUT")" -eq 1 ]; then
			ok "$c with a $kind at $what: refused (exit $RC): $OUT"
		else
			not_ok "$c with a $kind at $what: refused with one line" "exit $RC" "$OUT"
		fi
	done
	is "$(sha256sum <"$TARGET")" "$TSUM" "a $kind at $what: the link's target is untouched"
	[ "$kind" = fifo ] && [ ! -p "$path" ] && not_ok "the FIFO at $what is still a FIFO" "$(ls -l "$path")"
	rm -f "$path"
	mv "$path.orig" "$path"
}

for kind in link fifo; do
	planted $kind "$STORE/medvault.conf" info mount fsck snapshot
	planted $kind "$STORE/medvault.lock" info mount fsck
	planted $kind "$STORE/index/data.mdb" info mount fsck snapshot
	planted $kind "$STORE/index/lock.mdb" info mount fsck snapshot
	planted $kind "$KS/$UUID.keys" mount fsck
	planted $kind "$KS/$UUID.anchor" mount
	planted $kind "$AUD/checkpoint" mount
	planted $kind "$LOG" mount
	planted $kind "$PACK" fsck snapshot
done

# a planted pack reached through the mount: an I/O error, not a hang
ln -sf "$TARGET" "$PACK.new" && mv "$PACK" "$PACK.orig" && mv "$PACK.new" "$PACK"
if mv_mount "$STORE" "$MNT" "$KS" "$PF"; then
	timeout -k 5 $CMD_T cat "$MNT/file" >/dev/null 2>&1
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then ok "a file whose pack is a link reads as an error (exit $rc)"
	else not_ok "a file whose pack is a link reads as an error" "cat exit $rc"; fi
	mv_umount "$MNT"
else
	not_ok "mount with a link as a pack"
fi
rm -f "$PACK"
mv "$PACK.orig" "$PACK"
is "$(sha256sum <"$TARGET")" "$TSUM" "a link as a pack, read through the mount: its target is untouched"

# a stale temporary name is no trap: the card and the anchor are written
# through fresh unpredictable names, never through a link
ln -s "$TARGET" "$STORE/medvault.conf.tmp.$$"
ln -s "$TARGET" "$AUD/checkpoint.tmp"
mv_mount "$STORE" "$MNT" "$KS" "$PF" && ok "mount beside stale temporary links" || not_ok "mount beside stale temporary links"
echo more >"$MNT/file2" 2>/dev/null
mv_umount "$MNT"
is "$(sha256sum <"$TARGET")" "$TSUM" "stale temporary links: their target is untouched"
rm -f "$STORE/medvault.conf.tmp.$$" "$AUD/checkpoint.tmp"

# the control socket: whatever is planted at its name is replaced, never
# followed (root's run directory; removed again at unmount)
SOCK=/run/medvault/$UUID.sock
# (the run directory is the daemon's to make: the first mount above did)
if [ "$(id -u)" = 0 ] && [ -d /run/medvault ] && [ ! -e "$SOCK" ]; then
	ln -s "$TARGET" "$SOCK"
	mv_mount "$STORE" "$MNT" "$KS" "$PF" && ok "mount with a link at the control socket's name" ||
		not_ok "mount with a link at the control socket's name"
	if [ -S "$SOCK" ]; then ok "the link was replaced by the daemon's socket"
	else not_ok "the link was replaced by the daemon's socket" "$(ls -l "$SOCK")"; fi
	check "status answers through the socket" mv_run status "$MNT"
	mv_umount "$MNT"
	[ -L "$SOCK" ] && rm -f "$SOCK"
	is "$(sha256sum <"$TARGET")" "$TSUM" "a link at the control socket's name: its target is untouched"
fi

# ---- owners and modes
# refused PATH-DESCRIPTION WANT CMD...: each CMD fails, one line matching WANT
refused() {
	local what=$1 want=$2 c
	shift 2
	for c in "$@"; do
		run_cmd "$c"
		if [ $RC -ne 0 ] && [ "$(wc -l <<<"$OUT")" -eq 1 ] && grep -q -- "$want" <<<"$OUT"; then
			ok "$c with $what: refused: $OUT"
		else
			not_ok "$c with $what: refused with one line naming it" "exit $RC" "$OUT"
		fi
	done
}

before=$(tree_state "$STORE")
chmod g+w "$STORE"
refused "the store group-writable" "writable by its group" info mount fsck snapshot
chmod 0700 "$STORE"
chmod o+w "$STORE/index"
refused "the index directory writable by others" "writable by others" info mount fsck snapshot
chmod 0700 "$STORE/index"
chmod g+w "$KS"
refused "the keystore directory group-writable" "writable by.*group" mount fsck
chmod 0700 "$KS"
chown nobody "$STORE"
refused "the store owned by nobody" "owned by uid" info mount fsck snapshot
chown root "$STORE"
chown nobody "$KS"
refused "the keystore directory owned by nobody" "owned by uid" mount fsck
chown root "$KS"
for f in medvault.conf medvault.lock index/data.mdb index/lock.mdb; do
	chown nobody "$STORE/$f"
	refused "$f owned by nobody" "owned by uid" info mount fsck
	chown root "$STORE/$f"
done
chown nobody "$KS/$UUID.keys"
refused "the keystore owned by nobody" "owned by uid" mount
chown root "$KS/$UUID.keys"
is "$(tree_state "$STORE")" "$before" "the refused commands changed nothing in the store"

# init into an existing empty directory others may write to
mkdir -m 0777 "$T/open"
chmod 0777 "$T/open"
out=$(mv_init "$T/open" "$T/ks2" "$PF" 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "writable by others" <<<"$out"; then ok "init refuses a world-writable directory: $out"
else not_ok "init refuses a world-writable directory" "exit $rc" "$out"; fi

# and after all of it, the vault is whole
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount after the plants"
check "the file reads back after every plant was removed" cmp "$MNT/file" "$T/data"
mv_umount "$MNT"
check "fsck passes" mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"

summary
