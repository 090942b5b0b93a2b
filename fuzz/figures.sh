#!/bin/sh
# Run every fuzz target for RUNS inputs (default 1,000,000) at nice 19, one after the
# other, and print one line per target: inputs, seconds, crashes. Logs: .fuzz-work/TARGET.log
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
PY=${PYTHON:-.venv/bin/python}
mkdir -p .fuzz-work
for t in $($PY -c 'from fuzz.targets import TARGETS; print(" ".join(TARGETS))'); do
    start=$(date +%s)
    nice -n 19 "$PY" -m fuzz.run "$t" -runs="$RUNS" -max_len=4096 > ".fuzz-work/$t.log" 2>&1
    status=$?
    end=$(date +%s)
    done_line=$(grep -a "^Done " ".fuzz-work/$t.log" | tail -1)
    crashes=$(ls .fuzz-work/"$t"-crash-* 2>/dev/null | wc -l)
    echo "$t: ${done_line:-no Done line} (wall $((end - start)) s, exit $status, crash files $crashes)"
done
