"""A signal once the tunnel is up ends the call cleanly: CALL_DISCONNECT, then exit 0."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .fakeserver import ServerCert, make_cert
from .test_tunnel import PASSWORD, asynctest, connected, disconnect_acked


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_cert(tmp_path_factory.mktemp("certs"), "good", ips=["127.0.0.1"])


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("secret") / "password"
    f.write_text(PASSWORD + "\n")
    f.chmod(0o600)
    return f


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["INT", "TERM", "HUP"]
)
def test_a_signal_with_the_tunnel_up_disconnects(
    cert: ServerCert, password_file: Path, signum: signal.Signals
) -> None:
    @asynctest
    async def run() -> None:
        async with connected(cert, password_file) as (s, client):
            client.signal(signum)
            await disconnect_acked(s, client)  # exit 0, "tunnel closed", no traceback
        assert f"signal {signum.name}: disconnecting" in client.stderr

    run()
