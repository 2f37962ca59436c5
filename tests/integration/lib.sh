# Shared helpers for medvault integration tests.  Source it from a test:
#
#   . "$(dirname "$0")/lib.sh"
#   mv_vault_new            # T/store, T/ks, T/pass, T/mnt
#   mv_init "$STORE" "$KS" "$PF" && mv_mount "$STORE" "$MNT" "$KS" "$PF"
#   ok "name" / not_ok "name" "why" / check "name" cmd... / is A B "name"
#   todo "name" "reason" cmd...   # TAP TODO: waits for another branch's work
#   summary                 # "# N passed, M failed", returns the status
#
# Everything lives in one mktemp -d directory ($T).  An EXIT trap unmounts
# every mount this script made and kills only the daemons it started, so a
# failing or interrupted test never leaves a mount or a process behind.
# Tests deliberately do not use `set -e`: one failure must not hide others.

set -u
export LC_ALL=C

MV_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MV_ROOT=$(cd "$MV_LIB_DIR/../.." && pwd)
BUILD=${BUILD:-$MV_ROOT/build}
case $BUILD in /*) ;; *) BUILD=$MV_ROOT/$BUILD ;; esac
MV=${MV:-$BUILD/medvault}
TOOLS=${TOOLS:-$BUILD/tools}
MV_CMD_TIMEOUT=${MV_CMD_TIMEOUT:-120}	# seconds for one CLI call
MV_MOUNT_WAIT=${MV_MOUNT_WAIT:-30}	# seconds for a -f mount to appear

T=$(mktemp -d "${TMPDIR:-/tmp}/mvtest.XXXXXX") || { echo "Bail out! mktemp failed"; exit 2; }
MV_MOUNTS=()	# mountpoints this script mounted
MV_PIDS=()	# daemon pids this script started (found through their mount)

# ---------------------------------------------------------------- TAP

TAP_N=0
TAP_FAILED=0

ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $1"; }

# not_ok NAME [DIAGNOSTIC...]
not_ok() {
	local name=$1 line
	shift
	TAP_N=$((TAP_N + 1))
	TAP_FAILED=$((TAP_FAILED + 1))
	echo "not ok $TAP_N - $name"
	for line in "$@"; do
		printf '%s\n' "$line" | sed 's/^/#   /'
	done
}

# check NAME CMD...: ok when CMD succeeds; its output is shown on failure.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$name"
	else
		not_ok "$name" "command failed (status $?): $*" "$(tail -n 20 <<<"$out")"
	fi
}

# check_fails NAME CMD...: ok when CMD fails.
check_fails() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		not_ok "$name" "command unexpectedly succeeded: $*" "$(tail -n 5 <<<"$out")"
	else
		ok "$name"
	fi
}

# is ACTUAL EXPECTED NAME
is() {
	if [ "$1" = "$2" ]; then ok "$3"; else not_ok "$3" "got:      '$1'" "expected: '$2'"; fi
}

# todo NAME REASON CMD...: a check that waits for work not done yet (a
# feature another branch brings): TAP's TODO, as todo() in tests/tap.h.
# While CMD fails: "not ok N - NAME # TODO REASON", counted as passed; once
# it succeeds: "ok N - NAME # TODO ... (now passes: make it a check)".
todo() {
	local name=$1 reason=$2
	shift 2
	TAP_N=$((TAP_N + 1))
	if "$@" >/dev/null 2>&1; then
		echo "ok $TAP_N - $name # TODO $reason (now passes: make it a check)"
	else
		echo "not ok $TAP_N - $name # TODO $reason"
	fi
}

# tap_include PREFIX CMD...: run a TAP-producing program and count each of
# its results as one of ours, so the totals show every inner check.  A
# program that dies before its summary line adds one failure.
tap_include() {
	local prefix=$1 line rc=unknown saw_summary=0 inner_fail=0
	shift
	while IFS= read -r line; do
		case $line in
		"ok "*) ok "$prefix: ${line#ok }" ;;
		"not ok "*) not_ok "$prefix: ${line#not ok }"; inner_fail=1 ;;
		"# "*" passed, "*" failed") saw_summary=1; echo "#  ($prefix) ${line#\# }" ;;
		"1.."*|"") ;;
		__rc=*) rc=${line#__rc=} ;;
		*) echo "#  $line" ;;
		esac
	done < <("$@" 2>&1; r=$?; echo; echo "__rc=$r")
	if [ $saw_summary -eq 0 ]; then
		not_ok "$prefix: ended (status $rc) without a summary line"
	elif [ "$rc" != 0 ] && [ $inner_fail -eq 0 ]; then
		not_ok "$prefix: exited with status $rc"
	fi
}

summary() {
	echo "1..$TAP_N"
	echo "# $((TAP_N - TAP_FAILED)) passed, $TAP_FAILED failed"
	[ $TAP_FAILED -eq 0 ]
}

# bail WHY: a precondition failed; nothing after it can be meaningful.
bail() {
	not_ok "$1" "${@:2}"
	summary
	exit 1
}

# ---------------------------------------------------------------- vaults

# mv_passfile FILE [PASSPHRASE]: a passphrase file readable by root only.
mv_passfile() {
	(umask 077 && printf '%s\n' "${2:-correct horse battery staple $RANDOM}" >"$1")
	chmod 0600 "$1"
}

# mv_vault_new [NAME]: set STORE KS PF MNT for a fresh vault under $T/NAME
# (nothing is created on disk except the passphrase file and mountpoint).
mv_vault_new() {
	local d=$T/${1:-vault}
	mkdir -p "$d/mnt"
	STORE=$d/store KS=$d/ks PF=$d/pass MNT=$d/mnt
	mv_passfile "$PF"
}

mv_run() { timeout --kill-after=10 "$MV_CMD_TIMEOUT" "$MV" "$@"; }

# mv_init STORE KS PF [ARGS...]
mv_init() {
	local store=$1 ks=$2 pf=$3
	shift 3
	mv_run init "$store" --keystore "$ks" --passphrase-file "$pf" "$@"
}

# is_mounted DIR: from /proc/mounts, never stat(): stat on a hung FUSE mount
# blocks, and the cleanup trap must not hang.
is_mounted() {
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts
}

# daemon_pids MNT: processes whose command line is "... mount ... MNT ...",
# with MNT matching one argument exactly (our temp paths are unique, so this
# never matches another test's or another user's daemon).
daemon_pids() {
	local want=$1 p arg has_mnt has_mount
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" != $$ ] && [ "$p" != "${BASHPID:-$$}" ] || continue
		has_mnt=0 has_mount=0
		while IFS= read -r -d '' arg; do
			[ "$arg" = "$want" ] && has_mnt=1
			[ "$arg" = mount ] && has_mount=1
		done 2>/dev/null <"/proc/$p/cmdline"
		[ $has_mnt -eq 1 ] && [ $has_mount -eq 1 ] && echo "$p"
	done
	return 0
}

# remember MNT and its daemon for the cleanup trap
mv_track() {
	local p
	MV_MOUNTS+=("$1")
	for p in $(daemon_pids "$1"); do MV_PIDS+=("$p"); done
}

# mv_mount STORE MNT KS PF [ARGS...]: returns 0 once MNT serves.  With -f in
# ARGS the daemon runs as our background child instead of detaching.
mv_mount() {
	local store=$1 mnt=$2 ks=$3 pf=$4 a fg=0 i pid rc
	shift 4
	for a in "$@"; do [ "$a" = -f ] && fg=1; done
	if [ $fg -eq 1 ]; then
		"$MV" mount "$store" "$mnt" --keystore "$ks" --passphrase-file "$pf" "$@" &
		pid=$!
		MV_PIDS+=("$pid")
		for ((i = 0; i < MV_MOUNT_WAIT * 10; i++)); do
			is_mounted "$mnt" && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	else
		mv_run mount "$store" "$mnt" --keystore "$ks" --passphrase-file "$pf" "$@"
		rc=$?
		if [ $rc -ne 0 ]; then
			is_mounted "$mnt" && mv_track "$mnt"	# failed but mounted: still clean up
			return $rc
		fi
	fi
	if ! is_mounted "$mnt"; then
		echo "mv_mount: $mnt is not mounted" >&2
		return 1
	fi
	mv_track "$mnt"
	# "serving": the root answers a stat
	timeout 10 stat "$mnt/." >/dev/null
}

# abort the FUSE connection behind MNT: the last resort for a hung daemon
fuse_abort() {
	local dev
	dev=$(awk -v m="$1" '$5 == m { print $3 }' /proc/self/mountinfo | tail -n 1)
	[ -n "$dev" ] && [ -w "/sys/fs/fuse/connections/${dev#*:}/abort" ] &&
		echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort"
}

# mv_umount MNT: the CLI first, then fusermount3 -u, then lazy -uz.
mv_umount() {
	local mnt=$1 rc
	is_mounted "$mnt" || return 0
	mv_run umount "$mnt"
	rc=$?
	[ $rc -eq 0 ] && ! is_mounted "$mnt" && return 0
	echo "mv_umount: '$MV umount $mnt' failed (status $rc$( [ $rc -eq 124 ] && echo ": timed out"))," \
		"$(is_mounted "$mnt" && echo "still mounted" || echo "not mounted"); using fusermount3" >&2
	timeout 30 fusermount3 -u "$mnt" 2>/dev/null && ! is_mounted "$mnt" && return 1
	fuse_abort "$mnt"
	timeout 30 fusermount3 -uz "$mnt" 2>/dev/null || timeout 30 umount -l "$mnt" 2>/dev/null
	return 1
}

# mv_wait_gone PID... : wait (up to 20 s) for daemons to exit after umount
mv_wait_gone() {
	local i p alive
	for ((i = 0; i < 200; i++)); do
		alive=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# daemon_alive MNT: a daemon for MNT still runs (used to test clean exit)
daemon_alive() { [ -n "$(daemon_pids "$1")" ]; }

mv_cleanup() {
	local m p
	trap - EXIT INT TERM HUP
	for m in "${MV_MOUNTS[@]}"; do
		for p in $(daemon_pids "$m"); do MV_PIDS+=("$p"); done
		if is_mounted "$m"; then
			mv_umount "$m" >/dev/null 2>&1
			if is_mounted "$m"; then
				fuse_abort "$m"
				fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
			fi
		fi
	done
	if [ ${#MV_PIDS[@]} -gt 0 ] && ! mv_wait_gone "${MV_PIDS[@]}"; then
		for p in "${MV_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
		sleep 1
		for p in "${MV_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	fi
	# rm -rf through a live mount would destroy another vault: refuse
	if awk -v t="$T/" 'index($2, t) == 1 { f = 1 } END { exit !f }' /proc/self/mounts; then
		echo "# cleanup: something is still mounted under $T; not removing it" >&2
	elif [ -z "${MV_KEEP:-}" ]; then
		rm -rf "$T"
	else
		echo "# kept $T" >&2
	fi
}
trap mv_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- misc

# tree_state DIR: one hash of names, types, modes, sizes, mtimes and
# contents below DIR, to prove that a failed command changed nothing.
# A keystore's audit/ subdirectory is left out: a mounted vault's daemon
# appends its access trail there at any time; so is LMDB's index/lock.mdb,
# its reader table, which a mounted daemon's read transactions update.
tree_state() {
	[ -e "$1" ] || { echo absent; return; }
	(
		cd "$1" || exit 1
		find . \( -path ./audit -o -path ./index/lock.mdb \) -prune -o -printf '%p %y %m %s %T@\n' | sort
		find . \( -path ./audit -o -path ./index/lock.mdb \) -prune -o -type f -print0 | sort -z |
			xargs -0 -r sha256sum
	) | sha256sum | cut -d' ' -f1
}

# our_mounts: the lines of /proc/mounts under $T (other tests running on the
# host may mount and unmount things at the same time)
our_mounts() { awk -v t="$T/" 'index($2, t) == 1' /proc/self/mounts; }

# mv_hsm_setup DIR: a fresh SoftHSM2 token under DIR (scripts/softhsm-setup.sh);
# sets SO (module), PIN (PIN file) and TOK (token label), or bails.
mv_hsm_setup() {
	local env_out
	env_out=$("$MV_ROOT/scripts/softhsm-setup.sh" "$1" 2>"$T/hsm.err") ||
		bail "softhsm-setup.sh" "$(cat "$T/hsm.err")"
	eval "$env_out"
	SO=$MEDVAULT_PKCS11_MODULE PIN=$MEDVAULT_PIN_FILE TOK=$MEDVAULT_TOKEN
	[ -e "$SO" ] && [ -s "$PIN" ] || bail "SoftHSM2 token set up" "module $SO, pin file $PIN"
}

need_tool() {
	[ -x "$TOOLS/$1" ] || bail "tool $TOOLS/$1 is missing (run make)"
}

need_mv() {
	[ -x "$MV" ] || bail "medvault binary $MV is missing (run make)"
}
