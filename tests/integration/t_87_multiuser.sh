#!/usr/bin/env bash
# t_87_multiuser: root mounts a vault (medvault then adds allow_other, and
# always uses default_permissions), and unprivileged users share it as they
# would share an ext4 disk: private 0600 files, group sharing, setgid
# directories, a sticky /tmp-style directory, no chmod/chown of another's
# file, owners set from the caller, and all of it the same after a remount.
#
# Three throw-away accounts are made (and removed by the trap): mvalice
# (61001) and mvbob (61002), both in group mvshare (61010), and mvcarol
# (61003), in no shared group.  Commands run as them with setpriv.
#
# POSIX ACLs (access and default ACLs, mask, inheritance, remount) are
# checked too (MV_TEST_ACL=1, the default, since medvault supports them).
# MV_TEST_ACL=0 skips them and only checks that setfacl either works or is
# refused cleanly with EOPNOTSUPP (for a build without ACL support).
. "$(dirname "$0")/lib.sh"

need_mv
[ "$(id -u)" -eq 0 ] || bail "run as root (it creates users and mounts as root)"
for t in useradd userdel groupadd groupdel setpriv; do
	command -v "$t" >/dev/null || bail "$t is installed"
done
ACL=${MV_TEST_ACL:-1}
if [ "$ACL" = 1 ]; then
	command -v setfacl >/dev/null && command -v getfacl >/dev/null || bail "setfacl/getfacl installed (package acl)"
fi

# one run at a time: the accounts have fixed names and ids
exec 9>/run/lock/medvault-t87.lock 2>/dev/null || exec 9>/tmp/medvault-t87.lock
flock -w 300 9 || bail "lock /run/lock/medvault-t87.lock"

USERS=(mvalice:61001 mvbob:61002 mvcarol:61003)
SHARE=mvshare SHARE_GID=61010

del_accounts() {
	local u
	for u in "${USERS[@]}"; do
		getent passwd "${u%%:*}" >/dev/null && userdel "${u%%:*}" 2>/dev/null
		getent group "${u%%:*}" >/dev/null && groupdel "${u%%:*}" 2>/dev/null
	done
	getent group "$SHARE" >/dev/null && groupdel "$SHARE" 2>/dev/null
	return 0
}
t87_cleanup() {
	mv_cleanup	# unmount first: nothing may run as the users afterwards
	del_accounts
}
trap t87_cleanup EXIT

del_accounts	# leftovers of an interrupted run
for u in "${USERS[@]}"; do
	if getent passwd "${u#*:}" >/dev/null || getent group "${u#*:}" >/dev/null; then
		bail "uid/gid ${u#*:} is free" "$(getent passwd "${u#*:}") $(getent group "${u#*:}")"
	fi
done
getent group "$SHARE_GID" >/dev/null && bail "gid $SHARE_GID is free" "$(getent group "$SHARE_GID")"
groupadd -g "$SHARE_GID" "$SHARE" || bail "groupadd $SHARE"
for u in "${USERS[@]}"; do
	name=${u%%:*} id=${u#*:} extra=()
	[ "$name" = mvcarol ] || extra=(-G "$SHARE")
	groupadd -g "$id" "$name" && useradd -M -N -d /nonexistent -s /usr/sbin/nologin \
		-u "$id" -g "$id" "${extra[@]}" "$name" || bail "create user $name ($id)"
done
ok "created mvalice, mvbob (group $SHARE) and mvcarol"

# as USER CMD...: run CMD as USER with USER's groups, umask 022, in /
as() {
	local u=$1
	shift
	(cd / && umask 022 && exec setpriv --reuid="$u" --regid="$u" --init-groups -- "$@")
}

# can NAME USER CMD...: CMD as USER succeeds
can() {
	local name=$1 u=$2 out
	shift 2
	if out=$(as "$u" "$@" 2>&1); then ok "$name"
	else not_ok "$name" "as $u: $* failed:" "$out"; fi
}

# cannot NAME USER WHY CMD...: CMD as USER fails, and says WHY
# (WHY: EACCES = "Permission denied", EPERM = "Operation not permitted")
cannot() {
	local name=$1 u=$2 why=$3 msg out
	shift 3
	case $why in
	EACCES) msg="Permission denied" ;;
	EPERM) msg="Operation not permitted" ;;
	*) msg=$why ;;
	esac
	if out=$(as "$u" "$@" 2>&1); then
		not_ok "$name" "as $u: $* unexpectedly succeeded" "$out"
	elif grep -q "$msg" <<<"$out"; then
		ok "$name ($why)"
	else
		not_ok "$name" "as $u: $* failed, but not with '$msg':" "$out"
	fi
}

# owner PATH: "user:group mode"
owner() { stat -c '%U:%G %a' "$1" 2>&1; }

mv_vault_new
chmod 0711 "$T" "$T/vault"	# let the users reach the mountpoint (not the store)
# the root is shared here (0700 by default: t_89_access)
check "init a vault whose root others may list" mv_init "$STORE" "$KS" "$PF" --root-mode 0755
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault as root"
ok "mount the vault as root"
opts=$(awk -v m="$MNT" '$2 == m { print $4 }' /proc/self/mounts)
case ",$opts," in
*,allow_other,*) ok "root's mount has allow_other ($opts)" ;;
*) not_ok "root's mount has allow_other" "options: $opts" ;;
esac
# default_permissions is not shown in /proc/mounts; the checks below prove it
can "mvalice can list the vault's root" mvalice ls "$MNT"

# ---------------------------------------------------------------- private files

mkdir "$MNT/home" && chmod 0755 "$MNT/home"
for u in mvalice mvbob; do
	mkdir "$MNT/home/$u" && chown "$u:$u" "$MNT/home/$u" && chmod 0755 "$MNT/home/$u"
done
A=$MNT/home/mvalice B=$MNT/home/mvbob
can "mvalice writes a 0600 file in her directory" mvalice sh -c "umask 077 && echo 'alice secret' >'$A/private'"
can "mvbob writes a 0600 file in his directory" mvbob sh -c "umask 077 && echo 'bob secret' >'$B/private'"
is "$(owner "$A/private")" "mvalice:mvalice 600" "a new file belongs to its creator (uid and primary gid)"
is "$(as mvalice cat "$A/private" 2>&1)" "alice secret" "mvalice reads her own file"
cannot "mvbob cannot read mvalice's 0600 file" mvbob EACCES cat "$A/private"
cannot "mvalice cannot read mvbob's 0600 file" mvalice EACCES cat "$B/private"
cannot "mvbob cannot append to mvalice's file" mvbob EACCES sh -c "echo x >>'$A/private'"
cannot "mvbob cannot truncate mvalice's file" mvbob EACCES truncate -s 0 "$A/private"
cannot "mvbob cannot create a file in mvalice's 0755 directory" mvbob EACCES touch "$A/intruder"
cannot "mvbob cannot delete mvalice's file (no write on her directory)" mvbob EACCES rm -f "$A/private"
cannot "mvbob cannot rename mvalice's file away" mvbob EACCES mv "$A/private" "$B/stolen"
as mvalice chmod 0700 "$A"
cannot "mvbob cannot list mvalice's 0700 directory" mvbob EACCES ls "$A"
cannot "mvbob cannot stat a file inside it" mvbob EACCES stat "$A/private"
as mvalice chmod 0755 "$A"
is "$(cat "$A/private" "$B/private" 2>&1 | tr '\n' ' ')" "alice secret bob secret " "root reads both (allow_other, root bypasses modes)"
is "$(cat "$A/private")" "alice secret" "mvalice's file is unchanged"

# ---------------------------------------------------------------- owners

cannot "mvbob cannot chmod mvalice's file" mvbob EPERM chmod 0644 "$A/private"
cannot "mvbob cannot chown mvalice's file to himself" mvbob EPERM chown mvbob "$A/private"
cannot "mvbob cannot chgrp mvalice's file" mvbob EPERM chgrp "$SHARE" "$A/private"
cannot "mvalice cannot give her file away (chown to mvbob)" mvalice EPERM chown mvbob "$A/private"
cannot "mvalice cannot chgrp to a group she is not in (mvcarol)" mvalice EPERM chgrp mvcarol "$A/private"
cannot "mvbob cannot set mvalice's file's times" mvbob EPERM touch -h -d '2001-01-01 00:00' "$A/private"
is "$(owner "$A/private")" "mvalice:mvalice 600" "mvalice's file kept its owner and mode"
check "root can chown a file to mvbob" chown mvbob:mvbob "$B/private"
is "$(owner "$B/private")" "mvbob:mvbob 600" "and the vault records it"

# ---------------------------------------------------------------- group sharing

can "mvalice makes a file for group $SHARE, 0640" mvalice sh -c \
	"echo 'for the team' >'$A/team.txt' && chgrp $SHARE '$A/team.txt' && chmod 0640 '$A/team.txt'"
is "$(owner "$A/team.txt")" "mvalice:$SHARE 640" "team.txt is mvalice:$SHARE 0640"
is "$(as mvbob cat "$A/team.txt" 2>&1)" "for the team" "mvbob (in $SHARE) reads it"
cannot "mvbob cannot write it (0640)" mvbob EACCES sh -c "echo x >>'$A/team.txt'"
cannot "mvcarol (not in $SHARE) cannot read it" mvcarol EACCES cat "$A/team.txt"
as mvalice chmod 0660 "$A/team.txt"
can "with 0660, mvbob appends to it" mvbob sh -c "echo 'bob was here' >>'$A/team.txt'"
is "$(as mvalice cat "$A/team.txt" 2>&1 | tr '\n' ' ')" "for the team bob was here " "mvalice sees mvbob's line"
is "$(owner "$A/team.txt")" "mvalice:$SHARE 660" "mvbob's write left owner and mode alone"
can "mvbob (write access) may set its times to now" mvbob touch "$A/team.txt"
cannot "but not to another time (owner only)" mvbob EPERM touch -h -d '2001-01-01 00:00' "$A/team.txt"
cannot "mvbob cannot chmod it even with write access" mvbob EPERM chmod 0666 "$A/team.txt"

# a write by another user clears set-user-ID (as every Linux filesystem does)
can "mvalice makes a group-writable set-user-ID file" mvalice sh -c \
	"printf '#!/bin/sh\n' >'$A/tool' && chgrp $SHARE '$A/tool' && chmod 04775 '$A/tool'"
is "$(owner "$A/tool")" "mvalice:$SHARE 4775" "tool is 4775"
can "mvbob appends to it" mvbob sh -c "echo 'echo hi' >>'$A/tool'"
is "$(stat -c %a "$A/tool")" 775 "mvbob's write cleared the set-user-ID bit"

# ---------------------------------------------------------------- setgid directory

mkdir "$MNT/project" && chgrp "$SHARE" "$MNT/project" && chmod 2770 "$MNT/project"
P=$MNT/project
is "$(owner "$P")" "root:$SHARE 2770" "project/ is root:$SHARE 2770 (setgid)"
can "mvalice creates a file in project/" mvalice sh -c "echo plan >'$P/plan.txt' && chmod 0640 '$P/plan.txt'"
is "$(owner "$P/plan.txt")" "mvalice:$SHARE 640" "it inherits the directory's group, not mvalice's"
can "mvalice creates a subdirectory" mvalice mkdir "$P/sub"
is "$(owner "$P/sub")" "mvalice:$SHARE 2755" "the subdirectory inherits the group and the setgid bit"
as mvalice chmod g+w "$P/sub"
can "mvbob creates a file in the subdirectory" mvbob sh -c "umask 002 && exec mkdir -p '$P/sub/bob' "
is "$(owner "$P/sub/bob")" "mvbob:$SHARE 2775" "and a directory under it is $SHARE, setgid, too"
is "$(as mvbob cat "$P/plan.txt" 2>&1)" plan "mvbob reads mvalice's file through the group"
cannot "mvcarol cannot enter project/" mvcarol EACCES ls "$P"
# a file moved in keeps its group (setgid acts at creation only)
can "mvalice moves a file into project/" mvalice sh -c "echo mine >'$A/moved' && mv '$A/moved' '$P/moved'"
is "$(owner "$P/moved")" "mvalice:mvalice 644" "a renamed-in file keeps its own group"
# chmod g+s by the owner keeps the bit only if she is in the file's group
can "mvalice chmod 2755 on her file of group mvalice" mvalice chmod 2755 "$P/moved"
is "$(stat -c %a "$P/moved")" 2755 "she is in that group: setgid kept"
chgrp mvcarol "$P/moved"
can "mvalice chmod 2755 on her file of group mvcarol (set by root)" mvalice chmod 2755 "$P/moved"
is "$(stat -c %a "$P/moved")" 755 "she is not in that group: setgid dropped"

# ---------------------------------------------------------------- sticky directory

mkdir "$MNT/tmp" && chmod 1777 "$MNT/tmp"
S=$MNT/tmp
is "$(owner "$S")" "root:root 1777" "tmp/ is 1777 (sticky)"
can "mvalice creates a file in tmp/" mvalice sh -c "echo a >'$S/alice.tmp' && chmod 0666 '$S/alice.tmp'"
can "mvbob creates a file in tmp/" mvbob sh -c "echo b >'$S/bob.tmp'"
cannot "mvbob cannot delete mvalice's file in tmp/" mvbob EPERM rm -f "$S/alice.tmp"
cannot "mvbob cannot rename mvalice's file in tmp/" mvbob EPERM mv "$S/alice.tmp" "$S/mine.tmp"
cannot "mvbob cannot replace it by renaming his file over it" mvbob EPERM mv "$S/bob.tmp" "$S/alice.tmp"
can "mvbob may still write it (0666: the sticky bit guards names)" mvbob sh -c "echo bb >>'$S/alice.tmp'"
can "mvbob deletes his own file" mvbob rm "$S/bob.tmp"
can "mvalice deletes her own file" mvalice rm "$S/alice.tmp"
can "mvalice makes a directory in tmp/" mvalice mkdir "$S/adir"
cannot "mvbob cannot remove mvalice's directory in tmp/" mvbob EPERM rmdir "$S/adir"
check "root (owner of tmp/) removes it" rmdir "$S/adir"
can "mvalice leaves a file in tmp/" mvalice sh -c "echo stay >'$S/keep.alice' && chmod 0666 '$S/keep.alice'"

# ---------------------------------------------------------------- ACLs

acl_checks() {
	# access ACL: mvbob (and only he) may read mvalice's private file
	can "setfacl -m u:mvbob:r on mvalice's 0600 file" mvalice setfacl -m u:mvbob:r "$A/private"
	is "$(as mvbob cat "$A/private" 2>&1)" "alice secret" "ACL: mvbob reads it"
	cannot "ACL: mvcarol still cannot" mvcarol EACCES cat "$A/private"
	is "$(stat -c %a "$A/private")" 640 "ACL: the group bits show the mask (r)"
	getfacl -cp "$A/private" 2>&1 | grep -qx 'user:mvbob:r--' &&
		ok "ACL: getfacl lists user:mvbob:r--" || not_ok "ACL: getfacl lists user:mvbob:r--" "$(getfacl -cp "$A/private" 2>&1)"
	as mvalice chmod g-r "$A/private"
	cannot "ACL: chmod g-r narrows the mask: mvbob denied" mvbob EACCES cat "$A/private"
	# default ACL: new files in a directory grant mvshare rw
	can "setfacl -d -m g:$SHARE:rwx on a directory" mvalice sh -c \
		"mkdir '$A/acl' && setfacl -m g:$SHARE:rwx '$A/acl' && setfacl -d -m u::rwx,g::---,o::---,g:$SHARE:rwx '$A/acl'"
	can "mvalice creates a file under the default ACL (umask 077)" mvalice sh -c "umask 077 && echo acl >'$A/acl/f'"
	getfacl -cp "$A/acl/f" 2>&1 | grep -q "^group:$SHARE:rw" &&
		ok "ACL: the new file inherits group:$SHARE (default ACL beats the umask)" ||
		not_ok "ACL: the new file inherits group:$SHARE" "$(getfacl -cp "$A/acl/f" 2>&1)"
	can "ACL: mvbob writes the inherited file" mvbob sh -c "echo bob >>'$A/acl/f'"
	cannot "ACL: mvcarol cannot read it" mvcarol EACCES cat "$A/acl/f"
	as mvalice mkdir "$A/acl/sub"
	getfacl -cp "$A/acl/sub" 2>&1 | grep -q "^default:group:$SHARE:rwx" &&
		ok "ACL: a subdirectory inherits the default ACL" ||
		not_ok "ACL: a subdirectory inherits the default ACL" "$(getfacl -cp "$A/acl/sub" 2>&1)"
	cannot "ACL: mvbob cannot set ACLs on mvalice's file" mvbob EPERM setfacl -m u:mvbob:rw "$A/team.txt"
}

if [ "$ACL" = 1 ]; then
	acl_checks
else
	out=$(setfacl -m u:mvbob:r "$A/private" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && grep -q "Operation not supported" <<<"$out"; then
		ok "setfacl is refused cleanly (EOPNOTSUPP: no ACL support; MV_TEST_ACL=1 runs the ACL checks)"
	elif [ $rc -eq 0 ]; then
		ok "setfacl works: run with MV_TEST_ACL=1 to check ACL semantics"
		setfacl -b "$A/private"
	else
		not_ok "setfacl is refused cleanly or works" "status $rc: $out"
	fi
	is "$(owner "$A/private")" "mvalice:mvalice 600" "mvalice's file is unchanged"
fi

# ---------------------------------------------------------------- remount

state() { (cd "$MNT" && find . -printf '%p %u %g %m %s\n' | sort); }
before=$(state)
check "umount" mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount the vault"
ok "remount the vault"
after=$(state)
if [ "$before" = "$after" ]; then ok "after remount: every owner, group and mode is the same ($(wc -l <<<"$after") entries)"
else not_ok "after remount: every owner, group and mode is the same" "$(diff <(echo "$before") <(echo "$after") | head -n 10)"; fi
cannot "after remount: mvbob still cannot read mvalice's private file" mvbob EACCES cat "$A/private"
is "$(as mvbob cat "$P/plan.txt" 2>&1)" plan "after remount: mvbob still reads the group's file"
cannot "after remount: mvbob still cannot delete in tmp/ what is not his" mvbob EPERM rm -f "$S/keep.alice"
if [ "$ACL" = 1 ]; then
	is "$(as mvbob cat "$A/acl/f" 2>&1 | head -n 1)" acl "after remount: the inherited ACL still lets mvbob read"
fi
check "umount" mv_umount "$MNT"

summary
