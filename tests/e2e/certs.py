"""The lab's certificates, made with the openssl command line on the host.

:func:`make_certs` writes into one directory (RSA 2048, valid 30 days):

===================  ==========================================================
``ca``               the lab CA ("SSTP Lab CA")
``server``           signed by ``ca``; SAN DNS:vpn.lab.test, DNS:vpn6.lab.test,
                     IP:192.0.2.1, IP:2001:db8::1 (the normal server)
``other_ca``         an unrelated CA ("Other Lab CA"), for "wrong CA" cases
``other_server``     the same names as ``server``, signed by ``other_ca``
``self_signed``      the same names, self-signed (for ``--insecure`` cases)
``wrong_name``       signed by ``ca``, but for DNS:wrong.lab.test, IP:192.0.2.99
===================  ==========================================================

Each server entry is a :class:`KeyPair` (``cert``, ``key`` paths); CAs too.
:func:`verify_certs` checks the bed itself with ``openssl verify`` (names,
addresses and chains, and that the wrong ones really are wrong), so that a
client under test fails only for its own reasons.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

SERVER_NAME = "vpn.lab.test"
SERVER_NAME6 = "vpn6.lab.test"
WRONG_NAME = "wrong.lab.test"
SERVER_V4 = "192.0.2.1"
SERVER_V6 = "2001:db8::1"
SERVER_SAN = f"DNS:{SERVER_NAME},DNS:{SERVER_NAME6},IP:{SERVER_V4},IP:{SERVER_V6}"
WRONG_SAN = f"DNS:{WRONG_NAME},IP:192.0.2.99"
DAYS = "30"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class KeyPair:
    """A PEM certificate and its PEM private key."""

    cert: Path
    key: Path


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Certs:
    """Every certificate of the lab (see the module docstring)."""

    ca: KeyPair
    server: KeyPair
    other_ca: KeyPair
    other_server: KeyPair
    self_signed: KeyPair
    wrong_name: KeyPair


def _openssl(*args: str | Path) -> None:
    res = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{res.stderr}")


def _ca(d: Path, name: str, cn: str) -> KeyPair:
    kp = KeyPair(cert=d / f"{name}.pem", key=d / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", kp.key, "-out", kp.cert,
        "-days", DAYS, "-subj", f"/O=sstp-pppd tests/CN={cn}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return kp


def _server(d: Path, name: str, cn: str, san: str, ca: KeyPair | None) -> KeyPair:
    kp = KeyPair(cert=d / f"{name}.pem", key=d / f"{name}.key")
    exts = [
        "-addext", f"subjectAltName={san}",
        "-addext", "extendedKeyUsage=serverAuth",
        "-addext", "basicConstraints=critical,CA:FALSE",
    ]  # fmt: skip
    subj = f"/O=sstp-pppd tests/CN={cn}"
    if ca is None:
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", kp.key,
            "-out", kp.cert, "-days", DAYS, "-subj", subj, *exts,
        )  # fmt: skip
        return kp
    csr = d / f"{name}.csr"
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", kp.key, "-out", csr,
             "-subj", subj, *exts)  # fmt: skip
    # -copy_extensions needs OpenSSL 3 (Debian 12 has 3.0).
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-out", kp.cert, "-days", DAYS, "-copy_extensions", "copyall",
    )  # fmt: skip
    csr.unlink()
    return kp


def make_certs(d: Path) -> Certs:
    """Create every lab certificate in ``d`` (about a second) and verify them."""
    d.mkdir(parents=True, exist_ok=True)
    ca = _ca(d, "ca", "SSTP Lab CA")
    other_ca = _ca(d, "other-ca", "Other Lab CA")
    certs = Certs(
        ca=ca,
        server=_server(d, "server", SERVER_NAME, SERVER_SAN, ca),
        other_ca=other_ca,
        other_server=_server(d, "other-server", SERVER_NAME, SERVER_SAN, other_ca),
        self_signed=_server(d, "self-signed", SERVER_NAME, SERVER_SAN, None),
        wrong_name=_server(d, "wrong-name", WRONG_NAME, WRONG_SAN, ca),
    )
    verify_certs(certs)
    return certs


def _verify(ca: Path, cert: Path, *check: str) -> bool:
    res = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), "-purpose", "sslserver", *check, str(cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    return res.returncode == 0


def verify_certs(c: Certs) -> None:
    """Raise RuntimeError unless each certificate verifies exactly as its role says."""
    checks = [
        (True, c.ca.cert, c.server.cert, ("-verify_hostname", SERVER_NAME)),
        (True, c.ca.cert, c.server.cert, ("-verify_hostname", SERVER_NAME6)),
        (True, c.ca.cert, c.server.cert, ("-verify_ip", SERVER_V4)),
        (True, c.ca.cert, c.server.cert, ("-verify_ip", SERVER_V6)),
        (True, c.other_ca.cert, c.other_server.cert, ("-verify_hostname", SERVER_NAME)),
        (True, c.self_signed.cert, c.self_signed.cert, ("-verify_ip", SERVER_V4)),
        (True, c.ca.cert, c.wrong_name.cert, ("-verify_hostname", WRONG_NAME)),
        (False, c.ca.cert, c.wrong_name.cert, ("-verify_hostname", SERVER_NAME)),
        (False, c.ca.cert, c.wrong_name.cert, ("-verify_ip", SERVER_V4)),
        (False, c.ca.cert, c.other_server.cert, ()),
        (False, c.other_ca.cert, c.server.cert, ()),
        (False, c.ca.cert, c.self_signed.cert, ()),
    ]
    for want, ca, cert, check in checks:
        if _verify(ca, cert, *check) != want:
            raise RuntimeError(
                f"openssl verify -CAfile {ca} {' '.join(check)} {cert}: "
                f"expected {'success' if want else 'failure'}"
            )
