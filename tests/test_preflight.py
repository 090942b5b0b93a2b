"""Fail closed: usage errors before anything connects, and TLS options that do what they say.

Before: an unknown --priv-user was a warning after the tunnel was up (and the program
stayed root), --priv-dir was accepted and ignored, an unreadable CA was found only after
the TCP connect, --insecure silently dropped the CRL check, and every certificate in a
--crl-file became a trust anchor.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sstp_pppd.config import build_config
from sstp_pppd.errors import ConfigError, ExitCode
from sstp_pppd.options import parse_args
from sstp_pppd.transport.tls import make_context


def config(*args: str):  # type: ignore[no-untyped-def]
    return build_config(parse_args([*args, "vpn.example"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nolaunchpppd", "--priv-user", "no-such-user-xyz"], "--priv-user 'no-such-user-xyz'"),
        (["--nolaunchpppd", "--priv-group", "no-such-group-xyz"], "no such group"),
        (["--priv-user", "no-such-user-xyz"], "no such user"),  # launch mode too
        (["--priv-dir", "/var/empty"], "--priv-dir is not supported"),
        (["--insecure", "--crl-file", "/etc/hostname"], "--insecure (or --cert-warn) with"),
        (["--cert-warn", "--crl-path", "/etc"], "no CRL would be checked"),
        (["--ca-cert", "/nonexistent/ca.pem"], "--ca-cert /nonexistent/ca.pem: No such file"),
        (["--crl-path", "/nonexistent"], "--crl-path /nonexistent: No such file"),
        (["--tls-max-version", "1.1"], "--tls-max-version takes 1.2 or 1.3"),
        (["--tls-min-version", "1.3", "--tls-max-version", "1.2"], "below --tls-min-version"),
        (["--negotiation-timeout", "5"], "between 10 and 600"),
        (["--negotiation-timeout", "601"], "between 10 and 600"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config(*args)
    assert message in str(exc.value)
    assert exc.value.exit_code == ExitCode.USAGE


def test_valid_values() -> None:
    cfg = config("--nolaunchpppd", "--priv-user", "root", "--priv-group", "root")
    assert (cfg.pppd.priv_user, cfg.pppd.priv_group) == ("root", "root")
    cfg = config("--negotiation-timeout", "300", "--tls-max-version", "1.2")
    assert cfg.negotiation_timeout == 300.0
    assert cfg.tls.max_version == ssl.TLSVersion.TLSv1_2
    assert config().negotiation_timeout == 60.0


def test_unknown_priv_user_exits_2_before_connecting() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "-c", "import sys; from sstp_pppd.cli import main; sys.exit(main())",
             "--nolaunchpppd", "--priv-user", "no-such-user-xyz", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        with pytest.raises(TimeoutError):
            listener.accept()
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "sstp-pppd: --priv-user 'no-such-user-xyz': no such user"
    ]


@pytest.mark.parametrize("kind", ["missing", "not executable"])
def test_launch_mode_needs_an_executable_pppd_before_connecting(kind: str, tmp_path: Path) -> None:
    pppd = str(tmp_path / "pppd")
    if kind == "not executable":
        Path(pppd).write_text("#!/bin/sh\n")
        Path(pppd).chmod(0o644)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "-c", "import sys; from sstp_pppd.cli import main; sys.exit(main())",
             "--pppd", pppd, f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        with pytest.raises(TimeoutError):
            listener.accept()
    assert res.returncode == 2, res.stderr
    assert f"pppd '{pppd}' is not an executable file" in res.stderr


def test_failing_privilege_drop_is_an_error() -> None:
    """Before, a failed drop was a warning and the transport carried on with root's rights."""
    code = (
        "from sstp_pppd.host.privileges import drop_privileges\n"
        "try:\n    drop_privileges('root', None)\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    argv = [sys.executable, "-c", code]
    if os.geteuid() == 0:  # as nobody, who may not become root
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert res.stdout.startswith("ConfigError cannot drop privileges to root"), res


# --- real TLS on loopback ------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip

    def crl(revoked: bool) -> bytes:
        b = (
            x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
            .last_update(now - datetime.timedelta(hours=1))
            .next_update(now + datetime.timedelta(days=1))
        )  # fmt: skip
        if revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(2)
                .revocation_date(now - datetime.timedelta(hours=1))
                .build()
            )
        return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    pem = serialization.Encoding.PEM
    files = {
        "ca": ca.public_bytes(pem),
        "leaf": leaf.public_bytes(pem),
        "key": key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        "crl-ok": crl(False),
        "crl-revoked": crl(True),
        # a "CRL file" that also carries the CA: it must not make the CA trusted
        "crl-with-ca": crl(False) + ca.public_bytes(pem),
    }
    out = {}
    for k, v in files.items():
        (d / k).write_bytes(v)
        out[k] = d / k
    return out


def handshake(pki: dict[str, Path], *args: str, server_max: ssl.TLSVersion | None = None) -> str:
    """A TLS handshake on loopback with our client context; "" or the client's error."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki["leaf"], pki["key"])
    if server_max is not None:
        sctx.minimum_version = server_max
    cctx = make_context(build_config(parse_args([*args, "--host", "localhost", "127.0.0.1"])))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with sctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as s:
                with cctx.wrap_socket(s, server_hostname="localhost"):
                    return ""
        except ssl.SSLError as exc:
            return str(exc)
        finally:
            t.join(10)


def test_crl_file_certificates_are_not_trust_anchors(pki: dict[str, Path]) -> None:
    assert handshake(pki, "--ca-cert", str(pki["ca"])) == ""
    err = handshake(pki, "--crl-file", str(pki["crl-with-ca"]))
    assert "certificate verify failed" in err
    assert handshake(pki, "--ca-cert", str(pki["ca"]), "--crl-file", str(pki["crl-ok"])) == ""
    err = handshake(pki, "--ca-cert", str(pki["ca"]), "--crl-file", str(pki["crl-revoked"]))
    assert "revoked" in err


def test_crl_path_loads_only_crls(pki: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "0badc0de.r0").write_bytes(pki["crl-revoked"].read_bytes())
    (tmp_path / "0badc0de.0").write_bytes(pki["ca"].read_bytes())  # a CA in the CRL dir
    err = handshake(pki, "--ca-cert", str(pki["ca"]), "--crl-path", str(tmp_path))
    assert "revoked" in err
    assert "certificate verify failed" in handshake(pki, "--crl-path", str(tmp_path))


def test_crl_file_without_crl_is_refused(pki: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="no PEM CRL"):
        make_context(config("--crl-file", str(pki["ca"])))


def test_tls_max_version(pki: dict[str, Path]) -> None:
    ca = str(pki["ca"])
    assert handshake(pki, "--ca-cert", ca, server_max=ssl.TLSVersion.TLSv1_3) == ""
    err = handshake(pki, "--ca-cert", ca, "--tls-max-version", "1.2",
                    server_max=ssl.TLSVersion.TLSv1_3)  # fmt: skip
    assert "VERSION" in err.upper() or "PROTOCOL" in err.upper()
