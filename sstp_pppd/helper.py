"""``sstp-helper``: the command for people and login scripts.

This module only dispatches: each command lives in :mod:`sstp_pppd.helpercmd`, and the
commands other parts of the package own (hooks, plugin, sstpc diversion) are imported when
they run. Every failure ends in one line on stderr and an exit code from
:class:`~sstp_pppd.errors.ExitCode`, documented in man sstp-helper(8).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import ExitCode, SstpPppdError
from .helpercmd import add, hostapi, status, unit, updown
from .helpercmd.paths import Paths, default_root

PROG = "sstp-helper"

#: Commands implemented elsewhere: name -> (module, function taking argv, help).
EXTERNAL: dict[str, tuple[str, str, str]] = {
    "install-plugin": (
        "plugin.build",
        "install_plugin",
        "build and install the pppd plugin that hands over the MPPE keys",
    ),
    "replace-sstpc": (
        "host.sstpc_divert",
        "main_replace",
        "make /usr/sbin/sstpc run sstp-pppd (dpkg-divert)",
    ),
    "restore-sstpc": (
        "host.sstpc_divert",
        "main_restore",
        "undo replace-sstpc: the real sstpc again",
    ),
    "sstpc-status": (
        "host.sstpc_divert",
        "main_status",
        "show whether sstpc is replaced by sstp-pppd",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Add, start, stop and show sstp-pppd VPN connections (man sstp-helper).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    # Moves every path below DIR: for tests only, hence hidden.
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add.register(sub)
    updown.register(sub)
    status.register(sub)
    unit.register(sub)
    for name, (_, _, help_text) in EXTERNAL.items():
        p = sub.add_parser(name, help=help_text, description=help_text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def split_pppd_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """``add``'s own arguments and the pppd options after its ``--`` (which argparse would
    otherwise mistake for more arguments of its own)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in and args_in[0] in EXTERNAL:
        # These parse their own arguments: hand them everything after the command.
        word = args_in[0]
        modname, func, _ = EXTERNAL[word]
        try:
            return hostapi.command(modname, func)(args_in[1:])
        except SstpPppdError as exc:
            sys.stderr.write(f"{PROG} {word}: {exc}\n")
            return exc.exit_code
    own, pppd_options = split_pppd_options(args_in)
    args = build_parser().parse_args(own)
    if args.command != "add" and pppd_options:
        sys.stderr.write(f"{PROG} {args.command}: unexpected '--'\n")
        return ExitCode.USAGE
    args.pppd_options = pppd_options
    paths = Paths(args.root or default_root())
    try:
        return int(args.func(args, paths))
    except SstpPppdError as exc:
        sys.stderr.write(f"{PROG} {args.command}: {exc}\n")
        return exc.exit_code
    except PermissionError as exc:
        sys.stderr.write(
            f"{PROG} {args.command}: {exc.filename or ''}: permission denied (run as root?)\n"
        )
        return ExitCode.USAGE
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG} {args.command}: interrupted\n")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: reported in one line, not a traceback
        # A bug: one line as for every other failure; the traceback on request.
        if os.environ.get("SSTP_HELPER_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(
            f"{PROG} {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(SSTP_HELPER_DEBUG=1 shows where)\n"
        )
        return ExitCode.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
