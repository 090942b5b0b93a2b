#!/usr/bin/env bash
# The project's virtual environment (.venv) with the package and its test tools.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import sstp_pppd, pytest, hypothesis, mypy, pyroute2, psutil' 2>/dev/null \
   || [ setup.cfg -nt .venv/.installed ]; then
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e '.[test]'
    touch .venv/.installed
fi
