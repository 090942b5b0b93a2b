"""Giving up root once the tunnel is up (``--priv-user``/``--priv-group``, pty mode)."""

from __future__ import annotations

import grp
import logging
import os
import pwd

from ..errors import ConfigError

__all__ = ["drop_privileges"]

log = logging.getLogger(__name__)


def drop_privileges(user: str | None, group: str | None) -> None:
    """setgroups/setgid/setuid to the given user and group (pty mode, after setup)."""
    if not user and not group:
        return
    try:
        pw = pwd.getpwnam(user) if user else None
        gid = grp.getgrnam(group).gr_gid if group else (pw.pw_gid if pw else os.getgid())
        os.setgroups([])
        os.setgid(gid)
        if pw is not None:
            os.setuid(pw.pw_uid)
    except (KeyError, OSError) as exc:
        # Fail closed: carrying on as root after asking not to is not an option.
        raise ConfigError(f"cannot drop privileges to {user}:{group}: {exc}") from None
    log.info("dropped privileges to %s:%s", user or os.getuid(), group or gid)
