"""config: the command line becomes frozen sections (tls, pppd, log) and a few run values."""

from __future__ import annotations

import dataclasses
import ssl

import pytest

from sstp_pppd.config import LogConfig, PppdConfig, TlsConfig, build_config
from sstp_pppd.options import parse_args


def test_sections() -> None:
    cfg = build_config(
        parse_args(
            ["--host", "vpn.example", "--tls-min-version", "1.3", "--user", "alice",
             "--ipparam", "office", "--log-level", "4", "--log-filter", "a,b",
             "--hello-interval", "30", "192.0.2.1:4433", "noauth"]
        )
    )  # fmt: skip
    assert (cfg.server.host, cfg.server.port) == ("192.0.2.1", 4433)
    assert cfg.tls == TlsConfig(name="vpn.example", min_version=ssl.TLSVersion.TLSv1_3)
    assert cfg.pppd == PppdConfig(
        user="alice",
        ipparam="office",
        options=("noauth",),
        key_socket="/var/run/sstpc/sstpc-office",
    )
    assert cfg.log == LogConfig(level=4, ident="sstp-pppd[office]", filter=("a", "b"))
    assert cfg.hello_interval == 30.0


def test_the_tls_name_is_the_server_without_host() -> None:
    assert build_config(parse_args(["vpn.example:8443"])).tls.name == "vpn.example"


def test_frozen() -> None:
    cfg = build_config(parse_args(["h"]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.nolaunchpppd = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.tls.insecure = True  # type: ignore[misc]
