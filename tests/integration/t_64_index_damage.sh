#!/usr/bin/env bash
# t_64_index_damage: LMDB trusts its file's page structure, so a few bytes
# changed in data.mdb could crash or hang whatever opens it (issue 18: fsck
# died with SIGSEGV in mdb_put, mount exited 1 with no message).  Here an
# unmounted store's data.mdb gets bytes flipped in several pages in use
# (the main database's root, every named database's root, and some more
# branch and leaf pages).  Then `medvault info`, `fsck`, `mount` and
# `snapshot` must each fail with exactly one line on stderr and a non-zero
# status (fsck: 3, damage found), within the time limit, with no core
# dump, no mount, and data.mdb byte-identical.  The original data.mdb put
# back, the same store mounts and every file reads back exactly; info
# works beside the mounted daemon (the check reads through the reader
# table then), and fsck finds the store clean.
. "$(dirname "$0")/lib.sh"

need_mv
PY=python3
command -v $PY >/dev/null || bail "python3 is needed"

mv_vault_new v
mv_init "$STORE" "$KS" "$PF" >/dev/null || bail "init"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"
# enough names for branch pages in the inode and dirent databases
for d in a b c; do
	mkdir "$MNT/$d" || bail "mkdir"
	for i in $(seq 1 600); do echo "$d $i" >"$MNT/$d/file-$i.txt"; done
done
head -c 300000 /dev/urandom >"$MNT/big.bin"
setfattr -n user.note -v "study 1.2.840" "$MNT/big.bin" 2>/dev/null
(cd "$MNT" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/sums" ||
	bail "checksums"
mv_umount "$MNT" || bail "umount"

DATA=$STORE/index/data.mdb
cp -p "$DATA" "$T/data.orig"

# flip bytes in pages in use: read the newest meta page, then the roots
$PY - "$DATA" <<'EOF' || bail "damage"
import struct, sys
path = sys.argv[1]
b = bytearray(open(path, "rb").read())
P = 4096
def meta(i):
    m = 16 + i * P
    return struct.unpack_from("<Q", b, m + 128)[0], m
m = max(meta(0), meta(1))[1]
main_root = struct.unpack_from("<Q", b, m + 72 + 40)[0]
pages = {main_root}
# the named databases' roots, from the main root leaf
p = main_root * P
lower = struct.unpack_from("<H", b, p + 12)[0]
for i in range((lower - 16) // 2):
    off = struct.unpack_from("<H", b, p + 16 + 2 * i)[0]
    ks = struct.unpack_from("<H", b, p + off + 6)[0]
    root = struct.unpack_from("<Q", b, p + off + 8 + ks + 40)[0]
    if root != 2**64 - 1:
        pages.add(root)
last = struct.unpack_from("<Q", b, m + 120)[0]
# and every 9th branch or leaf page that says it is where it is
for pg in range(2, last + 1, 9):
    if struct.unpack_from("<Q", b, pg * P)[0] == pg and struct.unpack_from("<H", b, pg * P + 10)[0] in (1, 2):
        pages.add(pg)
for pg in sorted(pages):
    for k in range(16, 22):          # the first node offsets
        b[pg * P + k] ^= 0xA5
    for k in range(P - 40, P - 30):  # the last node's header and key
        b[pg * P + k] ^= 0x5A
open(path, "r+b").write(b)
print("# flipped bytes in %d pages: %s" % (len(pages), " ".join(map(str, sorted(pages)[:20]))))
EOF
SUM=$(sha256sum <"$DATA")

# run_damaged NAME WANT_STATUS CMD...: one line on stderr, nothing on
# stdout, the status wanted (or any failure for "fail"), no signal, no hang
run_damaged() {
	local name=$1 want=$2 rc lines
	shift 2
	mkdir -p "$T/cwd-$name"
	(cd "$T/cwd-$name" && timeout --kill-after=10 60 "$@" >"$T/$name.out" 2>"$T/$name.err")
	rc=$?
	lines=$(wc -l <"$T/$name.err")
	if [ "$rc" -eq 124 ] || [ "$rc" -ge 128 ]; then
		not_ok "$name: ends by itself (status $rc)" "$(cat "$T/$name.err")"
	elif [ "$want" = fail ] && [ "$rc" -ne 0 ] || [ "$rc" = "$want" ]; then
		ok "$name: status $rc"
	else
		not_ok "$name: status $rc, wanted $want" "$(cat "$T/$name.err")"
	fi
	if [ "$lines" -eq 1 ] && [ ! -s "$T/$name.out" ] && grep -q "damaged" "$T/$name.err"; then
		ok "$name: one line: $(cat "$T/$name.err")"
	else
		not_ok "$name: one line saying damaged" "stderr: $(cat "$T/$name.err")" "stdout: $(head -n 3 "$T/$name.out")"
	fi
	is "$(find "$T/cwd-$name" "$STORE" -name 'core*' | wc -l)" 0 "$name: no core dump"
	is "$(sha256sum <"$DATA")" "$SUM" "$name: data.mdb unchanged"
}

run_damaged info fail "$MV" info "$STORE" --keystore "$KS"
run_damaged fsck 3 "$MV" fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"
run_damaged mount fail "$MV" mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF"
if is_mounted "$MNT"; then
	mv_track "$MNT"
	not_ok "mount: nothing mounted"
else
	ok "mount: nothing mounted"
fi
run_damaged snapshot fail "$MV" snapshot "$STORE" "$T/snap"

# the original back: everything as it was
cp -p "$T/data.orig" "$DATA"
check "restored: mounts" mv_mount "$STORE" "$MNT" "$KS" "$PF"
if (cd "$MNT" && sha256sum --quiet -c "$T/sums") >"$T/sums.out" 2>&1; then
	ok "restored: every file reads back exactly"
else
	not_ok "restored: every file reads back exactly" "$(head -n 5 "$T/sums.out")"
fi
out=$("$MV" info "$STORE" 2>&1)
if [ $? -eq 0 ] && grep -q "^index: .* inodes" <<<"$out"; then
	ok "info beside the daemon checks through the reader table"
else
	not_ok "info beside the daemon checks through the reader table" "$out"
fi
check "restored: umount" mv_umount "$MNT"
check "restored: fsck clean" mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"

summary
