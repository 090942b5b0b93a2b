"""Connection settings files: round trip, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sstp_pppd.errors import ConfigError
from sstp_pppd.host.connconf import (
    Connection,
    format_connection,
    load_connection,
    parse_connection,
    remove_connection,
    save_connection,
)
from sstp_pppd.host.paths import Paths, valid_name


def paths(tmp_path: Path) -> Paths:
    return Paths(etc_dir=str(tmp_path / "etc"), run_dir=str(tmp_path / "run"))


def test_round_trip_through_the_file(tmp_path: Path) -> None:
    conn = Connection(
        name="work",
        routes=("10.99.0.0/24", "2001:db8:99::/48"),
        default_route=True,
        kill_switch=True,
        dns=True,
        dns_domains=("corp.example", "~internal.example"),
        save_server_route=True,
        script="/usr/local/sbin/vpn-script",
    )
    p = paths(tmp_path)
    path = save_connection(conn, p)
    assert path == str(tmp_path / "etc" / "work.conf")
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert load_connection("work", p) == conn
    assert load_connection("other", p) is None
    assert remove_connection("work", p)
    assert load_connection("work", p) is None


@given(
    st.lists(st.ip_addresses(v=4).map(lambda a: f"{a}/32"), max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_format_parse_round_trip(routes: list[str], default: bool, dns: bool) -> None:
    conn = Connection(name="c", routes=tuple(dict.fromkeys(routes)), default_route=default, dns=dns)
    assert parse_connection("c", format_connection(conn)) == conn


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rout 10.0.0.0/8\n", "unknown setting 'rout'"),
        ("route 10.0.0.1/8\n", "not an IPv4 or IPv6 network"),
        ("default-route maybe\n", "takes yes or no"),
        ("kill-switch yes\n", "needs --default-route"),
        ("dns-domain bad..domain\n", "not a domain name"),
        ("script relative/path\n", "absolute path"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_connection("c", text)


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "a b", ".hidden", "x" * 64, "a..b"])
def test_bad_names(name: str) -> None:
    assert not valid_name(name)
    with pytest.raises(ConfigError):
        Connection(name=name)


def test_merge_adds_the_command_line() -> None:
    stored = Connection(name="c", routes=("10.0.0.0/8",), dns_domains=("a.example",))
    cli = Connection(name="c", routes=("10.0.0.0/8", "10.1.0.0/16"), default_route=True)
    merged = stored.merged(cli)
    assert merged.routes == ("10.0.0.0/8", "10.1.0.0/16")
    assert merged.default_route and merged.dns_domains == ("a.example",)
