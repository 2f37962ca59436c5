#!/usr/bin/env bash
# stress_differential: t_15_differential with many more seeds and longer
# sequences (make stress).  FSDIFF_SEEDS, FSDIFF_OPS and FSDIFF_TIME work as
# in t_15_differential.sh.
export FSDIFF_SEEDS=${FSDIFF_SEEDS:-$(seq -s ' ' 100 129)}
export FSDIFF_OPS=${FSDIFF_OPS:-5000}
export FSDIFF_TIME=${FSDIFF_TIME:-40}
exec bash "$(dirname "$0")/t_15_differential.sh"
