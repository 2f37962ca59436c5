#!/usr/bin/env bash
# stress_crash: t_50_crash with 200 rounds (make stress).  CRASH_ROUNDS and
# CRASH_SEED work as in t_50_crash.sh.
export CRASH_ROUNDS=${CRASH_ROUNDS:-200}
exec bash "$(dirname "$0")/t_50_crash.sh"
