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

uid_root() { python3 -c 'import uuid; print("2.25." + str(uuid.uuid4().int))'; }

# gen_series DIR N SEED PATIENT-ID PATIENT-NAME ACCESSION: a CT series of N
# slices in DIR/CT_NNNN.dcm (raw pixel data kept in DIR.px/)
gen_series() {
	local dir=$1 n=$2 seed=$3 pid=$4 pname=$5 acc=$6 study series frame i
	study=$(uid_root)
	series=$study.2
	frame=$study.3
	mkdir -p "$dir" "$dir.px" || return 1
	python3 "$TOOL" pixels "$dir.px" "$n" "$seed" || return 1
	cat >"$dir.px/template.dump" <<-EOF
	(0002,0010) UI [1.2.840.10008.1.2.1]
	(0008,0005) CS [ISO_IR 100]
	(0008,0008) CS [ORIGINAL\\PRIMARY\\AXIAL]
	(0008,0016) UI [1.2.840.10008.5.1.4.1.1.2]
	(0008,0018) UI [$study.4.0]
	(0008,0020) DA [20240312]
	(0008,0021) DA [20240312]
	(0008,0022) DA [20240312]
	(0008,0023) DA [20240312]
	(0008,0030) TM [101502]
	(0008,0031) TM [101744]
	(0008,0033) TM [101745]
	(0008,0050) SH [$acc]
	(0008,0060) CS [CT]
	(0008,0070) LO [MEDVAULT TEST SCANNER]
	(0008,0080) LO [HOPITAL DE TEST]
	(0008,0090) PN [MARTIN^PAUL^^DR]
	(0008,1030) LO [CT THORAX ABDOMEN PELVIS]
	(0008,103e) LO [AXIAL 2.5MM STD]
	(0010,0010) PN [$pname]
	(0010,0020) LO [$pid]
	(0010,0030) DA [19580704]
	(0010,0040) CS [F]
	(0010,1010) AS [065Y]
	(0018,0015) CS [CHEST]
	(0018,0050) DS [2.5]
	(0018,0060) DS [120]
	(0018,1150) IS [1000]
	(0018,1151) IS [250]
	(0018,5100) CS [FFS]
	(0020,000d) UI [$study]
	(0020,000e) UI [$series]
	(0020,0010) SH [$seed]
	(0020,0011) IS [2]
	(0020,0012) IS [1]
	(0020,0013) IS [0]
	(0020,0032) DS [-250\\-250\\0]
	(0020,0037) DS [1\\0\\0\\0\\1\\0]
	(0020,0052) UI [$frame]
	(0020,1041) DS [0]
	(0028,0002) US 1
	(0028,0004) CS [MONOCHROME2]
	(0028,0010) US 512
	(0028,0011) US 512
	(0028,0030) DS [0.9765625\\0.9765625]
	(0028,0100) US 16
	(0028,0101) US 12
	(0028,0102) US 11
	(0028,0103) US 0
	(0028,1050) DS [40]
	(0028,1051) DS [400]
	(0028,1052) DS [-1024]
	(0028,1053) DS [1]
	(7fe0,0010) OW =$dir.px/px_0000.raw
	EOF
	dump2dcm -q "$dir.px/template.dump" "$dir.px/template.dcm" || return 1
	for ((i = 0; i < n; i++)); do
		printf '%s\n' "$i"
	done | xargs -P 2 -I{} sh -c '
		i=$1 dir=$2 study=$3
		f=$(printf "%s/CT_%04d.dcm" "$dir" "$i")
		z=$(awk -v i="$i" "BEGIN { printf \"%.2f\", -2.5 * i }")
		cp "$dir.px/template.dcm" "$f" &&
		dcmodify -q -nb \
			-m "(0008,0018)=$study.4.$((i + 1))" \
			-m "(0020,0013)=$((i + 1))" \
			-m "(0020,0032)=-250\\-250\\$z" \
			-m "(0020,1041)=$z" \
			-mf "(7fe0,0010)=$(printf "%s.px/px_%04d.raw" "$dir" "$i")" "$f"
	' _ {} "$dir" "$study" || return 1
	rm -rf "$dir.px"
}

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
gen_series "$T/sent/A" "$NA" 17 MV-PAT-0001 'MVTESTPATIENT^ALICE' ACC0001 ||
	bail "generate a $NA-slice CT series (dump2dcm, dcmodify)"
gen_series "$T/sent/B" "$NB" 29 MV-PAT-0002 'MVTESTPATIENT^BOB' ACC0002 ||
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
