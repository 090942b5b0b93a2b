"""The undo record of one connection: ``/run/sstp-pppd/NAME/record.json``.

wg-quick's HAVE_SET_* idea made crash-proof. Every change to the host is written here
*before* it is made, each entry with what is needed to undo it, so that the transport's own
exit, pppd's ip-down, ``sstp-helper down`` and the next start after a ``kill -9`` all undo
the same list and nothing is left behind:

- written atomically (temporary file, fsync, rename, fsync of the directory), mode 0600 in
  a 0700 directory; a crash leaves the old record or the new one, never half of one;
- read-modify-write under ``flock`` on ``NAME/lock``, which the kernel releases when its
  holder dies, so a ``kill -9`` never leaves the record locked;
- an entry whose change never happened (the crash came between the write and the change)
  undoes to "already gone", which every undo treats as success: undo is idempotent;
- a change found already in place is not recorded at all (it is not ours to undo).

:func:`undo` runs the entries newest first and drops each one once it is undone; an entry
whose undo fails stays for the next attempt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import grp
import json
import logging
import os
from collections.abc import Callable, Collection, Iterator
from typing import Any

from .atomic import write_atomic
from .paths import Paths, valid_name
from .plan import Scope

log = logging.getLogger(__name__)

RECORD_VERSION = 1
DIP_GROUP = "dip"

#: kind -> function undoing an entry of that kind (raises OSError when it cannot).
Undoer = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    id: int
    kind: str
    scope: Scope
    data: dict[str, Any]


def state_dir(name: str, paths: Paths) -> str:
    """``/run/sstp-pppd/NAME``, created when missing: mode 0710, group ``dip``.

    The record and the lock in it are 0600; status.json is 0644 so that members of group
    dip (who may run ``sstp-helper up/status``, as ``pon``) can read it by name, while
    the directory cannot be listed by them nor entered by anyone else.
    """
    if not valid_name(name):
        raise ValueError(f"{name!r} cannot name a connection")
    os.makedirs(paths.run_dir, mode=0o755, exist_ok=True)
    d = paths.state_dir(name)
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        return d
    try:
        os.chown(d, -1, grp.getgrnam(DIP_GROUP).gr_gid)
        os.chmod(d, 0o710)  # noqa: S103 (group dip reads status.json; see above)
    except (KeyError, OSError):
        pass  # no group dip, or not root: stays 0700
    return d


class Record:
    """The record of connection ``name``; every method takes the lock itself."""

    def __init__(self, name: str, paths: Paths | None = None) -> None:
        self.name = name
        self.paths = paths or Paths.from_env()
        self.dir = state_dir(name, self.paths)
        self.path = os.path.join(self.dir, "record.json")

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """The record's content, under the lock; written back if changed."""
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        finally:
            os.close(fd)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {"version": RECORD_VERSION, "name": self.name, "next": 1, "entries": []}
        except (OSError, ValueError) as exc:
            # Not ours or damaged: keep it for a human rather than forget what it lists.
            raise OSError(errno.EINVAL, f"unreadable record {self.path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise OSError(errno.EINVAL, f"record {self.path} has an unknown format")
        return data

    def add(self, kind: str, scope: Scope, data: dict[str, Any]) -> int:
        """Write down a change about to be made; its entry id."""
        with self.locked() as rec:
            entry_id = int(rec["next"])
            rec["next"] = entry_id + 1
            rec["entries"].append(
                {"id": entry_id, "kind": kind, "scope": scope.value, "data": data}
            )
        return entry_id

    def update(self, entry_id: int, data: dict[str, Any]) -> None:
        """Replace an entry's data (e.g. with what was written, once it is known)."""
        with self.locked() as rec:
            for e in rec["entries"]:
                if e["id"] == entry_id:
                    e["data"] = data

    def drop(self, entry_id: int) -> None:
        """Forget an entry: its change was undone, or turned out not to be ours."""
        with self.locked() as rec:
            rec["entries"] = [e for e in rec["entries"] if e["id"] != entry_id]

    def entries(self) -> list[Entry]:
        with self.locked() as rec:
            return [_entry(e) for e in rec["entries"]]

    def set_owner(self, pid: int | None) -> None:
        """The transport's pid (None: no transport running)."""
        with self.locked() as rec:
            if pid is None:
                rec.pop("pid", None)
            else:
                rec["pid"] = pid

    def forget(self) -> None:
        """Delete the record if it lists nothing (after a complete undo)."""
        with self.locked() as rec:
            if not rec["entries"] and os.path.exists(self.path):
                os.unlink(self.path)

    def owner(self) -> int | None:
        with self.locked() as rec:
            pid = rec.get("pid")
        return pid if isinstance(pid, int) else None

    def undo(
        self,
        undoers: dict[str, Undoer],
        scopes: Collection[Scope] | None = None,
        match: Callable[[Entry], bool] | None = None,
    ) -> list[str]:
        """Undo the entries of ``scopes`` (all by default) that ``match``, newest first.

        Returns the errors; an entry that could not be undone stays in the record.

        The lock is held throughout, so two undoers (ip-down and the session's exit) never
        undo the same entry twice at once.
        """
        errors: list[str] = []
        with self.locked() as rec:
            for raw in reversed(list(rec["entries"])):
                e = _entry(raw)
                if scopes is not None and e.scope not in scopes:
                    continue
                if match is not None and not match(e):
                    continue
                fn = undoers.get(e.kind)
                if fn is None:
                    errors.append(f"entry {e.id}: no way to undo {e.kind!r}")
                    continue
                try:
                    fn(e.data)
                except OSError as exc:
                    errors.append(f"{e.kind} {e.data}: {exc}")
                    log.warning("could not undo %s %s: %s", e.kind, e.data, exc)
                    continue
                rec["entries"] = [x for x in rec["entries"] if x["id"] != e.id]
        return errors


def _entry(raw: dict[str, Any]) -> Entry:
    return Entry(
        id=int(raw["id"]), kind=str(raw["kind"]), scope=Scope(raw["scope"]), data=raw["data"]
    )


def default_undoers(paths: Paths) -> dict[str, Undoer]:
    """The real backends (imported here: pyroute2 is loaded only when a route is undone)."""
    from . import dns, routes  # noqa: PLC0415

    return {"route": routes.undo_route, **dns.undoers(paths)}


def undo_all(
    name: str,
    paths: Paths | None = None,
    *,
    scopes: Collection[Scope] | None = None,
    undoers: dict[str, Undoer] | None = None,
) -> list[str]:
    """Undo what connection ``name`` recorded (``scopes``: only those); the errors.

    This is what ``sstp-helper down`` and ``python -m sstp_pppd.host undo NAME`` call. With
    nothing recorded it does nothing; called twice, the second call finds nothing.
    """
    paths = paths or Paths.from_env()
    if not os.path.exists(os.path.join(paths.state_dir(name), "record.json")):
        return []
    rec = Record(name, paths)
    return rec.undo(undoers if undoers is not None else default_undoers(paths), scopes)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
