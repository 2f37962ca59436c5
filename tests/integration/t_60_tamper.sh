#!/usr/bin/env bash
# t_60_tamper: an attacker (or a failing disk) edits the store while it is
# unmounted.  Every case starts from a fresh store holding three files of
# known SHA-256, written one after another so their sealed chunks sit in the
# pack in a known order (alpha: 3 full chunks, beta: 2, gamma: 1000 bytes):
#
#   pack = 32-byte header | alpha#0 alpha#1 alpha#2 | beta#0 beta#1 | gamma#0
#   sealed chunk = 12-byte nonce + ciphertext + 16-byte tag (AES-GCM)
#
# After tampering, reading a damaged file must fail (EIO), never return
# wrong bytes (whatever a failing cat printed must be a true prefix), the
# undamaged files must read back exactly, the daemon (run with -f, so its
# syslog lines also go to stderr) must log the inode and chunk, and
# `medvault fsck` must exit non-zero and name the damaged files (and only
# them).  Last, a medvault.conf with one changed byte is refused at mount.
. "$(dirname "$0")/lib.sh"

need_mv
CS=65536		# default chunk size
SEAL=$((CS + 28))	# a full chunk once sealed with AES-256-GCM
HDR=32

PY=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import lmdb' 2>/dev/null; then PY=$p; break; fi
done

head -c $((3 * CS)) /dev/urandom >"$T/alpha.src"
head -c $((2 * CS)) /dev/urandom >"$T/beta.src"
head -c 1000 /dev/urandom >"$T/gamma.src"
head -c $((2 * CS)) /dev/urandom >"$T/delta1.src"
head -c $((2 * CS)) /dev/urandom >"$T/delta2.src"
FILES="alpha beta gamma"

# ino of each file, filled by setup
declare -A INO

# mount_fg CASE: mount the current vault in the foreground, stderr to a log
mount_fg() {
	mv_mount "$STORE" "$MNT" "$KS" "$PF" -f 2>>"$T/$1.log"
}

# setup CASE: a fresh vault with alpha, beta, gamma in pack 1, unmounted
setup() {
	local f
	mv_vault_new "$1"
	mv_init "$STORE" "$KS" "$PF" >/dev/null || return 1
	mount_fg "$1" || return 1
	for f in $FILES; do
		cp "$T/$f.src" "$MNT/$f" || return 1
		INO[$f]=$(stat -c %i "$MNT/$f")
	done
	mv_umount "$MNT" || return 1
	PACK=$(find "$STORE/packs" -name '*.pack' | sort | head -n 1)
	local want=$((HDR + 5 * SEAL + 1000 + 28)) got
	got=$(stat -c %s "$PACK")
	[ "$got" = "$want" ] || { echo "pack $PACK is $got bytes, expected $want (layout assumption broken)"; return 1; }
}

# offset of sealed chunk slot N (0-based, all full chunks before it)
slot() { echo $((HDR + $1 * SEAL)); }

flip_byte() {	# FILE OFFSET
	"${PY:-python3}" - "$1" "$2" <<'PYEOF'
import sys
f, off = sys.argv[1], int(sys.argv[2])
with open(f, 'r+b') as h:
    h.seek(off); b = h.read(1); h.seek(off); h.write(bytes([b[0] ^ 0x20]))
PYEOF
}

swap_ranges() {	# FILE OFF1 OFF2 LEN
	"${PY:-python3}" - "$@" <<'PYEOF'
import sys
f, a, b, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with open(f, 'r+b') as h:
    h.seek(a); x = h.read(n); h.seek(b); y = h.read(n)
    h.seek(a); h.write(y); h.seek(b); h.write(x)
PYEOF
}

# expect_eio CASE FILE: reading fails, and what was output is a true prefix
expect_eio() {
	local out=$T/$1.$2.out n
	if cat "$MNT/$2" >"$out" 2>"$T/$1.$2.err"; then
		not_ok "$1: reading damaged $2 fails" "cat succeeded; output $(sha256sum <"$out" | cut -c1-16), true $(sha256sum <"$T/$2.src" | cut -c1-16)"
		return
	fi
	n=$(stat -c %s "$out")
	if grep -q 'Input/output error' "$T/$1.$2.err"; then
		ok "$1: reading damaged $2 fails with EIO ($n bytes before the error)"
	else
		not_ok "$1: reading damaged $2 fails with EIO" "$(cat "$T/$1.$2.err")"
	fi
	if cmp -s -n "$n" "$out" "$T/$2.src" && [ "$n" -lt "$(stat -c %s "$T/$2.src")" ]; then
		ok "$1: the $n bytes read from $2 before the error are a true prefix"
	else
		not_ok "$1: the $n bytes read from $2 before the error are a true prefix"
	fi
}

expect_ok() {	# CASE FILE...
	local c=$1 f
	shift
	for f in "$@"; do
		if cmp -s "$MNT/$f" "$T/$f.src"; then ok "$c: intact $f reads back exactly"
		else not_ok "$c: intact $f reads back exactly" "$(cmp "$MNT/$f" "$T/$f.src" 2>&1)"; fi
	done
}

# expect_log CASE FILE: the daemon logged the damaged inode (and a chunk)
expect_log() {
	local ino=${INO[$2]}
	if grep -Eq "inode $ino chunk [0-9]+" "$T/$1.log"; then
		ok "$1: the daemon logs the damage: $(grep -Em1 "inode $ino chunk [0-9]+" "$T/$1.log" | sed 's/^.*medvault[^:]*: //')"
	else
		not_ok "$1: the daemon logs inode $ino and the chunk for $2" "$(tail -n 5 "$T/$1.log")"
	fi
}

# expect_fsck CASE DAMAGED... : fsck (unmounted) fails and names exactly those
expect_fsck() {
	local c=$1 out rc f
	shift
	out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then ok "$c: fsck exits non-zero ($rc)"
	else not_ok "$c: fsck exits non-zero" "$(tail -n 10 <<<"$out")"; fi
	for f in $FILES delta; do
		if [[ " $* " == *" $f "* ]]; then
			if grep -q "$f" <<<"$out"; then ok "$c: fsck names damaged $f"
			else not_ok "$c: fsck names damaged $f" "$(tail -n 10 <<<"$out")"; fi
		elif grep -q "$f" <<<"$out"; then
			not_ok "$c: fsck does not name intact $f" "$(grep "$f" <<<"$out" | head -n 5)"
		fi
	done
}

finish() {	# CASE
	check "$1: umount" mv_umount "$MNT"
}

# ---- (a) one flipped byte inside alpha's second chunk
if setup a; then
	flip_byte "$PACK" $(($(slot 1) + 1000))
	mount_fg a || bail "a: remount"
	expect_eio a alpha
	expect_ok a beta gamma
	expect_log a alpha
	finish a
	expect_fsck a alpha
else not_ok "a: setup"; fi

# ---- (b) the pack loses its tail: beta's second chunk is cut, gamma gone
if setup b; then
	truncate -s $(($(slot 4) + 5000)) "$PACK"
	mount_fg b || bail "b: remount"
	expect_eio b beta
	if cat "$MNT/gamma" >/dev/null 2>&1; then not_ok "b: reading gamma (beyond the cut) fails"
	else ok "b: reading gamma (beyond the cut) fails"; fi
	expect_ok b alpha
	expect_log b beta
	finish b
	expect_fsck b beta gamma
else not_ok "b: setup"; fi

# ---- (c1) two sealed chunks of alpha swapped
if setup c1; then
	swap_ranges "$PACK" "$(slot 0)" "$(slot 2)" $SEAL
	mount_fg c1 || bail "c1: remount"
	expect_eio c1 alpha
	expect_ok c1 beta gamma
	expect_log c1 alpha
	finish c1
	expect_fsck c1 alpha
else not_ok "c1: setup"; fi

# ---- (c2) a chunk of alpha swapped with a chunk of beta
if setup c2; then
	swap_ranges "$PACK" "$(slot 1)" "$(slot 3)" $SEAL
	mount_fg c2 || bail "c2: remount"
	expect_eio c2 alpha
	expect_eio c2 beta
	expect_ok c2 gamma
	expect_log c2 alpha
	expect_log c2 beta
	finish c2
	expect_fsck c2 alpha beta
else not_ok "c2: setup"; fi

# ---- (d) replay: delta's current chunk replaced by its older version
# delta v1 is written in one session (pack 2), v2 of the same size in the
# next (pack 3); copying v1's sealed bytes over v2's must not bring v1 back
if setup d; then
	mount_fg d || bail "d: mount"
	cp "$T/delta1.src" "$MNT/delta" && INO[delta]=$(stat -c %i "$MNT/delta")
	mv_umount "$MNT"
	mount_fg d || bail "d: mount"
	cp "$T/delta2.src" "$MNT/delta"
	mv_umount "$MNT"
	mapfile -t packs < <(find "$STORE/packs" -name '*.pack' | sort)
	if [ ${#packs[@]} -eq 3 ] && [ "$(stat -c %s "${packs[1]}")" = $((HDR + 2 * SEAL)) ] &&
		[ "$(stat -c %s "${packs[2]}")" = $((HDR + 2 * SEAL)) ]; then
		ok "d: two versions of delta in two packs"
		dd if="${packs[1]}" of="${packs[2]}" bs=1 skip=$HDR seek=$HDR count=$((2 * SEAL)) conv=notrunc status=none
		cp "$T/delta2.src" "$T/delta.src"
		mount_fg d || bail "d: remount"
		expect_eio d delta
		if cmp -s "$MNT/delta" "$T/delta1.src" 2>/dev/null; then not_ok "d: the old version of delta does not come back"
		else ok "d: the old version of delta does not come back"; fi
		expect_ok d alpha beta gamma
		expect_log d delta
		finish d
		expect_fsck d delta
	else
		not_ok "d: two versions of delta in two packs" "$(ls -l "${packs[@]}")"
	fi
else not_ok "d: setup"; fi

# ---- (e) a whole pack deleted: gamma2 lives alone in pack 2
if setup e; then
	mount_fg e || bail "e: mount"
	cp "$T/delta1.src" "$MNT/delta" && INO[delta]=$(stat -c %i "$MNT/delta")
	mv_umount "$MNT"
	mapfile -t packs < <(find "$STORE/packs" -name '*.pack' | sort)
	if [ ${#packs[@]} -eq 2 ]; then
		rm -f "${packs[1]}"
		cp "$T/delta1.src" "$T/delta.src"
		mount_fg e || bail "e: remount"
		expect_eio e delta
		expect_ok e alpha beta gamma
		expect_log e delta
		finish e
		expect_fsck e delta
	else
		not_ok "e: delta alone in a second pack" "$(ls -l "${packs[@]}")"
	fi
else not_ok "e: setup"; fi

# ---- (f) LMDB records: keys are clear (big-endian ino || chunk index),
# values sealed; a changed byte or two swapped values must not pass
lmdb_edit() {	# ENVDIR flip DB KEYHEX | swap DB KEYHEX KEYHEX
	"$PY" - "$@" <<'PYEOF'
import sys, lmdb
env = lmdb.open(sys.argv[1], max_dbs=16, map_size=1 << 40)
db = env.open_db(sys.argv[3].encode(), create=False)
keys = [bytes.fromhex(k) for k in sys.argv[4:]]
with env.begin(db=db, write=True) as t:
    vals = [t.get(k) for k in keys]
    if any(v is None for v in vals):
        sys.exit("no such key")
    if sys.argv[2] == 'flip':
        v = bytearray(vals[0]); v[len(v) // 2] ^= 0x01
        t.put(keys[0], bytes(v))
    else:
        t.put(keys[0], vals[1]); t.put(keys[1], vals[0])
env.close()
PYEOF
}
ck() { printf '%016x%016x' "$1" "$2"; }	# chunk key
ik() { printf '%016x' "$1"; }			# inode key

if [ -z "$PY" ]; then
	not_ok "f: python3 with the lmdb module (apt-get install python3-lmdb)"
else
	if setup f1; then
		lmdb_edit "$STORE/index" flip chunk "$(ck "${INO[alpha]}" 1)" &&
			lmdb_edit "$STORE/index" flip inode "$(ik "${INO[gamma]}")" ||
			not_ok "f1: edit the index"
		mount_fg f1 || bail "f1: remount"
		expect_eio f1 alpha
		if cmp -s "$MNT/gamma" "$T/gamma.src" 2>/dev/null; then
			not_ok "f1: gamma with a damaged inode record is refused" "it read back fine"
		elif stat "$MNT/gamma" 2>&1 | grep -q 'Input/output error' || cat "$MNT/gamma" 2>&1 >/dev/null | grep -q 'Input/output error'; then
			ok "f1: gamma with a damaged inode record fails with EIO"
		else
			not_ok "f1: gamma with a damaged inode record fails with EIO" "$(stat "$MNT/gamma" 2>&1 | head -n 3)"
		fi
		expect_ok f1 beta
		expect_log f1 alpha
		finish f1
		expect_fsck f1 alpha gamma
	else not_ok "f1: setup"; fi

	if setup f2; then
		lmdb_edit "$STORE/index" swap chunk "$(ck "${INO[alpha]}" 0)" "$(ck "${INO[beta]}" 0)" ||
			not_ok "f2: edit the index"
		mount_fg f2 || bail "f2: remount"
		expect_eio f2 alpha
		expect_eio f2 beta
		expect_ok f2 gamma
		expect_log f2 alpha
		finish f2
		expect_fsck f2 alpha beta
	else not_ok "f2: setup"; fi

	if setup f3; then	# two inode records swapped: beta's attributes under gamma's number
		lmdb_edit "$STORE/index" swap inode "$(ik "${INO[beta]}")" "$(ik "${INO[gamma]}")" ||
			not_ok "f3: edit the index"
		mount_fg f3 || bail "f3: remount"
		for f in beta gamma; do
			if s=$(stat -c %s "$MNT/$f" 2>&1) && [ "$s" != "$(stat -c %s "$T/$f.src")" ]; then
				not_ok "f3: $f with a swapped inode record is refused" "stat says size $s"
			elif cmp -s "$MNT/$f" "$T/$f.src" 2>/dev/null; then
				not_ok "f3: $f with a swapped inode record is refused" "it read back fine"
			else
				ok "f3: $f with a swapped inode record is refused ($(stat "$MNT/$f" 2>&1 | head -n 1 | sed 's/.*: //'))"
			fi
		done
		expect_ok f3 alpha
		finish f3
		expect_fsck f3 beta gamma
	else not_ok "f3: setup"; fi
fi

# ---- a medvault.conf with one changed byte is refused at mount
mv_vault_new conf
mv_init "$STORE" "$KS" "$PF" >/dev/null
python3 - "$STORE/medvault.conf" <<'PYEOF'
import sys
p = sys.argv[1]; s = open(p).read()
i = s.index('created=') + len('created=')
c = s[i]; s = s[:i] + ('1' if c != '1' else '2') + s[i + 1:]
open(p, 'w').write(s)
PYEOF
out=$(mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" 2>&1)
rc=$?
if [ $rc -ne 0 ] && ! is_mounted "$MNT"; then ok "a tampered medvault.conf is refused at mount (exit $rc)"
else is_mounted "$MNT" && mv_track "$MNT"; not_ok "a tampered medvault.conf is refused at mount" "exit $rc" "$out"; fi
if [ "$(wc -l <<<"$out")" -eq 1 ] && [ -n "$out" ]; then ok "with one line: $out"
else not_ok "the refusal is one line" "$out"; fi
summary
