#!/usr/bin/env bash
# t_45_hsm: a vault whose master key is sealed by a key on a SoftHSM2 token,
# end to end through the CLI: init, mount and remount through the HSM (with
# options and with a pkcs11: URI), key slot round trips (add a passphrase
# slot, rewrap to a new HSM key, remove, refuse to remove the last slot,
# list), every HSM and keystore failure (one line on stderr, non-zero exit,
# nothing mounted, store and keystore byte-identical), recovery through the
# passphrase slot once the HSM key is deleted, and no raw master key or PIN
# in any file of the store or the keystore.
. "$(dirname "$0")/lib.sh"

need_mv
need_tool mk_dump
need_tool memfind
command -v pkcs11-tool >/dev/null || bail "pkcs11-tool missing (package opensc; run scripts/install-deps.sh)"

HSM=$T/hsm
mv_hsm_setup "$HSM"
ok "SoftHSM2 token '$TOK' in $HSM"

mv_vault_new v
mkdir -p "$T/v/mnt2"
P11=(--pkcs11-module "$SO" --pkcs11-token "$TOK" --pin-file "$PIN")

# ---------------------------------------------------------------- helpers

# p11_mount MNT ARGS...: mount STORE on MNT with the key options in ARGS
p11_mount() {
	local mnt=$1 rc
	shift
	mv_run mount "$STORE" "$mnt" --keystore "$KS" "$@" 2>"$T/mount.err"
	rc=$?
	is_mounted "$mnt" && mv_track "$mnt"
	[ $rc -eq 0 ] || { cat "$T/mount.err" >&2; return $rc; }
	is_mounted "$mnt" || { echo "p11_mount: $mnt is not mounted" >&2; return 1; }
	timeout 10 stat "$mnt/." >/dev/null
}

# the reference files, and their digests
mkdir -p "$T/src/study-1234/series-1"
head -c 1048576 /dev/urandom >"$T/src/study-1234/series-1/img1.dcm"
head -c 70001 /dev/urandom >"$T/src/study-1234/series-1/img2.dcm"
printf 'patient report, not a secret\n' >"$T/src/study-1234/report.txt"
: >"$T/src/empty"
digests() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }
REF=$(digests "$T/src")

# same_files NAME MNT: the mounted tree holds exactly the reference files
same_files() {
	local got
	got=$(digests "$2" 2>&1)
	if [ "$got" = "$REF" ]; then ok "$1"; else not_ok "$1" "$(diff <(echo "$REF") <(echo "$got") | head -n 10)"; fi
}

# mount_cycle NAME ARGS...: mount with ARGS, compare the files, unmount
mount_cycle() {
	local name=$1
	shift
	if p11_mount "$MNT" "$@" 2>"$T/cycle.err"; then
		ok "$name: mounts"
		same_files "$name: files read back identical (sha256)" "$MNT"
		if mv_umount "$MNT"; then ok "$name: unmounts"; else not_ok "$name: unmounts"; fi
	else
		not_ok "$name: mounts" "$(cat "$T/cycle.err")"
	fi
}

ks_file() { ls "$KS"/*.keys 2>/dev/null | head -n 1; }
state() { tree_state "$STORE"; tree_state "$KS"; for d in "$@"; do tree_state "$d"; done; }

# expect_fail NAME PATTERN [EXTRA-DIR...] -- CMD...: CMD fails with one line
# on stderr matching PATTERN (grep -E), mounts nothing, starts no daemon, and
# leaves STORE, KS and each EXTRA-DIR byte-identical.
expect_fail() {
	local name=$1 pat=$2 extra=() before mounts rc lines
	shift 2
	while [ "$1" != -- ]; do extra+=("$1"); shift; done
	shift
	before=$(state "${extra[@]}")
	mounts=$(our_mounts)
	timeout --kill-after=10 "$MV_CMD_TIMEOUT" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	sleep 0.2	# a daemon forked by mistake has time to mount
	for m in "$MNT" "$T/v/mnt2"; do
		is_mounted "$m" && { mv_track "$m"; mv_umount "$m" >/dev/null 2>&1; }
	done
	if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then ok "$name: fails (status $rc)"; else not_ok "$name: fails" "status $rc"; fi
	lines=$(grep -c '' "$T/err")
	if [ "$lines" -eq 1 ] && grep -Eq -- "$pat" "$T/err"; then
		ok "$name: one line on stderr"
		echo "#   stderr: $(cat "$T/err")"
	else
		not_ok "$name: one line on stderr matching /$pat/" "got $lines lines:" "$(head -n 10 "$T/err")"
	fi
	if [ "$mounts" = "$(our_mounts)" ] && [ -z "$(daemon_pids "$MNT")" ] &&
	   [ "$before" = "$(state "${extra[@]}")" ]; then
		ok "$name: nothing mounted, store and keystore unchanged"
	else
		not_ok "$name: nothing mounted, store and keystore unchanged" \
			"mounts before: $mounts" "mounts after: $(our_mounts)" \
			"daemons: $(daemon_pids "$MNT")"
	fi
}

# slots: "ID KIND" per slot from `key list`
slots() { mv_run key list "$STORE" --keystore "$KS" 2>&1 | awk 'NR > 1 { print $1, $2 }' | tr '\n' ' '; }

# ---------------------------------------------------------------- init and mounts

if out=$(mv_run init "$STORE" --keystore "$KS" "${P11[@]}" 2>&1); then
	ok "init with --pkcs11-module/--pkcs11-token/--pin-file"
else
	bail "init with --pkcs11-module/--pkcs11-token/--pin-file" "$out"
fi
KSF=$(ks_file)
[ -n "$KSF" ] || bail "keystore file created in $KS"
if pkcs11-tool --module "$SO" --login --pin "$(head -n 1 "$PIN")" --list-objects --type secrkey 2>/dev/null |
	grep -q "label: *medvault-kek$"; then
	ok "init generated the AES key medvault-kek on the token"
else
	not_ok "init generated the AES key medvault-kek on the token"
fi

list=$(mv_run key list "$STORE" --keystore "$KS" 2>&1)
echo "$list" | sed 's/^/#   /'
if [ "$(echo "$list" | grep -c '')" -eq 2 ] && grep -Eq "^1 +pkcs11 .*token=$TOK key=medvault-kek module=$SO" <<<"$list"; then
	ok "key list: one pkcs11 slot naming token, key and module"
else
	not_ok "key list: one pkcs11 slot naming token, key and module" "$list"
fi

if p11_mount "$MNT" "${P11[@]}" 2>"$T/m.err"; then
	ok "mount through the HSM"
	if cp -a "$T/src/." "$MNT/" && sync; then ok "write files"; else not_ok "write files"; fi
	same_files "files read back before unmount" "$MNT"
	if mv_umount "$MNT"; then ok "unmount"; else not_ok "unmount"; fi
else
	bail "mount through the HSM" "$(cat "$T/m.err")"
fi
mount_cycle "remount through the HSM (options)" "${P11[@]}"
mount_cycle "remount with the slot's token (no --pkcs11-token)" --pkcs11-module "$SO" --pin-file "$PIN"
URI="pkcs11:token=$TOK;object=medvault-kek?module-path=$SO&pin-source=file:$PIN"
mount_cycle "remount with --pkcs11-uri" --pkcs11-uri "$URI"
mount_cycle "remount with --pkcs11-uri (type=secret-key, file:// pin-source)" \
	--pkcs11-uri "pkcs11:token=$TOK;object=medvault-kek;type=secret-key?module-path=$SO&pin-source=file://$PIN"

# ---------------------------------------------------------------- key slots

if out=$(mv_run key add "$STORE" --keystore "$KS" "${P11[@]}" --new-passphrase-file "$PF" 2>&1); then
	ok "key add: a passphrase slot, unlocking through the HSM"
else
	not_ok "key add: a passphrase slot, unlocking through the HSM" "$out"
fi
is "$(slots)" "1 pkcs11 2 passphrase " "key list: slots 1 (pkcs11) and 2 (passphrase)"
mount_cycle "mount with the passphrase slot" --passphrase-file "$PF"

# ---------------------------------------------------------------- leak check

MK_HEX=$("$TOOLS/mk_dump" "$STORE" "$KS" "$PF" 2>"$T/mk.err")
if [[ $MK_HEX =~ ^[0-9a-f]{64}$ ]]; then
	ok "mk_dump unlocks the master key through the passphrase slot"
	printf 'xx' >"$T/control"
	printf '%s' "$MK_HEX" | xxd -r -p >>"$T/control"
	"$TOOLS/memfind" -x "$MK_HEX" "$T/control" >/dev/null
	is "$?" 1 "memfind finds the raw master key in a control file (status 1: found)"
	out=$("$TOOLS/memfind" -x "$MK_HEX" "$STORE" "$KS" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then ok "no file under STORE or KS holds the raw master key"; else not_ok "no file under STORE or KS holds the raw master key" "status $rc" "$out"; fi
	hex_mk_text=$(printf '%s' "$MK_HEX" | xxd -p | tr -d '\n')
	"$TOOLS/memfind" -x "$hex_mk_text" "$STORE" "$KS" >/dev/null
	is "$?" 0 "no file under STORE or KS holds the master key as hex text"
else
	not_ok "mk_dump unlocks the master key through the passphrase slot" "$(cat "$T/mk.err")"
fi
pin_hex=$(head -n 1 "$PIN" | tr -d '\n' | xxd -p | tr -d '\n')
"$TOOLS/memfind" -x "$pin_hex" "$STORE" "$KS" >/dev/null
is "$?" 0 "no file under STORE or KS holds the user PIN"
pw_hex=$(head -n 1 "$PF" | tr -d '\n' | xxd -p | tr -d '\n')
"$TOOLS/memfind" -x "$pw_hex" "$STORE" "$KS" >/dev/null
is "$?" 0 "no file under STORE or KS holds the passphrase"

# ---------------------------------------------------------------- rewrap

if out=$(mv_run key rewrap "$STORE" --keystore "$KS" "${P11[@]}" --new-pkcs11-module "$SO" \
	--new-pkcs11-token "$TOK" --new-pkcs11-key medvault-kek-2 --new-pin-file "$PIN" 2>&1); then
	ok "key rewrap to a new HSM key label"
else
	not_ok "key rewrap to a new HSM key label" "$out"
fi
list=$(mv_run key list "$STORE" --keystore "$KS" 2>&1)
if grep -Eq "^1 +pkcs11 .*key=medvault-kek-2( |$)" <<<"$list" && [ "$(slots)" = "1 pkcs11 2 passphrase " ]; then
	ok "key list: slot 1 keeps its id and now names medvault-kek-2"
else
	not_ok "key list: slot 1 keeps its id and now names medvault-kek-2" "$list"
fi
mount_cycle "mount with --pkcs11-key medvault-kek-2" "${P11[@]}" --pkcs11-key medvault-kek-2
mount_cycle "mount with a URI naming medvault-kek-2" \
	--pkcs11-uri "pkcs11:token=$TOK;object=medvault-kek-2?module-path=$SO&pin-source=file:$PIN"

# ---------------------------------------------------------------- failures

printf 'not-the-pin\n' >"$T/wrong.pin"
chmod 600 "$T/wrong.pin"
K2=(--pkcs11-key medvault-kek-2)
expect_fail "wrong PIN" "wrong PIN for token '$TOK'" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" --pkcs11-module "$SO" --pkcs11-token "$TOK" "${K2[@]}" --pin-file "$T/wrong.pin"
expect_fail "wrong PIN in a URI's pin-source" "wrong PIN" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" \
	--pkcs11-uri "pkcs11:token=$TOK;object=medvault-kek-2?module-path=$SO&pin-source=file:$T/wrong.pin"
expect_fail "PIN file missing" "$T/no-such.pin" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" --pkcs11-module "$SO" "${K2[@]}" --pin-file "$T/no-such.pin"
expect_fail "module path missing" "PKCS#11 module .*No such file" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" --pkcs11-module "$T/no/libnothing.so" "${K2[@]}" --pin-file "$PIN"
expect_fail "module not a PKCS#11 library (libc)" "is not a PKCS#11 module" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" --pkcs11-module /lib/x86_64-linux-gnu/libc.so.6 "${K2[@]}" --pin-file "$PIN"
expect_fail "token not found" "no PKCS#11 token labelled 'nosuch'" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" --pkcs11-module "$SO" --pkcs11-token nosuch "${K2[@]}" --pin-file "$PIN"
# no slot names that key: refused from the slot table, before the token is asked
expect_fail "key not found" "no AES key labelled 'nosuch' on token '$TOK'|has no slot for PKCS#11 key 'nosuch' on token '$TOK'" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" "${P11[@]}" --pkcs11-key nosuch
expect_fail "old HSM key after rewrap (present, opens nothing)" "does not open|has no slot" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" "${P11[@]}"
expect_fail "pin-value in a URI refused" "pin-value" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" \
	--pkcs11-uri "pkcs11:token=$TOK;object=medvault-kek-2?module-path=$SO&pin-value=1234"
expect_fail "key add with a wrong PIN" "wrong PIN" -- \
	"$MV" key add "$STORE" --keystore "$KS" --pkcs11-module "$SO" "${K2[@]}" --pin-file "$T/wrong.pin" \
	--new-passphrase-file "$PF"

# another volume's keystore under this volume's name
mv_passfile "$T/other.pass"
mv_init "$T/other-store" "$T/other-ks" "$T/other.pass" >/dev/null 2>&1 || true
O_KSF=$(ls "$T/other-ks"/*.keys 2>/dev/null | head -n 1)
mkdir -p "$T/ks-other"
chmod 700 "$T/ks-other"
if [ -n "$O_KSF" ]; then
	cp "$O_KSF" "$T/ks-other/$(basename "$KSF")"
	expect_fail "keystore of another volume" "belongs to another volume" "$T/ks-other" -- \
		"$MV" mount "$STORE" "$MNT" --keystore "$T/ks-other" "${P11[@]}" "${K2[@]}"
else
	not_ok "keystore of another volume: second vault created"
fi

# corrupted and truncated copies of our keystore
for kind in flipped truncated; do
	d=$T/ks-$kind
	mkdir -p "$d"
	chmod 700 "$d"
	cp "$KSF" "$d/"
	f=$d/$(basename "$KSF")
	size=$(stat -c %s "$f")
	if [ $kind = flipped ]; then
		off=$((size / 2))
		byte=$(od -An -tu1 -j $off -N1 "$f" | tr -d ' ')
		printf "$(printf '\\%03o' $((byte ^ 0x10)))" | dd of="$f" bs=1 seek=$off conv=notrunc status=none
	else
		truncate -s $((size - 20)) "$f"
	fi
	expect_fail "keystore $kind" "corrupted or truncated" "$d" -- \
		"$MV" mount "$STORE" "$MNT" --keystore "$d" "${P11[@]}" "${K2[@]}"
	expect_fail "keystore $kind: key list" "corrupted or truncated" "$d" -- \
		"$MV" key list "$STORE" --keystore "$d"
done

# ---------------------------------------------------------------- HSM key deleted, recovery

if pkcs11-tool --module "$SO" --login --pin "$(head -n 1 "$PIN")" --delete-object --type secrkey \
	--label medvault-kek-2 >"$T/del.out" 2>&1; then
	ok "delete medvault-kek-2 from the token (pkcs11-tool)"
else
	not_ok "delete medvault-kek-2 from the token (pkcs11-tool)" "$(cat "$T/del.out")"
fi
expect_fail "HSM key deleted" "no AES key labelled 'medvault-kek-2'" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" "${P11[@]}" "${K2[@]}"
mount_cycle "recovery: mount with the passphrase slot" --passphrase-file "$PF"
if out=$(mv_run key add "$STORE" --keystore "$KS" --passphrase-file "$PF" --new-pkcs11-module "$SO" \
	--new-pkcs11-token "$TOK" --new-pkcs11-key medvault-kek-3 --new-pin-file "$PIN" 2>&1); then
	ok "recovery: key add a slot on a new HSM key, unlocking with the passphrase"
else
	not_ok "recovery: key add a slot on a new HSM key, unlocking with the passphrase" "$out"
fi
is "$(slots)" "1 pkcs11 2 passphrase 3 pkcs11 " "key list: slots 1, 2 and 3"
mount_cycle "recovery: mount with --pkcs11-key medvault-kek-3" "${P11[@]}" --pkcs11-key medvault-kek-3

# ---------------------------------------------------------------- remove

if out=$(mv_run key remove "$STORE" --keystore "$KS" --passphrase-file "$PF" --slot 1 2>&1); then
	ok "key remove the dead HSM slot 1"
else
	not_ok "key remove the dead HSM slot 1" "$out"
fi
is "$(slots)" "2 passphrase 3 pkcs11 " "key list: slots 2 and 3 remain"
expect_fail "key remove of a slot that does not exist" "." -- \
	"$MV" key remove "$STORE" --keystore "$KS" --passphrase-file "$PF" --slot 1
if out=$(mv_run key remove "$STORE" --keystore "$KS" "${P11[@]}" --pkcs11-key medvault-kek-3 --slot 2 2>&1); then
	ok "key remove the passphrase slot 2, unlocking through the HSM"
else
	not_ok "key remove the passphrase slot 2, unlocking through the HSM" "$out"
fi
is "$(slots)" "3 pkcs11 " "key list: slot 3 alone"
expect_fail "key remove of the last slot is refused" "last" -- \
	"$MV" key remove "$STORE" --keystore "$KS" "${P11[@]}" --pkcs11-key medvault-kek-3 --slot 3
expect_fail "removed passphrase slot no longer opens" "has no (passphrase )?slot|wrong passphrase" -- \
	"$MV" mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF"
mount_cycle "final mount through the HSM (slot 3)" "${P11[@]}" --pkcs11-key medvault-kek-3

if [ -z "$(our_mounts)" ]; then ok "nothing left mounted"; else not_ok "nothing left mounted" "$(our_mounts)"; fi
summary
