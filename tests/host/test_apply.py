"""Which host settings a run of sstp-pppd has: the command line and /etc/sstp-pppd/NAME.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from sstp_pppd.cli import main
from sstp_pppd.errors import ConfigError, ExitCode
from sstp_pppd.host.connconf import Connection, save_connection, session_connection
from sstp_pppd.host.paths import Paths
from sstp_pppd.options import parse_args


def paths(tmp_path: Path) -> Paths:
    return Paths(etc_dir=str(tmp_path / "etc"), run_dir=str(tmp_path / "run"))


def values(*argv: str) -> dict[str, object]:
    return dict(parse_args([*argv, "vpn.example.com"]).values)


def test_a_plain_run_changes_nothing(tmp_path: Path) -> None:
    assert session_connection(None, values(), paths(tmp_path)) is None
    assert session_connection("work", values("--ipparam", "work"), paths(tmp_path)) is None
    # An ipparam that cannot be a connection's name (pppd allows anything) is not ours.
    assert session_connection("my vpn/1", values(), paths(tmp_path)) is None


def test_route_options_need_a_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="need --ipparam NAME"):
        session_connection(None, values("--default-route"), paths(tmp_path))
    with pytest.raises(ConfigError, match="cannot name a connection"):
        session_connection("a b", values("--route", "10.0.0.0/8"), paths(tmp_path))


def test_command_line_settings(tmp_path: Path) -> None:
    v = values("--route", "10.99.0.0/24", "--default-route", "--kill-switch",
               "--dns-domain", "~corp.test", "--save-server-route")  # fmt: skip
    assert session_connection("work", v, paths(tmp_path)) == Connection(
        name="work",
        routes=("10.99.0.0/24",),
        default_route=True,
        kill_switch=True,
        dns_domains=("~corp.test",),
        save_server_route=True,
    )


def test_the_file_and_the_command_line_add_up(tmp_path: Path) -> None:
    p = paths(tmp_path)
    save_connection(Connection(name="work", routes=("10.1.0.0/16",), dns=True), p)
    conn = session_connection("work", values("--route", "10.2.0.0/16"), p)
    assert conn is not None
    assert conn.routes == ("10.1.0.0/16", "10.2.0.0/16") and conn.dns
    assert session_connection("work", values(), p) == Connection(
        name="work", routes=("10.1.0.0/16",), dns=True
    )


def test_cli_refuses_a_bad_route_with_the_usage_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ipparam", "w", "--route", "10.0.0.1/8", "vpn.example.com"]) == ExitCode.USAGE
    assert "--route '10.0.0.1/8'" in capsys.readouterr().err
    assert main(["--kill-switch", "vpn.example.com"]) == ExitCode.USAGE
