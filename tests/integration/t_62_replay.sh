#!/usr/bin/env bash
# t_62_replay: replay and rollback attacks on an unmounted store (issue 18,
# item 6), made the way someone holding the store or one of its backups,
# but not the keystore, could make them.  Index keys are clear and values
# sealed, so records cannot be forged, but they can be deleted, and an
# authentic older record can be put back from an older copy of the index
# (tests/integration/mdb_surgery.py does the LMDB surgery).
#
# Each case starts from a fresh vault holding two files no attack touches
# (keep1, 3 chunks and a bit, with an xattr; sub/keep2, 1000 bytes), takes
# an "old" copy of the unmounted index or store, changes the filesystem
# through a mount, unmounts, and puts old records back:
#
#   1 replayed inode record       2 replayed chunk record
#   3 deleted chunk record (and a genuinely sparse file still reads)
#   4 resurrected file            5 replayed xattr record
#   6 replayed orphan record      7 replayed meta record (next_ino, epoch)
#   8 index rolled back over current packs
#   9 whole store rolled back (mount and fsck)
#   10 the store of another volume
#   11 a restored backup accepted explicitly (mount --accept-rollback)
#   12 a snapshot mounted --read-only beside its mounted source
#
# A record attack must give EIO on the affected file (the daemon, run with
# -f so its syslog lines also reach stderr, names the inode) or refuse the
# mount with one line; the old content is never served; untouched files
# read back exactly.  A rolled-back index or store is refused with one line
# saying how far behind it is (/behind/), unless accepted explicitly.
. "$(dirname "$0")/lib.sh"

need_mv
CS=65536		# default chunk size
PY=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import lmdb' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || bail "python3 with the lmdb module (scripts/install-deps.sh installs python3-lmdb)"
surg() { "$PY" "$MV_LIB_DIR/mdb_surgery.py" "$@"; }

K_NEXT_INO=$(printf next_ino | xxd -p)	# meta keys are ASCII names
K_EPOCH=$(printf epoch | xxd -p)
ik() { printf '%016x' "$1"; }			# inode (and orphan) key
ck() { printf '%016x%016x' "$1" "$2"; }	# chunk key

head -c $((3 * CS + 100)) /dev/urandom >"$T/keep1.src"
head -c 1000 /dev/urandom >"$T/keep2.src"
for v in old new; do head -c $((3 * CS)) /dev/urandom >"$T/victim.$v"; done
head -c $((3 * CS)) /dev/urandom >"$T/tail.src"
head -c $((CS + 5000)) /dev/urandom >"$T/sparse.data"

t_start=$(date +%s)

# ---------------------------------------------------------------- helpers

# mount_fg CASE TAG [ARGS...]: mount the current vault in the foreground;
# the daemon's stderr (its syslog lines) goes to $T/CASE.TAG.log, named $LOG
mount_fg() {
	local c=$1 tag=$2
	shift 2
	LOG=$T/$c.$tag.log
	mv_mount "$STORE" "$MNT" "$KS" "$PF" -f "$@" 2>>"$LOG"
}

# begin CASE: a fresh vault, mounted, holding keep1 (with user.k) and sub/keep2
begin() {
	mv_vault_new "$1"
	CASE=$1
	mv_init "$STORE" "$KS" "$PF" >/dev/null || return 1
	mount_fg "$1" setup || return 1
	mkdir "$MNT/sub" &&
		cp "$T/keep1.src" "$MNT/keep1" &&
		cp "$T/keep2.src" "$MNT/sub/keep2" &&
		setfattr -n user.k -v keep "$MNT/keep1"
}

# umnt CASE: unmount; a failure is reported
umnt() { is_mounted "$MNT" || return 0; check "$1: umount" mv_umount "$MNT"; }

# pre CASE WHAT CMD...: a step of the attack itself; a failure ends the case
pre() {
	local c=$1 what=$2 out
	shift 2
	if out=$("$@" 2>&1); then return 0; fi
	not_ok "$c: attack step: $what" "$*" "$(tail -n 5 <<<"$out")"
	return 1
}

# diff_has OLD NEW DB "OP KEYHEX": the diff of two indexes has that line
diff_has() { surg diff "$1" "$2" "$3" | grep -qx "$3 $4"; }

# save_index CASE: the "old" copy of the unmounted index, in $T/CASE.old
save_index() { rm -rf "$T/$1.old" && cp -a "$STORE/index" "$T/$1.old"; }

# ino_of PATH (on the mount)
ino_of() { stat -c %i "$MNT/$1"; }

# expect_intact CASE: the files no attack touched read back exactly, and
# keep1's xattr too
expect_intact() {
	local c=$1 f s
	for f in keep1 sub/keep2; do
		s=$T/$(basename "$f").src
		if [ "$(timeout 20 sha256sum <"$MNT/$f" 2>/dev/null | cut -c1-64)" = "$(sha256sum <"$s" | cut -c1-64)" ]; then
			ok "$c: untouched $f reads back exactly"
		else
			not_ok "$c: untouched $f reads back exactly" "$(timeout 20 cat "$MNT/$f" 2>&1 >/dev/null | head -n 1)"
		fi
	done
	if [ "$(timeout 20 getfattr --only-values -n user.k "$MNT/keep1" 2>/dev/null)" = keep ]; then
		ok "$c: untouched xattr user.k of keep1 reads back"
	else
		not_ok "$c: untouched xattr user.k of keep1 reads back" "$(timeout 20 getfattr -n user.k "$MNT/keep1" 2>&1 | head -n 2)"
	fi
}

# log_text: the daemon's stderr with our temp paths cut out (a random
# path must not match a pattern)
log_text() { sed "s|$T|T|g" "$LOG"; }

# expect_log CASE INO [INO...]: the daemon's stderr names the inode (one
# of them: a resurrected entry may be blamed on its directory)
expect_log() {
	local c=$1 l re what
	shift
	re=$(IFS='|'; echo "$*")
	what="inode ${re//|/ or }"
	l=$(log_text | grep -Ei "ino(de)?[^0-9a-z]{0,3}($re)([^0-9]|$)" | head -n 1)
	if [ -n "$l" ]; then ok "$c: the daemon logs $what: ${l#*: }"
	else not_ok "$c: the daemon logs $what" "$(grep -v 'audit: log' "$LOG" | tail -n 5)"; fi
}

# is_eio FILE: FILE (a command's stderr) reports EIO
is_eio() { grep -q 'Input/output error' "$1"; }

# chunk_map OUT GOOD [BAD]: one letter per chunk of OUT: = as GOOD, o as
# BAD (the old content), 0 zeros, ? other bytes
chunk_map() {
	"$PY" - "$CS" "$@" <<'PYEOF'
import sys
cs, out, good = int(sys.argv[1]), open(sys.argv[2], 'rb').read(), open(sys.argv[3], 'rb').read()
bad = open(sys.argv[4], 'rb').read() if len(sys.argv) > 4 and sys.argv[4] else b''
m = ''
for i in range(0, len(out), cs):
    c = out[i:i + cs]
    m += ('=' if c == good[i:i + cs] else 'o' if c == bad[i:i + cs] else
          '0' if c.count(0) == len(c) else '?')
print(m)
PYEOF
}

# expect_read_eio CASE PATH GOOD [BAD]: reading fails with EIO; the bytes
# read before the error are a true prefix of GOOD; the content is never BAD
expect_read_eio() {
	local c=$1 p=$2 good=$3 bad=${4:-} out=$T/$1.read n
	if timeout 20 cat "$MNT/$p" >"$out" 2>"$out.err"; then
		not_ok "$c: reading $p fails with EIO" "it read $(stat -c %s "$out") bytes; chunk by chunk: $(chunk_map "$out" "$good" "$bad")" \
			"(= current content, o the OLD content, 0 zeros, ? other bytes)"
		return 1
	fi
	n=$(stat -c %s "$out")
	if is_eio "$out.err"; then ok "$c: reading $p fails with EIO ($n bytes before the error)"
	else not_ok "$c: reading $p fails with EIO" "$(head -n 2 "$out.err")"; fi
	if cmp -s -n "$n" "$out" "$good"; then ok "$c: the $n bytes read from $p before the error are a true prefix"
	else not_ok "$c: the $n bytes read from $p before the error are a true prefix"; fi
}

# try_mount CASE [ARGS...]: a plain (background) mount of the current
# vault; its output in $MOUT, status in $MRC; a mount that succeeds is
# tracked for cleanup
try_mount() {
	MOUT=$(mv_run mount "$STORE" "$MNT" --keystore "$KS" --passphrase-file "$PF" "${@:2}" 2>&1)
	MRC=$?
	if is_mounted "$MNT"; then mv_track "$MNT"; return 0; fi
	return 1
}

# one_line CASE WHAT REGEX: $MOUT is one line (matching REGEX, if given)
one_line() {
	if [ -n "$MOUT" ] && [ "$(wc -l <<<"$MOUT")" -eq 1 ]; then ok "$1: $2 with one line: $MOUT"
	else not_ok "$1: $2 with one line" "$MOUT"; fi
	if [ -n "$3" ]; then
		if grep -Eq "$3" <<<"$MOUT"; then ok "$1: the line says /$3/"
		else not_ok "$1: the line says /$3/" "$MOUT"; fi
	fi
}

# attack_mount CASE: mount the attacked store in the foreground; when the
# mount is refused (allowed for record attacks), check with a plain mount
# that the refusal is one line.  Returns 0 when mounted.
attack_mount() {
	local c=$1
	if mount_fg "$c" attack; then
		ok "$c: the attacked store mounts (EIO expected on the damaged file)"
		return 0
	fi
	is_mounted "$MNT" && mv_track "$MNT"
	if try_mount "$c"; then
		not_ok "$c: the attacked store is refused consistently" "-f mount failed: $(tail -n 2 "$LOG")" "a plain mount then succeeded"
		mv_umount "$MNT"
		return 1
	fi
	one_line "$c" "mount refused (exit $MRC)" ""
	return 1
}

data_sum() { sha256sum <"$1/index/data.mdb" | cut -c1-64; }

# expect_refused CASE REGEX [ARGS...]: a plain mount is refused with one
# line matching REGEX and leaves data.mdb as it was.  Returns 0 when
# refused, 1 when it mounted (still mounted, for the caller to look at).
expect_refused() {
	local c=$1 re=$2 before
	shift 2
	before=$(data_sum "$STORE")
	if try_mount "$c" "$@"; then
		not_ok "$c: mount is refused" "it mounted (exit $MRC): $MOUT"
		return 1
	fi
	ok "$c: mount is refused (exit $MRC)"
	one_line "$c" "refused" "$re"
	is "$(data_sum "$STORE")" "$before" "$c: the refused mount left data.mdb unchanged"
	return 0
}

# served CASE PATH SRC: describe whether PATH serves SRC (for diagnostics)
served() {
	if cmp -s "$MNT/$2" "$3" 2>/dev/null; then echo "$2 serves $(basename "$3")"
	elif [ -e "$MNT/$2" ]; then echo "$2 serves something else"
	else echo "$2 absent"; fi
}

elapsed() { echo $(($(date +%s) - t_start)); }

# ---------------------------------------------------------------- 1. inode
# victim chmod 600 after the copy; its old inode record (0644) put back
c=1
if begin $c; then
	cp "$T/victim.old" "$MNT/victim" && chmod 644 "$MNT/victim"
	ino=$(ino_of victim)
	umnt $c
	save_index $c
	mount_fg $c chmod && chmod 600 "$MNT/victim"
	umnt $c
	if pre $c "the inode record changed after the copy" diff_has "$T/$c.old" "$STORE/index" inode "~ $(ik "$ino")" &&
		pre $c "put back the old inode record" surg put "$STORE/index" inode "$(ik "$ino")" "$T/$c.old" &&
		attack_mount $c; then
		mode=$(timeout 20 stat -c %a "$MNT/victim" 2>"$T/$c.stat.err")
		src=$?
		if [ "$mode" = 644 ]; then not_ok "$c: the replayed mode 0644 is never shown" "stat says $mode"
		else ok "$c: the replayed mode 0644 is never shown"; fi
		if [ $src -ne 0 ] && is_eio "$T/$c.stat.err"; then ok "$c: stat of victim fails with EIO"
		else not_ok "$c: stat of victim fails with EIO" "stat: ${mode:-$(cat "$T/$c.stat.err")}"; fi
		if timeout 20 cat "$MNT/victim" >/dev/null 2>"$T/$c.cat.err"; then not_ok "$c: open of victim fails with EIO" "it opened"
		elif is_eio "$T/$c.cat.err"; then ok "$c: open of victim fails with EIO"
		else not_ok "$c: open of victim fails with EIO" "$(cat "$T/$c.cat.err")"; fi
		expect_intact $c
		expect_log $c "$ino"
		umnt $c
	fi
else not_ok "$c: setup"; fi
echo "# case $c done at $(elapsed) s"

# ---------------------------------------------------------------- 2. chunk
# victim rewritten in place (same size) after the copy; 2a puts back one
# old chunk record, 2b the whole old file (its inode record and every chunk
# record: a consistent older file, which only a check above the inode sees)
for c in 2a 2b; do
if begin $c; then
	cp "$T/victim.old" "$MNT/victim"
	ino=$(ino_of victim)
	umnt $c
	save_index $c
	mount_fg $c rewrite && dd if="$T/victim.new" of="$MNT/victim" bs=$CS conv=notrunc,fsync status=none
	umnt $c
	if pre $c "put back the old record of chunk 1" surg put "$STORE/index" chunk "$(ck "$ino" 1)" "$T/$c.old" &&
		{ [ $c = 2a ] || { pre $c "put back the old inode record" surg put "$STORE/index" inode "$(ik "$ino")" "$T/$c.old" &&
			pre $c "put back every old chunk record" surg putall "$STORE/index" chunk "$T/$c.old" "$(ik "$ino")"; }; } &&
		attack_mount $c; then
		expect_read_eio $c victim "$T/victim.new" "$T/victim.old"
		if timeout 20 dd if="$MNT/victim" of="$T/$c.c1" bs=$CS skip=1 count=1 status=none 2>/dev/null &&
			cmp -s "$T/$c.c1" <(dd if="$T/victim.old" bs=$CS skip=1 count=1 status=none); then
			not_ok "$c: the old content of chunk 1 is never served" "dd of chunk 1 returned the old bytes"
		else ok "$c: the old content of chunk 1 is never served"; fi
		expect_intact $c
		expect_log $c "$ino"
		umnt $c
	fi
else not_ok "$c: setup"; fi
echo "# case $c done at $(elapsed) s"
done

# ---------------------------------------------------------------- 3. deleted chunk
# victim loses chunk 1 (a middle chunk), tail its last chunk; sparse is a
# real sparse file (5 chunks: holes at 0-2, data in 3 and the start of 4)
# and must still read
c=3
if begin $c; then
	cp "$T/victim.old" "$MNT/victim"
	cp "$T/tail.src" "$MNT/tail"
	truncate -s $((5 * CS)) "$MNT/sparse" "$T/sparse.ref"
	for f in "$MNT/sparse" "$T/sparse.ref"; do
		dd if="$T/sparse.data" of="$f" bs=$CS seek=3 conv=notrunc status=none
	done
	ino=$(ino_of victim) ino_t=$(ino_of tail) ino_s=$(ino_of sparse)
	umnt $c
	echo "# sparse (5 chunks, data in chunks 3 and 4) has $(surg keys "$STORE/index" chunk "$(ik "$ino_s")" | wc -l) chunk records"
	if pre $c "delete chunk 1 of victim" surg del "$STORE/index" chunk "$(ck "$ino" 1)" &&
		pre $c "delete chunk 2 (the last) of tail" surg del "$STORE/index" chunk "$(ck "$ino_t" 2)" &&
		attack_mount $c; then
		expect_read_eio $c victim "$T/victim.old"
		expect_read_eio $c tail "$T/tail.src"
		if timeout 20 cmp -s "$MNT/sparse" "$T/sparse.ref"; then ok "$c: the sparse file reads its holes as zeros and its data exactly"
		else not_ok "$c: the sparse file reads its holes as zeros and its data exactly" "$(timeout 20 cmp "$MNT/sparse" "$T/sparse.ref" 2>&1)"; fi
		expect_intact $c
		expect_log $c "$ino"
		expect_log $c "$ino_t"
		umnt $c
	fi
else not_ok "$c: setup"; fi
echo "# case $c done at $(elapsed) s"

# ---------------------------------------------------------------- 4. resurrected file
# docs/victim removed after the copy; its old dirent, inode and chunk
# records are put back; 4b also puts back docs' own old inode record (a
# consistent older directory)
for c in 4a 4b; do
if begin $c; then
	mkdir "$MNT/docs" && cp "$T/victim.old" "$MNT/docs/victim" && cp "$T/keep2.src" "$MNT/docs/other"
	ino=$(ino_of docs/victim) dino=$(ino_of docs)
	umnt $c
	save_index $c
	mount_fg $c rm && rm "$MNT/docs/victim"
	umnt $c
	surg diff "$T/$c.old" "$STORE/index" >"$T/$c.diff"
	dkeys=$(awk '$1 == "dirent" && $2 == "-" { print $3 }' "$T/$c.diff")
	if [ "$(wc -w <<<"$dkeys")" -eq 1 ]; then ok "$c: the diff finds the one removed dirent"
	else not_ok "$c: the diff finds the one removed dirent" "$(cat "$T/$c.diff")"; fi
	if [ -n "$dkeys" ] &&
		pre $c "put back the old dirent" surg put "$STORE/index" dirent "$dkeys" "$T/$c.old" &&
		pre $c "put back the old inode record" surg put "$STORE/index" inode "$(ik "$ino")" "$T/$c.old" &&
		pre $c "put back the old chunk records" surg putall "$STORE/index" chunk "$T/$c.old" "$(ik "$ino")" &&
		{ [ $c = 4a ] || pre $c "put back docs' old inode record" surg put "$STORE/index" inode "$(ik "$dino")" "$T/$c.old"; } &&
		attack_mount $c; then
		if timeout 20 cat "$MNT/docs/victim" >"$T/$c.read" 2>/dev/null; then
			not_ok "$c: the removed file's content is never served" \
				"cat docs/victim succeeded: $(cmp -s "$T/$c.read" "$T/victim.old" && echo "the OLD content came back" || echo "other content")"
		else ok "$c: the removed file's content is never served"; fi
		ls_out=$(timeout 20 ls -a "$MNT/docs" 2>"$T/$c.ls.err")
		ls_rc=$?
		timeout 20 stat "$MNT/docs/victim" >/dev/null 2>"$T/$c.stat.err"
		st_rc=$?
		if [ $st_rc -eq 0 ]; then
			not_ok "$c: lookup of the removed name fails" "stat docs/victim succeeded"
		elif [ $ls_rc -ne 0 ] && is_eio "$T/$c.ls.err"; then
			ok "$c: listing docs/ fails with EIO"
		elif ! grep -qx victim <<<"$ls_out"; then
			ok "$c: the removed name is absent from docs/ ($(head -n 1 "$T/$c.stat.err" | sed 's/.*: //'))"
		elif is_eio "$T/$c.stat.err"; then
			ok "$c: lookup of the resurrected name fails with EIO"
		else
			not_ok "$c: docs/ lists victim again" "ls: $(tr '\n' ' ' <<<"$ls_out")" "stat: $(cat "$T/$c.stat.err")"
		fi
		# docs/other may be collateral (EIO), but never wrong
		if timeout 20 cat "$MNT/docs/other" >"$T/$c.other" 2>/dev/null && ! cmp -s "$T/$c.other" "$T/keep2.src"; then
			not_ok "$c: docs/other is served exactly or not at all" "other content"
		else ok "$c: docs/other is served exactly or not at all"; fi
		expect_intact $c
		if echo fresh >"$MNT/sub/fresh" && [ "$(cat "$MNT/sub/fresh")" = fresh ]; then ok "$c: another directory takes a new file"
		else not_ok "$c: another directory takes a new file"; fi
		expect_log $c "$ino" "$dino"
		umnt $c
	fi
else not_ok "$c: setup"; fi
echo "# case $c done at $(elapsed) s"
done

# ---------------------------------------------------------------- 5. xattr
# tagged's user.x is "old" in the copy and "new" now; the old record is put back
c=5
if begin $c; then
	cp "$T/keep2.src" "$MNT/tagged" && setfattr -n user.x -v old "$MNT/tagged"
	ino=$(ino_of tagged)
	umnt $c
	save_index $c
	mount_fg $c set && setfattr -n user.x -v new "$MNT/tagged"
	umnt $c
	surg diff "$T/$c.old" "$STORE/index" >"$T/$c.diff"
	xkey=$(awk '$1 == "xattr" && $2 == "~" { print $3 }' "$T/$c.diff")
	if [ "$(wc -w <<<"$xkey")" -eq 1 ] && [ "${xkey:0:16}" = "$(ik "$ino")" ]; then ok "$c: the diff finds tagged's changed xattr record"
	else not_ok "$c: the diff finds tagged's changed xattr record" "$(cat "$T/$c.diff")"; fi
	if [ -n "$xkey" ] &&
		pre $c "put back the old xattr record" surg put "$STORE/index" xattr "$xkey" "$T/$c.old" &&
		attack_mount $c; then
		v=$(timeout 20 getfattr --only-values -n user.x "$MNT/tagged" 2>"$T/$c.x.err")
		if [ "$v" = old ]; then not_ok "$c: the replayed value is never served" "getfattr says old"
		else ok "$c: the replayed value is never served"; fi
		if [ -z "$v" ] && is_eio "$T/$c.x.err"; then ok "$c: getfattr user.x fails with EIO"
		else not_ok "$c: getfattr user.x fails with EIO" "got '$v' $(cat "$T/$c.x.err")"; fi
		expect_intact $c
		expect_log $c "$ino"
		umnt $c
	fi
else not_ok "$c: setup"; fi
echo "# case $c done at $(elapsed) s"

# ---------------------------------------------------------------- 6. orphan
# a genuine orphan record: victim held open, unlinked, daemon killed -9;
# the copy holds the orphan; the next mount frees it; the record is put back
c=6
if begin $c; then
	cp "$T/victim.old" "$MNT/victim"
	ino=$(ino_of victim)
	umnt $c
	mount_fg $c orphan || bail "$c: mount"
	exec 7<"$MNT/victim"
	rm "$MNT/victim"
	sleep 2.5	# past the daemon's periodic durable point
	pids=$(daemon_pids "$MNT")
	for p in $pids; do kill -KILL "$p"; done
	for p in $pids; do wait "$p" 2>/dev/null; done	# no "Killed" notice
	mv_wait_gone $pids
	exec 7<&-
	fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	if is_mounted "$MNT"; then bail "$c: the killed daemon's mount could not be removed"; fi
	save_index $c
	if surg keys "$T/$c.old" orphan | grep -qx "$(ik "$ino")"; then ok "$c: the killed daemon left an orphan record for inode $ino"
	else not_ok "$c: the killed daemon left an orphan record for inode $ino" "$(surg keys "$T/$c.old" orphan)"; fi
	mount_fg $c purge && expect_intact "$c (after the purge)"
	umnt $c
	n=$(surg keys "$STORE/index" orphan | wc -l)
	is "$n" 0 "$c: the next mount purged the orphan"
	if pre $c "put back the orphan record" surg put "$STORE/index" orphan "$(ik "$ino")" "$T/$c.old" &&
		attack_mount $c; then
		expect_intact $c
		if log_text | grep -Eiq "ino(de)?[^0-9a-z]{0,3}$ino([^0-9]|$)"; then
			ok "$c: the replayed orphan record is reported: $(log_text | grep -Eim1 "ino(de)?[^0-9a-z]{0,3}$ino([^0-9]|$)" | sed 's/^[^:]*: //')"
		else
			not_ok "$c: the replayed orphan record is reported (a line naming inode $ino)" "$(grep -v 'audit: log' "$LOG" | tail -n 4)"
		fi
		umnt $c
	fi
else not_ok "$c: setup"; fi
echo "# case $c done at $(elapsed) s"

# ---------------------------------------------------------------- 7. meta
# new files after the copy make next_ino (and epoch) grow; the old values
# are put back, one at a time (7a next_ino, 7b epoch)
for c in 7a 7b; do
	if [ $c = 7a ]; then key=$K_NEXT_INO what=next_ino; else key=$K_EPOCH what=epoch; fi
	if ! begin $c; then not_ok "$c: setup"; continue; fi
	umnt $c
	save_index $c
	mount_fg $c grow
	inos=$(stat -c %i "$MNT" "$MNT/keep1" "$MNT/sub" "$MNT/sub/keep2" | tr '\n' ' ')
	for i in 1 2 3; do cp "$T/keep2.src" "$MNT/n$i" && inos="$inos$(ino_of n$i) "; done
	umnt $c
	if diff_has "$T/$c.old" "$STORE/index" meta "~ $key"; then ok "$c: $what changed after the copy"
	else not_ok "$c: $what changed after the copy" "$(surg diff "$T/$c.old" "$STORE/index" meta)"; fi
	if pre $c "put back the old $what" surg put "$STORE/index" meta "$key" "$T/$c.old" &&
		attack_mount $c; then
		# it mounted: EIO or a log line is allowed, a silent replay is not
		eio=0
		if [ $c = 7a ]; then
			if echo fresh >"$MNT/fresh" 2>"$T/$c.err"; then
				fino=$(ino_of fresh)
				if [[ " $inos" == *" $fino "* ]]; then not_ok "$c: a new file never reuses an inode number" "fresh got inode $fino; in use: $inos"
				else ok "$c: a new file never reuses an inode number (fresh is $fino; in use: $inos)"; fi
			elif is_eio "$T/$c.err"; then eio=1; ok "$c: creating a file fails with EIO"
			else not_ok "$c: creating a file after the replay" "$(cat "$T/$c.err")"; fi
		fi
		# the files written after the copy: exactly, or EIO, never other bytes
		for i in 1 2 3; do
			if timeout 20 cat "$MNT/n$i" >"$T/$c.n" 2>"$T/$c.err"; then
				if cmp -s "$T/$c.n" "$T/keep2.src"; then ok "$c: n$i reads back exactly"
				else not_ok "$c: n$i reads back exactly or fails" "it reads $(stat -c %s "$T/$c.n") bytes of other content: $(head -c 40 "$T/$c.n" | tr -cd '[:print:]')"; fi
			elif is_eio "$T/$c.err"; then eio=1; ok "$c: n$i fails with EIO"
			else not_ok "$c: n$i reads back exactly or fails with EIO" "$(cat "$T/$c.err")"; fi
		done
		if [ $eio -eq 1 ] || log_text | grep -Eiq 'next_ino|epoch|meta'; then ok "$c: the replayed $what is reported"
		else not_ok "$c: the replayed $what is reported (refused, EIO, or a log line)" "mounted, nothing logged: $(grep -v 'audit: log' "$LOG" | tail -n 2)"; fi
		expect_intact $c
		umnt $c
	fi
	echo "# case $c done at $(elapsed) s"
done

# ---------------------------------------------------------------- 8. index rollback
# the whole index copied back over current packs
c=8
if begin $c; then
	cp "$T/victim.old" "$MNT/victim"
	umnt $c
	save_index $c
	mount_fg $c more && cp "$T/victim.new" "$MNT/victim" && cp "$T/keep2.src" "$MNT/n1"
	umnt $c
	if pre $c "put the old index back" bash -c "rm -rf '$STORE/index' && cp -a '$T/$c.old' '$STORE/index'"; then
		if ! expect_refused $c behind; then
			echo "#   mounted: $(served $c victim "$T/victim.old"), $(served $c n1 "$T/keep2.src")"
			mv_umount "$MNT"
		fi
		out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
		rc=$?
		if [ $rc -ne 0 ] || grep -q behind <<<"$out"; then ok "$c: fsck reports the rolled-back index (exit $rc: $(grep -m1 behind <<<"$out"))"
		else not_ok "$c: fsck reports the rolled-back index (non-zero, or /behind/)" "exit $rc" "$(tail -n 3 <<<"$out")"; fi
	fi
else not_ok "$c: setup"; fi
echo "# case $c done at $(elapsed) s"

# ---------------------------------------------------------------- 9 and 11: whole store rollback
# the whole unmounted store copied aside, more written, the copy restored;
# 11 then accepts the restore explicitly
for c in 9 11; do
	if begin $c; then
		cp "$T/victim.old" "$MNT/victim"
		umnt $c
		rm -rf "$T/$c.oldstore" && cp -a "$STORE" "$T/$c.oldstore"
		mount_fg $c more && cp "$T/victim.new" "$MNT/victim" && cp "$T/keep2.src" "$MNT/n1"
		umnt $c
		pre $c "restore the old store" bash -c "rm -rf '$STORE' && cp -a '$T/$c.oldstore' '$STORE'" || continue
		if ! expect_refused $c behind; then
			echo "#   mounted: $(served $c victim "$T/victim.old"), $(served $c n1 "$T/keep2.src")"
			mv_umount "$MNT"
		fi
		if [ $c = 9 ]; then
			out=$(mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF" 2>&1)
			rc=$?
			if [ $rc -ne 0 ] || grep -q behind <<<"$out"; then ok "$c: fsck reports the rolled-back store (exit $rc: $(grep -m1 behind <<<"$out"))"
			else not_ok "$c: fsck reports the rolled-back store (non-zero, or /behind/)" "exit $rc" "$(tail -n 3 <<<"$out")"; fi
		else
			if mount_fg $c accept --accept-rollback; then
				ok "$c: mount --accept-rollback mounts the restored store"
				if cmp -s "$MNT/victim" "$T/victim.old"; then ok "$c: it serves the restored content"
				else not_ok "$c: it serves the restored content" "$(served $c victim "$T/victim.old")"; fi
				if [ -e "$MNT/n1" ]; then not_ok "$c: a file written after the backup is absent"
				else ok "$c: a file written after the backup is absent"; fi
				expect_intact $c
				umnt $c
				if try_mount $c; then
					ok "$c: a plain mount works again after the accepted restore"
					if cmp -s "$MNT/victim" "$T/victim.old"; then ok "$c: it still serves the restored content"
					else not_ok "$c: it still serves the restored content" "$(served $c victim "$T/victim.old")"; fi
					if echo after >"$MNT/after" && [ "$(cat "$MNT/after")" = after ]; then ok "$c: and takes new files"
					else not_ok "$c: and takes new files"; fi
					umnt $c
				else
					not_ok "$c: a plain mount works again after the accepted restore" "exit $MRC: $MOUT"
				fi
			else
				is_mounted "$MNT" && mv_track "$MNT" && mv_umount "$MNT"
				not_ok "$c: mount --accept-rollback mounts the restored store" "$(grep -v 'audit: log' "$LOG" | tail -n 3)"
			fi
		fi
	else not_ok "$c: setup"; fi
	echo "# case $c done at $(elapsed) s"
done

# ---------------------------------------------------------------- 10. another volume
# stores A and B; B's store with A's keystore, with A's key file renamed to
# B's volume id, and A's card over B's index
c=10
mv_vault_new 10a
A_STORE=$STORE A_KS=$KS A_PF=$PF A_MNT=$MNT
if mv_init "$STORE" "$KS" "$PF" >/dev/null && mount_fg $c a && cp "$T/keep1.src" "$MNT/keep1" && umnt $c &&
	begin 10b && umnt 10b; then
	b_uuid=$(sed -n 's/^uuid=//p' "$STORE/medvault.conf")
	a_uuid=$(sed -n 's/^uuid=//p' "$A_STORE/medvault.conf")
	MOUT=$(mv_run mount "$STORE" "$MNT" --keystore "$A_KS" --passphrase-file "$A_PF" 2>&1)
	MRC=$?
	if is_mounted "$MNT"; then mv_track "$MNT"; not_ok "$c: B's store with A's keystore is refused" "it mounted"; mv_umount "$MNT"
	else ok "$c: B's store with A's keystore is refused (exit $MRC)"; one_line $c "refused" ""; fi
	mkdir -p "$T/10.ks" && cp "$A_KS/$a_uuid.keys" "$T/10.ks/$b_uuid.keys"
	MOUT=$(mv_run mount "$STORE" "$MNT" --keystore "$T/10.ks" --passphrase-file "$A_PF" 2>&1)
	MRC=$?
	if is_mounted "$MNT"; then mv_track "$MNT"; not_ok "$c: B's store with A's key file under B's volume id is refused" "it mounted"; mv_umount "$MNT"
	else ok "$c: B's store with A's key file under B's volume id is refused (exit $MRC)"; one_line $c "refused" ""; fi
	# A's card and packs over B's index: every record is sealed under B's keys
	rm -rf "$A_STORE/index" && cp -a "$STORE/index" "$A_STORE/index"
	STORE=$A_STORE KS=$A_KS PF=$A_PF MNT=$A_MNT
	if try_mount $c; then
		if timeout 20 ls "$MNT" >/dev/null 2>"$T/$c.ls.err"; then not_ok "$c: A's store over B's index is refused (or its root fails with EIO)" "ls of the root worked: $(ls "$MNT" | tr '\n' ' ')"
		else ok "$c: A's store over B's index mounts but its root fails ($(cat "$T/$c.ls.err" | sed 's/.*: //'))"; fi
		mv_umount "$MNT"
	else
		ok "$c: A's store over B's index is refused (exit $MRC)"; one_line $c "refused" ""
	fi
else not_ok "$c: setup"; fi
echo "# case $c done at $(elapsed) s"

# ---------------------------------------------------------------- 12. read-only snapshot
# a snapshot taken while mounted; the source moves on (and is remounted, so
# its anchor has certainly moved past the snapshot); the snapshot mounted
# --read-only beside the mounted source
c=12
if begin $c; then
	cp "$T/victim.old" "$MNT/victim"
	SNAP=$T/$c.snap SMNT=$T/$c.smnt
	mkdir -p "$SMNT"
	if pre $c "snapshot" mv_run snapshot "$STORE" "$SNAP"; then
		cp "$T/victim.new" "$MNT/victim" && cp "$T/keep2.src" "$MNT/n1"
		umnt $c
		mount_fg $c source && cp "$T/keep2.src" "$MNT/n2" && sync
		before=$(data_sum "$SNAP")
		LOG=$T/$c.snap.log
		if mv_mount "$SNAP" "$SMNT" "$KS" "$PF" -f --read-only --audit-dir "$T/$c.audit" >>"$LOG" 2>&1; then
			ok "$c: the snapshot mounts --read-only beside its mounted source"
			if cmp -s "$SMNT/victim" "$T/victim.old"; then ok "$c: the snapshot serves its own content"
			else not_ok "$c: the snapshot serves its own content" "victim differs"; fi
			if [ -e "$SMNT/n1" ]; then not_ok "$c: a file written after the snapshot is absent from it"
			else ok "$c: a file written after the snapshot is absent from it"; fi
			for f in keep1 sub/keep2; do
				if cmp -s "$SMNT/$f" "$T/$(basename "$f").src"; then ok "$c: $f reads back in the snapshot"
				else not_ok "$c: $f reads back in the snapshot"; fi
			done
			if echo x 2>/dev/null >"$SMNT/w"; then not_ok "$c: the read-only snapshot refuses writes"
			else ok "$c: the read-only snapshot refuses writes"; fi
			if grep -q behind "$LOG"; then ok "$c: it says how far behind it is: $(grep -m1 behind "$LOG" | sed 's/^[^:]*: //')"
			else not_ok "$c: it says how far behind it is (/behind/)" "$(grep -v 'audit: log' "$LOG" | tail -n 3)"; fi
			if cmp -s "$MNT/victim" "$T/victim.new" && cmp -s "$MNT/n2" "$T/keep2.src" &&
				echo more >"$MNT/n3" && [ "$(cat "$MNT/n3")" = more ]; then
				ok "$c: the source keeps working beside it"
			else not_ok "$c: the source keeps working beside it"; fi
			check "$c: umount the snapshot" mv_umount "$SMNT"
			is "$(data_sum "$SNAP")" "$before" "$c: the read-only mount left the snapshot's data.mdb unchanged"
		else
			is_mounted "$SMNT" && mv_track "$SMNT" && mv_umount "$SMNT"
			not_ok "$c: the snapshot mounts --read-only beside its mounted source" "$(grep -v 'audit: log' "$LOG" | tail -n 3)"
		fi
		expect_intact $c
		umnt $c
		if try_mount $c; then
			ok "$c: the source mounts again (the anchor was not moved back)"
			if cmp -s "$MNT/victim" "$T/victim.new" && [ -e "$MNT/n1" ] && [ -e "$MNT/n2" ]; then ok "$c: with its latest content"
			else not_ok "$c: with its latest content"; fi
			umnt $c
		else not_ok "$c: the source mounts again (the anchor was not moved back)" "exit $MRC: $MOUT"; fi
	fi
else not_ok "$c: setup"; fi
echo "# case $c done at $(elapsed) s"

summary
