#!/usr/bin/env bash
# t_90_audit: the access trail.  Operations as root and as user 65534 are
# recorded with the right uid, pid, process name, operation, path and
# result; the filters of `medvault audit` work; `audit verify` passes, then
# fails, naming the first bad record, after each kind of tampering; no path
# is stored in clear; a full audit disk fails closed (EACCES) and recovers;
# --audit-failure=continue keeps serving.
. "$(dirname "$0")/lib.sh"

need_mv
command -v setpriv >/dev/null || bail "setpriv is missing"

TINY=$(mktemp -d "${TMPDIR:-/tmp}/mvt90tiny.XXXXXX")
t90_cleanup() {
	mv_cleanup
	mountpoint -q "$TINY" && umount -l "$TINY"
	rmdir "$TINY" 2>/dev/null
}
trap t90_cleanup EXIT

mv_vault_new
AUD=$T/auditlog
# user 65534 must reach the mount point; the passphrase file stays 0600
chmod 0755 "$T" "$T/vault"
mkdir -m 1777 "$T/pids"
check "init a vault (root 0755: user 65534 reads in it)" mv_init "$STORE" "$KS" "$PF" --root-mode 0755
mv_mount "$STORE" "$MNT" "$KS" "$PF" --audit-dir "$AUD" || bail "mount with --audit-dir"
ok "mount with --audit-dir"

audit() { mv_run audit "$AUD" --keystore "$KS" --passphrase-file "$PF" "$@"; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

P=$MNT/patients/DOE_MARKER42
ops() {
	set -e
	mkdir -p "$P"
	chmod 0755 "$MNT/patients" "$P"
	echo "CT slice" >"$P/ct1.dcm"
	chmod 0644 "$P/ct1.dcm"
	sh -c 'echo $$ >"$1"; exec cat "$2" >/dev/null' sh "$T/pids/root" "$P/ct1.dcm"
	as_nobody sh -c 'echo $$ >"$1"; exec cat "$2" >/dev/null' sh "$T/pids/nobody" "$P/ct1.dcm"
	# the kernel refuses this one itself (default_permissions): no record
	! as_nobody sh -c 'echo x >>"$1"' sh "$P/ct1.dcm" 2>/dev/null
	mv "$P/ct1.dcm" "$P/ct2.dcm"
	truncate -s 3 "$P/ct2.dcm"
	fallocate --punch-hole -o 1 -l 1 "$P/ct2.dcm"
	chmod 0600 "$P/ct2.dcm"
	chown 65534:65534 "$P/ct2.dcm"
	setfattr -n user.study -v thorax "$P/ct2.dcm"
	setfattr -x user.study "$P/ct2.dcm"
	echo other >"$MNT/unrelated.txt"
	rm "$P/ct2.dcm"
}
check "operations as root and as user 65534" ops

# fsync of an audited file makes its records durable at once: read them
# while still mounted
python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_CREAT|os.O_WRONLY, 0o644); os.write(fd, b"x"); os.fsync(fd); os.close(fd)' "$P/synced.dcm"
if audit --path /patients/DOE_MARKER42/synced.dcm 2>&1 | grep -q 'op=create result=OK'; then
	ok "after fsync the create record is on disk while mounted"
else
	not_ok "after fsync the create record is on disk while mounted" "$(audit 2>&1 | tail -n 5)"
fi
mv_umount "$MNT" || not_ok "unmount"

if audit >"$T/all" 2>"$T/err"; then ok "medvault audit lists the log"; else not_ok "medvault audit lists the log" "$(cat "$T/err")"; fi
pr=$(cat "$T/pids/root" 2>/dev/null) pn=$(cat "$T/pids/nobody" 2>/dev/null)
has() { # has NAME REGEX: a line of the listing matches
	if grep -Eq -- "$2" "$T/all"; then ok "$1"; else not_ok "$1" "no line matches: $2" "$(tail -n 30 "$T/all")"; fi
}
D=/patients/DOE_MARKER42
has "create by root" "op=create result=OK uid=0 gid=0 pid=[0-9]+ comm=\"[a-z]+\" ino=[0-9]+ path=\"$D/ct1.dcm\""
has "open by root: uid, pid and comm" "op=open-r result=OK uid=0 gid=0 pid=$pr comm=\"cat\" ino=[0-9]+ path=\"$D/ct1.dcm\""
has "open by 65534: uid, gid, pid and comm" "op=open-r result=OK uid=65534 gid=65534 pid=$pn comm=\"cat\" ino=[0-9]+ path=\"$D/ct1.dcm\""
has "rename with both paths" "op=rename result=OK uid=0 .* path=\"$D/ct1.dcm\" to=\"$D/ct2.dcm\""
has "truncate" "op=truncate result=OK uid=0 .* comm=\"truncate\" .* path=\"$D/ct2.dcm\" detail=\"size=3\""
has "fallocate" "op=fallocate result=OK uid=0 .* comm=\"fallocate\" .* path=\"$D/ct2.dcm\" detail=\"mode=punch-hole off=1 len=1\""
has "chmod" "op=chmod result=OK .* path=\"$D/ct2.dcm\" detail=\"mode=0600\""
has "chown" "op=chown result=OK .* path=\"$D/ct2.dcm\" detail=\"uid=65534 gid=65534\""
has "setxattr" "op=setxattr result=OK .* path=\"$D/ct2.dcm\" detail=\"user.study\""
has "removexattr" "op=removexattr result=OK .* path=\"$D/ct2.dcm\" detail=\"user.study\""
has "unlink" "op=unlink result=OK .* comm=\"rm\" .* path=\"$D/ct2.dcm\""
has "mount and unmount" "op=unmount"
has "microsecond UTC times" "^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z seq=0 op=mount"
n_nobody=$(grep -c "uid=65534 gid=65534 pid=" "$T/all")
is "$n_nobody" 1 "exactly one record by user 65534 (the kernel refused the write itself)"

cnt() { grep -c . || true; }
is "$(audit --path "$D" | cnt)" "$(grep -c "path=\"$D\|to=\"$D" "$T/all")" "--path selects a patient directory"
is "$(audit --path "$D" | grep -c unrelated)" 0 "--path leaves other files out"
is "$(audit --uid 65534 | cnt)" 1 "--uid 65534"
is "$(audit --uid nobody | cnt)" 1 "--uid by name"
is "$(audit --op open-r | cnt)" 2 "--op open-r"
is "$(audit --op rename,unlink | cnt)" 2 "--op with a list"
today=$(date -u +%F) tomorrow=$(date -u -d tomorrow +%F) yesterday=$(date -u -d yesterday +%F)
is "$(audit --since "$today" | cnt)" "$(cnt <"$T/all")" "--since today: everything"
is "$(audit --since "$tomorrow" | cnt)" 0 "--since tomorrow: nothing"
is "$(audit --until "$yesterday" | cnt)" 0 "--until yesterday: nothing"
is "$(audit --until "$today" --path "$D" --uid 65534 | cnt)" 1 "--until today (a whole day) with other filters"
check "--json parses" bash -c "'$MV' audit '$AUD' --keystore '$KS' --passphrase-file '$PF' --json | python3 -m json.tool >/dev/null"
is "$(audit --json --uid 65534 | python3 -c 'import json,sys; r=json.load(sys.stdin); print(len(r), r[0]["comm"], r[0]["op"], r[0]["result"], r[0]["path"])')" \
	"1 cat open-r OK $D/ct1.dcm" "--json fields"
check "audit verify passes" mv_run audit verify "$AUD" --keystore "$KS" --passphrase-file "$PF"
check_fails "a wrong passphrase is refused" bash -c "echo wrong >'$T/badpf'; chmod 600 '$T/badpf'; '$MV' audit verify '$AUD' --keystore '$KS' --passphrase-file '$T/badpf'"
if grep -rq DOE_MARKER42 "$AUD"; then not_ok "no path in clear in the audit files"; else ok "no path in clear in the audit files"; fi
if grep -rq DOE_MARKER42 "$STORE"; then not_ok "nothing of the trail in the store"; else ok "nothing of the trail in the store"; fi

# ---- tampering: each kind is detected and the first bad record is named
tamper() { # NAME ACTION EXPECTED-REGEX
	local name=$1 action=$2 want=$3 d=$T/tamper out
	rm -rf "$d"
	cp -a "$AUD" "$d"
	python3 - "$d" "$action" <<'EOF'
import glob, struct, sys
d, action = sys.argv[1], sys.argv[2]
f = sorted(glob.glob(d + "/audit-*.log"))[-1]
b = bytearray(open(f, "rb").read())
offs, o = [], 128
while o + 4 <= len(b):
    offs.append(o)
    o += 4 + struct.unpack(">I", b[o:o + 4])[0]
offs.append(o)
fr = [bytes(b[offs[i]:offs[i + 1]]) for i in range(len(offs) - 1)]
head = bytes(b[:128])
if action == "flip":
    x = bytearray(fr[5]); x[40] ^= 1; fr[5] = bytes(x)
elif action == "delete":
    del fr[5]
elif action == "swap":
    fr[5], fr[6] = fr[6], fr[5]
elif action == "truncate":
    fr = fr[:-3]
elif action == "cut":
    fr[-1] = fr[-1][:10]
open(f, "wb").write(head + b"".join(fr))
EOF
	if out=$("$MV" audit verify "$d" --keystore "$KS" --passphrase-file "$PF" 2>&1); then
		not_ok "$name: verify fails" "$out"
	elif grep -Eq -- "$want" <<<"$out"; then
		ok "$name: verify fails naming the record ($(tail -n 1 <<<"$out" | sed 's/.*fails verification //'))"
	else
		not_ok "$name: verify names the first bad record" "$out"
	fi
}
last=$(audit | tail -n 1 | sed -E 's/.* seq=([0-9]+) .*/\1/')
tamper "a flipped byte" flip "at record 5: record 5 altered"
tamper "a deleted record" delete "at record 5: record 5 missing"
tamper "two swapped records" swap "at record 5: records reordered"
tamper "the last three records cut off" truncate "at record $((last - 2)): .*cut off"
tamper "the last record cut short" cut "at record $last: .*truncated"
out=$(rm -rf "$T/tamper" && cp -a "$AUD" "$T/tamper" && rm "$T/tamper/checkpoint" && "$MV" audit verify "$T/tamper" --keystore "$KS" --passphrase-file "$PF" 2>&1)
if [ $? -ne 0 ] && grep -q checkpoint <<<"$out"; then ok "a removed checkpoint is detected"; else not_ok "a removed checkpoint is detected" "$out"; fi
out=$(audit 2>&1 >/dev/null; cp -a "$AUD" "$T/t2"; "$MV" audit "$T/tamper" --keystore "$KS" --passphrase-file "$PF" 2>&1 >/dev/null)
[ $? -ne 0 ] && ok "listing a tampered log fails too" || not_ok "listing a tampered log fails too"

# ---- fail closed: the audit disk fills up
mount -t tmpfs -o size=512k,mode=0700 tmpfs "$TINY" || bail "mount a small tmpfs"
ok "a 512 KiB tmpfs for the audit log"
mv_mount "$STORE" "$MNT" "$KS" "$PF" --audit-dir "$TINY/log" || bail "mount with the audit log on the tmpfs"
echo data >"$MNT/f1"
dd if=/dev/zero of="$TINY/filler" bs=4k 2>/dev/null
cat "$MNT/f1" >/dev/null	# its record cannot be written
sleep 2.5
if cat "$MNT/f1" 2>"$T/err" >/dev/null; then
	not_ok "audit disk full: new opens are refused"
elif grep -q "Permission denied" "$T/err"; then
	ok "audit disk full: new opens are refused (EACCES)"
else
	not_ok "audit disk full: new opens are refused (EACCES)" "$(cat "$T/err")"
fi
check_fails "audit disk full: creates are refused" sh -c "echo x >'$MNT/f2'"
rm -f "$TINY/filler"
sleep 2.5
check "space again: opens work" cat "$MNT/f1"
mv_umount "$MNT" || not_ok "unmount"
check "the log written around the outage verifies" mv_run audit verify "$TINY/log" --keystore "$KS" --passphrase-file "$PF"
den=$(mv_run audit "$TINY/log" --keystore "$KS" --passphrase-file "$PF" --op denied)
if grep -q 'op=open-r result=EACCES .*path="/f1" detail="refused: audit log unavailable"' <<<"$den"; then
	ok "the refused open is in the log (--op denied)"
else
	not_ok "the refused open is in the log (--op denied)" "$den"
fi

# ---- --audit-failure=continue
mv_mount "$STORE" "$MNT" "$KS" "$PF" --audit-dir "$TINY/log" --audit-failure=continue || bail "mount with --audit-failure=continue"
dd if=/dev/zero of="$TINY/filler" bs=4k 2>/dev/null
cat "$MNT/f1" >/dev/null
sleep 2.5
check "continue: opens still work with the audit disk full" cat "$MNT/f1"
rm -f "$TINY/filler"
mv_umount "$MNT" || not_ok "unmount"
check "continue: the log verifies afterwards" mv_run audit verify "$TINY/log" --keystore "$KS" --passphrase-file "$PF"

# ---- misuse
check_fails "an audit dir inside the store is refused" mv_mount "$STORE" "$MNT" "$KS" "$PF" --audit-dir "$STORE/audit"
check_fails "--audit-failure takes closed or continue" mv_mount "$STORE" "$MNT" "$KS" "$PF" --audit-failure=maybe
is_mounted "$MNT" && mv_umount "$MNT"
check "the default audit dir is beside the keystore" bash -c "mv_dummy=1; '$MV' mount '$STORE' '$MNT' --keystore '$KS' --passphrase-file '$PF' && touch '$MNT/x' && '$MV' umount '$MNT' && ls '$KS'/audit/*/checkpoint"
check "the keystore directory finds its volume's log" mv_run audit verify "$KS" --keystore "$KS" --passphrase-file "$PF"
is_mounted "$MNT" && mv_umount "$MNT"

summary
