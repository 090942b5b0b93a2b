"""Start-up imports only what the run needs (issue 10): checked in fresh interpreters."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import tty
from pathlib import Path

from sstp_pppd.errors import ExitCode

HEAVY = ("asyncio", "ssl", "logging", "cryptography", "psutil", "pyroute2")


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_version_loads_nothing_heavy() -> None:
    modules = loaded_after("from sstp_pppd import cli\nassert cli.main(['--version']) == 0")
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    assert "sstp_pppd.options" not in modules  # answered before the parser


def test_help_loads_only_the_parser() -> None:
    modules = loaded_after("from sstp_pppd import cli\nassert cli.main(['--help']) == 0")
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_a_pty_mode_run_needs_no_cryptography_psutil_or_pyroute2() -> None:
    modules = loaded_after(
        "import sstp_pppd.cli, sstp_pppd.config, sstp_pppd.logsetup, sstp_pppd.secrets\n"
        "import sstp_pppd.transport.session"
    )
    assert "sstp_pppd.transport.session" in modules
    assert not {m for m in modules if m.split(".")[0] in ("cryptography", "psutil", "pyroute2")}


# ----- a real pty-mode run, and a bare --version, in fresh interpreters ---------------------

#: Not needed by a pty-mode run (json: launch mode's keeper and the host record; pathlib:
#: str paths do; urllib: only credentials in the server URL, or a proxy).
NOT_FOR_PTY_MODE = ("json", "pathlib", "urllib")

#: Run as ``python -c``: ``cli.main`` with argv[1:], then its exit code and sys.modules
#: written (by repr: json would count itself) to the file named by argv[0].
RUN = """
import sys
from sstp_pppd import cli
code = cli.main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(repr((int(code), sorted(sys.modules))))
"""


def refused_port() -> int:
    """A loopback port nobody listens on (bound, then closed: the connect is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pty_mode_run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """A whole pty-mode run, stdin and stdout a raw pty as pppd gives them, against a refused
    port: its modules at the end (after exit code 3, the connect's failure)."""
    report = tmp_path / "report"
    secret = tmp_path / "password"
    secret.write_text("secret\n")
    argv = [sys.executable, "-c", RUN, str(report), "--nolaunchpppd", "--log-stderr",
            "--key-socket", str(tmp_path / "keys"), "--user", "u", "--password-file",
            str(secret), *args, f"127.0.0.1:{refused_port()}"]  # fmt: skip
    # A proxy in our environment would be parsed (urllib, rightly): none for the run.
    no_proxy = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        res = subprocess.run(
            argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE, text=True, timeout=60,
            check=False,
            env={**no_proxy, **(env or {})},
        )  # fmt: skip
    finally:
        os.close(slave)
        os.close(master)
    assert res.returncode == 0, res.stderr
    code, modules = ast.literal_eval(report.read_text())
    assert code == ExitCode.NETWORK, res.stderr
    assert "Connection refused" in res.stderr, res.stderr
    return set(modules)


def under(modules: set[str], roots: tuple[str, ...]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in roots}


def test_a_pty_mode_run_loads_no_json_pathlib_or_urllib(tmp_path: Path) -> None:
    modules = pty_mode_run(tmp_path)
    assert "sstp_pppd.transport.session" in modules  # it did get as far as connecting
    assert not under(modules, NOT_FOR_PTY_MODE)


def test_an_ipparam_without_settings_leaves_the_host_code_unloaded(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()  # no lab.conf in it: no host change to make
    modules = pty_mode_run(
        tmp_path, "--ipparam", "lab", env={"SSTP_PPPD_ETC": str(etc),
                                           "SSTP_PPPD_RUN": str(tmp_path / "run")},
    )  # fmt: skip
    assert "sstp_pppd.host.connconf" in modules  # it did look for the settings
    assert "sstp_pppd.host.apply" not in modules
    assert not under(modules, NOT_FOR_PTY_MODE)
    assert not (tmp_path / "run").exists()  # and changed nothing


def test_version_loads_no_typing_or_importlib() -> None:
    baseline = loaded_after("")  # what the interpreter and site load anyway
    modules = loaded_after("from sstp_pppd import cli\nassert cli.main(['--version']) == 0")
    assert not under(modules - baseline, ("typing", "importlib"))
