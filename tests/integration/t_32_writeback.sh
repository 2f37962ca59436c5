#!/usr/bin/env bash
# t_32_writeback: the dirty budget is written back while the file's other
# writers keep going (fs/core/filedata.c flush_behind).  Four writers rewrite
# interleaved pages of one 48 MiB file three times over, O_DIRECT readers
# check each page they get from the daemon (never torn, misplaced, a hole,
# or older than one already seen), fsync and same-size truncates force
# flushes in between; then every page is checked, and again after a remount.
. "$(dirname "$0")/lib.sh"

need_mv
command -v python3 >/dev/null || bail "python3 is needed"
WB="python3 $(dirname "$0")/wb_check.py"

mv_vault_new
mv_init "$STORE" "$KS" "$PF" || bail "init a vault"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "mount the vault"
ok "init and mount a vault"

check "4 writers, 2 O_DIRECT readers and fsync/truncate run clean" $WB run "$MNT/shared.bin"
check "umount" mv_umount "$MNT"
mv_mount "$STORE" "$MNT" "$KS" "$PF" || bail "remount the vault"
ok "remount the vault"
check "every page holds its last write after remount" $WB verify "$MNT/shared.bin"
check "a second round on the persisted file" $WB run "$MNT/shared.bin"
check "final umount" mv_umount "$MNT"
summary
