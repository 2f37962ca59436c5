#!/usr/bin/env bash
# t_91_audit_token: the trail anchored beyond the key holders.  On a vault
# unlocked through a SoftHSM2 token, checkpoints are sealed by a key on the
# token, so someone holding only the recovery passphrase who cuts the trail
# and reseals its checkpoint with the MK-derived key (what the old format
# accepted) is caught by `audit verify` with the token, and by the next
# mount; every checkpoint's count and chain head are exported (syslog, and
# --audit-export here), so putting back an older, authentic log and
# checkpoint is caught against those lines; retention refuses a planted
# file header and deletes nothing; a passphrase-only vault still verifies.
. "$(dirname "$0")/lib.sh"

need_mv
need_tool audit_forge
HSM=$T/hsm
mv_hsm_setup "$HSM"
P11=(--pkcs11-module "$SO" --pkcs11-token "$TOK" --pin-file "$PIN")
trap mv_cleanup EXIT

mv_vault_new v
AUD=$T/trail EXP=$T/exported.log
check "init through the token" mv_run init "$STORE" --keystore "$KS" "${P11[@]}"
check "key add: a recovery passphrase slot" mv_run key add "$STORE" --keystore "$KS" "${P11[@]}" --new-passphrase-file "$PF"

p11_mount() {
	mv_run mount "$STORE" "$MNT" --keystore "$KS" "${P11[@]}" --audit-dir "$AUD" --audit-export "$EXP" "$@" 2>"$T/mount.err"
	local rc=$?
	is_mounted "$MNT" && mv_track "$MNT"
	[ $rc -eq 0 ] || { cat "$T/mount.err" >&2; return $rc; }
}
verify_tok() { mv_run audit verify "$AUD" --keystore "$KS" "${P11[@]}" "$@"; }
verify_pw() { mv_run audit verify "$AUD" --keystore "$KS" --passphrase-file "$PF" "$@"; }
session() { # N files opened in one mount
	p11_mount || return 1
	for ((i = 0; i < $1; i++)); do echo "record $i" >"$MNT/f$RANDOM$i"; done
	cat "$MNT"/f* >/dev/null
	mv_umount "$MNT"
}

check "mount through the token, with --audit-export" session 3
if pkcs11-tool --module "$SO" --login --pin "$(head -n 1 "$PIN")" --list-objects --type secrkey 2>/dev/null |
	grep -q "label: *medvault-audit-"; then
	ok "the mount made the trail's key on the token"
else
	not_ok "the mount made the trail's key on the token"
fi
if grep -q "audit checkpoint: volume=[0-9a-f]\{32\} records=[0-9]* head=[0-9a-f]\{64\} .*sealed=token" "$EXP"; then
	ok "each checkpoint's count and head are exported ($(wc -l <"$EXP") lines)"
else
	not_ok "each checkpoint's count and head are exported" "$(cat "$EXP")"
fi
out=$(verify_tok --expect-log "$EXP" 2>&1)
if [ $? -eq 0 ] && grep -q "^token: the checkpoint is sealed by key 'medvault-audit-" <<<"$out" &&
	grep -q "^exported: the chain goes through all" <<<"$out"; then
	ok "verify with the token checks the token's seal and the exported lines"
else
	not_ok "verify with the token checks the token's seal and the exported lines" "$out"
fi
out=$(verify_pw 2>&1)
if [ $? -eq 0 ] && grep -q "^token: NOT checked" <<<"$out" && grep -q "^exported: NOT checked" <<<"$out"; then
	ok "verify with the passphrase passes and says what it did not check"
else
	not_ok "verify with the passphrase passes and says what it did not check" "$out"
fi
last=$(tail -n 1 "$EXP")
cnt=$(sed -E 's/.* records=([0-9]+) .*/\1/' <<<"$last") head=$(sed -E 's/.* head=([0-9a-f]+) .*/\1/' <<<"$last")
check "--expect-count/--expect-head of the last line" verify_tok --expect-count "$cnt" --expect-head "$head"
bad=$(printf '%064d' 0)
check_fails "--expect-head with another head fails" verify_tok --expect-count "$cnt" --expect-head "$bad"

# ---- rollback: an older, authentic log and checkpoint put back
cp -a "$AUD" "$T/old-trail"
check "a second session" session 4
rm -rf "$AUD" && cp -a "$T/old-trail" "$AUD"
check "the older trail alone verifies (it is authentic)" verify_tok
out=$(verify_tok --expect-log "$EXP" 2>&1)
rc=$?
if [ $rc -eq 3 ] && grep -q "an exported checkpoint counts" <<<"$out"; then
	ok "the put-back trail is caught against the exported lines (exit 3)"
else
	not_ok "the put-back trail is caught against the exported lines (exit 3)" "status $rc" "$out"
fi
check "mount again (the trail goes on from the put-back copy)" session 1
out=$(verify_tok --expect-log "$EXP" 2>&1)
if [ $? -eq 3 ] && grep -q "differs from the exported one" <<<"$out"; then
	ok "a trail continued after the put-back still fails against the exported lines"
else
	not_ok "a trail continued after the put-back still fails against the exported lines" "$out"
fi
rm -rf "$AUD" "$EXP"

# ---- a passphrase holder rewrites the trail
check "a fresh trail" session 5
total=$(sed -nE 's/.* records=([0-9]+) .*/\1/p' "$EXP" | tail -n 1)
cp -a "$AUD" "$T/good-trail"
check "forge: cut the trail to 3 records, reseal with the MK-derived key" \
	"$TOOLS/audit_forge" "$AUD" "$KS" "$PF" 3
check "the forged trail passes a passphrase-only verify (what MK alone cannot tell)" verify_pw
out=$(verify_tok 2>&1)
if [ $? -eq 3 ] && grep -q "sealed by the master key only" <<<"$out"; then
	ok "verify with the token detects the forged checkpoint"
else
	not_ok "verify with the token detects the forged checkpoint" "$out"
fi
if p11_mount 2>/dev/null; then
	not_ok "a mount with the token refuses the forged trail"
	mv_umount "$MNT"
elif grep -q "rewritten by a passphrase holder" "$T/mount.err"; then
	ok "a mount with the token refuses the forged trail"
else
	not_ok "a mount with the token refuses the forged trail" "$(cat "$T/mount.err")"
fi
rm -rf "$AUD" && cp -a "$T/good-trail" "$AUD"
check "forge: a made-up token seal" "$TOOLS/audit_forge" "$AUD" "$KS" "$PF" 3 fake-token
out=$(verify_tok 2>&1)
if [ $? -eq 3 ] && grep -q "token seal does not verify" <<<"$out"; then
	ok "verify with the token detects a made-up token seal"
else
	not_ok "verify with the token detects a made-up token seal" "$out"
fi
if p11_mount 2>/dev/null; then
	not_ok "a mount with the token refuses a made-up token seal"
	mv_umount "$MNT"
elif grep -q "token seal does not verify" "$T/mount.err"; then
	ok "a mount with the token refuses a made-up token seal"
else
	not_ok "a mount with the token refuses a made-up token seal" "$(cat "$T/mount.err")"
fi

# ---- a mount with the recovery passphrase, then with the token again
rm -rf "$AUD" && cp -a "$T/good-trail" "$AUD"
mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" --audit-dir "$AUD" 2>"$T/mount.err" &&
	mv_track "$MNT" && echo x >"$MNT/by-passphrase" && mv_umount "$MNT"
if [ -f "$AUD/checkpoint.token" ] && [ ! -e "$MNT/by-passphrase" ]; then
	ok "a passphrase mount keeps the token-sealed checkpoint aside"
else
	not_ok "a passphrase mount keeps the token-sealed checkpoint aside" "$(cat "$T/mount.err"; ls "$AUD")"
fi
out=$(verify_tok 2>&1)
if [ $? -eq 0 ] && grep -q "only by the master key" <<<"$out"; then
	ok "verify says which records only the master key covers"
else
	not_ok "verify says which records only the master key covers" "$out"
fi
check "the token mounts again after a passphrase mount" session 1
out=$(verify_tok 2>&1)
if [ $? -eq 0 ] && [ ! -e "$AUD/checkpoint.token" ] && grep -q "^token: the checkpoint is sealed" <<<"$out"; then
	ok "and its checkpoint is sealed by the token again"
else
	not_ok "and its checkpoint is sealed by the token again" "$out"
fi

# ---- a key with the trail's label that could have been read out is refused
mv_vault_new w
check "init another vault through the token" mv_run init "$STORE" --keystore "$KS" "${P11[@]}"
uuid=$(basename "$(ls "$KS"/*.keys)" .keys)
pkcs11-tool --module "$SO" --login --pin "$(head -n 1 "$PIN")" --keygen --key-type GENERIC:32 \
	--label "medvault-audit-$uuid" >/dev/null 2>&1 || bail "make a non-sensitive key on the token"
AUD=$T/trail-w
if p11_mount 2>/dev/null; then
	not_ok "a non-sensitive key with the trail's label is refused"
	mv_umount "$MNT"
elif grep -q "CKA_SENSITIVE is not true" "$T/mount.err"; then
	ok "a non-sensitive key with the trail's label is refused ($(cat "$T/mount.err"))"
else
	not_ok "a non-sensitive key with the trail's label is refused" "$(cat "$T/mount.err")"
fi

# ---- a passphrase-only vault keeps working
mv_vault_new p
check "a passphrase-only vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" --audit-export "$T/p-export.log" || bail "mount the passphrase vault"
echo y >"$MNT/y" && cat "$MNT/y" >/dev/null
mv_umount "$MNT"
out=$(mv_run audit verify "$KS" --keystore "$KS" --passphrase-file "$PF" --expect-log "$T/p-export.log" 2>&1)
if [ $? -eq 0 ] && grep -q "^exported: the chain goes through all" <<<"$out" &&
	grep -q "^token: none: the keystore has no PKCS#11 slot" <<<"$out"; then
	ok "passphrase-only: verify passes, against the exported lines too"
else
	not_ok "passphrase-only: verify passes, against the exported lines too" "$out"
fi

summary
