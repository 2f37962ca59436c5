#!/usr/bin/env bash
# t_15_differential: the same random operation sequence runs on a directory
# of the ext4 disk and in a mounted vault (fsdiff.py), and every result,
# errno, byte read, lstat field, time stamp change and directory listing is
# compared after every operation; some operations run as unprivileged users.
# One TAP line per seed (with its first differences).  Then the vault is
# unmounted and mounted again and every tree is compared once more (names,
# types, modes, owners, link counts, sizes, contents, symlinks, xattrs).
#
#   FSDIFF_SEEDS="1 2 3"   seeds to run (default: six seeds, 1..6)
#   FSDIFF_OPS=N           operations per seed (default 2000)
#   FSDIFF_TIME=S          at most S seconds per seed (default 12; the whole
#                          test then takes at most about 80 s)
#   FSDIFF_MINIMIZE=1      also reduce each seed's first difference to a
#                          minimal op list (slow; for investigation)
#   FSDIFF_REF=DIR         run against DIR (ext4) instead of the vault: a
#                          self-check, every seed must then pass
. "$(dirname "$0")/lib.sh"

need_mv
[ "$(id -u)" -eq 0 ] || bail "run as root (unprivileged users are simulated with setresuid)"
command -v python3 >/dev/null || bail "python3 is installed"
FSDIFF=${FSDIFF:-$MV_LIB_DIR/fsdiff.py}	# (another copy: for testing the test)
SEEDS=${FSDIFF_SEEDS:-"1 2 3 4 5 6"}
OPS=${FSDIFF_OPS:-2000}
TLIM=${FSDIFF_TIME:-12}

# the reference lives on the same disk as the test directory, and must be ext4
REF=$T/ref
mkdir -p "$REF"
fstype=$(stat -f -c %T "$REF")
if [ "$fstype" != ext2/ext3 ]; then
	# TMPDIR on tmpfs: /var/tmp is usually the disk
	REF=$(mktemp -d /var/tmp/mvref.XXXXXX) || bail "mktemp in /var/tmp"
	trap 'rm -rf "$REF"; mv_cleanup' EXIT
	fstype=$(stat -f -c %T "$REF")
fi
[ "$fstype" = ext2/ext3 ] || bail "the reference directory $REF is on ext4" "stat -f says: $fstype (set TMPDIR to a directory on ext4)"
# unprivileged users must reach both trees
chmod 755 "$T" "$REF"

if [ -n "${FSDIFF_REF:-}" ]; then
	TEST=$FSDIFF_REF
	mkdir -p "$TEST" && chmod 755 "$TEST"
	ok "self-check: comparing ext4 with ext4 ($TEST)"
else
	mv_vault_new
	chmod 755 "$(dirname "$MNT")"
	mv_init "$STORE" "$KS" "$PF" || bail "init a vault"
	mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
	ok "init and mount a vault"
	chmod 755 "$MNT"
	TEST=$MNT
fi

for seed in $SEEDS; do
	mkdir -p "$REF/s$seed" "$TEST/s$seed"
	chmod 777 "$REF/s$seed" "$TEST/s$seed"
	extra=()
	[ "${FSDIFF_MINIMIZE:-0}" = 1 ] && extra=(--minimize)
	out=$(timeout --kill-after=10 $((TLIM * 4 + 60)) python3 "$FSDIFF" "$REF/s$seed" "$TEST/s$seed" \
		--seed "$seed" --ops "$OPS" --time-limit "$TLIM" --max-mismatches 12 "${extra[@]}" 2>&1)
	rc=$?
	res=$(grep '^RESULT' <<<"$out" | tail -n 1)
	if [ $rc -eq 0 ]; then
		ok "seed $seed: ext4 and medvault agree ($res)"
		# differences of the kernel's FUSE client, not failures (fsdiff.py)
		grep '^KNOWN' <<<"$out" | sed 's/^/# /'
	else
		not_ok "seed $seed: ext4 and medvault differ (status $rc) $res" \
			"$(grep -v '^RESULT' <<<"$out" | head -n 30)" \
			"replay: python3 $FSDIFF REF TEST --seed $seed --ops $OPS --stop-on-first --minimize"
	fi
done

# durability: what every seed left behind must survive a remount exactly
for seed in $SEEDS; do
	python3 "$FSDIFF" --save-dump "$T/pre-s$seed.dump" "$TEST/s$seed" || not_ok "seed $seed: dump the tree before the remount"
done
if [ -z "${FSDIFF_REF:-}" ]; then
	check "umount" mv_umount "$MNT"
	mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount the vault"
	ok "remount the vault"
fi
for seed in $SEEDS; do
	out=$(timeout --kill-after=10 300 python3 "$FSDIFF" --compare-only "$REF/s$seed" "$TEST/s$seed" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "seed $seed: the trees are still the same after remount ($(grep '^RESULT' <<<"$out"))"
	else
		not_ok "seed $seed: the trees differ after remount (status $rc)" "$(head -n 20 <<<"$out")"
	fi
	out=$(timeout --kill-after=10 300 python3 "$FSDIFF" --against-dump "$T/pre-s$seed.dump" "$TEST/s$seed" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "seed $seed: the remount changed nothing ($(grep '^RESULT' <<<"$out"))"
	else
		not_ok "seed $seed: the remount changed the tree (status $rc)" "$(head -n 20 <<<"$out")"
	fi
done
if [ -z "${FSDIFF_REF:-}" ]; then
	check "final umount" mv_umount "$MNT"
fi
summary
