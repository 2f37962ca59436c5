#!/usr/bin/env bash
# t_34_compact_burst: overwrites leave dead chunk versions in the packs; a
# burst of them (more than 256 MiB) must start compaction within seconds,
# not at the next once-a-minute run, and compaction must keep the file's
# contents intact, before and after a remount.
. "$(dirname "$0")/lib.sh"

need_mv
MB=32
ROUNDS=12

mv_vault_new
mv_init "$STORE" "$KS" "$PF" || bail "init a vault"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
ok "init and mount a vault"

head -c $((MB << 20)) /dev/urandom >"$T/src" || bail "random source"
want=$(sha256sum <"$T/src" | cut -d' ' -f1)

pack_bytes() { du -sb "$STORE/packs" | cut -f1; }

start=$(date +%s)
ok_all=1
for ((i = 0; i < ROUNDS; i++)); do
	dd if="$T/src" of="$MNT/study.bin" bs=1M conv=notrunc,fsync status=none || ok_all=0
done
check "rewrite a ${MB} MiB file $ROUNDS times with fsync" [ $ok_all -eq 1 ]
peak=$(pack_bytes)
echo "# packs after the rewrites: $((peak >> 20)) MiB for ${MB} MiB live"

# Compaction's timer runs once a minute; the burst trigger at most every
# 5 s.  Give it 25 s from the first write, far below the timer.
limit=$((4 * (MB << 20)))
now=$(pack_bytes)
while [ "$now" -gt $limit ] && [ $(($(date +%s) - start)) -lt 25 ]; do
	sleep 1
	now=$(pack_bytes)
done
echo "# packs $(($(date +%s) - start)) s after the first write: $((now >> 20)) MiB"
check "dead versions reclaimed early (packs <= $((limit >> 20)) MiB within 25 s)" [ "$now" -le $limit ]
check "contents intact after compaction" [ "$(sha256sum <"$MNT/study.bin" | cut -d' ' -f1)" = "$want" ]
check "umount" mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount the vault"
check "contents intact after remount" [ "$(sha256sum <"$MNT/study.bin" | cut -d' ' -f1)" = "$want" ]
check "final umount" mv_umount "$MNT"
summary
