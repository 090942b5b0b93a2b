"""The TLS side: the SSL context from the configuration, pin checks and readable failures."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import ssl

from ..config import Config, Pin
from ..errors import ConfigError, TlsError


def make_context(config: Config) -> ssl.SSLContext:
    """A client context: chain and hostname verified unless --insecure, TLS >= 1.2."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = config.tls.min_version
    ctx.maximum_version = config.tls.max_version
    if config.tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        if config.tls.ca_cert or config.tls.ca_path:
            # An explicit CA means exactly that CA: a private VPN CA must not be widened
            # to every public CA in the system store.
            ctx.load_verify_locations(cafile=config.tls.ca_cert, capath=config.tls.ca_path)
        else:
            load_system_cas(ctx)
        if config.tls.crl_file or config.tls.crl_path:
            load_crls_only(ctx, config.tls.crl_file, config.tls.crl_path)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the CA/CRL files: {exc}") from exc
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


_CA_NAME = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"


def load_system_cas(ctx: ssl.SSLContext) -> None:
    """Trust the system's CA store, looked up by name where it is a hashed directory.

    ``load_default_certs`` parses the whole bundle (about 140 certificates on Debian) at
    every connect: 25 ms of CPU here, far more in a slow VM, and 1.3 MB that the relay
    then carries for its lifetime. The hashed directory OpenSSL also knows
    (``/etc/ssl/certs``, kept by update-ca-certificates) gives the same trust with one
    file read per lookup, at verification. It is used only when it holds a hash link for
    at least as many certificates as the bundle has, so that no CA of the bundle is lost;
    otherwise (an unhashed directory, as on Fedora) the bundle is loaded as before.
    """
    paths = ssl.get_default_verify_paths()
    if paths.capath and _covers(paths.capath, paths.cafile):
        ctx.load_verify_locations(capath=paths.capath)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)


def _covers(capath: str, cafile: str | None) -> bool:
    try:
        links = sum(1 for name in os.listdir(capath) if _CA_NAME.match(name))
        if cafile is None:
            return links > 0
        with open(cafile, "rb") as f:
            return links >= f.read().count(_PEM_CERT)
    except OSError:
        return False


_CRL_BLOCK = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)
_CRL_NAME = re.compile(r"^[0-9a-f]{8}\.r[0-9]+$")


def load_crls_only(ctx: ssl.SSLContext, crl_file: str | None, crl_path: str | None) -> None:
    """Load the CRLs of ``crl_file`` and of the hashed directory ``crl_path`` (its
    ``HASH.rN`` files), and nothing else: OpenSSL's loaders also take any certificate
    found there as a trust anchor, and a CRL file must never widen the trusted CAs."""
    blocks: list[bytes] = []
    paths = [crl_file] if crl_file else []
    if crl_path:
        paths += sorted(
            os.path.join(crl_path, n) for n in os.listdir(crl_path) if _CRL_NAME.match(n)
        )
    for path in paths:
        with open(path, "rb") as f:
            found = _CRL_BLOCK.findall(f.read())
        if path == crl_file and not found:
            raise ConfigError(f"--crl-file {crl_file}: no PEM CRL (X509 CRL) in it")
        blocks += found
    if not blocks:
        return
    # OpenSSL loads CRLs only from a file: an anonymous one, gone when closed.
    fd = os.memfd_create("sstp-pppd-crls", os.MFD_CLOEXEC)
    try:
        os.write(fd, b"\n".join(blocks) + b"\n")
        ctx.load_verify_locations(cafile=f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def server_hostname(config: Config) -> str | bytes:
    """The name given to ssl: it is checked against the certificate and sent as SNI.

    Python sends no SNI for an address, which is right: RFC 6066 forbids addresses in SNI.
    An ASCII name goes as bytes: ssl runs a str, even an address, through the "idna"
    codec, whose import (stringprep, unicodedata) costs start-up time and memory.
    """
    name = config.tls.name
    return name.encode("ascii") if name.isascii() else name


def check_pins(der: bytes, pins: tuple[Pin, ...]) -> None:
    """Raise TlsError unless the leaf matches one of the pins (no pins: nothing to check)."""
    if not pins:
        return
    # Imported here: x509 costs a noticeable part of the start-up, and pins are rare.
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    cert_digest = hashlib.sha256(der).digest()
    spki_digest = hashlib.sha256(
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    for pin in pins:
        if hmac.compare_digest(pin.digest, spki_digest if pin.spki else cert_digest):
            return
    raise TlsError(
        f"the server certificate matches no --pin-sha256 (its SHA-256 is {cert_digest.hex(':')})"
    )


def describe_failure(exc: BaseException, config: Config) -> str:
    """One line that says what did not match and how to fix it."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        msg = exc.verify_message or str(exc)
        name = config.tls.name
        if code == 62 or "Hostname mismatch" in msg or "IP address mismatch" in msg:
            what = "address" if _is_address(name) else "name"
            return (
                f"TLS: the server certificate is not valid for the {what} {name!r}: "
                f"connect by a name the certificate carries, or give it with --host NAME"
            )
        if code in (18, 19):
            # Pins are checked after the chain, so "pin it" alone would fail the same way.
            if config.tls.pins:
                return (
                    "TLS: the server certificate is self-signed and not trusted: a pin is "
                    "checked only after the chain, so add --insecure to let the pin alone "
                    "authenticate it, or give its CA with --ca-cert FILE"
                )
            given = config.tls.ca_cert or config.tls.ca_path
            src = f"not in {given}" if given else "not trusted"
            return (
                f"TLS: the server certificate is self-signed and {src}: give its CA "
                "with --ca-cert FILE, or pin it with --insecure --pin-sha256 SHA256"
            )
        if code in (2, 20, 21):
            src = config.tls.ca_cert or config.tls.ca_path or "the system CA store"
            return (
                f"TLS: the server certificate was not issued by a CA in {src}: give the "
                f"right CA with --ca-cert FILE ({msg})"
            )
        if code == 10:
            return "TLS: the server certificate has expired (check the clock, or renew it)"
        if code == 9:
            return "TLS: the server certificate is not yet valid (check the clock)"
        if code == 23:
            return "TLS: the server certificate has been revoked (CRL)"
        return f"TLS: the server certificate failed verification: {msg}"
    if isinstance(exc, ConnectionError | ssl.SSLEOFError) or not str(exc):
        # A peer that hangs up mid-handshake: EOF in violation of the protocol, or a reset.
        return (
            "TLS handshake failed: the server closed the connection (it may refuse our "
            "TLS versions or ciphers, or not speak TLS on this port)"
        )
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if "VERSION" in reason.upper() or "PROTOCOL" in reason.upper():
            lowest = "1.3" if config.tls.min_version >= ssl.TLSVersion.TLSv1_3 else "1.2"
            return (
                f"TLS: no common protocol version with the server ({reason}); the server "
                f"may only speak TLS below {lowest} (--tls-min-version)"
            )
        return f"TLS handshake failed: {reason}"
    return f"TLS handshake failed: {exc}"


def _is_address(name: str) -> bool:
    import ipaddress  # noqa: PLC0415 (error messages only)

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
