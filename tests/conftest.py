"""Shared test settings."""

from __future__ import annotations

import os

import pytest

_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy",
                    "ALL_PROXY", "no_proxy", "NO_PROXY")  # fmt: skip


@pytest.fixture(autouse=True)
def _no_proxy_from_the_developer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients started by tests inherit the environment: a developer's proxy must not
    route loopback test traffic. Tests that want a proxy set one themselves."""
    for name in _PROXY_VARIABLES:
        if name in os.environ:
            monkeypatch.delenv(name)
