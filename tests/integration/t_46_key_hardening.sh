#!/usr/bin/env bash
# t_46_key_hardening: the keystore's defences, through the real command line.
# An Argon2 cost edited in the keystore (its unkeyed checksum fixed, as
# anyone can) is refused in well under a second, with one line naming the
# parameter, before the passphrase is read; other edited fields never open.
# A keystore, keystore directory or passphrase file open to others is
# refused with one line (as ssh does) unless --insecure-perms; `key list`
# only warns.  Nothing is mounted by a refused command.
. "$(dirname "$0")/lib.sh"

need_mv
command -v python3 >/dev/null || bail "python3 is needed"

mv_vault_new
mv_init "$STORE" "$KS" "$PF" || bail "init"
ok "init"
KF=$(ls "$KS"/*.keys)
cp -p "$KF" "$T/keys.orig"

# refused CMD...: status 1, one line on stderr matching RE, nothing mounted
refused() {
	local name=$1 re=$2 out rc lines
	shift 2
	out=$("$@" 2>&1 >/dev/null)
	rc=$?
	lines=$(printf '%s\n' "$out" | grep -c .)
	if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -Eq -- "$re" <<<"$out" && ! is_mounted "$MNT"; then
		ok "$name: $out"
	else
		is_mounted "$MNT" && mv_track "$MNT"
		not_ok "$name" "status $rc, $lines lines: $out"
	fi
}

# edit_field OFFSET VALUE: a big-endian u64 at OFFSET, then fix the checksum
edit_field() {
	python3 - "$KF" "$1" "$2" <<'PY'
import hashlib, struct, sys
p, off, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = bytearray(open(p, 'rb').read())
b[off:off + 8] = struct.pack('>Q', v)
b[-32:] = hashlib.blake2b(bytes(b[:-32]), digest_size=32).digest()
open(p, 'wb').write(b)
PY
}

OPS=$((32 + 4 + 1 + 1 + 8 + 2 + 1)) MEM=$((OPS + 8))
MOUNT=("$MV" mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF")

edit_field $MEM $((4 << 30))
t0=$(date +%s%N)
refused "memlimit edited to 4 GiB" "slot 1: Argon2id memlimit 4096 MiB is over the cap" "${MOUNT[@]}"
ms=$((($(date +%s%N) - t0) / 1000000))
if [ $ms -lt 1000 ]; then ok "refused in $ms ms (no Argon2 run)"; else not_ok "refused quickly" "$ms ms"; fi
refused "before the passphrase is read" "memlimit" \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$T/no-such-file"
cp -p "$T/keys.orig" "$KF"
edit_field $OPS 100
refused "opslimit edited to 100" "slot 1: Argon2id opslimit 100 is outside" "${MOUNT[@]}"
cp -p "$T/keys.orig" "$KF"
edit_field 26 $(( (7 << 48) | 1 ))	# next slot id and slot count
refused "slot count edited" "malformed|corrupt" "${MOUNT[@]}"
cp -p "$T/keys.orig" "$KF"
edit_field $((MEM + 8)) 12345	# salt
refused "salt edited" "wrong passphrase" "${MOUNT[@]}"
cp -p "$T/keys.orig" "$KF"
edit_field 18 12345		# inside the uuid
refused "uuid edited" "another volume" "${MOUNT[@]}"
cp -p "$T/keys.orig" "$KF"

chmod 0644 "$PF"
refused "passphrase file 0644" "passphrase file .* is open to group or others \(mode 0644\).*--insecure-perms" "${MOUNT[@]}"
chmod 0600 "$PF"
chmod 0640 "$KF"
refused "keystore 0640" "keystore .* is open to group or others \(mode 0640\)" "${MOUNT[@]}"
if out=$(mv_run key list "$STORE" --keystore "$KS" 2>&1) && grep -q "warning: keystore" <<<"$out"; then
	ok "key list reads it with a warning"
else
	not_ok "key list reads it with a warning" "$out"
fi
if mv_mount "$STORE" "$MNT" "$KS" "$PF" --insecure-perms; then
	ok "--insecure-perms mounts it"
	echo hello >"$MNT/f" && [ "$(cat "$MNT/f")" = hello ] && ok "and it works" || not_ok "and it works"
	mv_umount "$MNT" || not_ok "umount"
else
	not_ok "--insecure-perms mounts it"
fi
chmod 0600 "$KF"
chmod 0777 "$KS"
refused "keystore directory 0777" "keystore directory .* is writable by group or others \(mode 0777\)" "${MOUNT[@]}"
refused "key add into it" "writable by (group or )?others" \
	"$MV" key add "$STORE" --keystore "$KS" --passphrase-file "$PF" --new-passphrase-file "$PF"
chmod 0755 "$KS"
if mv_mount "$STORE" "$MNT" "$KS" "$PF"; then
	ok "a keystore directory others may only read mounts"
	[ "$(cat "$MNT/f")" = hello ] && ok "data intact" || not_ok "data intact"
	mv_umount "$MNT" || not_ok "umount"
else
	not_ok "a keystore directory others may only read mounts"
fi
chmod 0700 "$KS"

# fstab: insecure-perms is passed on as the flag (mount.medvault -f: show, do not run)
out=$(MEDVAULT=$MV "$MV_ROOT/scripts/mount.medvault" -f /s /m -o keystore=/ks,passphrase-file=/pw,insecure-perms 2>&1)
if grep -q -- "--passphrase-file /pw --insecure-perms" <<<"$out"; then
	ok "fstab option insecure-perms becomes --insecure-perms"
else
	not_ok "fstab option insecure-perms becomes --insecure-perms" "$out"
fi

if [ -z "$(our_mounts)" ]; then ok "nothing left mounted"; else not_ok "nothing left mounted" "$(our_mounts)"; fi
summary
