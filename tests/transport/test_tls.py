"""tls.describe_failure: the one line each TLS failure is reported with.

The failures are real: OpenSSL handshakes between two in-memory BIOs (no socket), with
certificates made for the test, so the verify codes and reasons are OpenSSL's own. Only
the codes a fresh certificate cannot produce (expired, not yet valid, revoked) are
built by hand, as OpenSSL would report them.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from sstp_pppd.config import Config, build_config
from sstp_pppd.options import parse_args
from sstp_pppd.transport.tls import describe_failure, make_context, server_hostname

from .fakeserver import ServerCert, make_cert


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServerCert]:
    d = tmp_path_factory.mktemp("tls-certs")
    return {
        "good": make_cert(d, "good", dns=["vpn.example"], ips=["192.0.2.1"]),
        "other": make_cert(d, "other", dns=["vpn.example"]),
    }


def config(*args: str) -> Config:
    return build_config(parse_args([*args, "vpn.example"] if "--" not in args else list(args)))


def handshake_error(
    cert: ServerCert, cfg: Config, *, server_max: ssl.TLSVersion | None = None
) -> BaseException:
    """Run a client handshake (context from ``cfg``) against ``cert``; return its error."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert.cert_file, cert.key_file)
    if server_max is not None:
        server_ctx.maximum_version = server_max
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = make_context(cfg).wrap_bio(c_in, c_out, server_hostname=server_hostname(cfg))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                if side is client:
                    return exc
                # The server's side of a failure: let the client read the alert.
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    raise AssertionError("the handshake succeeded")


def test_hostname_mismatch_names_the_name_and_host(certs: dict[str, ServerCert]) -> None:
    cfg = config("--ca-cert", str(certs["good"].cert_file), "--host", "wrong.example")
    line = describe_failure(handshake_error(certs["good"], cfg), cfg)
    assert line == (
        "TLS: the server certificate is not valid for the name 'wrong.example': "
        "connect by a name the certificate carries, or give it with --host NAME"
    )


def test_address_mismatch_says_address(certs: dict[str, ServerCert]) -> None:
    cfg = build_config(parse_args(["--ca-cert", str(certs["other"].cert_file), "192.0.2.1"]))
    line = describe_failure(handshake_error(certs["other"], cfg), cfg)
    assert "not valid for the address '192.0.2.1'" in line


def test_self_signed_without_a_ca(certs: dict[str, ServerCert]) -> None:
    empty = Path(certs["other"].cert_file).parent / "empty"
    empty.mkdir(exist_ok=True)
    cfg = config("--ca-path", str(empty))
    line = describe_failure(handshake_error(certs["good"], cfg), cfg)
    assert "self-signed" in line
    assert "--ca-cert FILE" in line
    assert "--insecure --pin-sha256" in line


def test_self_signed_with_another_ca_names_the_file(certs: dict[str, ServerCert]) -> None:
    other = str(certs["other"].cert_file)
    cfg = config("--ca-cert", other)
    line = describe_failure(handshake_error(certs["good"], cfg), cfg)
    assert f"self-signed and not in {other}" in line


def test_self_signed_with_a_pin_says_the_pin_needs_insecure(
    certs: dict[str, ServerCert],
) -> None:
    pin = certs["good"].sha256.hex()
    cfg = config("--ca-cert", str(certs["other"].cert_file), "--pin-sha256", pin)
    line = describe_failure(handshake_error(certs["good"], cfg), cfg)
    assert "a pin is checked only after the chain" in line
    assert "--insecure" in line


def test_no_common_version(certs: dict[str, ServerCert]) -> None:
    cfg = config("--ca-cert", str(certs["good"].cert_file), "--tls-min-version", "1.3")
    exc = handshake_error(certs["good"], cfg, server_max=ssl.TLSVersion.TLSv1_2)
    line = describe_failure(exc, cfg)
    assert line.startswith("TLS: no common protocol version with the server (")
    assert line.endswith("the server may only speak TLS below 1.3 (--tls-min-version)")


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    exc.verify_code = code
    exc.verify_message = message
    return exc


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (10, "certificate has expired", "has expired (check the clock, or renew it)"),
        (9, "certificate is not yet valid", "is not yet valid (check the clock)"),
        (23, "certificate revoked", "has been revoked (CRL)"),
        (20, "unable to get local issuer certificate", "not issued by a CA in the system"),
        (50, "application verification failure", "failed verification: application"),
    ],
)
def test_other_verify_codes(code: int, message: str, expected: str) -> None:
    assert expected in describe_failure(verify_error(code, message), config())


def test_a_peer_hanging_up_mid_handshake() -> None:
    line = describe_failure(ConnectionResetError(), config())
    assert "the server closed the connection" in line
    assert describe_failure(OSError("odd"), config()) == "TLS handshake failed: odd"


def system_store(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, bundle: list[ServerCert], linked: list[ServerCert]
) -> None:
    """A system store as OpenSSL finds it: a bundle and a hashed directory of links."""
    store = tmp / "certs"
    store.mkdir()
    cafile = tmp / "ca-certificates.crt"
    cafile.write_bytes(b"".join(Path(c.cert_file).read_bytes() for c in bundle))
    for cert in linked:
        name = subprocess.run(
            ["openssl", "x509", "-hash", "-noout", "-in", cert.cert_file],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        (store / f"{name}.0").symlink_to(cert.cert_file)
    monkeypatch.setenv("SSL_CERT_FILE", str(cafile))
    monkeypatch.setenv("SSL_CERT_DIR", str(store))


def verifies(cert: ServerCert, cfg: Config) -> bool:
    try:
        error = handshake_error(cert, cfg)
    except AssertionError:
        return True
    assert isinstance(error, ssl.SSLCertVerificationError), error
    return False


def test_the_system_store_is_looked_up_not_loaded_where_it_is_hashed(
    certs: dict[str, ServerCert], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both = [certs["good"], certs["other"]]
    system_store(tmp_path, monkeypatch, bundle=both, linked=both)
    cfg = config()
    assert make_context(cfg).cert_store_stats()["x509"] == 0  # nothing parsed up front
    assert verifies(certs["good"], cfg)


@pytest.mark.parametrize("linked", [(), ("other",)])
def test_a_directory_that_misses_part_of_the_bundle_means_the_bundle(
    certs: dict[str, ServerCert],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    linked: tuple[str, ...],
) -> None:
    system_store(
        tmp_path, monkeypatch, bundle=[certs["good"], certs["other"]],
        linked=[certs[n] for n in linked],
    )  # fmt: skip
    cfg = config()
    assert make_context(cfg).cert_store_stats()["x509"] == 2
    assert verifies(certs["good"], cfg)


def test_a_ca_in_neither_is_not_trusted(
    certs: dict[str, ServerCert], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_store(tmp_path, monkeypatch, bundle=[certs["other"]], linked=[certs["other"]])
    assert not verifies(certs["good"], config())
