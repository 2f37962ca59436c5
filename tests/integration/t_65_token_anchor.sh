#!/usr/bin/env bash
# t_65_token_anchor: a vault unlocked through a PKCS#11 token keeps a copy
# of its rollback anchor on the token (a private data object, MACed like
# the file).  Someone who restores an old copy of the store *and* of the
# keystore directory (so the anchor file agrees with the old store) is
# still refused: the token's copy is newer, and writing it needs the PIN.
# Also: the copy is there after init and moves with the file; a tampered
# copy on the token refuses the mount with one line; a passphrase mount
# of the same vault (no token named) still works from the file.
. "$(dirname "$0")/lib.sh"

need_mv
command -v pkcs11-tool >/dev/null || bail "pkcs11-tool missing (package opensc; run scripts/install-deps.sh)"

HSM=$T/hsm
mv_hsm_setup "$HSM"
P11=(--pkcs11-module "$SO" --pkcs11-token "$TOK" --pin-file "$PIN")

mv_vault_new v
out=$(mv_run init "$STORE" --keystore "$KS" "${P11[@]}" 2>&1) || bail "init: $out"
UUID=$(awk -F= '$1 == "uuid" { print $2 }' "$STORE/medvault.conf")
LABEL=medvault-anchor-$UUID

objects() { pkcs11-tool --module "$SO" --token-label "$TOK" --login --pin "$(cat "$PIN")" -O --type data 2>/dev/null; }
if objects | grep -q "$LABEL"; then ok "init left the anchor's copy on the token ($LABEL)"
else not_ok "init left the anchor's copy on the token" "$(objects | head -n 20)"; fi

p11_mount() { mv_run mount "$STORE" "$MNT" --keystore "$KS" "${P11[@]}" "$@" 2>"$T/mount.err"; }

p11_mount || bail "mount: $(cat "$T/mount.err")"
mv_track "$MNT"
echo "version 1" >"$MNT/report.txt"
mv_umount "$MNT" || not_ok "umount"
cp -a "$STORE" "$T/store.old"
cp -a "$KS" "$T/ks.old"
p11_mount || bail "remount: $(cat "$T/mount.err")"
mv_track "$MNT"
echo "version 2 (corrected)" >"$MNT/report.txt"
for i in $(seq 1 20); do echo "$i" >"$MNT/more$i"; done
mv_umount "$MNT" || not_ok "umount 2"

# the attack: store and keystore directory both from the older copy
rm -rf "$STORE" "$KS"
cp -a "$T/store.old" "$STORE"
cp -a "$T/ks.old" "$KS"
before=$(tree_state "$STORE")
if p11_mount; then
	mv_track "$MNT"
	not_ok "store and keystore rolled back together: refused by the token's copy" \
		"mounted; report.txt says: $(cat "$MNT/report.txt" 2>&1)"
	mv_umount "$MNT"
else
	msg=$(cat "$T/mount.err")
	if [ "$(wc -l <<<"$msg")" -eq 1 ] && grep -q "behind" <<<"$msg" && grep -q "token" <<<"$msg"; then
		ok "store and keystore rolled back together: refused by the token's copy: $msg"
	else
		not_ok "refused with one line saying how far behind" "$msg"
	fi
fi
is "$(tree_state "$STORE")" "$before" "the refused store is unchanged"

# read-only inspection works, and an explicit acceptance restores it
if p11_mount --read-only; then
	mv_track "$MNT"
	is "$(cat "$MNT/report.txt")" "version 1" "a read-only mount serves the old copy"
	mv_umount "$MNT"
else
	not_ok "a read-only mount of the old copy" "$(cat "$T/mount.err")"
fi
if p11_mount --accept-rollback; then
	mv_track "$MNT"
	ok "--accept-rollback restores the old copy"
	mv_umount "$MNT"
	if p11_mount; then mv_track "$MNT"; ok "then it mounts plainly (file and token moved back)"; mv_umount "$MNT"
	else not_ok "a plain mount after the accepted rollback" "$(cat "$T/mount.err")"; fi
else
	not_ok "--accept-rollback restores the old copy" "$(cat "$T/mount.err")"
fi

# a tampered copy on the token: one line, nothing mounted
val=$(pkcs11-tool --module "$SO" --token-label "$TOK" --login --pin "$(cat "$PIN")" \
	--read-object --type data --label "$LABEL" 2>/dev/null | xxd -p | tr -d '\n')
if [ ${#val} -eq 248 ]; then
	bad=${val:0:100}$(printf '%02x' $(( (0x${val:100:2} ^ 1) )))${val:102}
	printf '%s' "$bad" | xxd -r -p >"$T/bad.anchor"
	pkcs11-tool --module "$SO" --token-label "$TOK" --login --pin "$(cat "$PIN")" \
		--delete-object --type data --label "$LABEL" >/dev/null 2>&1
	pkcs11-tool --module "$SO" --token-label "$TOK" --login --pin "$(cat "$PIN")" \
		--write-object "$T/bad.anchor" --type data --label "$LABEL" --private >/dev/null 2>&1
	rm -f "$KS/$UUID.anchor"	# only the token's copy remains
	if p11_mount; then
		mv_track "$MNT"
		not_ok "a tampered copy on the token (and no file) is refused" "mounted"
		mv_umount "$MNT"
	else
		msg=$(cat "$T/mount.err")
		[ "$(wc -l <<<"$msg")" -eq 1 ] && grep -q "token" <<<"$msg" &&
			ok "a tampered copy on the token (and no file) is refused, naming the token: $msg" ||
			not_ok "refused with one line naming the token's copy" "$msg"
	fi
else
	not_ok "read the anchor's copy from the token (124 bytes)" "got ${#val} hex digits"
fi

summary
