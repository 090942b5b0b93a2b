"""sstp-helper status and up's bookkeeping against a temp root with real processes.

The "pppd" here is a real process named pppd (a copy of sleep), its pid file and
/sys/class/net entries are files under the temp root, and status.json is written by
host.status's own writer: what is checked is how sstp-helper reads and judges them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sstp_pppd import helper
from sstp_pppd.errors import ExitCode
from sstp_pppd.helpercmd import hostapi, state, updown
from sstp_pppd.helpercmd import status as statuscmd
from sstp_pppd.helpercmd.paths import Paths

host_status = pytest.importorskip("sstp_pppd.host.status", reason="host is merged separately")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    pw.chmod(0o600)
    rc = helper.main(["--root", str(r), "add", "work", "--server", "vpn.example.com",
                      "--user", "alice", "--password-file", str(pw)])  # fmt: skip
    assert rc == 0
    return r


@pytest.fixture
def fake_pppd(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A running process whose name is pppd."""
    exe = tmp_path / "bin" / "pppd"
    exe.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    proc = subprocess.Popen([str(exe), "300"])
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def pid_file(root: Path, pid: int, ifname: str | None = "ppp0") -> None:
    f = root / "run" / "ppp-work.pid"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(f"{pid}\n" + (f"{ifname}\n" if ifname else ""))


def sysfs(root: Path, ifname: str, *, up: bool, rx: int = 0, tx: int = 0) -> None:
    d = root / "sys/class/net" / ifname
    (d / "statistics").mkdir(parents=True, exist_ok=True)
    (d / "flags").write_text("0x1091\n" if up else "0x1090\n")
    (d / "statistics/rx_bytes").write_text(f"{rx}\n")
    (d / "statistics/tx_bytes").write_text(f"{tx}\n")


def write_status(root: Path, **fields: object) -> None:
    host_status.update_status("work", hostapi.host_paths(root), **fields)


def status_json(root: Path, capsys: pytest.CaptureFixture[str], *names: str) -> dict[str, object]:
    capsys.readouterr()
    assert helper.main(["--root", str(root), "status", *names, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    return data


def test_down_connection(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = status_json(root, capsys)
    assert data["version"] == 1
    (entry,) = data["connections"]  # type: ignore[misc]
    assert list(entry) == list(statuscmd.KEYS)
    assert entry["state"] == "down"
    assert entry["server"] == "vpn.example.com" and entry["user"] == "alice"
    assert entry["interface"] is None and entry["pppd_pid"] is None
    assert entry["last_error"] is None


def test_up_connection_with_hooks_report(
    root: Path, fake_pppd: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file(root, fake_pppd.pid)
    sysfs(root, "ppp0", up=True, rx=123456, tx=789)
    write_status(root, state="connecting", stage="tcp", server="vpn.example.com",
                 server_address="192.0.2.1")  # fmt: skip
    write_status(root, state="up", stage="up", interface="ppp0", local="10.66.0.2",
                 peer="10.66.0.1", routes=["10.1.0.0/16"], dns=["10.66.0.53"],
                 dns_domains=["corp.example"], dns_backend="file")  # fmt: skip
    (entry,) = status_json(root, capsys, "work")["connections"]  # type: ignore[misc]
    assert entry["state"] == "up" and entry["stage"] == "up"
    assert entry["interface"] == "ppp0"
    assert (entry["local"], entry["peer"]) == ("10.66.0.2", "10.66.0.1")
    assert entry["server_address"] == "192.0.2.1"
    assert entry["routes"] == ["10.1.0.0/16"] and entry["dns"] == ["10.66.0.53"]
    assert entry["dns_domains"] == ["corp.example"] and entry["dns_backend"] == "file"
    assert entry["pppd_pid"] == fake_pppd.pid
    assert (entry["rx_bytes"], entry["tx_bytes"]) == (123456, 789)
    assert 0 <= entry["uptime"] < 30
    assert helper.main(["--root", str(root), "status", "work"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "work: up"
    assert "  interface:  ppp0 10.66.0.2 peer 10.66.0.1" in text
    assert "  server:     vpn.example.com (192.0.2.1)" in text
    assert "  routes:     10.1.0.0/16" in text
    assert "  dns:        10.66.0.53 (domains corp.example)" in text
    assert "  traffic:    received 120.6 KiB, sent 789 B" in text


def test_connecting_until_the_interface_is_up(
    root: Path, fake_pppd: subprocess.Popen[bytes]
) -> None:
    paths = Paths(root)
    pid_file(root, fake_pppd.pid, ifname=None)
    assert state.probe("work", paths).state is state.State.CONNECTING
    pid_file(root, fake_pppd.pid)
    sysfs(root, "ppp0", up=False)
    assert state.probe("work", paths).state is state.State.CONNECTING
    sysfs(root, "ppp0", up=True)
    p = state.probe("work", paths)
    assert p.state is state.State.UP and not p.configured


def test_a_stale_status_file_is_not_the_running_link(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """kill -9 left "up" and its routes in status.json; a later pppd is not described by it."""
    write_status(root, state="up", stage="up", interface="ppp0", routes=["10.1.0.0/16"])
    time.sleep(1.2)
    exe = tmp_path / "pppd"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    with subprocess.Popen([str(exe), "30"]) as later:
        try:
            pid_file(root, later.pid)
            sysfs(root, "ppp0", up=False)
            p = state.probe("work", Paths(root))
            assert p.state is state.State.CONNECTING
            assert p.status == {} and not p.configured
        finally:
            later.kill()
    # and with no pppd at all, the connection is down whatever the file says
    (entry,) = status_json(root, capsys)["connections"]  # type: ignore[misc]
    assert entry["state"] == "down" and entry["routes"] == [] and entry["interface"] is None


def test_pppd_start_time_is_to_the_tick_not_to_the_second() -> None:
    """psutil's create_time() rests on the whole-second boot time of /proc/stat and is up
    to a second early on a machine that booted at .5 s; the staleness rule above allows a
    second on top of it, so it needs the start to the clock tick."""
    before = time.time()
    with subprocess.Popen(["sleep", "30"]) as proc:
        after = time.time()
        try:
            started = state.started_at(psutil.Process(proc.pid))
        finally:
            proc.kill()
    assert before - 0.02 <= started <= after + 0.02


def test_dead_pid_in_pid_file_means_down(root: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    pid_file(root, proc.pid)
    assert state.probe("work", Paths(root)).state is state.State.DOWN


def test_a_process_that_is_not_pppd_does_not_count(root: Path) -> None:
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            pid_file(root, other.pid)
            assert state.probe("work", Paths(root)).pppd_pid is None
        finally:
            other.kill()


def test_last_error_is_reported(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_status(root, state="connecting", stage="tcp")
    reason = "TLS: the server's certificate is not valid"
    write_status(root, state="down", stage="stopped", last_error=reason, last_exit_code=4)
    (entry,) = status_json(root, capsys)["connections"]  # type: ignore[misc]
    err = entry["last_error"]
    assert err["reason"] == "TLS: the server's certificate is not valid"
    assert err["exit_code"] == 4 and isinstance(err["time"], float)
    assert helper.main(["--root", str(root), "status"]) == 0
    assert "  last error: TLS: the server's certificate is not valid (exit 4)" in (
        capsys.readouterr().out
    )


def test_failure_prefers_the_transports_error() -> None:
    error = {"reason": "TLS: bad", "exit_code": 4, "time": time.time()}
    p = state.Probe(name="work", state=state.State.DOWN, pppd_pid=None, interface=None,
                    status={}, raw_status={}, last_error=error, link_up=False,
                    configured=False, pppd_started=None)  # fmt: skip
    f = updown.pppd_failure(16, p, time.time() - 5)
    assert (f.code, f.reason) == (4, "TLS: bad")
    # an error older than this run is not this run's reason: pppd's status is
    f = updown.pppd_failure(19, p, time.time() + 60)
    assert f.code == ExitCode.AUTH and "authentication" in f.reason
    f = updown.pppd_failure(2, p, time.time() + 60)
    assert f.code == ExitCode.USAGE and "/etc/ppp/peers/work" in f.reason
    f = updown.pppd_failure(16, p, time.time() + 60)
    assert f.code == ExitCode.PPPD
    # the transport's reason without its exit code: the reason, pppd's status for the code
    error = {"reason": "TLS: bad", "exit_code": None, "time": time.time()}
    p = dataclasses.replace(p, last_error=error)
    f = updown.pppd_failure(16, p, time.time() - 5)
    assert (f.code, f.reason) == (ExitCode.PPPD, "TLS: bad")
    f = updown.pppd_failure(19, p, time.time() - 5)
    assert (f.code, f.reason) == (ExitCode.AUTH, "TLS: bad")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_and_in_a_log() -> None:
    tty, log = Tty(), io.StringIO()
    for stream in (tty, log):
        p = updown.Progress("work", stream)
        p.show(updown.stage_text("tcp"))
        p.show(updown.stage_text("tcp"))
        p.show(updown.stage_text("tls"))
        p.end("up (ppp0)")
    assert tty.getvalue() == (
        "\r\x1b[Kwork: TCP (1/8)\r\x1b[Kwork: TLS (2/8)\r\x1b[Kwork: up (ppp0)\n"
    )
    assert log.getvalue() == "work: TCP (1/8)\nwork: TLS (2/8)\nwork: up (ppp0)\n"


def test_up_timeout_stops_the_pppd_it_started(root: Path, tmp_path: Path) -> None:
    exe = tmp_path / "pppd"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    proc = subprocess.Popen([str(exe), "300"], start_new_session=True)
    out = io.StringIO()
    t0 = time.monotonic()
    with pytest.raises(updown.Failure) as exc:
        updown.follow(name="work", paths=Paths(root), pppd=proc, timeout=2.0,
                      progress=updown.Progress("work", out), hooks=False)  # fmt: skip
    assert time.monotonic() - t0 < 2.5
    assert exc.value.code == ExitCode.NETWORK
    assert "not up after 2 s" in exc.value.reason
    assert proc.poll() is not None  # stopped and reaped
    assert out.getvalue() == "work: starting pppd\n"


def test_up_follows_an_existing_pppd_and_leaves_it(
    root: Path, fake_pppd: subprocess.Popen[bytes]
) -> None:
    pid_file(root, fake_pppd.pid)
    sysfs(root, "ppp0", up=False)
    with pytest.raises(updown.Failure):
        updown.follow(name="work", paths=Paths(root), pppd=None, timeout=1.0,
                      progress=updown.Progress("work", io.StringIO()), hooks=False)  # fmt: skip
    assert fake_pppd.poll() is None


def test_up_is_done_once_the_hooks_report_up(
    root: Path, fake_pppd: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file(root, fake_pppd.pid)
    sysfs(root, "ppp0", up=True)
    out = io.StringIO()
    progress = updown.Progress("work", out)
    with pytest.raises(updown.Failure):  # hooks installed, but they never said "up"
        updown.follow(name="work", paths=Paths(root), pppd=None, timeout=1.0,
                      progress=progress, hooks=True)  # fmt: skip
    assert "addresses (6/8)" in out.getvalue()
    write_status(root, state="up", stage="up", interface="ppp0", local="10.66.0.2")
    assert updown.follow(name="work", paths=Paths(root), pppd=None, timeout=1.0,
                         progress=progress, hooks=True) == 0  # fmt: skip
    assert out.getvalue().endswith("work: up (ppp0 10.66.0.2)\n")
    # and "up" again answers at once
    capsys.readouterr()
    assert helper.main(["--root", str(root), "up", "work"]) == 0
    assert "already up" in capsys.readouterr().err


def test_down_when_not_up_is_fine(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert helper.main(["--root", str(root), "down", "work"]) == 0
    assert capsys.readouterr().err == "work: not up\n"


def test_down_stops_pppd(root: Path, fake_pppd: subprocess.Popen[bytes]) -> None:
    pid_file(root, fake_pppd.pid)
    assert helper.main(["--root", str(root), "down", "work", "--timeout", "5"]) == 0
    fake_pppd.wait(5)  # already reaped by down (it is our child here): gone, that is all


def test_cleanup_keeps_the_kill_switch_for_a_restart_and_down_undoes_all(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Leftovers of a killed run, recorded by host.record (file changes, so the temp root
    holds them): systemd's ExecStopPost after a failure keeps what must hold until down."""
    record = pytest.importorskip("sstp_pppd.host.record")
    plan = pytest.importorskip("sstp_pppd.host.plan")
    paths = hostapi.host_paths(root)
    rec = record.Record("work", paths)
    files = {}
    for scope in (plan.Scope.LINK, plan.Scope.CONNECTION):
        f = root / f"{scope.value}.txt"
        f.write_text("ours\n")
        rec.add("resolv.conf", scope, {"path": str(f), "original": "before\n", "ours": "ours\n"})
        files[scope] = f
    assert hostapi.undo_pending("work", root)
    monkeypatch.setenv("SERVICE_RESULT", "exit-code")
    assert helper.main(["--root", str(root), "cleanup", "work"]) == 0
    assert files[plan.Scope.LINK].read_text() == "before\n"
    assert files[plan.Scope.CONNECTION].read_text() == "ours\n"
    monkeypatch.delenv("SERVICE_RESULT")
    assert helper.main(["--root", str(root), "down", "work"]) == 0
    assert files[plan.Scope.CONNECTION].read_text() == "before\n"
    assert not hostapi.undo_pending("work", root)
    assert capsys.readouterr().err.endswith("work: not up\n")


def test_up_interrupted_stops_the_pppd_it_started(root: Path, tmp_path: Path) -> None:
    """SIGTERM to up (as Ctrl-C): the pppd it started goes too, and up exits 11."""
    exe = tmp_path / "pppd"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    code = (
        "import sys, subprocess, os, signal, threading\n"
        "from pathlib import Path\n"
        "from sstp_pppd.helpercmd import updown\n"
        "from sstp_pppd.helpercmd.paths import Paths\n"
        f"p = subprocess.Popen([{str(exe)!r}, '300'], start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "try:\n"
        f"    updown.follow(name='work', paths=Paths(Path({str(root)!r})), pppd=p, timeout=60,\n"
        "                  progress=updown.Progress('work', sys.stderr), hooks=False)\n"
        "except updown.Failure as exc:\n"
        "    sys.exit(exc.code)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == ExitCode.INTERRUPTED
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_an_unprivileged_user_can_read_status_and_take_down(tmp_path: Path) -> None:
    """As a user outside dip: root's closed state directory does not stop status or down."""
    record = pytest.importorskip("sstp_pppd.host.record")
    plan = pytest.importorskip("sstp_pppd.host.plan")
    base = Path(tempfile.mkdtemp(prefix="sstp-helper-user-"))
    try:
        base.chmod(0o755)
        root = base / "root"
        pw = base / "pw"
        pw.write_text("pw\n")
        pw.chmod(0o600)
        assert helper.main(["--root", str(root), "add", "work", "--server", "vpn",
                            "--user", "alice", "--password-file", str(pw)]) == 0  # fmt: skip
        paths = hostapi.host_paths(root)
        write_status(root, state="down", stage="stopped", last_error="the server hung up")
        f = root / "resolv"
        f.write_text("ours\n")
        record.Record("work", paths).add(
            "resolv.conf", plan.Scope.LINK, {"path": str(f), "original": "x\n", "ours": "ours\n"}
        )
        # root's (0700, or 0710 for group dip): closed to this user either way
        assert stat.S_IMODE(os.stat(paths.state_dir("work")).st_mode) & 0o007 == 0
        user = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        py = [sys.executable, "-m", "sstp_pppd.helper", "--root", str(root)]
        res = subprocess.run([*user, *py, "status", "--json"], capture_output=True, text=True,
                             check=False, cwd=base)  # fmt: skip
        assert res.returncode == 0, res.stderr
        (entry,) = json.loads(res.stdout)["connections"]
        assert entry["state"] == "down"
        res = subprocess.run([*user, *py, "down", "work"], capture_output=True, text=True,
                             check=False, cwd=base)  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert f.read_text() == "ours\n"  # the user could not undo it; root can:
        assert helper.main(["--root", str(root), "down", "work"]) == 0
        assert f.read_text() == "x\n"
    finally:
        shutil.rmtree(base)


def test_up_failure_stops_what_pppd_left_running(root: Path, tmp_path: Path) -> None:
    """pppd ends with 19 (wrong password) before its pty command: up exits 7, the command
    goes too."""
    exe = tmp_path / "pppd"
    left = tmp_path / "left.pid"
    exe.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {left}\nsleep 0.5\nexit 19\n")
    exe.chmod(0o755)
    proc = subprocess.Popen([str(exe)], start_new_session=True)
    with pytest.raises(updown.Failure) as exc:
        updown.follow(name="work", paths=Paths(root), pppd=proc, timeout=10.0,
                      progress=updown.Progress("work", io.StringIO()), hooks=False)  # fmt: skip
    assert exc.value.code == ExitCode.AUTH
    assert "PPP authentication failed" in exc.value.reason
    child = int(left.read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "pppd's child was left running"
        time.sleep(0.05)


def test_transport_reports_first_pppd_exits_after(root: Path, tmp_path: Path) -> None:
    """The transport writes its error and ends; pppd exits 19 a moment later: up waits for
    that status (the error carries no exit code) and exits 7 with the transport's reason."""
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from sstp_pppd.helpercmd import hostapi\n"
        "from sstp_pppd.host.status import update_status\n"
        f"paths = hostapi.host_paths(Path({str(root)!r}))\n"
        "time.sleep(0.3)\n"
        "update_status('work', paths, state='connecting', stage='tcp')\n"
        "time.sleep(0.4)\n"
        "update_status('work', paths, state='down', stage='stopped',\n"
        "              last_error='PPP authentication failed (MS-CHAPv2: wrong password)')\n"
    )
    script = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}; sleep 1; exit 19"
    exe = tmp_path / "pppd"
    exe.write_text(f"#!/bin/bash\nexec -a pppd /bin/bash -c {shlex.quote(script)}\n")
    exe.chmod(0o755)
    proc = subprocess.Popen([str(exe)], start_new_session=True)
    out = io.StringIO()
    with pytest.raises(updown.Failure) as exc:
        updown.follow(name="work", paths=Paths(root), pppd=proc, timeout=20.0,
                      progress=updown.Progress("work", out), hooks=False)  # fmt: skip
    assert exc.value.code == ExitCode.AUTH
    assert exc.value.reason == "PPP authentication failed (MS-CHAPv2: wrong password)"
    assert "TCP (1/8)" in out.getvalue()


def test_the_transports_exit_code_reaches_up(root: Path) -> None:
    """host.apply.undo_for_session (the transport's last word) records its exit code, and
    up's verdict is that code with that reason."""
    apply = pytest.importorskip("sstp_pppd.host.apply")
    connconf = pytest.importorskip("sstp_pppd.host.connconf")
    paths = hostapi.host_paths(root)
    started = time.time()
    write_status(root, state="connecting", stage="tcp")
    asyncio.run(
        apply.undo_for_session(
            connconf.Connection(name="work"), keep_kill_switch=True,
            error="TLS: the certificate is not valid for the name 'x'", exit_code=4, paths=paths,
        )
    )  # fmt: skip
    p = state.probe("work", Paths(root))
    assert p.last_error is not None and p.last_error["exit_code"] == 4
    f = updown.pppd_failure(16, p, started)
    assert (f.code, f.reason) == (4, "TLS: the certificate is not valid for the name 'x'")
