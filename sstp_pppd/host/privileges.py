"""Giving up root once the tunnel is up (``--priv-user``/``--priv-group``), in both modes.

The session calls :func:`drop_privileges` when CALL_CONNECTED is sent. In pty mode pppd is
our parent and owns its own end; in launch mode the session has forked its privileged part
first (``transport/privsep.py``), which keeps what needs root: signalling pppd, removing
the key socket, undoing the routes and DNS. Failing closed: any error ends the run (a
:class:`ConfigError`), and so does a drop that left a way back to root.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd

from ..errors import ConfigError

__all__ = ["drop_privileges"]

log = logging.getLogger(__name__)


def drop_privileges(user: str | None, group: str | None) -> None:
    """setgroups/setgid/setuid to the given user and group; ConfigError if not all done."""
    if not user and not group:
        return
    try:
        pw = pwd.getpwnam(user) if user else None
        gid = grp.getgrnam(group).gr_gid if group else (pw.pw_gid if pw else os.getgid())
        os.setgroups([])
        # setres*id: the saved ids go too, or setuid(0) would bring root back.
        os.setresgid(gid, gid, gid)
        if pw is not None:
            os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
    except (KeyError, OSError) as exc:
        # Fail closed: carrying on as root after asking not to is not an option.
        raise ConfigError(f"cannot drop privileges to {user}:{group}: {exc}") from None
    _check(pw.pw_uid if pw is not None else None, gid)
    log.info("dropped privileges to %s:%s", user or os.getuid(), group or gid)


def _check(uid: int | None, gid: int) -> None:
    """Every id is the one asked for, no group is left, and root does not come back."""
    wrong = []
    if uid is not None and set(os.getresuid()) != {uid}:
        wrong.append(f"uids {os.getresuid()}")
    if set(os.getresgid()) != {gid}:
        wrong.append(f"gids {os.getresgid()}")
    if os.getgroups() not in ([], [gid]):
        wrong.append(f"groups {os.getgroups()}")
    if uid not in (None, 0):
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            wrong.append("setuid(0) succeeded")
    if wrong:
        raise ConfigError(f"privileges not dropped: {', '.join(wrong)}")
