"""Which HTTP proxy to use: proxy URLs and the proxy environment variables (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import UsageError
from .handshake import DEFAULT_PROXY_PORT, _check_port, _host_for_header, _ip
from .redact import redact_url

__all__ = ["ProxyConfig", "parse_proxy_url", "proxy_from_environment"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfig:
    """An HTTP proxy: ``host`` without brackets, credentials percent-decoded."""

    host: str
    port: int = DEFAULT_PROXY_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def _redact(url: str) -> str:
    """``url`` with any password replaced, for error messages (also with ``/?#@`` in it)."""
    return redact_url(url)


def parse_proxy_url(url: str) -> ProxyConfig:
    """Parse ``[http://][user[:pass]@]host[:port][/]`` (port 1080 by default).

    Raises ValueError for another scheme, a missing host or a bad port; the message
    never repeats the password.
    """
    # Only here: urllib is start-up time, and most runs have no proxy to parse.
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415

    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        # Not urlsplit's message: it quotes the would-be port, maybe a piece of the password.
        raise UsageError(f"invalid proxy URL {_redact(url)!r}: bad port or address") from None
    if parts.scheme.lower() != "http":
        raise UsageError(
            f"unsupported proxy URL {_redact(url)!r}: only http:// proxies are supported"
        )
    host = parts.hostname
    if not host:
        raise UsageError(f"no host in proxy URL {_redact(url)!r}")
    try:
        _host_for_header(host, allow_port=False)
    except ValueError:
        raise UsageError(f"invalid host in proxy URL {_redact(url)!r}") from None
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if username == "" and password is None:
        username = None
    port = DEFAULT_PROXY_PORT if port is None else _check_port(port)
    return ProxyConfig(host=host, port=port, username=username, password=password)


# http_proxy is consulted (as sstpc does) but not HTTP_PROXY: CGI programs get
# HTTP_PROXY from a request's "Proxy:" header ("httpoxy"), so curl ignores it too.
_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "all_proxy", "ALL_PROXY")


def proxy_from_environment(env: Mapping[str, str], host: str, port: int) -> str | None:
    """The proxy URL the environment asks for to reach ``host:port``, or None.

    Variables in order: ``https_proxy``, ``HTTPS_PROXY``, ``http_proxy``, ``all_proxy``,
    ``ALL_PROXY`` (empty counts as unset).  ``no_proxy`` (else ``NO_PROXY``) is a comma
    list of ``*``, names (matching themselves and their subdomains, a leading ``.`` or
    ``*.`` ignored), IP addresses and CIDR networks, each optionally with ``:port``.
    Names are never resolved.
    """
    value = next((v for name in _PROXY_VARIABLES if (v := env.get(name, "").strip())), None)
    if value is None:
        return None
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    return None if _bypassed(no_proxy, host, port) else value


def _split_entry_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        address, _, port_text = entry.partition(":")
    else:
        return entry, None
    if port_text.isascii() and port_text.isdigit():
        return address, int(port_text)
    return address, None


def _bypassed(no_proxy: str, host: str, port: int) -> bool:
    name = host.strip().strip("[]").rstrip(".").lower()
    address = _ip(name.partition("%")[0])
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        entry, entry_port = _split_entry_port(entry)
        if not entry or (entry_port is not None and entry_port != port):
            continue
        if address is not None:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                pass
            else:
                if address in network:  # False across IP versions
                    return True
                continue
        suffix = entry.removeprefix("*").strip(".")
        if suffix and (name == suffix or name.endswith("." + suffix)):
            return True
    return False
