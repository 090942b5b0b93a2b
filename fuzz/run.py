"""Coverage-guided fuzzing with atheris (libFuzzer): ``python -m fuzz.run TARGET [FLAGS]``.

    .venv/bin/pip install -e '.[fuzz]'
    nice -n 19 .venv/bin/python -m fuzz.run sstp_stream -runs=1000000
    nice -n 19 .venv/bin/python -m fuzz.run all -runs=1000000    # every target in turn

New inputs go to ``.fuzz-work/TARGET/`` (not checked in), crashes to
``.fuzz-work/TARGET-crash-*``; the checked-in seeds (``fuzz/corpus/TARGET``) are read only.
Any libFuzzer flag passes through (``-max_total_time=600``, ``-jobs=2``, ``-max_len=4096``).
A crash is any exception other than the project's own errors (see fuzz/targets.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    name, flags = sys.argv[1], sys.argv[2:]
    import atheris  # noqa: PLC0415 (the fuzz extra; not needed to list the targets)

    with atheris.instrument_imports(include=["sstp_pppd", "fuzz"]):
        from fuzz import targets  # noqa: PLC0415

    if name == "all":
        status = 0
        for target in targets.TARGETS:
            status |= subprocess.call([sys.executable, "-m", "fuzz.run", target, *flags])
        return status
    if name not in targets.TARGETS:
        sys.stderr.write(f"unknown target {name!r}: {', '.join(targets.TARGETS)}\n")
        return 2
    work = REPO / ".fuzz-work" / name
    work.mkdir(parents=True, exist_ok=True)
    seeds = REPO / "fuzz" / "corpus" / name
    argv = [sys.argv[0], *flags, f"-artifact_prefix={work}-crash-", str(work), str(seeds)]

    def one_input(data: bytes) -> None:
        targets.run_one(name, data)

    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
