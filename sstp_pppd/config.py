"""The validated configuration of one ``sstp-pppd`` run, built from the parsed command line."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ssl
from collections.abc import Mapping

from .core import keymsg
from .core.handshake import normalize_correlation_id
from .core.proxy import parse_proxy_url
from .errors import ConfigError
from .options import ParsedArgs, Server
from .preflight import NEGOTIATION_TIMEOUT_RANGE
from .preflight import check as preflight_check
from .secrets import Secret, read_password_file


@dataclasses.dataclass(frozen=True, slots=True)
class Pin:
    """A pin on the server's leaf: the certificate's SHA-256, or its public key's (SPKI)."""

    digest: bytes
    spki: bool


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    """How the server is authenticated."""

    #: The name the certificate must carry, sent as SNI and Host: --host, else SERVER's host.
    name: str
    ca_cert: str | None = None
    ca_path: str | None = None
    crl_file: str | None = None
    crl_path: str | None = None
    insecure: bool = False
    pins: tuple[Pin, ...] = ()
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PppdConfig:
    """What pppd is started with (launch mode) and what the PPP login uses."""

    #: --pppd: the program (None: found on PATH).
    path: str | None = None
    user: str | None = None
    password: Secret | None = None
    ipparam: str | None = None
    #: The key socket pppd plugins hand the MPPE keys to (``transport.keychannel``); None:
    #: no socket (--key-socket none).
    key_socket: str | None = None
    #: Options after the server on our command line, passed to pppd as they are.
    options: tuple[str, ...] = ()
    #: Pty mode only: whom to become once the tunnel is up.
    priv_user: str | None = None
    priv_group: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """Where the log goes and how much of it."""

    level: int = 2
    syslog: str | bool | None = None
    stderr: bool = False
    stdout: bool = False
    file: str | bool | None = None
    ident: str = "sstp-pppd"
    lineno: bool = False
    filter: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The validated configuration of one run, in sections."""

    server: Server
    tls: TlsConfig
    pppd: PppdConfig = PppdConfig()
    log: LogConfig = LogConfig()
    #: [MS-SSTP] negotiation timer (60 s); longer for servers that wait for a 2nd factor.
    negotiation_timeout: float = 60.0
    connect_timeout: float = 10.0
    hello_interval: float = 60.0
    #: May carry a password (http://user:pass@...): kept out of repr.
    proxy: str | None = dataclasses.field(default=None, repr=False)
    correlation_id: str | None = None
    nolaunchpppd: bool = False
    #: Warnings found while building the config, logged once logging is set up.
    warnings: tuple[str, ...] = ()


def parse_pin(text: str) -> Pin:
    """``sha256//BASE64`` (public key pin, as curl) or 64 hex digits (certificate hash)."""
    if text.startswith("sha256//"):
        try:
            digest = base64.b64decode(text[8:], validate=True)
        except binascii.Error:
            digest = b""
        if len(digest) != 32:
            raise ConfigError(f"--pin-sha256 {text!r}: not 32 bytes of base64")
        return Pin(digest=digest, spki=True)
    hexdigits = text.replace(":", "").strip()
    try:
        digest = bytes.fromhex(hexdigits)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ConfigError(f"--pin-sha256 {text!r}: expected 64 hex digits or sha256//BASE64")
    return Pin(digest=digest, spki=False)


def _str(values: Mapping[str, object], key: str) -> str | None:
    v = values.get(key)
    return v if isinstance(v, str) else None


def _seconds(
    values: Mapping[str, object], key: str, *, default: float, low: float, high: float
) -> float:
    """A number of seconds from the command line, within [low, high]."""
    option = "--" + key.replace("_", "-")
    try:
        seconds = float(_str(values, key) or default)
    except ValueError:
        raise ConfigError(f"{option} takes a number of seconds") from None
    if not low <= seconds <= high:  # also refuses nan
        raise ConfigError(f"{option} must be between {low:g} and {high:g} seconds")
    return seconds


def key_socket_path(option: str | None, ipparam: str | None) -> str | None:
    """--key-socket, or sstpc's socket name for --ipparam; ``none`` turns it off."""
    if option == "none":
        return None
    if option is not None:
        if not option.startswith("/"):
            raise ConfigError(f"--key-socket {option!r} must be an absolute path or 'none'")
        return option
    try:
        return keymsg.socket_path(ipparam)
    except keymsg.KeyMessageError as exc:
        raise ConfigError(str(exc)) from None


def build_config(parsed: ParsedArgs) -> Config:
    """Validate the parsed command line. Reads the password file, nothing else."""
    v = parsed.values
    if parsed.server is None:
        raise ConfigError("no SERVER given (see --help)")
    warnings: list[str] = []
    nolaunch = bool(v.get("nolaunchpppd"))
    log = _log_section(v, nolaunch=nolaunch)
    timeout = _seconds(v, "connect_timeout", default=10.0, low=0.001, high=600.0)
    hello = _seconds(v, "hello_interval", default=60.0, low=1.0, high=3600.0)
    # Fail closed (preflight.py): what can be checked before connecting is checked now.
    preflight_check(v)
    low, high = NEGOTIATION_TIMEOUT_RANGE
    negotiation = _seconds(v, "negotiation_timeout", default=60.0, low=low, high=high)
    pppd = _pppd_section(parsed, nolaunch=nolaunch, warnings=warnings)
    tls = _tls_section(parsed, parsed.server, warnings=warnings)
    proxy = _str(v, "proxy")
    correlation_id = _str(v, "uuid")
    try:
        if proxy:
            parse_proxy_url(proxy)
        if correlation_id is not None:
            correlation_id = normalize_correlation_id(correlation_id)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Config(
        server=parsed.server,
        tls=tls,
        pppd=pppd,
        log=log,
        connect_timeout=timeout,
        hello_interval=hello,
        negotiation_timeout=negotiation,
        proxy=proxy,
        correlation_id=correlation_id,
        nolaunchpppd=nolaunch,
        warnings=tuple(warnings),
    )


def _log_section(v: Mapping[str, object], *, nolaunch: bool) -> LogConfig:
    try:
        level = int(_str(v, "log_level") or "2")
    except ValueError:
        raise ConfigError("--log-level takes a number from 0 to 6") from None
    if not 0 <= level <= 6:
        raise ConfigError("--log-level takes a number from 0 to 6")
    if nolaunch and v.get("log_stdout"):
        raise ConfigError(
            "--log-stdout is impossible with --nolaunchpppd: standard output is pppd's line"
        )
    filt = _str(v, "log_filter") or _str(v, "log_token") or ""
    syslog, file = v.get("log_syslog"), v.get("log_file")
    ipparam = _str(v, "ipparam")
    return LogConfig(
        level=level,
        syslog=syslog if isinstance(syslog, str | bool) else None,
        stderr=bool(v.get("log_stderr")),
        stdout=bool(v.get("log_stdout")),
        file=file if isinstance(file, str | bool) else None,
        ident=_str(v, "log_ident") or (f"sstp-pppd[{ipparam}]" if ipparam else "sstp-pppd"),
        lineno=bool(v.get("log_lineno")),
        filter=tuple(t for t in filt.split(",") if t),
    )


def _pppd_section(parsed: ParsedArgs, *, nolaunch: bool, warnings: list[str]) -> PppdConfig:
    v = parsed.values
    password: Secret | None = None
    if _str(v, "password") is not None:
        password = Secret(_str(v, "password") or "")
        warnings.append(
            "--password on the command line can be seen by other users until "
            "it is scrubbed: prefer --password-file or /etc/ppp/chap-secrets"
        )
    elif parsed.url_password is not None:
        password = Secret(parsed.url_password)
        warnings.append(
            "a password in the server URL can be seen by other users: prefer "
            "--password-file or /etc/ppp/chap-secrets"
        )
    if _str(v, "password_file"):
        if password is not None:
            raise ConfigError("give either --password or --password-file, not both")
        password = read_password_file(_str(v, "password_file") or "")
    return PppdConfig(
        path=_str(v, "pppd"),
        user=_str(v, "user") or parsed.url_user,
        password=password,
        ipparam=_str(v, "ipparam"),
        key_socket=key_socket_path(_str(v, "key_socket"), _str(v, "ipparam")),
        options=tuple(parsed.pppd_options),
        # Both modes: launch mode keeps a privileged part for pppd (transport/privsep.py).
        priv_user=_str(v, "priv_user"),
        priv_group=_str(v, "priv_group"),
    )


def _tls_section(parsed: ParsedArgs, server: Server, *, warnings: list[str]) -> TlsConfig:
    v = parsed.values
    tls_min = _str(v, "tls_min_version") or "1.2"
    versions = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
    if tls_min not in versions:
        raise ConfigError("--tls-min-version takes 1.2 or 1.3")
    tls_max = _str(v, "tls_max_version")
    if tls_max is not None and tls_max not in versions:
        raise ConfigError("--tls-max-version takes 1.2 or 1.3")
    if tls_max is not None and versions[tls_max] < versions[tls_min]:
        raise ConfigError("--tls-max-version is below --tls-min-version")
    host = _str(v, "host")
    if host is not None and (not host or any(c in host for c in "\r\n\0 /")):
        raise ConfigError(f"--host {host!r} is not a host name")
    pins_raw = v.get("pin_sha256")
    pins = tuple(parse_pin(p) for p in pins_raw) if isinstance(pins_raw, list) else ()
    insecure = bool(v.get("insecure") or v.get("cert_warn"))
    if insecure and not pins:
        warnings.append(
            "the server certificate is NOT verified (--insecure/--cert-warn): "
            "anyone on the path can read and change the traffic"
        )
    return TlsConfig(
        name=host or server.host,
        ca_cert=_str(v, "ca_cert"),
        ca_path=_str(v, "ca_path"),
        crl_file=_str(v, "crl_file"),
        crl_path=_str(v, "crl_path"),
        insecure=insecure,
        pins=pins,
        min_version=versions[tls_min],
        max_version=versions[tls_max] if tls_max else ssl.TLSVersion.MAXIMUM_SUPPORTED,
    )
