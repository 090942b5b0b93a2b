#!/usr/bin/env bash
# The project's virtual environment (.venv) with the package and its test tools.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import sstp_pppd, pytest, hypothesis, mypy, pyroute2, psutil' 2>/dev/null \
   || [ setup.cfg -nt .venv/.installed ] || [ sstp_pppd/core/_hdlc.c -nt .venv/.installed ]; then
    .venv/bin/pip install --quiet --upgrade pip
    # compat: a plain path in a .pth file. The default editable finder imports pathlib,
    # urllib and more at every interpreter start (about 10 ms), which start-up figures
    # would count. The C accelerator (setup.py) is built in place either way.
    .venv/bin/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
    touch .venv/.installed
fi
