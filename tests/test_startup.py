"""Start-up imports only what the run needs (issue 10): checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

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
