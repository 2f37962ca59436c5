#!/usr/bin/env bash
# t_88_fstab: system integration.  scripts/mount.medvault, called the way
# mount(8) calls a helper (SPEC DIR [-sfnv] -o OPTS), translates the medvault
# options (keystore=, passphrase-file=, pkcs11-*=, pin-file=, audit-*) into
# CLI flags, drops the ones FUSE does not take (rw, defaults, auto, noauto,
# nofail, _netdev, x-systemd.*, ...) and passes the rest as -o.  Then, as
# root, the real thing: `mount -t medvault`, `mount -T FSTAB MOUNTPOINT` and
# `mount -a -T FSTAB -t medvault` (a temporary fstab: an entry with a
# passphrase and one with a SoftHSM2 token), and `umount` by umount(8).
# For that /sbin/mount.medvault must exist: if it does not, the test links it
# to scripts/mount.medvault and removes the link in its trap.  Last, the
# systemd unit contrib/medvault@.service: systemd-analyze verify, and its
# ExecStart/ExecStop run by hand with contrib/medvault.conf.example's layout.
. "$(dirname "$0")/lib.sh"

need_mv
HELPER=$MV_ROOT/scripts/mount.medvault
UNIT=$MV_ROOT/contrib/medvault@.service
CONF_EX=$MV_ROOT/contrib/medvault.conf.example
[ -x "$HELPER" ] || bail "$HELPER is executable"
export MEDVAULT=$MV	# the helper runs this build's binary

LINKED=
t88_cleanup() {
	mv_cleanup
	# only our own link, and only if it still is ours
	if [ -n "$LINKED" ] && [ -L "$LINKED" ] && [ "$(readlink "$LINKED")" = "$HELPER" ]; then
		rm -f "$LINKED"
	fi
}
trap t88_cleanup EXIT

# fake MOUNT-ARGS...: the medvault command line the helper would run (-f)
fake() { "$HELPER" -f "$@" 2>&1 >/dev/null | sed -n "s|^mount.medvault: $MV mount ||p"; }

# ---------------------------------------------------------------- translation

is "$(fake /s /m -o rw,keystore=/ks,passphrase-file=/pw)" \
	"/s /m --keystore /ks --passphrase-file /pw" "keystore= and passphrase-file= become flags; rw is dropped"
is "$(fake /s /m -o defaults,auto,nofail,_netdev,x-systemd.automount,x-systemd.device-timeout=10s,comment=x,noauto,user,nouser,users,owner,group,keystore=/ks,passphrase-file=/pw)" \
	"/s /m --keystore /ks --passphrase-file /pw" "mount(8)/fstab/systemd options are dropped"
is "$(fake /s /m -o keystore=/ks,pkcs11-module=/lib/p11.so,pkcs11-token=medvault,pkcs11-key=kek-2024,pin-file=/root/pin,noatime,ro,allow_other)" \
	"/s /m --keystore /ks --pkcs11-module /lib/p11.so --pkcs11-token medvault --pkcs11-key kek-2024 --pin-file /root/pin -o noatime,ro,allow_other" \
	"pkcs11-module/-token/-key and pin-file become flags; noatime,ro,allow_other go to -o"
uri='pkcs11:token=medvault;object=medvault-kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/root/pin'
is "$(fake /s /m -o "keystore=/ks,pkcs11-uri=$uri")" "/s /m --keystore /ks --pkcs11-uri $uri" \
	"pkcs11-uri= keeps ; ? & = in its value"
is "$(fake /s /m -o keystore=/ks,passphrase-file=/pw,audit-dir=/var/log/mv,audit-failure=closed,audit-max-size=1000000,audit-retain-days=3650,no-audit)" \
	"/s /m --keystore /ks --passphrase-file /pw --audit-dir /var/log/mv --audit-failure closed --audit-max-size 1000000 --audit-retain-days 3650 --no-audit" \
	"audit-dir/-failure/-max-size/-retain-days and no-audit become flags"
is "$(fake -sfnv /s /m -o keystore=/ks -o passphrase-file=/pw -t medvault)" \
	"/s /m --keystore /ks --passphrase-file /pw" "-s -n -v accepted, several -o joined, -t ignored"
is "$(fake /s /m -okeystore=/ks,passphrase-file=/pw)" \
	"/s /m --keystore /ks --passphrase-file /pw" "-oOPTS (no space) is read too"

# usage errors: status 1, one line
usage_err() {
	local name=$1 out rc
	shift
	out=$("$HELPER" "$@" 2>&1 >/dev/null)
	rc=$?
	if [ $rc -eq 1 ] && [ -n "$out" ] && grep -q '^mount.medvault: ' <<<"$(tail -n 1 <<<"$out")"; then
		ok "$name: status 1, '$(tail -n 1 <<<"$out")'"
	else
		not_ok "$name: status 1 with a message" "status $rc: $out"
	fi
}
usage_err "no keystore=" /s /m -o passphrase-file=/pw
usage_err "keystore without a value" /s /m -o keystore,passphrase-file=/pw
usage_err "an empty pin-file=" /s /m -o keystore=/ks,pin-file=
usage_err "no mountpoint" /s -o keystore=/ks
usage_err "an unknown flag" /s /m -x -o keystore=/ks
check "--help works" "$HELPER" --help

# ---------------------------------------------------------------- the helper mounts

mv_vault_new
check "init a passphrase vault" mv_init "$STORE" "$KS" "$PF"
out=$(timeout 120 "$HELPER" "$STORE" "$MNT" -o "rw,keystore=$KS,passphrase-file=$PF,nofail,_netdev,x-systemd.device-timeout=30,noatime,nodev,nosuid" 2>&1)
rc=$?
is_mounted "$MNT" && mv_track "$MNT"
if [ $rc -eq 0 ] && is_mounted "$MNT"; then ok "mount.medvault STORE MNT -o ... mounts it"
else not_ok "mount.medvault STORE MNT -o ... mounts it" "status $rc: $out"; fi
opts=$(awk -v m="$MNT" '$2 == m { print $3, $4 }' /proc/self/mounts)
case ",${opts#* }," in
*,noatime,*) ok "as fuse.medvault with noatime: $opts" ;;
*) not_ok "noatime reached the kernel" "$opts" ;;
esac
echo "written through the helper's mount" >"$MNT/hello"
check "the mount serves" grep -q helper "$MNT/hello"
check "medvault umount unmounts it" mv_umount "$MNT"

# a second vault for the error paths
bad=$T/wrong-pass
mv_passfile "$bad" "not the passphrase"
out=$(timeout 120 "$HELPER" "$STORE" "$MNT" -o "keystore=$KS,passphrase-file=$bad" 2>&1)
rc=$?
is_mounted "$MNT" && mv_track "$MNT"
if [ $rc -eq 32 ] && ! is_mounted "$MNT"; then ok "a wrong passphrase: status 32 (mount failure), not mounted"
else not_ok "a wrong passphrase: status 32, not mounted" "status $rc: $out"; fi
n=$(grep -c . <<<"$out")
is "$n" 1 "and one line on stderr: $out"

out=$(timeout 120 "$HELPER" "$STORE" "$MNT" -o "keystore=$KS,passphrase-file=$PF,ro" 2>&1)
rc=$?
is_mounted "$MNT" && mv_track "$MNT"
if [ $rc -eq 0 ] && is_mounted "$MNT"; then
	ok "mount -o ro"
	check "ro: files read" grep -q helper "$MNT/hello"
	out=$(echo x 2>&1 >"$MNT/new")
	if [ -e "$MNT/new" ]; then not_ok "ro: a write fails" "$MNT/new was created"
	elif grep -q "Read-only file system" <<<"$out"; then ok "ro: a write fails with EROFS"
	else not_ok "ro: a write fails with EROFS" "$out"; fi
	check "umount" mv_umount "$MNT"
else
	not_ok "mount -o ro" "status $rc: $out"
fi

# ---------------------------------------------------------------- mount(8) and umount(8)

SBIN=/sbin/mount.medvault
if [ -e "$SBIN" ] || [ -L "$SBIN" ]; then
	echo "# $SBIN exists ($(readlink -f "$SBIN")): mount(8) uses it"
elif ln -s "$HELPER" "$SBIN" 2>/dev/null; then
	LINKED=$SBIN
	echo "# linked $SBIN -> $HELPER for this test"
fi
if [ ! -x "$SBIN" ]; then
	not_ok "mount(8) can find $SBIN" "cannot create the link (read-only /sbin?)"
else
	out=$(timeout 120 mount -t medvault -o "keystore=$KS,passphrase-file=$PF,nofail" "$STORE" "$MNT" 2>&1)
	rc=$?
	is_mounted "$MNT" && mv_track "$MNT"
	if [ $rc -eq 0 ] && is_mounted "$MNT"; then ok "mount -t medvault -o keystore=..,passphrase-file=.. STORE MNT"
	else not_ok "mount -t medvault mounts the vault" "status $rc: $out"; fi
	check "it serves the same files" grep -q helper "$MNT/hello"
	src=$(findmnt -n -o SOURCE,FSTYPE --mountpoint "$MNT" 2>/dev/null)
	is "$src" "$STORE fuse.medvault" "findmnt shows SOURCE=STORE, FSTYPE=fuse.medvault"
	daemon=$(daemon_pids "$MNT")
	echo "umount(8) works too" >"$MNT/by-umount"
	out=$(timeout 60 umount "$MNT" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && ! is_mounted "$MNT"; then ok "umount(8) unmounts it"
	else not_ok "umount(8) unmounts it" "status $rc: $out"; fi
	if [ -z "$daemon" ] || mv_wait_gone $daemon; then ok "and the daemon exits"
	else not_ok "the daemon exits after umount(8)" "pids $daemon"; fi

	# a temporary fstab: STORE by passphrase (auto), a SoftHSM2 vault (auto)
	# and a third entry marked noauto that `mount -a` must skip
	mkdir -p "$T/mnt-hsm" "$T/mnt-noauto"
	hsm_line=
	if [ -x "$MV_ROOT/scripts/softhsm-setup.sh" ] && hsm_env=$("$MV_ROOT/scripts/softhsm-setup.sh" "$T/hsm" 2>"$T/hsm.err"); then
		eval "$hsm_env"
		if mv_run init "$T/hstore" --keystore "$T/hks" --pkcs11-module "$MEDVAULT_PKCS11_MODULE" \
			--pkcs11-token "$MEDVAULT_TOKEN" --pin-file "$MEDVAULT_PIN_FILE" >"$T/hinit" 2>&1; then
			ok "init a vault sealed by a SoftHSM2 token"
			hsm_line="$T/hstore $T/mnt-hsm medvault keystore=$T/hks,pkcs11-module=$MEDVAULT_PKCS11_MODULE,pkcs11-token=$MEDVAULT_TOKEN,pin-file=$MEDVAULT_PIN_FILE,nofail 0 0"
		else
			not_ok "init a vault sealed by a SoftHSM2 token" "$(cat "$T/hinit")"
		fi
	else
		echo "# no SoftHSM2 token ($(tail -n 1 "$T/hsm.err" 2>/dev/null)): fstab checks use the passphrase vault only"
	fi
	{
		echo "# medvault test fstab"
		echo "$STORE $MNT medvault keystore=$KS,passphrase-file=$PF,defaults,nofail,_netdev,x-systemd.requires=local-fs.target 0 0"
		[ -n "$hsm_line" ] && echo "$hsm_line"
		echo "$T/nostore $T/mnt-noauto medvault keystore=$KS,passphrase-file=$PF,noauto 0 0"
	} >"$T/fstab"

	out=$(timeout 120 mount -T "$T/fstab" "$MNT" 2>&1)
	rc=$?
	is_mounted "$MNT" && mv_track "$MNT"
	if [ $rc -eq 0 ] && is_mounted "$MNT"; then ok "mount -T FSTAB MOUNTPOINT (the fstab line as written)"
	else not_ok "mount -T FSTAB MOUNTPOINT" "status $rc: $out"; fi
	check "it serves what umount(8) flushed" grep -q "umount(8) works" "$MNT/by-umount"
	check "umount(8)" timeout 60 umount "$MNT"
	mv_wait_gone $(daemon_pids "$MNT") 2>/dev/null

	out=$(timeout 180 mount -a -T "$T/fstab" -t medvault 2>&1)
	rc=$?
	for m in "$MNT" "$T/mnt-hsm" "$T/mnt-noauto"; do is_mounted "$m" && mv_track "$m"; done
	if [ $rc -eq 0 ] && is_mounted "$MNT"; then ok "mount -a -T FSTAB -t medvault mounts the passphrase vault"
	else not_ok "mount -a -T FSTAB -t medvault mounts the passphrase vault" "status $rc: $out"; fi
	if [ -n "$hsm_line" ]; then
		if is_mounted "$T/mnt-hsm"; then ok "and the SoftHSM2 vault (pkcs11-module=,pkcs11-token=,pin-file=)"
		else not_ok "and the SoftHSM2 vault" "$out"; fi
		check "the SoftHSM2 vault takes a file" bash -c "echo hsm >'$T/mnt-hsm/f' && grep -q hsm '$T/mnt-hsm/f'"
	fi
	if is_mounted "$T/mnt-noauto"; then not_ok "the noauto entry is skipped" "it got mounted"
	else ok "the noauto entry is skipped"; fi
	pids=$(daemon_pids "$MNT"; daemon_pids "$T/mnt-hsm")
	for m in "$MNT" "$T/mnt-hsm"; do
		is_mounted "$m" || continue
		check "umount(8) $m" timeout 60 umount "$m"
	done
	# shellcheck disable=SC2086
	mv_wait_gone $pids || not_ok "the daemons exit after umount(8)" "$pids"
fi

# ---------------------------------------------------------------- systemd unit

[ -f "$UNIT" ] || bail "$UNIT exists"
[ -f "$CONF_EX" ] || bail "$CONF_EX exists"
if command -v systemd-analyze >/dev/null; then
	# verify a copy under an instance name, with this build's binary path
	mkdir -p "$T/units"
	sed "s|/usr/local/bin/medvault|$MV|g" "$UNIT" >"$T/units/medvault@.service"
	ln -s medvault@.service "$T/units/medvault@tmp-x.service"
	out=$(cd "$T/units" && SYSTEMD_LOG_LEVEL=warning timeout 60 systemd-analyze verify --man=no ./medvault@tmp-x.service 2>&1 |
		grep -v -e 'not executable: No such file' -e 'Failed to prepare filename' -e 'See system logs' \
			-e 'Unit is bound to inactive unit' -e "Failed to determine" -e "^$")
	if [ -z "$out" ]; then ok "systemd-analyze verify accepts contrib/medvault@.service"
	else not_ok "systemd-analyze verify accepts contrib/medvault@.service" "$out"; fi
fi
is "$(systemd-escape --path "$MNT" 2>/dev/null | sed 's/^/medvault@/; s/$/.service/' | grep -c '^medvault@tmp-')" 1 \
	"the instance name is systemd-escape --path MOUNTPOINT"

# run ExecStart and ExecStop as systemd would, with a conf in the example's
# layout (systemd: ${VAR} is one word, $VAR splits on whitespace, %f is the
# unescaped instance path)
cat >"$T/instance.conf" <<EOF
STORE=$STORE
KEYSTORE=$KS
KEY_OPTIONS=--passphrase-file $PF
MOUNT_ARGS=-o noatime
EOF
if grep -q '^STORE=' "$CONF_EX" && grep -q '^KEYSTORE=' "$CONF_EX" && grep -q '^KEY_OPTIONS=' "$CONF_EX"; then
	ok "medvault.conf.example sets STORE, KEYSTORE, KEY_OPTIONS"
else
	not_ok "medvault.conf.example sets STORE, KEYSTORE, KEY_OPTIONS" "$(grep -v '^#' "$CONF_EX")"
fi
# unit_cmd KEY: the command of KEY= (ExecStart, ExecStop) as an argv, one per line
unit_cmd() {
	local line word
	line=$(sed -n "s/^$1=[-@+!]*//p" "$UNIT" | head -n 1)
	line=${line//%f/$MNT}
	line=${line//\/usr\/local\/bin\/medvault/$MV}
	(
		set -f
		while IFS='=' read -r k v; do [ -n "$k" ] && export "$k=$v"; done <"$T/instance.conf"
		for word in $line; do
			case $word in
			'${'*'}') word=${word#\$\{}; word=${word%\}}; printf '%s\n' "${!word}" ;;
			'$'*) word=${word#\$}; for w in ${!word}; do printf '%s\n' "$w"; done ;;
			*) printf '%s\n' "$word" ;;
			esac
		done
	)
}
mapfile -t start_cmd < <(unit_cmd ExecStart)
mapfile -t stop_cmd < <(unit_cmd ExecStop)
echo "# ExecStart: ${start_cmd[*]}"
echo "# ExecStop: ${stop_cmd[*]}"
out=$(timeout 120 "${start_cmd[@]}" 2>&1)
rc=$?
is_mounted "$MNT" && mv_track "$MNT"
if [ $rc -eq 0 ] && is_mounted "$MNT"; then ok "the unit's ExecStart mounts the vault and returns (Type=forking)"
else not_ok "the unit's ExecStart mounts the vault" "status $rc: $out"; fi
check "it serves" grep -q helper "$MNT/hello"
daemon=$(daemon_pids "$MNT")
out=$(timeout 120 "${stop_cmd[@]}" 2>&1)
rc=$?
if [ $rc -eq 0 ] && ! is_mounted "$MNT"; then ok "the unit's ExecStop unmounts it"
else not_ok "the unit's ExecStop unmounts it" "status $rc: $out"; fi
# ExecStop returns once the daemon released the store (everything durable);
# the process itself may need a moment more to exit
# shellcheck disable=SC2086
if [ -z "$daemon" ] || mv_wait_gone $daemon; then ok "and the daemon exits"
else not_ok "the daemon exits after ExecStop" "pid $daemon"; fi

check "fsck finds the store clean after all this" mv_run fsck "$STORE" --keystore "$KS" --passphrase-file "$PF"

summary
