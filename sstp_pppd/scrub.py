"""Scrub passwords from this process's command line, as ps and /proc/PID/cmdline show it.

Tiny on purpose: ``cli.main`` calls :func:`scrub_process_argv` first, before the heavy
imports, so a password given on the command line is visible for as short a time as
possible (Python's start-up itself cannot be shortened from here).

Python keeps its own copy of argv; the kernel shows the original memory (between
``arg_start`` and ``arg_end`` of /proc/self/stat), which /proc/self/mem lets us rewrite
in place, byte for byte with the same length. What is scrubbed, wherever it is:

- the value of ``--password X`` and ``--password=X``;
- pppd's own ``password X`` (launch mode passes options after the server to pppd);
- the password of any URL with userinfo (``https://user:pass@host``, ``--proxy
  http://user:pass@proxy``), as typed, so also its ``%xx`` form; the userinfo runs to the
  last ``@`` (:mod:`sstp_pppd.core.redact`).
"""

from __future__ import annotations

__all__ = ["scrub_process_argv", "secret_spans"]


def secret_spans(args: list[bytes]) -> list[tuple[int, int, int]]:
    """``(index, start, end)`` of every secret in ``args`` (the raw command line)."""
    # Here, not at the top: scrub.main's first line (the signals) comes before any import.
    from .core.redact import password_span  # noqa: PLC0415

    spans: list[tuple[int, int, int]] = []
    whole_next = False
    for i, raw in enumerate(args):
        arg = raw.decode("latin-1")  # one char per byte: offsets stay byte offsets
        if whole_next:
            whole_next = False
            if arg:
                spans.append((i, 0, len(arg)))
            continue
        if arg == "--password" or (arg == "password" and i > 0 and not _takes_value(args[i - 1])):
            whole_next = True
            continue
        if arg.startswith("--password="):
            spans.append((i, len("--password="), len(arg)))
            continue
        span = password_span(arg)
        if span is not None and span[1] > span[0]:
            spans.append((i, *span))
    return spans


def _takes_value(previous: bytes) -> bool:
    # "--user password": the word is an option's value, not pppd's option.
    return previous.startswith(b"--") and previous != b"--" and b"=" not in previous


def _arg_area(proc: str) -> tuple[int, int]:
    with open(f"{proc}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # stat fields 48 and 49 (arg_start, arg_end); the split starts at field 3.
    return int(fields[45]), int(fields[46])


def scrub_process_argv(proc: str = "/proc/self") -> bool:
    """Overwrite every secret on our command line with ``x``. False: there was one and it
    could not be scrubbed (the caller warns); True: none, or all scrubbed."""
    try:
        start, end = _arg_area(proc)
        with open(f"{proc}/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            area = bytearray(mem.read(end - start))
            args = bytes(area).rstrip(b"\0").split(b"\0")
            spans = secret_spans(args)
            if not spans:
                return True
            offsets = [0]
            for a in args:
                offsets.append(offsets[-1] + len(a) + 1)
            for i, s, e in spans:
                area[offsets[i] + s : offsets[i] + e] = b"x" * (e - s)
            mem.seek(start)
            mem.write(area)
    except (OSError, ValueError, IndexError):
        return False
    return True


def main() -> int:
    """The ``sstp-pppd`` console script: signals and scrub first, then the rest of the program.

    Importing :mod:`sstp_pppd.cli` pulls in asyncio, ssl and cryptography (0.5 s and more
    on a busy machine); scrubbing before that keeps the password out of ps's view for
    that long. ``cli.main`` scrubs again (for callers that start there): it is idempotent.
    Before even that, SIGINT/SIGTERM/SIGHUP are only noted (:mod:`.stopsignals`), so that
    no signal can end the process with a traceback out of an import.
    """
    from .stopsignals import hold  # noqa: PLC0415

    hold()
    ok = scrub_process_argv()
    from .cli import main as cli_main  # noqa: PLC0415 (after the scrub, on purpose)

    return cli_main(scrubbed=ok)  # its first look is for a signal noted meanwhile
