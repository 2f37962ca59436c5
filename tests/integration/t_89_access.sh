#!/usr/bin/env bash
# t_89_access: closed defaults and the sharing recipe of docs/ACCESS.md.
#
# - a fresh vault's root directory is 0700, owned by its creator: another
#   account (65534) can neither list it nor read a file written with the
#   default umask, though the mount has allow_other;
# - init --root-mode and --root-owner set the root's mode and owner, which
#   survive a remount; bad values are refused with one line, nothing made;
# - docs/ACCESS.md's recipe end to end: a PACS account writes (umask 077),
#   a member of the readers' group lists and reads but cannot write or
#   delete, a third account is refused; then that account's research group
#   is given one study (ACLs), and reads it and nothing else, also after a
#   remount;
# - what medvault itself writes: the control socket and the lock file are
#   0600, the run directory and the store 0700.
#
# Accounts mvpacs (62001), mvrad (62002, in mvradiology 62010) and mvother
# (62003, later in mvresearch 62011) are made and removed by the trap.
. "$(dirname "$0")/lib.sh"

need_mv
[ "$(id -u)" -eq 0 ] || bail "run as root (it creates users and mounts as root)"
for t in useradd userdel groupadd groupdel setpriv setfacl; do
	command -v "$t" >/dev/null || bail "$t is installed"
done

exec 9>/run/lock/medvault-t89.lock 2>/dev/null || exec 9>/tmp/medvault-t89.lock
flock -w 300 9 || bail "lock /run/lock/medvault-t89.lock"

USERS=(mvpacs:62001 mvrad:62002 mvother:62003)
READERS=mvradiology READERS_GID=62010 RESEARCH=mvresearch RESEARCH_GID=62011

del_accounts() {
	local u
	for u in "${USERS[@]}"; do
		getent passwd "${u%%:*}" >/dev/null && userdel "${u%%:*}" 2>/dev/null
		getent group "${u%%:*}" >/dev/null && groupdel "${u%%:*}" 2>/dev/null
	done
	getent group "$READERS" >/dev/null && groupdel "$READERS" 2>/dev/null
	getent group "$RESEARCH" >/dev/null && groupdel "$RESEARCH" 2>/dev/null
	return 0
}
t89_cleanup() {
	mv_cleanup
	del_accounts
}
trap t89_cleanup EXIT

# as USER CMD...: CMD as USER with USER's groups, in /
as() {
	local u=$1
	shift
	(cd / && exec setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@")
}
as_nobody() { (cd / && exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"); }

# refused NAME CMD...: CMD fails with "Permission denied"
refused() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		not_ok "$name" "unexpectedly succeeded: $*" "$out"
	elif grep -q "Permission denied" <<<"$out"; then
		ok "$name (EACCES)"
	else
		not_ok "$name" "failed, but not with EACCES: $*" "$out"
	fi
}

mode_of() { stat -c '%a %U:%G' "$1" 2>&1; }

# ---------------------------------------------------------------- the default

mv_vault_new plain
chmod 0711 "$T" "$T/plain"	# others reach the mountpoint, not the store
check "init with the defaults" mv_init "$STORE" "$KS" "$PF"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"
is "$(mode_of "$MNT")" "700 root:root" "a fresh vault's root is 0700, owned by its creator"
(umask 022 && mkdir "$MNT/study" && echo "PATIENT DOE" >"$MNT/study/report.txt")
is "$(mode_of "$MNT/study/report.txt")" "644 root:root" "a file written with umask 022 is 0644"
refused "user 65534 cannot list the vault's root" as_nobody ls "$MNT"
refused "user 65534 cannot read that 0644 file, though it knows its path" \
	as_nobody cat "$MNT/study/report.txt"
refused "user 65534 cannot stat it" as_nobody stat "$MNT/study/report.txt"
refused "user 65534 cannot create a file in the root" as_nobody touch "$MNT/planted"
hex=$(sed -n 's/^uuid=//p' "$STORE/medvault.conf")
sock=/run/medvault/$hex.sock
if [ -S "$sock" ]; then
	is "$(stat -c '%a' "$sock")" 600 "the control socket is 0600"
	is "$(stat -c '%a' /run/medvault)" 700 "its directory /run/medvault is 0700"
else
	not_ok "the control socket $sock exists" "$(ls -la /run/medvault 2>&1)"
fi
is "$(stat -c '%a' "$STORE/medvault.lock")" 600 "the lock file (the daemon's pid) is 0600"
is "$(stat -c '%a' "$STORE")" 700 "the store directory is 0700"
mv_umount "$MNT"
check "a snapshot of it" mv_run snapshot "$STORE" "$T/plain/snap"
out=$(find "$STORE" "$KS" "$T/plain/snap" -perm /077 2>&1)
is "$out" "" "nothing in the store, keystore, trail or snapshot is open to group or others"
is "$(ls -d "$KS"/audit 2>/dev/null)" "$KS/audit" "(the access trail was among them)"

# ---------------------------------------------------------------- the options

mv_vault_new opts
chmod 0711 "$T/opts"
check "init --root-mode 0750 --root-owner 65534:100" \
	mv_init "$STORE" "$KS" "$PF" --root-mode 0750 --root-owner 65534:100
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"
is "$(stat -c '%a %u:%g' "$MNT")" "750 65534:100" "the root has the chosen mode and owner"
check "its owner (65534) lists it" as_nobody ls "$MNT"
check "its owner creates a file in it" as_nobody sh -c "echo mine >'$MNT/f'"
mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount"
is "$(stat -c '%a %u:%g' "$MNT") $(cat "$MNT/f" 2>&1)" "750 65534:100 mine" "mode, owner and file after a remount"
mv_umount "$MNT"

for bad in abc 8 17777 -1 ""; do
	mv_vault_new "bad$RANDOM"
	out=$(mv_init "$STORE" "$KS" "$PF" --root-mode "$bad" 2>&1)
	rc=$?
	if [ $rc -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q -- "--root-mode" <<<"$out" &&
		[ ! -e "$STORE" ] && [ ! -e "$KS" ]; then
		ok "--root-mode '$bad' refused with one line, nothing made"
	else
		not_ok "--root-mode '$bad' refused with one line, nothing made" "exit $rc: $out"
	fi
done
for bad in mv-no-such-user root:mv-no-such-group 4242 "root:"; do
	mv_vault_new "bad$RANDOM"
	out=$(mv_init "$STORE" "$KS" "$PF" --root-owner "$bad" 2>&1)
	rc=$?
	if [ $rc -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q -- "--root-owner" <<<"$out" &&
		[ ! -e "$STORE" ]; then
		ok "--root-owner '$bad' refused with one line: $out"
	else
		not_ok "--root-owner '$bad' refused with one line, nothing made" "exit $rc: $out"
	fi
done
mv_vault_new named
check "--root-owner by name, USER alone (login group)" mv_init "$STORE" "$KS" "$PF" --root-owner nobody
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"
is "$(stat -c '%a %U:%g' "$MNT")" "700 nobody:$(id -g nobody)" "owned by nobody and its login group, still 0700"
mv_umount "$MNT"

# ---------------------------------------------------------------- docs/ACCESS.md

del_accounts
groupadd -g "$READERS_GID" "$READERS" && groupadd -g "$RESEARCH_GID" "$RESEARCH" ||
	bail "groupadd $READERS $RESEARCH"
for u in "${USERS[@]}"; do
	name=${u%%:*} id=${u#*:}
	groupadd -g "$id" "$name" && useradd -M -N -d /nonexistent -s /usr/sbin/nologin \
		-u "$id" -g "$id" "$name" || bail "create user $name"
done
usermod -aG "$READERS" mvrad || bail "usermod -aG $READERS mvrad"
ok "accounts: mvpacs (the PACS), mvrad (in $READERS), mvother"

mv_vault_new pacs
chmod 0711 "$T/pacs"
check "init --root-owner mvpacs:$READERS --root-mode 2750" \
	mv_init "$STORE" "$KS" "$PF" --root-owner "mvpacs:$READERS" --root-mode 2750
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount"
check "setfacl -d -m u::rwx,g::rx,o::- on the root" setfacl -d -m u::rwx,g::rx,o::- "$MNT"

# the PACS stores a study with a closed umask, the way a storage SCP does
check "the PACS account writes a study (umask 077)" as mvpacs sh -c "umask 077 &&
	mkdir -p '$MNT/1.2.840.1/1.2.840.1.1' &&
	echo 'CT image 1' >'$MNT/1.2.840.1/1.2.840.1.1/IM1.dcm' &&
	echo 'CT image 2' >'$MNT/1.2.840.1/1.2.840.1.1/IM2.dcm'"
F=$MNT/1.2.840.1/1.2.840.1.1/IM1.dcm
is "$(mode_of "$MNT/1.2.840.1")" "2750 mvpacs:$READERS" "a study directory is 2750 mvpacs:$READERS"
is "$(mode_of "$F")" "640 mvpacs:$READERS" "an image is 0640 mvpacs:$READERS"
check "a radiologist lists the vault" as mvrad ls "$MNT" "$MNT/1.2.840.1/1.2.840.1.1"
is "$(as mvrad cat "$F" 2>&1)" "CT image 1" "a radiologist reads an image"
check "a radiologist copies a study out" as mvrad sh -c "cat '$MNT'/1.2.840.1/1.2.840.1.1/* >/dev/null"
refused "a radiologist cannot change an image" as mvrad sh -c "echo x >>'$F'"
refused "a radiologist cannot delete an image" as mvrad rm -f "$F"
refused "a radiologist cannot add a file" as mvrad touch "$MNT/1.2.840.1/new"
refused "a radiologist cannot rename a study" as mvrad mv "$MNT/1.2.840.1" "$MNT/moved"
refused "another account cannot list the vault" as mvother ls "$MNT"
refused "another account cannot read an image, knowing its path" as mvother cat "$F"
refused "another account cannot create a file in it" as mvother touch "$MNT/planted"
refused "nobody (65534) cannot read it either" as_nobody cat "$F"
# docs/ACCESS.md's second reader group: one study, read-only
check "the PACS writes a second study" as mvpacs sh -c "mkdir '$MNT/1.2.840.2' && echo 'MR image' >'$MNT/1.2.840.2/IM1.dcm'"
check "mvother joins a research group" usermod -aG "$RESEARCH" mvother
check "setfacl -R -m g:$RESEARCH:rX on one study" setfacl -R -m "g:$RESEARCH:rX" "$MNT/1.2.840.1"
check "setfacl -R -d -m g:$RESEARCH:rX on it" setfacl -R -d -m "g:$RESEARCH:rX" "$MNT/1.2.840.1"
check "setfacl -m g:$RESEARCH:x on the root" setfacl -m "g:$RESEARCH:x" "$MNT"
is "$(as mvother cat "$F" 2>&1)" "CT image 1" "the research group reads that study"
refused "it cannot list the vault's root" as mvother ls "$MNT"
refused "it cannot read the other study" as mvother cat "$MNT/1.2.840.2/IM1.dcm"
refused "it cannot change the study it reads" as mvother sh -c "echo x >>'$F'"
is "$(as mvrad cat "$MNT/1.2.840.2/IM1.dcm" 2>&1)" "MR image" "radiologists still read every study"
check "the PACS account can still update its study" as mvpacs sh -c "echo 'CT image 3' >'$MNT/1.2.840.1/1.2.840.1.1/IM3.dcm'"
mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount"
is "$(as mvrad cat "$MNT/1.2.840.1/1.2.840.1.1/IM3.dcm" 2>&1)" "CT image 3" "after a remount a radiologist reads the newest image"
refused "after a remount a research member is still refused the other study" \
	as mvother cat "$MNT/1.2.840.2/IM1.dcm"
is "$(as mvother cat "$F" 2>&1)" "CT image 1" "after a remount the research group still reads its study"
mv_umount "$MNT"

summary
