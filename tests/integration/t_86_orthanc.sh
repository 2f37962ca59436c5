#!/usr/bin/env bash
# t_86_orthanc: the Orthanc PACS server keeps its storage area and its SQLite
# index on a medvault mount.
#
# Orthanc (Debian's 1.10.x, run by this script only, never as the system
# service) writes each received instance to StorageDirectory with fsync
# ("SyncStorageArea"), and keeps its index in an SQLite database in
# IndexDirectory: SQLite takes POSIX fcntl locks, writes a rollback journal,
# fsyncs it and the database, and unlinks the journal at each commit.  Both
# directories are inside the mount.
#
# Two CT studies are generated as in t_85 (dump2dcm + dcmodify: 40 slices of
# 512x512 16-bit for one patient, 10 for another) and sent with storescu to
# Orthanc's DICOM port.  Through the REST API: the patients, studies, series
# and instances are all there, every stored attachment passes Orthanc's own
# MD5 check, and every instance downloaded from /instances/ID/file holds the
# sent identifiers and PixelData.  Orthanc is stopped (SIGTERM), the vault
# unmounted, fsck'd, remounted, Orthanc restarted on the same configuration:
# everything is still there and identical, and the SQLite index passes
# PRAGMA integrity_check.  One study is deleted through the REST API
# (DELETE /studies/ID): its files leave the storage area, and after another
# stop/remount/restart it is still gone while the other study is intact.
# Finally fsck of the store is clean.
#
# Orthanc's storage cache is disabled ("MaximumStorageCacheSize": 0) so every
# download reads the file back from the mount.
#
# Note: Orthanc 1.10 has no bind-address option (neither HTTP nor DICOM), so
# it listens on every interface for the duration of the test.  HTTP refuses
# non-local clients ("RemoteAccessAllowed": false); the DICOM server accepts
# only its own AE title and the one modality declared on 127.0.0.1
# ("DicomCheckCalledAet", "DicomCheckModalityHost", no "DicomAlwaysAllow*").
# Only 127.0.0.1 is used.
. "$(dirname "$0")/lib.sh"

need_mv
TOOL=$MV_LIB_DIR/dicom_tool.py
for t in Orthanc curl dump2dcm dcmodify storescu echoscu python3; do
	command -v "$t" >/dev/null || bail "$t is installed" "install orthanc, curl, dcmtk and python3 (scripts/install-deps.sh)"
done
NA=${MV_ORTHANC_SLICES:-40}	# slices of the study that stays
NB=10				# slices of the study that is deleted
AET=MVORTHANC
SCU=MVCT1

ORTHANC_PID=
SCU_PIDS=()
# stop_orthanc: SIGTERM, wait up to 30 s, then SIGKILL.  Only the PID this
# script started.  Sets ORTHANC_RC (its exit status, or "killed").
ORTHANC_RC=
stop_orthanc() {
	local i
	ORTHANC_RC=
	[ -n "$ORTHANC_PID" ] || return 0
	kill -TERM "$ORTHANC_PID" 2>/dev/null
	for ((i = 0; i < 300; i++)); do
		kill -0 "$ORTHANC_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$ORTHANC_PID" 2>/dev/null; then
		kill -KILL "$ORTHANC_PID" 2>/dev/null
		wait "$ORTHANC_PID" 2>/dev/null
		ORTHANC_RC=killed
	else
		wait "$ORTHANC_PID" 2>/dev/null
		ORTHANC_RC=$?
	fi
	ORTHANC_PID=
}
t86_cleanup() {
	local c
	for c in "${SCU_PIDS[@]}"; do kill -TERM "$c" 2>/dev/null; done
	stop_orthanc	# before the unmount: it holds files open in the mount
	mv_cleanup
}
trap t86_cleanup EXIT

# ---------------------------------------------------------------- series
. "$(dirname "$0")/dicom_gen.sh"



# scan DIR OUT: one sorted line per DICOM file (ids, geometry, pixel hash)
scan() {
	python3 "$TOOL" scan "$1" | sort >"$2"
}

# ---------------------------------------------------------------- REST

# a small REST client: JSON answers are reduced to what the checks compare
cat >"$T/orthanc_api.py" <<'EOF'
import hashlib, json, os, sys, urllib.error, urllib.request

base = sys.argv[1]

def call(method, path, data=None):
    req = urllib.request.Request(base + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()

def get(path):
    return json.loads(call("GET", path))

def main(cmd, args):
    if cmd == "status":		# HTTP status of GET PATH
        try:
            call("GET", args[0])
            print(200)
        except urllib.error.HTTPError as e:
            print(e.code)
        return 0
    if cmd == "system":		# AET, DICOM port, database version
        s = get("/system")
        print(s["DicomAet"], s["DicomPort"], s["DatabaseVersion"])
        return 0
    if cmd == "stats":		# patients studies series instances
        s = get("/statistics")
        print(s["CountPatients"], s["CountStudies"], s["CountSeries"], s["CountInstances"])
        return 0
    if cmd == "tree":		# one sorted line per level and resource
        for p in get("/patients?expand"):
            print("patient", p["MainDicomTags"]["PatientID"], len(p["Studies"]))
        for s in get("/studies?expand"):
            print("study", s["MainDicomTags"]["StudyInstanceUID"],
                  s["PatientMainDicomTags"]["PatientID"], len(s["Series"]))
        for s in get("/series?expand"):
            print("series", s["MainDicomTags"]["SeriesInstanceUID"], len(s["Instances"]))
        return 0
    if cmd == "study-id":	# Orthanc's ID of a Study Instance UID
        for r in json.loads(call("POST", "/tools/lookup", args[0].encode())):
            if r["Type"] == "Study":
                print(r["ID"])
        return 0
    if cmd == "delete":		# DELETE PATH
        call("DELETE", args[0])
        return 0
    if cmd == "fetch":		# download every instance into DIR/ID.dcm
        os.makedirs(args[0], exist_ok=True)
        ids = get("/instances")
        for i in ids:
            with open(os.path.join(args[0], i + ".dcm"), "wb") as f:
                f.write(call("GET", "/instances/%s/file" % i))
        print(len(ids))
        return 0
    if cmd == "verify":		# Orthanc's MD5 check of every stored file
        bad = []
        ids = get("/instances")
        for i in ids:
            try:
                call("POST", "/instances/%s/attachments/dicom/verify-md5" % i, b"")
            except urllib.error.HTTPError as e:
                bad.append("%s: HTTP %d" % (i, e.code))
        print(len(ids), len(bad))
        for b in bad[:5]:
            print(b)
        return 0 if not bad else 1
    sys.stderr.write("orthanc_api.py: unknown command %s\n" % cmd)
    return 2

sys.exit(main(sys.argv[2], sys.argv[3:]))
EOF
api() { timeout 120 python3 "$T/orthanc_api.py" "http://127.0.0.1:$HTTP_PORT" "$@"; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# write_config: the Orthanc configuration, storage and index in the mount
write_config() {
	cat >"$CFG" <<-EOF
	{
	  "Name" : "medvault-t86",
	  "StorageDirectory" : "$MNT/orthanc/storage",
	  "IndexDirectory" : "$MNT/orthanc/index",
	  "StorageCompression" : false,
	  "SyncStorageArea" : true,
	  "StoreMD5ForAttachments" : true,
	  "MaximumStorageCacheSize" : 0,
	  "Plugins" : [ ],
	  "LuaScripts" : [ ],
	  "HttpServerEnabled" : true,
	  "HttpPort" : $HTTP_PORT,
	  "HttpThreadsCount" : 4,
	  "RemoteAccessAllowed" : false,
	  "AuthenticationEnabled" : false,
	  "SslEnabled" : false,
	  "DicomServerEnabled" : true,
	  "DicomAet" : "$AET",
	  "DicomPort" : $DICOM_PORT,
	  "DicomThreadsCount" : 2,
	  "DicomCheckCalledAet" : true,
	  "DicomCheckModalityHost" : true,
	  "DicomAlwaysAllowEcho" : false,
	  "DicomAlwaysAllowStore" : false,
	  "DicomModalities" : {
	    "mvct1" : { "AET" : "$SCU", "Host" : "127.0.0.1", "Port" : 104,
	                "AllowEcho" : true, "AllowStore" : true,
	                "AllowFind" : false, "AllowMove" : false, "AllowGet" : false }
	  },
	  "OrthancPeers" : { },
	  "ConcurrentJobs" : 1,
	  "SaveJobs" : true,
	  "StableAge" : 2,
	  "OverwriteInstances" : false
	}
	EOF
}

# start_orthanc LOG: start Orthanc on $CFG; 0 once /system answers and
# C-ECHO works, 1 if it exits or does not answer within 30 s
start_orthanc() {
	local log=$1 i
	OLOG=$log
	Orthanc "$CFG" >"$log" 2>&1 &
	ORTHANC_PID=$!
	for ((i = 0; i < 300; i++)); do
		kill -0 "$ORTHANC_PID" 2>/dev/null || { wait "$ORTHANC_PID"; ORTHANC_PID=; return 1; }
		if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$HTTP_PORT/system" &&
			echoscu -aet "$SCU" -aec "$AET" 127.0.0.1 "$DICOM_PORT" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# log_clean LOG LABEL: Orthanc logged no error line (E...) and no SQLite
# complaint
log_clean() {
	local bad
	bad=$(grep -E '^E[0-9]{4} |SQLite.*(error|corrupt|locked|busy)|database is locked|disk I/O error' "$1")
	if [ -z "$bad" ]; then ok "$2: Orthanc logged no error"
	else not_ok "$2: Orthanc logged no error" "$(head -n 8 <<<"$bad")"; fi
}

# stopped LABEL LOG: stop Orthanc, check it exited 0 and logged no error
stopped() {
	stop_orthanc
	is "$ORTHANC_RC" 0 "$1: Orthanc stopped cleanly on SIGTERM"
	log_clean "$2" "$1"
}

# path_diag PATH: which component of PATH does not answer stat (shown on
# failures: a lookup that fails in the mount is a medvault bug)
path_diag() {
	local p=$1 cur=
	IFS=/ read -r -a parts <<<"${p#/}"
	for c in "${parts[@]}"; do
		cur=$cur/$c
		if ! timeout 10 stat -c '%n: ino %i, %F, nlink %h' "$cur" 2>&1; then
			echo "ls -la ${cur%/*}:"; timeout 10 ls -la "${cur%/*}" 2>&1 | head -n 12
			return
		fi
	done
}

# index_ok LABEL: with Orthanc stopped, no journal or WAL is left next to the
# SQLite index (a clean close checkpoints and removes it), and the index
# passes PRAGMA integrity_check (opened read-write and closed, so SQLite
# leaves no -wal/-shm behind either)
index_ok() {
	local r left
	left=$(ls -A "$MNT/orthanc/index" 2>&1 | tr '\n' ' ')
	is "$left" "index " "$1: Orthanc left its index alone in its directory (no journal, no WAL)"
	r=$(python3 - "$MNT/orthanc/index/index" <<-'EOF' 2>&1
	import sqlite3, sys
	c = sqlite3.connect(sys.argv[1])
	print(c.execute("PRAGMA integrity_check").fetchone()[0],
	      c.execute("PRAGMA journal_mode").fetchone()[0],
	      c.execute("SELECT COUNT(*) FROM Resources").fetchone()[0])
	c.close()
	EOF
	)
	case $r in
	"ok "*) ok "$1: SQLite index passes integrity_check (journal mode ${r#ok })" ;;
	*) not_ok "$1: SQLite index passes integrity_check" "$r" "$(path_diag "$MNT/orthanc/index/index")" ;;
	esac
}

# same_as_sent SCAN LABEL: the downloaded instances equal the sent ones
# (identifiers and PixelData), for the studies listed in EXPECT
same_as_expected() {
	local got=$1 expect=$2 label=$3 d
	if grep -q '^ERROR' "$got"; then
		not_ok "$label: every downloaded file parses (dicom_tool)" "$(grep '^ERROR' "$got" | head -n 5)"
	else
		ok "$label: every downloaded file parses (dicom_tool)"
	fi
	if d=$(diff "$expect" "$got"); then
		ok "$label: $(wc -l <"$got") instances, identifiers and PixelData equal to the sent ones"
	else
		not_ok "$label: identifiers and PixelData equal to the sent ones" \
			"expected $(wc -l <"$expect"), got $(wc -l <"$got"); diff (expected <, got >):" \
			"$(head -n 10 <<<"$d" | cut -c1-160)"
	fi
}

# fetch_and_compare DIR EXPECT LABEL: download everything, compare, verify MD5
fetch_and_compare() {
	local dir=$1 expect=$2 label=$3 n v
	n=$(api fetch "$dir" 2>&1) || {
		not_ok "$label: download every instance" "$(tail -n 3 <<<"$n")" \
			"$(grep -E '^E[0-9]{4} ' "$OLOG" | head -n 3)" "$(path_diag "$MNT/orthanc/storage")"
		return
	}
	ok "$label: downloaded $n instances from /instances/ID/file"
	scan "$dir" "$dir.scan"
	same_as_expected "$dir.scan" "$expect" "$label"
	v=$(api verify 2>&1)
	case $v in
	"$n 0") ok "$label: Orthanc's MD5 check passes for the $n stored files" ;;
	*) not_ok "$label: Orthanc's MD5 check passes for every stored file" "$v" ;;
	esac
}

# storage_files: number of files in the storage area (with a diagnostic on
# stderr if the walk fails)
storage_files() {
	local n
	n=$(find "$MNT/orthanc/storage" -type f 2>"$T/find.err" | wc -l)
	[ -s "$T/find.err" ] && { head -n 3 "$T/find.err"; path_diag "$MNT/orthanc/storage"; } | sed 's/^/#   /' >&2
	echo "$n"
}

# ---------------------------------------------------------------- generate

start=$SECONDS
STUDY_A=$(gen_series "$T/sent/A" "$NA" 31 MV-PAT-0101 'MVTESTPATIENT^CAROL' ACC0101) ||
	bail "generate a $NA-slice CT series (dump2dcm, dcmodify)"
STUDY_B=$(gen_series "$T/sent/B" "$NB" 37 MV-PAT-0102 'MVTESTPATIENT^DAVE' ACC0102) ||
	bail "generate a $NB-slice CT series"
scan "$T/sent" "$T/sent.scan"
scan "$T/sent/A" "$T/sentA.scan"
n_sent=$(wc -l <"$T/sent.scan")
n_px=$(cut -f10 "$T/sent.scan" | sort -u | wc -l)
if [ "$n_sent" -eq $((NA + NB)) ] && [ "$n_px" -eq "$n_sent" ] && ! grep -q '^ERROR' "$T/sent.scan"; then
	ok "generated $n_sent CT slices in two studies (512x512, 16-bit) in $((SECONDS - start)) s"
else
	bail "generate the series" "$n_sent files, $n_px distinct pixel data" "$(head -n 3 "$T/sent.scan")"
fi

# ---------------------------------------------------------------- first run

mv_vault_new
check "init a vault" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
ok "mount the vault"
mkdir -p "$MNT/orthanc/storage" "$MNT/orthanc/index" || bail "mkdir $MNT/orthanc/{storage,index}"
CFG=$T/orthanc.json

up=0
for try in 1 2 3; do
	HTTP_PORT=$(free_port) DICOM_PORT=$(free_port)
	[ "$HTTP_PORT" != "$DICOM_PORT" ] || continue
	write_config
	if start_orthanc "$T/orthanc-1.log"; then up=1; break; fi
	stop_orthanc
	grep -q -i 'address already in use\|cannot bind\|port' "$T/orthanc-1.log" || break
done
[ $up -eq 1 ] || bail "Orthanc starts with its storage and index in the mount" "$(tail -n 15 "$T/orthanc-1.log")"
ok "Orthanc starts with storage and index in the mount (HTTP 127.0.0.1:$HTTP_PORT, DICOM $DICOM_PORT)"
sys=$(api system 2>&1)
is "${sys% *}" "$AET $DICOM_PORT" "/system reports AE title $AET and the DICOM port"
if [ -f "$MNT/orthanc/index/index" ]; then ok "the SQLite index was created in the mount"
else not_ok "the SQLite index was created in the mount" "$(ls -la "$MNT/orthanc/index" 2>&1)"; fi

start=$SECONDS
storescu -aet "$SCU" -aec "$AET" +sd +r 127.0.0.1 "$DICOM_PORT" "$T/sent/A" >"$T/scu-A.log" 2>&1 &
scu_a=$!
storescu -aet "$SCU" -aec "$AET" +sd +r 127.0.0.1 "$DICOM_PORT" "$T/sent/B" >"$T/scu-B.log" 2>&1 &
scu_b=$!
SCU_PIDS=("$scu_a" "$scu_b")
wait $scu_a; rc_a=$?
wait $scu_b; rc_b=$?
SCU_PIDS=()
took=$((SECONDS - start))
is "$rc_a" 0 "storescu sent $NA instances to $AET (${took} s for both studies)"
[ $rc_a -eq 0 ] || tail -n 5 "$T/scu-A.log" | sed 's/^/#   /'
is "$rc_b" 0 "storescu sent $NB instances at the same time"
[ $rc_b -eq 0 ] || tail -n 5 "$T/scu-B.log" | sed 's/^/#   /'
if grep -q -E '^E:|Failed|Error' "$T/scu-A.log" "$T/scu-B.log"; then
	not_ok "every C-STORE succeeded" "$(grep -h -E '^E:|Failed|Error' "$T/scu-A.log" "$T/scu-B.log" | head -n 5)"
else
	ok "every C-STORE succeeded"
fi

is "$(api stats 2>&1)" "2 2 2 $n_sent" "/statistics: 2 patients, 2 studies, 2 series, $n_sent instances"
printf '%s\n' "patient MV-PAT-0101 1" "patient MV-PAT-0102 1" \
	"series $STUDY_A.2 $NA" "series $STUDY_B.2 $NB" \
	"study $STUDY_A MV-PAT-0101 1" "study $STUDY_B MV-PAT-0102 1" | sort >"$T/tree.expect"
api tree 2>&1 | sort >"$T/tree.1"
if cmp -s "$T/tree.expect" "$T/tree.1"; then ok "patients, studies and series are indexed with their instances"
else not_ok "patients, studies and series are indexed with their instances" "$(diff "$T/tree.expect" "$T/tree.1" | head -n 10)"; fi
nfiles=$(storage_files)
is "$nfiles" "$n_sent" "the storage area in the mount holds one file per instance"
fetch_and_compare "$T/dl1" "$T/sent.scan" "first run"

stopped "first run" "$T/orthanc-1.log"
index_ok "first run"

# ---------------------------------------------------------------- restart

check "umount" mv_umount "$MNT"
check "fsck finds the store clean" mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"
if grep -rlaF -e MVTESTPATIENT -e MV-PAT-0101 -e 'HOPITAL DE TEST' "$STORE" >"$T/leak" 2>/dev/null; then
	not_ok "the store holds no patient name, id or institution in clear" "$(head -n 3 "$T/leak")"
else
	ok "the store holds no patient name, id or institution in clear"
fi
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount the vault"
ok "remount the vault"
start_orthanc "$T/orthanc-2.log" || bail "Orthanc restarts on the remounted vault" "$(tail -n 15 "$T/orthanc-2.log")"
ok "Orthanc restarts on the same configuration"
is "$(api stats 2>&1)" "2 2 2 $n_sent" "after restart: /statistics unchanged"
api tree 2>&1 | sort >"$T/tree.2"
if cmp -s "$T/tree.1" "$T/tree.2"; then ok "after restart: same patients, studies and series"
else not_ok "after restart: same patients, studies and series" "$(diff "$T/tree.1" "$T/tree.2" | head -n 10)"; fi
fetch_and_compare "$T/dl2" "$T/sent.scan" "after restart"
if diff -r -q "$T/dl1" "$T/dl2" >/dev/null; then ok "after restart: every downloaded file is byte-identical to the first run's"
else not_ok "after restart: every downloaded file is byte-identical" "$(diff -r -q "$T/dl1" "$T/dl2" | head -n 5)"; fi

# ---------------------------------------------------------------- delete

id_b=$(api study-id "$STUDY_B" 2>&1)
if [[ $id_b =~ ^[0-9a-f-]{44}$ ]]; then ok "/tools/lookup finds study B ($id_b)"
else bail "/tools/lookup finds study B" "$id_b"; fi
check "DELETE /studies/$id_b" api delete "/studies/$id_b"
is "$(api status "/studies/$id_b" 2>&1)" 404 "the deleted study answers 404"
is "$(api stats 2>&1)" "1 1 1 $NA" "/statistics: 1 patient, 1 study, 1 series, $NA instances left"
is "$(storage_files)" "$NA" "the deleted study's files left the storage area"
stopped "after delete" "$T/orthanc-2.log"
index_ok "after delete"

check "umount" mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount the vault (2)"
ok "remount the vault again"
start_orthanc "$T/orthanc-3.log" || bail "Orthanc restarts after the delete" "$(tail -n 15 "$T/orthanc-3.log")"
ok "Orthanc restarts after the delete"
is "$(api status "/studies/$id_b" 2>&1)" 404 "after restart: the deleted study is still gone"
is "$(api stats 2>&1)" "1 1 1 $NA" "after restart: 1 patient, 1 study, 1 series, $NA instances"
grep -v -e "$STUDY_B" -e MV-PAT-0102 "$T/tree.1" >"$T/tree.expect3"
api tree 2>&1 | sort >"$T/tree.3"
if cmp -s "$T/tree.expect3" "$T/tree.3"; then ok "after restart: only study A's patient, study and series remain"
else not_ok "after restart: only study A's patient, study and series remain" "$(diff "$T/tree.expect3" "$T/tree.3" | head -n 10)"; fi
is "$(storage_files)" "$NA" "after restart: the storage area holds $NA files"
fetch_and_compare "$T/dl3" "$T/sentA.scan" "after delete and restart"
stopped "last run" "$T/orthanc-3.log"
index_ok "last run"

check "umount" mv_umount "$MNT"
check "fsck finds the store clean at the end" mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"
ok "whole test took $SECONDS s"

summary
