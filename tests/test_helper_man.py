"""man/sstp-helper.8 documents exactly the commands and flags of sstp-helper's parser."""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sstp_pppd import helper
from sstp_pppd.errors import ExitCode
from sstp_pppd.helpercmd import status
from sstp_pppd.helpercmd.unit import render_unit

MAN = Path(__file__).resolve().parent.parent / "man" / "sstp-helper.8"


def parser_commands() -> dict[str, set[str]]:
    """Each command of the parser and its documented flags (hidden ones excluded)."""
    parser = helper.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    commands = {}
    for name, p in sub.choices.items():
        flags = {
            opt
            for a in p._actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
            for opt in a.option_strings
        }
        commands[name] = flags
    return commands


def man_sections(title: str) -> str:
    text = MAN.read_text()
    return text.split(f".SH {title}\n", 1)[1].split("\n.SH ", 1)[0]


def man_commands() -> dict[str, set[str]]:
    """Each ``.SS COMMAND`` of COMMANDS and the ``--flags`` its .TP paragraphs describe."""
    commands: dict[str, set[str]] = {}
    current: set[str] | None = None
    for prev, line in itertools.pairwise(["", *man_sections("COMMANDS").splitlines()]):
        if line.startswith(".SS "):
            current = commands.setdefault(line.split()[1], set())
        m = re.match(r"^\.(?:BI|BR|B) ((?:\\-){2}[a-z0-9\\-]+)", line)
        if prev == ".TP" and m and current is not None:
            current.add(m.group(1).replace("\\", ""))
    return commands


def test_man_page_lists_exactly_the_commands_and_flags() -> None:
    assert man_commands() == parser_commands()


def test_every_command_is_in_the_synopsis() -> None:
    synopsis = man_sections("SYNOPSIS").replace("\\-", "-")
    for name in parser_commands():
        assert re.search(rf"(?<![a-z-]){re.escape(name)}(?![a-z-])", synopsis), name


def test_json_keys_are_documented_in_order() -> None:
    text = man_sections("JSON OUTPUT")
    keys = [m for m in re.findall(r"^\.B ([a-z_0-9]+)$", text, re.M) if m in status.KEYS]
    assert keys == list(status.KEYS)


def test_exit_codes_match_the_enum() -> None:
    codes = {int(c) for c in re.findall(r"^\.B (\d+)$", man_sections("EXIT STATUS"), re.M)}
    assert codes == {int(c) for c in ExitCode}


def test_unit_exit_statuses_match_the_man_page() -> None:
    unit = (Path(helper.__file__).parent / "data" / "sstp-pppd@.service").read_text()
    prevent = re.search(r"^RestartPreventExitStatus=(.*)$", unit, re.M)
    assert prevent is not None
    assert f"RestartPreventExitStatus={prevent.group(1)}" in man_sections("SYSTEMD")
    assert "NotifyAccess=main" in unit and "Type=notify" in unit and "KillMode=mixed" in unit
    assert "persist" not in re.sub(r"#.*", "", unit)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """systemd-analyze verify reads the unit as systemd would: no unknown key, no bad value."""
    unit = render_unit(
        shutil.which("pppd") or "/usr/sbin/pppd", shutil.which("true") or "/bin/true"
    )
    (tmp_path / "sstp-pppd@.service").write_text(unit)
    res = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "sstp-pppd@work.service"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0 and res.stderr == "", res.stderr
