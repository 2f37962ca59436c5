#!/usr/bin/env bash
# t_40_leak: names, contents, xattr names and values, symlink targets and
# directory names written through the mount must appear nowhere in the
# store or the keystore -- not in plain text, not in hex (either case) and
# not in base64 (any of the three alignments).  Neither may the raw master
# key or the passphrase.  Every search is first proven able to find its
# needle in a control file, so a broken search cannot pass.
# (The memory of the running daemon is out of scope here.)
. "$(dirname "$0")/lib.sh"

need_mv
need_tool memfind
need_tool mk_dump

mv_vault_new
mv_init "$STORE" "$KS" "$PF" || bail "init a vault"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
ok "init and mount a vault"

M_NAME=PATIENT-DUPONT-7731
M_DIR=STUDY-CHEST-CT-55213
M_DATA=DIAGNOSIS-CARCINOMA-90417
M_SMALL=NOTE-HIV-POSITIVE-31337
M_XNAME=XATTRNAME-ALLERGY-3381
M_XVAL=XATTRVAL-PENICILLIN-6628
M_LINK=LINKTARGET-MARTIN-4410
M_HARD=HARDLINK-BERNARD-2290
M_OLD=OLDNAME-LEROY-8812
M_DEL=DELETED-DATA-MOREAU-1177
MARKERS=(M_NAME M_DIR M_DATA M_SMALL M_XNAME M_XVAL M_LINK M_HARD M_OLD M_DEL)

write_secrets() {
	set -e
	local i
	mkdir -p "$MNT/$M_DIR/sub-$M_DIR"
	echo "ordinary content" >"$MNT/$M_DIR/$M_NAME.dcm"
	echo "x" >"$MNT/$M_NAME"
	# long repeated content: several chunks of nothing but the marker
	for ((i = 0; i < 200000; i++)); do printf '%s\n' "$M_DATA"; done >"$MNT/$M_DIR/report.txt"
	# the marker once, at an odd offset inside random data
	{ head -c 777777 /dev/urandom; printf '%s' "$M_DATA"; head -c 5000 /dev/urandom; } >"$MNT/mixed.bin"
	printf '%s' "$M_SMALL" >"$MNT/small.txt"
	setfattr -n "user.$M_XNAME" -v "plain value" "$MNT/small.txt"
	setfattr -n user.note -v "$M_XVAL" "$MNT/small.txt"
	setfattr -n user.dir -v "$M_XVAL" "$MNT/$M_DIR"
	ln -s "../$M_LINK/target" "$MNT/link"
	ln "$MNT/small.txt" "$MNT/$M_HARD"
	echo "renamed away" >"$MNT/$M_OLD"
	mv "$MNT/$M_OLD" "$MNT/neutral-name"
	for ((i = 0; i < 20000; i++)); do printf '%s\n' "$M_DEL"; done >"$MNT/to-delete"
	sync "$MNT/to-delete"
	rm "$MNT/to-delete"
	sync -f "$MNT/small.txt"
}
check "write files, names, xattrs and links holding markers" write_secrets

readback() {
	set -e
	[ "$(head -n 1 "$MNT/$M_DIR/report.txt")" = "$M_DATA" ]
	[ "$(wc -l <"$MNT/$M_DIR/report.txt")" -eq 200000 ]
	[ "$(cat "$MNT/$M_HARD")" = "$M_SMALL" ]
	[ "$(getfattr --only-values -n user.note "$MNT/small.txt")" = "$M_XVAL" ]
	[ "$(readlink "$MNT/link")" = "../$M_LINK/target" ]
	[ -f "$MNT/$M_DIR/$M_NAME.dcm" ]
}
check "the markers read back through the mount" readback

MK_HEX=$("$TOOLS/mk_dump" "$STORE" "$KS" "$PF" 2>"$T/mk.err")
if [[ $MK_HEX =~ ^[0-9a-f]{64}$ ]]; then
	ok "obtain the master key with mk_dump"
else
	not_ok "obtain the master key with mk_dump" "$(cat "$T/mk.err")"
fi

check "umount before searching" mv_umount "$MNT"

hex_of() { xxd -p | tr -d '\n'; }

# b64_inner FILE K: the base64 characters of (K filler bytes + FILE's
# bytes) that depend on FILE's bytes alone, whatever surrounds them
b64_inner() {
	local len k=$2 first last enc
	len=$(stat -c %s "$1")
	enc=$({ head -c "$k" /dev/zero | tr '\0' 'Q'; cat "$1"; } | base64 -w0)
	first=$(((k + 2) / 3))			# first 3-byte group made of needle bytes only
	last=$(((k + len) / 3))			# one past the last such group
	printf '%s' "${enc:$((first * 4)):$(((last - first) * 4))}"
}

# variants FILE: "label needle control" lines, both in hex: the needle is
# searched for; the control is how the bytes would look embedded in a file
# (for base64, the full encoding with K bytes before them)
variants() {
	local raw enc k
	raw=$(hex_of <"$1")
	echo "plain $raw $raw"
	enc=$(printf '%s' "$raw" | hex_of)
	echo "hex $enc $enc"
	enc=$(printf '%s' "${raw^^}" | hex_of)
	echo "HEX $enc $enc"
	for k in 0 1 2; do
		echo "base64/$k $(b64_inner "$1" "$k" | hex_of)" \
			"$({ head -c "$k" /dev/zero | tr '\0' 'Q'; cat "$1"; } | base64 -w0 | hex_of)"
	done
}

# search LABEL FILE: no encoding of FILE's bytes in STORE or KS
search() {
	local label=$1 file=$2 v needle control out rc bad_controls=""
	mkdir -p "$T/control"
	while read -r v needle control; do
		# the needle must be found in a control file holding the encoding
		{ head -c 100 /dev/urandom; xxd -r -p <<<"$control"; head -c 100 /dev/urandom; } >"$T/control/f"
		"$TOOLS/memfind" -x "$needle" "$T/control" >/dev/null
		[ $? -eq 1 ] || bad_controls+="$v "
		out=$("$TOOLS/memfind" -x "$needle" "$STORE" "$KS" 2>&1)
		rc=$?
		case $rc in
		0) ok "$label ($v) appears nowhere in the store or keystore" ;;
		1) not_ok "$label ($v) appears nowhere in the store or keystore" "found: $out" ;;
		*) not_ok "$label ($v) appears nowhere in the store or keystore" "search error: $out" ;;
		esac
	done < <(variants "$file")
	if [ -z "$bad_controls" ]; then
		ok "$label: every search finds its needle in a control file"
	else
		not_ok "$label: every search finds its needle in a control file" "missed: $bad_controls"
	fi
}

for m in "${MARKERS[@]}"; do
	printf '%s' "${!m}" >"$T/needle"
	search "$m=${!m}" "$T/needle"
	# the store's own metadata: names, symlink targets, xattrs
	hits=$( { find "$STORE" "$KS" \( -name "*${!m}*" -o -lname "*${!m}*" \) -print
		getfattr -R -h -d -m - -e text "$STORE" "$KS" 2>/dev/null | grep -F -- "${!m}"; } | head -n 3)
	if [ -z "$hits" ]; then
		ok "$m: no name, symlink target or xattr in the store holds it"
	else
		not_ok "$m: no name, symlink target or xattr in the store holds it" "$hits"
	fi
done

if [[ $MK_HEX =~ ^[0-9a-f]{64}$ ]]; then
	xxd -r -p <<<"$MK_HEX" >"$T/mk.bin"
	search "the raw master key" "$T/mk.bin"
	rm -f "$T/mk.bin"
fi
head -n 1 "$PF" | tr -d '\n' >"$T/pass.bin"
search "the passphrase" "$T/pass.bin"

check "the store has content to search (packs hold > 4 MiB)" \
	test "$(du -sk "$STORE" | cut -f1)" -gt 4096
summary
