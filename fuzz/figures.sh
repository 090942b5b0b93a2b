#!/bin/sh
# Run fuzz targets for RUNS inputs each (default 1,000,000) at nice 19, one after the
# other, and print one line per target: inputs, seconds, crashes.
#   fuzz/figures.sh [RUNS [TARGET...]]       (default: every target)
# Inputs are at most 4096 bytes (MAX_LEN), 256 for the file parsers (chap-secrets, pppd
# options: a file that names files is read many times). Logs: .fuzz-work/TARGET.log
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
[ $# -gt 0 ] && shift
PY=${PYTHON:-.venv/bin/python}
TARGETS=${*:-$($PY -c 'from fuzz.targets import TARGETS; print(" ".join(TARGETS))')}
mkdir -p .fuzz-work
for t in $TARGETS; do
    case $t in chap_secrets|pppd_options) len=${MAX_LEN:-256} ;; *) len=${MAX_LEN:-4096} ;; esac
    start=$(date +%s)
    nice -n 19 "$PY" -m fuzz.run "$t" -runs="$RUNS" -max_len="$len" > ".fuzz-work/$t.log" 2>&1
    status=$?
    end=$(date +%s)
    done_line=$(grep -a "^Done " ".fuzz-work/$t.log" | tail -1)
    crashes=$(ls .fuzz-work/"$t"-crash-* 2>/dev/null | wc -l)
    echo "$t: ${done_line:-no Done line} (wall $((end - start)) s, max_len $len, exit $status, crash files $crashes)"
done
