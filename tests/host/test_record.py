"""The undo record: written before each change, replayable after a kill -9, idempotent."""

from __future__ import annotations

import grp
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from sstp_pppd.host.paths import Paths
from sstp_pppd.host.plan import Scope
from sstp_pppd.host.record import Record, undo_all

REPO = Path(__file__).resolve().parents[2]


def paths(tmp_path: Path) -> Paths:
    return Paths(
        etc_dir=str(tmp_path / "etc"),
        run_dir=str(tmp_path / "run"),
        resolv_conf=str(tmp_path / "resolv.conf"),
    )


class Host:
    """A pretend host whose changes are lines in a file, undone through the record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines()

    def undo(self, data: dict[str, Any]) -> None:
        self.path.write_text("".join(f"{x}\n" for x in self.lines() if x != data["line"]))


def run_child(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a new interpreter (which then may kill itself with SIGKILL)."""
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from sstp_pppd.host.paths import Paths
        from sstp_pppd.host.plan import Scope
        from sstp_pppd.host.record import Record
        paths = Paths(etc_dir={str(tmp_path / "etc")!r}, run_dir={str(tmp_path / "run")!r},
                      resolv_conf={str(tmp_path / "resolv.conf")!r})
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_files_are_private_and_atomic(tmp_path: Path) -> None:
    rec = Record("c", paths(tmp_path))
    rec.add("line", Scope.LINK, {"line": "a"})
    st = os.stat(rec.dir)
    assert st.st_mode & 0o777 == (0o710 if st.st_gid == grp.getgrnam("dip").gr_gid else 0o700)
    assert os.stat(rec.path).st_mode & 0o777 == 0o600
    assert [p.name for p in Path(rec.dir).iterdir() if p.name.startswith(".tmp")] == []
    data = json.loads(Path(rec.path).read_text())
    assert data["entries"] == [{"id": 1, "kind": "line", "scope": "link", "data": {"line": "a"}}]


def test_undo_newest_first_by_scope_and_idempotent(tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    p = paths(tmp_path)
    rec = Record("c", p)
    order: list[str] = []

    def undo(data: dict[str, Any]) -> None:
        order.append(data["line"])
        host.undo(data)

    changes = (("server", Scope.SESSION), ("kill", Scope.CONNECTION), ("split", Scope.LINK))
    for line, scope in changes:
        rec.add("line", scope, {"line": line})
        host.path.write_text(host.path.read_text() + line + "\n")
    assert undo_all("c", p, scopes={Scope.SESSION, Scope.LINK}, undoers={"line": undo}) == []
    assert order == ["split", "server"]
    assert host.lines() == ["kill"]
    assert undo_all("c", p, undoers={"line": undo}) == []
    assert host.lines() == []
    assert undo_all("c", p, undoers={"line": undo}) == []
    assert order == ["split", "server", "kill"]


def test_a_failed_undo_stays_for_the_next_attempt(tmp_path: Path) -> None:
    p = paths(tmp_path)
    Record("c", p).add("line", Scope.LINK, {"line": "a"})

    def fail(data: dict[str, Any]) -> None:
        raise OSError("busy")

    errors = undo_all("c", p, undoers={"line": fail})
    assert len(errors) == 1 and "busy" in errors[0]
    assert len(Record("c", p).entries()) == 1
    assert undo_all("c", p, undoers={"line": lambda d: None}) == []
    assert Record("c", p).entries() == []


def test_kill_9_between_record_and_change_and_after_change(tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    res = run_child(
        tmp_path,
        f"""
        rec = Record("c", paths)
        rec.add("line", Scope.SESSION, {{"line": "made"}})
        open({str(host.path)!r}, "a").write("made\\n")
        rec.add("line", Scope.LINK, {{"line": "never-made"}})
        os.kill(os.getpid(), signal.SIGKILL)  # before making the second change
        """,
    )
    assert res.returncode == -signal.SIGKILL, res.stderr
    p = paths(tmp_path)
    assert [e.data["line"] for e in Record("c", p).entries()] == ["made", "never-made"]
    assert undo_all("c", p, undoers={"line": host.undo}) == []
    assert host.lines() == []
    assert Record("c", p).entries() == []


def test_kill_9_while_holding_the_lock_leaves_it_free(tmp_path: Path) -> None:
    res = run_child(
        tmp_path,
        """
        rec = Record("c", paths)
        with rec.locked() as data:
            data["entries"].append({"id": 9, "kind": "line", "scope": "link", "data": {}})
            os.kill(os.getpid(), signal.SIGKILL)  # mid-update: nothing was written
        """,
    )
    assert res.returncode == -signal.SIGKILL, res.stderr
    rec = Record("c", paths(tmp_path))
    assert rec.entries() == []  # would hang if the lock were still held
    rec.add("line", Scope.LINK, {"line": "x"})
    assert len(rec.entries()) == 1


def test_resolv_conf_restored_after_kill_9(tmp_path: Path) -> None:
    """The real DNS file backend: the child rewrites resolv.conf and dies; undo restores it."""
    original = "# from DHCP\nnameserver 192.0.2.53\nsearch home.example\noptions edns0\n"
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(original)
    res = run_child(
        tmp_path,
        """
        from sstp_pppd.host import dns
        from sstp_pppd.host.plan import DnsOp
        op = DnsOp(ifname="ppp0", servers=("10.66.0.1",), search=("corp.example",), routing=())
        dns.apply_dns(Record("c", paths), op, paths, {}, full_tunnel=False)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert res.returncode == -signal.SIGKILL, res.stderr
    changed = resolv.read_text()
    assert "nameserver 10.66.0.1" in changed and "192.0.2.53" not in changed
    assert undo_all("c", paths(tmp_path)) == []
    assert resolv.read_text() == original
    assert undo_all("c", paths(tmp_path)) == []
    assert resolv.read_text() == original
