"""pppd's hooks and the per-connection route scripts.

**The hooks.** :func:`install_hooks` (``sstp-helper install-hooks``) writes one small sh
script named ``sstp-pppd`` into ``/etc/ppp/ip-up.d``, ``ip-down.d``, ``ipv6-up.d`` and
``ipv6-down.d``. Debian's /etc/ppp/ip-up runs them through run-parts with pppd's arguments
``IFACE TTY SPEED LOCAL REMOTE IPPARAM``; they act only for links this project started:
**the ipparam (``$6``) is the connection's name**, and a link is ours when
``/etc/sstp-pppd/IPPARAM.conf`` (written by ``sstp-helper add``) or
``/run/sstp-pppd/IPPARAM/settings.conf`` (written by a transport started with route options)
exists. No prefix is needed, so a peers file written for sstpc (``ipparam NAME``) works
as it is, and a link of anyone else, having no settings file, is never touched. The sh
test runs first, so other links do not even start Python. Then
``python -m sstp_pppd.host.hookmain EVENT ARGS...`` applies or undoes the plan.
pppd waits for its scripts only at its exit, and then at most ``child-timeout`` seconds
(less when signalled) before it SIGTERMs them: a late ip-down's work is then done by the
transport's exit or by ``undo``, and :mod:`.linkstate` makes sure it is done once, the
scripts' down and post-down included.

The name ``sstp-pppd`` sorts after Debian's ``0000usepeerdns``, which is what lets the two
cooperate (see :mod:`.dns`).

**Route scripts (contract version 1).** In the manner of vpnc-script. For every event the
executable files of ``/etc/sstp-pppd/NAME/scripts.d/`` (names as run-parts accepts them:
letters, digits, ``_`` and ``-``) run in name order, each as ``argv = [path, reason]``
(never through a shell), with :data:`SCRIPT_TIMEOUT` seconds each, their output logged.
``reason`` is ``pre-up`` (before our routes and DNS), ``up`` (after), ``down`` (before
they are undone) or ``post-down`` (after). The environment holds only:

=========================== ===============================================================
``reason``                  as the argument
``SSTP_PPPD_SCRIPT_VERSION`` ``1``; a script should refuse a version it does not know
``SSTP_CONNECTION``         the connection's name
``SSTP_FAMILY``             ``4`` (ip-up/ip-down) or ``6`` (ipv6-up/ipv6-down)
``SSTP_IFNAME``             the tunnel interface, e.g. ``ppp0``
``SSTP_LOCAL_ADDRESS``      our address on it (IPv6: the link-local one)
``SSTP_PEER_ADDRESS``       the server's end
``SSTP_DNS``                the server's DNS servers, space-separated (pppd ``usepeerdns``)
``SSTP_DNS_DOMAINS``        the configured domains (``~name`` routing only)
``SSTP_ROUTES``             the split routes (CIDR, space-separated) of this family
``SSTP_DEFAULT_ROUTE``      ``1`` for a full tunnel, else ``0``
``SSTP_KILL_SWITCH``        ``1`` or ``0``
``SSTP_SERVER``             the server as configured (name or address)
``SSTP_SERVER_ADDRESS``     the address the transport connected to, when known
``SSTP_PPPD_PID``           pppd's pid
``PATH``                    ``/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin``
=========================== ===============================================================

A connection's ``script PATH`` setting names a **main script** that replaces the built-in
route and DNS work: it gets the same argv and environment for ``up`` and ``down`` (and the
scripts.d ones still run around it).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping

from .atomic import write_atomic
from .paths import Paths

log = logging.getLogger(__name__)

SCRIPT_VERSION = 1
SCRIPT_TIMEOUT = 30.0
HOOK_NAME = "sstp-pppd"
HOOK_DIRS = {"ip-up.d": "ip-up", "ip-down.d": "ip-down", "ipv6-up.d": "ipv6-up",
             "ipv6-down.d": "ipv6-down"}  # fmt: skip
REASONS = ("pre-up", "up", "down", "post-down")
SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RUN_PARTS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def hook_script(event: str, python: str, paths: Paths) -> str:
    """The sh script for one pppd event (``ip-up``, ...)."""
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(paths.as_env().items()))
    etc = shlex.quote(paths.etc_dir)
    run = shlex.quote(paths.run_dir)
    return (
        "#!/bin/sh\n"
        f"# sstp-pppd {event} hook (format {SCRIPT_VERSION}): sstp-helper install-hooks.\n"
        "# Acts only when the ipparam ($6) names an sstp-pppd connection.\n"
        '[ -n "$6" ] || exit 0\n'
        f'[ -e {etc}/"$6".conf ] || [ -e {run}/"$6"/settings.conf ] || exit 0\n'
        "# Finish even when pppd's tree is sent SIGHUP/SIGTERM as the link ends: an ip-down\n"
        "# cut short would leave DNS behind (ignored signals stay ignored across exec).\n"
        "trap '' HUP TERM INT\n"
        f"{exports}"
        f'exec {shlex.quote(python)} -I -m sstp_pppd.host.hookmain {event} "$@"\n'
    )


def install_hooks(
    prefix: str = "/etc/ppp", *, python: str | None = None, paths: Paths | None = None
) -> list[str]:
    """Write the four hooks below ``prefix`` (``/etc/ppp``); the files written.

    ``python`` is the interpreter that has sstp_pppd (default: this one). Rewriting them is
    harmless, so ``install-hooks`` can be run again after an upgrade.
    """
    python = python or sys.executable
    paths = paths or Paths.from_env()
    written = []
    for directory, event in HOOK_DIRS.items():
        d = os.path.join(prefix, directory)
        os.makedirs(d, mode=0o755, exist_ok=True)
        path = os.path.join(d, HOOK_NAME)
        write_atomic(path, hook_script(event, python, paths), mode=0o755)
        written.append(path)
    return written


def uninstall_hooks(prefix: str = "/etc/ppp") -> list[str]:
    removed = []
    for directory in HOOK_DIRS:
        path = os.path.join(prefix, directory, HOOK_NAME)
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def script_env(reason: str, fields: Mapping[str, str]) -> dict[str, str]:
    """The documented environment: ``fields`` are the ``SSTP_*`` names without the prefix."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    env = {"reason": reason, "SSTP_PPPD_SCRIPT_VERSION": str(SCRIPT_VERSION), "PATH": SCRIPT_PATH}
    env.update({f"SSTP_{k}": v for k, v in fields.items()})
    return env


def scripts(directory: str) -> list[str]:
    """The scripts of a scripts.d directory, in the order they run."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        path = os.path.join(directory, n)
        if _RUN_PARTS_NAME.match(n) and os.path.isfile(path) and os.access(path, os.X_OK):
            out.append(path)
    return out


def run_script(path: str, reason: str, env: Mapping[str, str]) -> bool:
    """Run one script with ``[path, reason]``; True if it exited 0 in time."""
    try:
        res = subprocess.run(
            [path, reason],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=SCRIPT_TIMEOUT,
            check=False,
            cwd="/",
        )
    except subprocess.TimeoutExpired:
        log.warning("script %s %s: killed after %.0f s", path, reason, SCRIPT_TIMEOUT)
        return False
    except OSError as exc:
        log.warning("script %s %s: cannot run: %s", path, reason, exc)
        return False
    for stream in (res.stdout, res.stderr):
        for line in stream.decode(errors="replace").splitlines():
            log.info("script %s: %s", os.path.basename(path), line)
    if res.returncode != 0:
        log.warning("script %s %s exited with status %d", path, reason, res.returncode)
        return False
    log.info("script %s %s: ok", path, reason)
    return True


def run_scripts(name: str, reason: str, env: Mapping[str, str], paths: Paths) -> None:
    for path in scripts(paths.scripts_dir(name)):
        run_script(path, reason, env)
