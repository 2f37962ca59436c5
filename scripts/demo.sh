#!/usr/bin/env bash
# make demo: an encrypted vault whose master key is sealed by a SoftHSM2
# token (project-local, no hardware), with a recovery passphrase slot,
# mounted on demo/mnt.  Run again: it reuses the vault and remounts it.
set -euo pipefail
cd "$(dirname "$0")/.."

MV=${MV:-build/medvault}
D=${DEMO_DIR:-$PWD/demo}
STORE=$D/store KS=$D/keystore MNT=$D/mnt
mkdir -p "$D"
eval "$(scripts/softhsm-setup.sh "$D/hsm")"
HSM=(--pkcs11-module "$MEDVAULT_PKCS11_MODULE" --pkcs11-token "$MEDVAULT_TOKEN"
     --pin-file "$MEDVAULT_PIN_FILE")

if grep -q " $MNT fuse.medvault " /proc/self/mounts 2>/dev/null; then
	echo "demo: already mounted on $MNT"
	exit 0
fi
if [ ! -f "$STORE/medvault.conf" ]; then
	"$MV" init "$STORE" --keystore "$KS" "${HSM[@]}"
	# a recovery slot, as a hospital would keep in a safe
	umask 077
	head -c 24 /dev/urandom | base64 > "$D/recovery.passphrase"
	"$MV" key add "$STORE" --keystore "$KS" "${HSM[@]}" --new-passphrase-file "$D/recovery.passphrase"
fi
mkdir -p "$MNT"
"$MV" mount "$STORE" "$MNT" --keystore "$KS" "${HSM[@]}"
if [ ! -e "$MNT/README.txt" ]; then
	mkdir -p "$MNT/radiology/study-0001"
	echo "medvault demo: everything here is encrypted in $STORE" > "$MNT/README.txt"
	head -c 524288 /dev/urandom > "$MNT/radiology/study-0001/CT000001.dcm"
fi
cat <<MSG
demo: vault mounted on $MNT
  store (back this up):     $STORE
  keystore (keep apart):    $KS
  HSM token:                SoftHSM2 '$MEDVAULT_TOKEN' under $D/hsm (SOFTHSM2_CONF=$SOFTHSM2_CONF)
  recovery passphrase:      $D/recovery.passphrase
try:    ls -l $MNT; $MV key list $STORE --keystore $KS; $MV info $STORE
unmount: $MV umount $MNT
MSG
