#!/usr/bin/env bash
# stress_compact: t_95_backup at the issue's size (make stress): a 1 GiB
# archive (BACKUP_MB=1024) and 30 rounds of kill -9 during compaction
# (COMPACT_CRASH_ROUNDS).  BACKUP_MB, COMPACT_CRASH_ROUNDS and BACKUP_SEED
# can be overridden.  Needs about 8 GiB free in TMPDIR (store, snapshots,
# backup, restored copies) and roughly 10-15 minutes on 2 cores; raise
# TEST_TIMEOUT for run-tests.sh if needed.
export BACKUP_MB=${BACKUP_MB:-1024}
export COMPACT_CRASH_ROUNDS=${COMPACT_CRASH_ROUNDS:-30}
exec bash "$(dirname "$0")/t_95_backup.sh"
