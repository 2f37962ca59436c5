#!/usr/bin/env bash
# t_85_dicom: a PACS writes into the vault, end to end with dcmtk.
#
# Generates two realistic CT studies (a 200-slice series of 512x512 16-bit
# images for one patient, a 40-slice series for another): one slice is built
# with dump2dcm from a text dump, then copied and varied per slice with
# dcmodify (SOP Instance UID, Instance Number, Image Position, Slice Location,
# pixel data).  storescp (the archive, --fork: one process per association)
# listens on a random free port and stores into MNT/incoming, one directory
# per study (-su); two storescu (two modalities) send both series at once
# to 127.0.0.1.  Then: every received file parses (dcmftest, dcmdump), its
# identifiers and PixelData equal the sent ones (tests/integration/
# dicom_tool.py, a small explicit/implicit little-endian parser), the store
# holds none of the patients' names in clear, fsck is clean, and after a
# remount everything reads back the same.
#
# Note: storescp (dcmtk 3.6.7) has no bind-address option, so it listens on
# every interface for the few seconds of the test; only 127.0.0.1 is used.
. "$(dirname "$0")/lib.sh"

need_mv
TOOL=$MV_LIB_DIR/dicom_tool.py
for t in dump2dcm dcmodify storescp storescu echoscu dcmftest dcmdump python3; do
	command -v "$t" >/dev/null || bail "$t is installed" "install dcmtk and python3 (scripts/install-deps.sh)"
done
NA=${MV_DICOM_SLICES:-200}	# slices of the main series
NB=40				# slices of the second study

SCP_PID=
SCU_PIDS=()
t85_cleanup() {
	local c
	for c in "${SCU_PIDS[@]}"; do kill -TERM "$c" 2>/dev/null; done
	if [ -n "$SCP_PID" ]; then
		# storescp --fork children first (they hold files open in the mount)
		for c in $(awk -v p="$SCP_PID" '$4 == p { print $1 }' /proc/[0-9]*/stat 2>/dev/null); do
			kill -TERM "$c" 2>/dev/null
		done
		kill -TERM "$SCP_PID" 2>/dev/null
		wait "$SCP_PID" 2>/dev/null
		SCP_PID=
	fi
	mv_cleanup
}
trap t85_cleanup EXIT

# ---------------------------------------------------------------- series

. "$(dirname "$0")/dicom_gen.sh"


# scan DIR OUT: one sorted line per DICOM file (ids, geometry, pixel hash)
scan() {
	python3 "$TOOL" scan "$1" | sort >"$2"
}

# dicom_ok DIR LABEL: every file under DIR is DICOM Part 10 and parses
dicom_ok() {
	local dir=$1 label=$2 bad
	bad=$(find "$dir" -type f -print0 | xargs -0 -r dcmftest | grep -v '^yes: ')
	if [ -z "$bad" ]; then ok "$label: dcmftest accepts every file"
	else not_ok "$label: dcmftest accepts every file" "$(head -n 5 <<<"$bad")"; fi
	check "$label: dcmdump parses every file" \
		bash -c "find '$dir' -type f -print0 | xargs -0 -r -n 64 dcmdump -q >/dev/null"
}

# same_as_sent SCAN LABEL: SCAN lists exactly the sent instances with the
# same identifiers and pixel data
same_as_sent() {
	local got=$1 label=$2 d
	if grep -q '^ERROR' "$got"; then
		not_ok "$label: every file parses (dicom_tool)" "$(grep '^ERROR' "$got" | head -n 5)"
	else
		ok "$label: every file parses (dicom_tool)"
	fi
	if d=$(diff "$T/sent.scan" "$got"); then
		ok "$label: $(wc -l <"$got") instances, identifiers and PixelData equal to the sent ones"
	else
		not_ok "$label: identifiers and PixelData equal to the sent ones" \
			"sent $(wc -l <"$T/sent.scan"), got $(wc -l <"$got"); diff (sent <, got >):" \
			"$(head -n 10 <<<"$d" | cut -c1-160)"
	fi
}

start=$SECONDS
gen_series "$T/sent/A" "$NA" 17 MV-PAT-0001 'MVTESTPATIENT^ALICE' ACC0001 >/dev/null ||
	bail "generate a $NA-slice CT series (dump2dcm, dcmodify)"
gen_series "$T/sent/B" "$NB" 29 MV-PAT-0002 'MVTESTPATIENT^BOB' ACC0002 >/dev/null ||
	bail "generate a $NB-slice CT series"
scan "$T/sent" "$T/sent.scan"
n_sent=$(wc -l <"$T/sent.scan")
n_sops=$(cut -f1 "$T/sent.scan" | sort -u | wc -l)
n_px=$(cut -f10 "$T/sent.scan" | sort -u | wc -l)
if [ "$n_sent" -eq $((NA + NB)) ] && [ "$n_sops" -eq "$n_sent" ] && [ "$n_px" -eq "$n_sent" ] &&
	! grep -q '^ERROR' "$T/sent.scan" && [ "$(cut -f6-9 "$T/sent.scan" | sort -u)" = "$(printf '512\t512\t16\t524288')" ]; then
	ok "generated $n_sent CT slices (512x512, 16-bit, distinct UIDs and pixels) in $((SECONDS - start)) s"
else
	bail "generate the series" "$n_sent files, $n_sops SOP UIDs, $n_px distinct pixel data" "$(head -n 3 "$T/sent.scan")"
fi
dicom_ok "$T/sent" "sent"

# ---------------------------------------------------------------- archive

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
ok "mount the vault"
mkdir "$MNT/incoming" || bail "mkdir $MNT/incoming"

port=
for try in 1 2 3; do
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	storescp --fork -dhl -aet MVARCHIVE -od "$MNT/incoming" -su study -fe .dcm "$port" \
		>"$T/storescp.log" 2>&1 &
	SCP_PID=$!
	up=0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$SCP_PID" 2>/dev/null || break
		if echoscu -aet MVECHO -aec MVARCHIVE 127.0.0.1 "$port" >/dev/null 2>&1; then up=1; break; fi
		sleep 0.2
	done
	[ $up -eq 1 ] && break
	kill "$SCP_PID" 2>/dev/null; wait "$SCP_PID" 2>/dev/null; SCP_PID=
done
[ $up -eq 1 ] || bail "storescp answers C-ECHO on 127.0.0.1" "$(tail -n 5 "$T/storescp.log")"
ok "storescp (AE MVARCHIVE) answers C-ECHO on 127.0.0.1:$port"

start=$SECONDS
storescu -aet MVCT1 -aec MVARCHIVE +sd +r 127.0.0.1 "$port" "$T/sent/A" >"$T/scu-A.log" 2>&1 &
scu_a=$!
storescu -aet MVCT2 -aec MVARCHIVE +sd +r 127.0.0.1 "$port" "$T/sent/B" >"$T/scu-B.log" 2>&1 &
scu_b=$!
SCU_PIDS=("$scu_a" "$scu_b")
wait $scu_a; rc_a=$?
wait $scu_b; rc_b=$?
SCU_PIDS=()
took=$((SECONDS - start))
is "$rc_a" 0 "storescu MVCT1 sent $NA instances (${took} s for both series)"
[ $rc_a -eq 0 ] || tail -n 5 "$T/scu-A.log" | sed 's/^/#   /'
is "$rc_b" 0 "storescu MVCT2 sent $NB instances at the same time"
[ $rc_b -eq 0 ] || tail -n 5 "$T/scu-B.log" | sed 's/^/#   /'

# storescp answers each C-STORE after writing the file; its --fork children
# end with their association.  Wait for them, then stop the archive.
for ((i = 0; i < 100; i++)); do
	[ -z "$(awk -v p="$SCP_PID" '$4 == p' /proc/[0-9]*/stat 2>/dev/null)" ] && break
	sleep 0.1
done
kill -TERM "$SCP_PID" 2>/dev/null
wait "$SCP_PID" 2>/dev/null
SCP_PID=
if grep -qiE '^E:|error' "$T/storescp.log"; then
	not_ok "storescp logged no error" "$(grep -iE '^E:|error' "$T/storescp.log" | head -n 5)"
else
	ok "storescp logged no error"
fi

# one directory per study, named after the Study Instance UID
mapfile -t studies < <(find "$MNT/incoming" -mindepth 1 -maxdepth 1 -type d | sort)
is "${#studies[@]}" 2 "storescp made one directory per study"
counts=$(for d in "${studies[@]}"; do find "$d" -type f -name '*.dcm' | wc -l; done | sort -n | tr '\n' ' ')
is "$counts" "$NB $NA " "the study directories hold $NB and $NA .dcm files"
n_all=$(find "$MNT/incoming" -type f | wc -l)
is "$n_all" "$n_sent" "nothing else was left in incoming/ (no temporary files)"

dicom_ok "$MNT/incoming" "received"
scan "$MNT/incoming" "$T/recv.scan"
same_as_sent "$T/recv.scan" "received"
used=$(du -sk "$MNT/incoming" | cut -f1)
ok "incoming/ holds $((used / 1024)) MiB as seen through the mount"

# ---------------------------------------------------------------- at rest

check "umount" mv_umount "$MNT"
if grep -rlaF -e MVTESTPATIENT -e MV-PAT-0001 -e 'HOPITAL DE TEST' "$STORE" >"$T/leak" 2>/dev/null; then
	not_ok "the store holds no patient name, id or institution in clear" "$(head -n 3 "$T/leak")"
else
	ok "the store holds no patient name, id or institution in clear"
fi
check "fsck finds the store clean" mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"

mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount the vault"
ok "remount the vault"
dicom_ok "$MNT/incoming" "after remount"
scan "$MNT/incoming" "$T/again.scan"
same_as_sent "$T/again.scan" "after remount"
# a viewer reads a whole series: the bytes equal what storescp wrote
if cmp -s "$T/recv.scan" "$T/again.scan"; then ok "after remount: same scan as before"
else not_ok "after remount: same scan as before"; fi
check "umount" mv_umount "$MNT"

summary
