#!/bin/sh
# Runs the Prunus benchmark on this board and writes results-@BOARD@.md / .json beside it.
#
#   ./run-bench.sh                      # every zoo family, 1 and all-core threads
#   ./run-bench.sh --zoo mobilenet_v2   # one family; any `prunus bench` option can follow
#
# Paste results-@BOARD@.md into an issue. Close other programs first; on a passively
# cooled board keep the cooldown (seconds of sleep between models).
set -eu
cd "$(dirname "$0")"
. ./board.env
threads="${THREADS:-1,$BOARD_THREADS}"
[ "$threads" = "1,1" ] && threads=1
exec ./bin/prunus bench --threads "$threads" --affinity "${AFFINITY:-$BOARD_AFFINITY}" \
    --cooldown "${COOLDOWN:-2}" --markdown results-@BOARD@.md --json results-@BOARD@.json "$@"
