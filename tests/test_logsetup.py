"""logsetup: where the log goes, and the fallback when syslog is missing.

Python >= 3.11's SysLogHandler no longer fails when /dev/log is missing, so without a
check every record would become a "--- Logging error ---" traceback on stderr.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sstp_pppd.config import Config, LogConfig, TlsConfig
from sstp_pppd.logsetup import LOG_LEVELS, setup_logging, syslog_problem
from sstp_pppd.options import Server


def config(*, nolaunchpppd: bool = False, **log: object) -> Config:
    return Config(
        server=Server(host="vpn.example", port=443),
        tls=TlsConfig(name="vpn.example"),
        log=LogConfig(**log),  # type: ignore[arg-type]
        nolaunchpppd=nolaunchpppd,
    )


@pytest.fixture(autouse=True)
def restore_logger() -> Iterator[None]:
    root = logging.getLogger("sstp_pppd")
    saved = list(root.handlers)
    yield
    for h in root.handlers:
        if h not in saved:
            h.close()
    root.handlers[:] = saved


def test_syslog_problem(tmp_path: Path) -> None:
    assert syslog_problem(str(tmp_path / "missing")) == "No such file or directory"
    path = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        assert syslog_problem(path) is None


def run_logging(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Set up logging as the CLI does in a fresh interpreter, log three lines."""
    code = (
        "import logging, sys\n"
        "from sstp_pppd.options import parse_args\n"
        "from sstp_pppd.config import build_config\n"
        "from sstp_pppd.logsetup import setup_logging\n"
        "setup_logging(build_config(parse_args(sys.argv[1:])))\n"
        "log = logging.getLogger('sstp_pppd')\n"
        "for i in range(3): log.warning('line %d', i)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args, "vpn.example"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.parametrize("mode", [[], ["--nolaunchpppd"]])
def test_missing_syslog_falls_back_to_stderr_with_one_warning(
    tmp_path: Path, mode: list[str]
) -> None:
    missing = str(tmp_path / "no-dev-log")
    res = run_logging(tmp_path, *mode, f"--log-syslog={missing}")
    assert "Logging error" not in res.stderr and "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert sum(f"no syslog at {missing}" in line for line in lines) == 1, res.stderr
    assert [line for line in lines if "line " in line][-3:] == [
        "sstp-pppd: line 0",
        "sstp-pppd: line 1",
        "sstp-pppd: line 2",
    ]
    assert res.stdout == ""


def test_working_syslog_gets_the_records(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.settimeout(10)
        res = run_logging(tmp_path, "--nolaunchpppd", f"--log-syslog={path}")
        got = [s.recv(4096) for _ in range(3)]
    assert res.stderr == ""
    assert all(b"sstp-pppd[" in g and b"line " in g for g in got)
    assert got[0].startswith(b"<28>")  # daemon.warning


def test_syslog_lost_later_says_so_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    setup_logging(config(nolaunchpppd=True, syslog=str(path)))
    log = logging.getLogger("sstp_pppd")
    log.warning("first")
    s.close()
    path.unlink()
    for _ in range(3):
        log.warning("after")
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err
    assert err.count("syslog at") <= 1


def test_every_log_level_has_a_name() -> None:
    """--log-level 0..6 each print a level name, never "Level 7"."""
    for level in LOG_LEVELS:
        assert not logging.getLevelName(level).startswith("Level "), level
