"""Look for secrets in processes' command lines and environments, and in files.

Standard library only: run in the guest as ``python -I -S nosecret_scan.py NEEDLES procs``
or ``... NEEDLES files PATH...``; prints the hits as JSON. NEEDLES is a JSON file (mode
0600) of ``{name: hex}``: the secrets never appear in this program's own argv or
environment, so it cannot find itself. The host side imports the same functions.

Each secret is looked for raw (its bytes), and as hex in lower and upper case, also in a
copy of the text without blanks, colons and dashes (hex dumps split bytes apart).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

_SEPARATORS = re.compile(rb"[\s:\-]+")


def forms(secret: bytes) -> list[bytes]:
    """The ways a secret may be written down."""
    h = secret.hex().encode()
    return [secret, h, h.upper()]


def hits_in(data: bytes, needles: dict[str, bytes]) -> list[str]:
    """The names of the needles found in ``data``."""
    squeezed = _SEPARATORS.sub(b"", data).lower()
    found = []
    for name, secret in needles.items():
        if any(f in data for f in forms(secret)) or secret.hex().encode() in squeezed:
            found.append(name)
    return found


def scan_procs(needles: dict[str, bytes], skip: set[int]) -> list[dict[str, object]]:
    """Every process's cmdline and environ (except ``skip``)."""
    out: list[dict[str, object]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        for what in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{entry}/{what}").read_bytes()
            except OSError:
                continue  # gone, or a kernel thread
            names = hits_in(data, needles)
            if names:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:3]
                out.append({"pid": int(entry), "in": what, "found": names,
                            "argv0": [a.decode(errors="replace") for a in argv]})  # fmt: skip
    return out


def scan_files(
    needles: dict[str, bytes], paths: list[Path], exclude: set[Path]
) -> tuple[list[dict[str, object]], int]:
    """Every regular file under ``paths`` (except ``exclude``): the hits and the count."""
    out: list[dict[str, object]] = []
    count = 0
    for top in paths:
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for f in files:
            if f.resolve() in exclude:
                continue
            try:
                data = f.read_bytes()
            except OSError:
                continue
            count += 1
            names = hits_in(data, needles)
            if names:
                out.append({"file": str(f), "found": names})
    return out, count


def load(path: str) -> dict[str, bytes]:
    return {k: bytes.fromhex(v) for k, v in json.loads(Path(path).read_text()).items()}


def main(argv: list[str]) -> int:
    needles = load(argv[1])
    if argv[2] == "procs":
        result: object = scan_procs(needles, {os.getpid(), os.getppid()})
    else:
        hits, count = scan_files(needles, [Path(p) for p in argv[3:]], set())
        result = {"hits": hits, "files": count}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
