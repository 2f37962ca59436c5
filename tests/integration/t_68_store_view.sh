#!/usr/bin/env bash
# t_68_store_view: README's "What is protected", checked from the side of
# someone who holds the unmounted store but not the keys.
#
# Not learned: a vault gets a name, a file content, an xattr name and
# value, a symlink target, an owner, a group, a time and an odd size that
# are easy to recognize; every byte of every file under STORE (index,
# packs, card, lock) is then searched for them, as written and, for the
# numbers, in both byte orders: none may be there.  Renamed and deleted
# names are searched for too (LMDB reuses pages, sealed values only).
#
# Learned, and no more than README says: a directory entry's sealed value
# has one of four lengths whatever its name's length (names of 1..255
# bytes); the chunk keys give the file's size to within 64 KiB.
. "$(dirname "$0")/lib.sh"

need_mv
PY=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import lmdb' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || bail "python3-lmdb is installed"

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"

NAME=DOE_JOHN_19570412_marker
DIR=PATIENT_0xC0FFEE_study
CONTENT=CONTENT_MARKER_a7c3e91f
XNAME=user.referring_physician_marker
XVALUE=DR_HOUSE_XATTR_VALUE_marker
TARGET=LINK_TARGET_marker_5d2e/elsewhere
RENAMED=RENAMED_AWAY_marker_91b4
DELETED=DELETED_NAME_marker_3f6a
UID_N=12648430	# 0x00C0FFEE
GID_N=11259375	# 0x00ABCDEF
MTIME=1514820194	# 0x5A4A8B62
SIZE=200003	# 0x00030D43: four chunks of 64 KiB, the last one partial

mkdir "$MNT/$DIR"
F=$MNT/$DIR/$NAME
"$PY" - "$F" "$CONTENT" "$SIZE" <<'EOF'
import sys
path, marker, size = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
# the marker at the start of every 4 KiB block, random bytes between them
import os
out = bytearray()
while len(out) < size:
    out += marker + os.urandom(4096 - len(marker))
open(path, "wb").write(bytes(out[:size]))
EOF
setfattr -n "$XNAME" -v "$XVALUE" "$F"
ln -s "$TARGET" "$MNT/$DIR/link"
chown "$UID_N:$GID_N" "$F"
touch -m -d "@$MTIME" "$F"
echo "$CONTENT" >"$MNT/$DIR/$RENAMED" && mv "$MNT/$DIR/$RENAMED" "$MNT/$DIR/plain"
echo "$CONTENT" >"$MNT/$DIR/$DELETED" && rm "$MNT/$DIR/$DELETED"
INO=$(stat -c %i "$F")
is "$(stat -c '%s %u %g %Y' "$F") $(getfattr --only-values -n "$XNAME" "$F" 2>/dev/null)" \
	"$SIZE $UID_N $GID_N $MTIME $XVALUE" "the marked file is in place"
# names of every length, for the entry lengths below
mkdir "$MNT/lengths"
for len in $(seq 1 255); do
	touch "$MNT/lengths/$(printf '%*s' "$len" '' | tr ' ' n)"
done
is "$(ls "$MNT/lengths" | wc -l)" 255 "255 entries, names of 1..255 bytes"
mv_umount "$MNT" || bail "unmount"

# ---------------------------------------------------------------- not learned

# search.py DIR: one line per marker found in DIR's files, with where
cat >"$T/search.py" <<EOF
import os, sys
top = sys.argv[1]
text = {
    "name": b"$NAME", "directory name": b"$DIR", "content": b"$CONTENT",
    "xattr name": b"$XNAME", "xattr name without namespace": b"${XNAME#user.}",
    "xattr value": b"$XVALUE", "symlink target": b"$TARGET",
    "renamed-away name": b"$RENAMED", "deleted name": b"$DELETED",
    "a 40-byte name run": b"n" * 40,
}
numbers = {"uid": ($UID_N, 4), "gid": ($GID_N, 4), "mtime": ($MTIME, 4),
           "mtime (8 bytes)": ($MTIME, 8), "size": ($SIZE, 4), "size (8 bytes)": ($SIZE, 8)}
pats = dict(text)
for what, (v, n) in numbers.items():
    pats[what + " big-endian"] = v.to_bytes(n, "big")
    pats[what + " little-endian"] = v.to_bytes(n, "little")
files = 0
for root, dirs, names in os.walk(top):
    for n in names:
        p = os.path.join(root, n)
        data = open(p, "rb").read()
        files += 1
        for what, pat in pats.items():
            if pat in data:
                print("%s at %s+%d" % (what, os.path.relpath(p, top), data.index(pat)))
if files == 0:
    sys.exit("no files under " + top)
EOF
"$PY" "$T/search.py" "$STORE" >"$T/found"
rc=$?
if [ $rc -eq 0 ] && [ ! -s "$T/found" ]; then
	ok "no name, content, xattr, symlink target, owner, time or size in the store's bytes"
else
	not_ok "no name, content, xattr, symlink target, owner, time or size in the store's bytes" \
		"exit $rc" "$(head -n 20 "$T/found")"
fi
# the search can fail: on the same facts written in the clear it finds each
mkdir "$T/clear"
printf '%s %s %s %s %s %s %s %s\n' "$NAME" "$DIR" "$CONTENT" "$XNAME" "$XVALUE" "$TARGET" \
	"$RENAMED" "$DELETED" >"$T/clear/names"
printf 'n%.0s' $(seq 40) >>"$T/clear/names"
"$PY" -c 'import sys
open(sys.argv[1], "wb").write(b"".join(int(v).to_bytes(n, o) for v in sys.argv[2:]
                                        for n in (4, 8) for o in ("big", "little")))' \
	"$T/clear/numbers" "$UID_N" "$GID_N" "$MTIME" "$SIZE"
is "$("$PY" "$T/search.py" "$T/clear" | wc -l)" 22 \
	"(the search finds all 22 patterns where they are in the clear)"

# ---------------------------------------------------------------- learned

"$PY" - "$STORE/index" "$INO" >"$T/view" <<'EOF'
import sys, lmdb
env = lmdb.open(sys.argv[1], max_dbs=16, lock=False, readonly=True, create=False)
ino = int(sys.argv[2])
dirent = env.open_db(b"dirent", create=False)
chunk = env.open_db(b"chunk", create=False)
with env.begin() as t:
    lens = sorted({len(v) for _, v in t.cursor(db=dirent)})
    n = sum(1 for _ in t.cursor(db=dirent))
    chunks = [int.from_bytes(k[8:16], "big") for k, _ in t.cursor(db=chunk)
              if int.from_bytes(k[:8], "big") == ino]
print("entries", n)
print("lengths", " ".join(map(str, lens)))
print("chunks", " ".join(map(str, sorted(chunks))))
EOF
n=$(sed -n 's/^entries //p' "$T/view")
lens=$(sed -n 's/^lengths //p' "$T/view")
if [ "${n:-0}" -ge 260 ] && [ "$lens" = "82 114 178 305" ]; then
	ok "$n directory entries, names of 1..255 bytes: their values have 4 lengths ($lens)"
else
	not_ok "directory entries' values have the 4 bucket lengths only" "entries $n, lengths: $lens"
fi
is "$(sed -n 's/^chunks //p' "$T/view")" "0 1 2 3" \
	"the chunk keys of the $SIZE-byte file are 0..3: its size to within 64 KiB, as README says"

mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount"
is "$(readlink "$MNT/$DIR/link")" "$TARGET" \
	"with the key, the symlink reads back"
is "$(ls "$MNT/lengths" | awk '{ print length($0) }' | sort -n | uniq | wc -l)" 255 \
	"with the key, every name length 1..255 reads back"
mv_umount "$MNT"
summary
