"""The status of one connection: ``/run/sstp-pppd/NAME/status.json``.

Written by the transport (connecting, the server and the address it used, the last error)
and by the hooks (up with the interface, addresses, routes and DNS; down), read by
``sstp-helper status``. Its keys (format 1, stable; a missing key means "not known"):

``version`` (1), ``name``, ``state`` (``connecting``, ``up``, ``down``), ``stage`` (the last
stage reached: ``tcp``, ``tls``, ``sstp``, ``ppp``, ``addresses``, ``routes``, ``dns``,
``up``, ``link-down``, ``stopped``), ``pid`` (the transport), ``interface``, ``local``,
``peer``, ``local6``, ``peer6``, ``server`` (as configured), ``server_address`` (the first
address SERVER resolved to, which the transport tries first; absent through a proxy),
``routes`` (the destinations routed into the tunnel), ``kill_switch``
(true while its routes are in place), ``dns`` (servers applied), ``dns_domains``,
``dns_backend`` (``resolved``, ``resolvconf``, ``file``), ``since`` (Unix time of the last
state change), ``last_error`` (one line), ``last_exit_code`` (the transport's exit code
with it), ``scripts_dir``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from .atomic import write_atomic
from .paths import Paths
from .record import state_dir

STATUS_VERSION = 1
STATES = ("connecting", "up", "down")


@contextlib.contextmanager
def _locked(name: str, paths: Paths) -> Iterator[str]:
    d = state_dir(name, paths)
    fd = os.open(os.path.join(d, "status.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield os.path.join(d, "status.json")
    finally:
        os.close(fd)


def read_status(name: str, paths: Paths | None = None) -> dict[str, Any] | None:
    """The status, or None when the connection never ran since boot."""
    paths = paths or Paths.from_env()
    try:
        with open(os.path.join(paths.state_dir(name), "status.json"), encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def update_status(
    name: str,
    paths: Paths | None = None,
    *,
    transform: Callable[[dict[str, Any]], None] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Merge ``fields`` into the status (a None value removes a key); the new status.

    ``transform`` changes the status in place under the same lock (the ip-up and ipv6-up
    hooks run at once and must not lose each other's routes). ``since`` is set whenever
    ``state`` changes. Readable by all (0644): it holds no secret, and ``sstp-helper
    status`` runs for members of group dip too.
    """
    paths = paths or Paths.from_env()
    state = fields.get("state")
    if state is not None and state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    with _locked(name, paths) as path:
        data = read_status(name, paths) or {"version": STATUS_VERSION, "name": name}
        if state is not None and state != data.get("state"):
            data["since"] = round(time.time(), 3)
        for key, value in fields.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = list(value) if isinstance(value, tuple) else value
        if transform is not None:
            transform(data)
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode=0o644)
    return data
