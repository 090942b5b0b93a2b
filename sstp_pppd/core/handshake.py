"""The HTTP phase of SSTP: the ``SSTP_DUPLEX_POST`` exchange and the proxy ``CONNECT``.

[MS-SSTP] 3.2.4.1 and 4.1: over the TLS connection the client sends one HTTP request
with the method ``SSTP_DUPLEX_POST`` and waits for ``200 OK``; from then on the
connection carries SSTP packets.  [MS-SSTP] 4.5: through an HTTP proxy the client first
sends ``CONNECT host:port`` (with ``SSTPVERSION: 1.0``) in clear text.

Decisions the rest of the program relies on:

* User input (host names, ``--uuid``, ``--proxy``) that cannot be used raises
  :class:`ValueError`; the command line turns it into ``ConfigError``.  Bytes from the
  network raise only :class:`~sstp_pppd.core.errors.HttpError`.
* The response parser accepts bare LF line endings (RFC 9112 section 2.2 allows it)
  and skips interim 1xx responses; it rejects control characters, obsolete line
  folding (no SSTP server folds) and header blocks over :data:`MAX_HEADER_BYTES`.  It
  fails as soon as the first bytes cannot start ``HTTP/1.``, so a non-HTTP peer is
  reported at once instead of after the 60 s timeout.
* A 200 reply whose Content-Length is not 2**64 - 1 is accepted with a warning
  (sstpc refuses it; nothing is gained by refusing).
* The default proxy port is 1080, as in curl.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import HttpError, UsageError

if TYPE_CHECKING:
    import uuid  # the module costs start-up time (it imports platform): types only

#: The request URI of [MS-SSTP] 2.2.1 (the GUID's case is as the spec writes it).
SSTP_URI = "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/"
SSTP_METHOD = "SSTP_DUPLEX_POST"
#: [MS-SSTP] 3.2.4.1: both directions announce a body of 2**64 - 1 bytes, the whole stream.
SSTP_CONTENT_LENGTH = 2**64 - 1
#: A response whose header block (interim responses included) is longer is refused.
MAX_HEADER_BYTES = 16 * 1024
#: curl's default port for a proxy URL without one.
DEFAULT_PROXY_PORT = 1080

# RFC 3986 host (IP-literal or reg-name, IPvFuture left out) with an optional port.
_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(:[0-9]*)?")
_GUID_RE = re.compile(r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")
_STATUS_RE = re.compile(rb"(HTTP/1\.[0-9]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_HEADER_RE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*")
_CONTROL_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_END_RE = re.compile(rb"\n\r?\n")
_HTTP_PREFIX = b"HTTP/1."
_SHOW_LIMIT = 80


def _show(raw: bytes | str, quote: str = "'") -> str:
    """Printable ASCII, bounded rendering of peer-supplied text for error messages."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    shown = ""
    for char in text:
        if len(shown) >= _SHOW_LIMIT:
            return f"{quote}{shown}...{quote}"
        shown += char if " " <= char <= "~" else ascii(char)[1:-1]
    return f"{quote}{shown}{quote}"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _host_for_header(host: str, *, allow_port: bool) -> str:
    """``host`` as written in a Host header or CONNECT target: ASCII, IPv6 in brackets.

    Raises ValueError for anything that could not be a host (header injection included).
    """
    address = _ip(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
    if address is not None:
        # A zone id ("%eth0") names one of our interfaces; it means nothing to the peer.
        text = str(address).partition("%")[0]
        return f"[{text}]" if address.version == 6 else text
    name = host
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UsageError(f"cannot encode host name {host!r}: {exc}") from None
    match = _HOST_RE.fullmatch(name)
    if match is None:
        raise UsageError(f"invalid host name {host!r}")
    if match.group(2) is not None and not allow_port:
        raise UsageError(f"host name {host!r} must not include a port")
    return name


def _check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port} is out of range 1-65535")
    return port


def new_correlation_id(uuid_value: uuid.UUID) -> str:
    """The ``SSTPCORRELATIONID`` form of a GUID: upper-case, in braces."""
    return "{" + str(uuid_value).upper() + "}"


def random_correlation_id(random16: bytes) -> str:
    """A fresh version-4 GUID from 16 random bytes, as :func:`new_correlation_id` forms it.

    What ``uuid.uuid4()`` does, without importing ``uuid`` on every connect.
    """
    if len(random16) != 16:
        raise UsageError("a correlation id needs 16 random bytes")
    b = bytearray(random16)
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex().upper()
    return "{" + f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" + "}"


def normalize_correlation_id(text: str) -> str:
    """Check a GUID given with or without braces and return it as :func:`new_correlation_id`.

    Raises ValueError unless ``text`` is ``XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`` (hex),
    optionally in braces.
    """
    stripped = text.strip()
    inner = stripped[1:-1] if stripped.startswith("{") and stripped.endswith("}") else stripped
    if _GUID_RE.fullmatch(inner) is None:
        raise UsageError(
            f"not a GUID: {text!r} (expected {{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}})"
        )
    return "{" + inner.upper() + "}"


def sstp_request(host: str, correlation_id: str) -> bytes:
    """The ``SSTP_DUPLEX_POST`` request ([MS-SSTP] 4.1).

    ``host`` is the Host header value: the caller passes the server name as configured,
    without the port (Windows and sstpc do the same, and accel's ``host-name`` compares
    it with a bare name), or the user's ``--host`` verbatim, which may carry a port.
    IPv6 literals are bracketed, non-ASCII names IDNA-encoded.  ``correlation_id`` is a
    GUID with or without braces.  Raises ValueError for an unusable host or GUID.
    """
    return (
        f"{SSTP_METHOD} {SSTP_URI} HTTP/1.1\r\n"
        f"Host: {_host_for_header(host, allow_port=True)}\r\n"
        f"Content-Length: {SSTP_CONTENT_LENGTH}\r\n"
        f"SSTPCORRELATIONID: {normalize_correlation_id(correlation_id)}\r\n"
        "\r\n"
    ).encode("ascii")


def connect_request(
    host: str, port: int, username: str | None = None, password: str | None = None
) -> bytes:
    """The proxy ``CONNECT`` request ([MS-SSTP] 4.5) for the SSTP server ``host:port``.

    With a ``username``, Basic ``Proxy-Authorization`` (RFC 7617, UTF-8) is added; a
    missing password counts as empty.  Raises ValueError for an unusable host, a port
    outside 1-65535 or a user name containing ``:``.
    """
    target = f"{_host_for_header(host, allow_port=False)}:{_check_port(port)}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}", "SSTPVERSION: 1.0"]
    if username is not None:
        if ":" in username:
            raise UsageError("a proxy user name cannot contain ':' (RFC 7617)")
        # surrogateescape: a name read from a non-UTF-8 environment keeps its bytes.
        credentials = f"{username}:{password or ''}".encode("utf-8", "surrogateescape")
        lines.append(f"Proxy-Authorization: Basic {base64.b64encode(credentials).decode()}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResponse:
    """A parsed response head.  ``version`` is e.g. ``"HTTP/1.1"``; header values are
    latin-1 decoded with surrounding whitespace removed, names kept as received."""

    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case); repeated fields are joined by ``", "``."""
        wanted = name.lower()
        values = [value for key, value in self.headers if key.lower() == wanted]
        return ", ".join(values) if values else None


def _status_text(resp: HttpResponse) -> str:
    """``"404 Not Found"``, printable and bounded (the reason comes from the peer)."""
    return f"{resp.status} {_show(resp.reason, quote='')}".rstrip()


class ResponseParser:
    """Incremental parser of one HTTP/1.x response head, fed bytes in any split.

    :meth:`feed` returns the final (non-1xx) response once its header block is complete;
    :attr:`trailing` then holds the bytes that followed it, which belong to the SSTP
    stream.  Every malformed input raises :class:`HttpError`, and nothing else.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start = 0  # where the response being parsed begins (after 1xx responses)
        self._status: int | None = None
        self.response: HttpResponse | None = None
        #: Bytes received after the header block; empty until the response is complete.
        self.trailing = b""

    def feed(self, data: bytes) -> HttpResponse | None:
        """Add received bytes; return the response when complete, else None (need more)."""
        if self.response is not None:
            raise HttpError("the HTTP response is already complete", self.response.status)
        self._buffer += data
        while (response := self._parse_one()) is not None:
            # RFC 9110 15.2: interim responses precede the real one; 101 ends the exchange.
            if 100 <= response.status < 200 and response.status != 101:
                self._status = None
                continue
            self.response = response
            self.trailing = bytes(self._buffer[self._start :])
            self._buffer = bytearray()
            return response
        return None

    def feed_eof(self) -> None:
        """The peer closed the connection; raise HttpError unless the response is complete."""
        if self.response is not None:
            return
        pending = bytes(self._buffer[self._start :])
        if not pending:
            raise HttpError("the connection was closed before any HTTP response was received")
        raise HttpError(
            f"the connection was closed in the middle of the HTTP response: {_show(pending)}",
            self._status,
        )

    def _parse_one(self) -> HttpResponse | None:
        buf, start = self._buffer, self._start
        head = bytes(buf[start : start + len(_HTTP_PREFIX)])
        if not _HTTP_PREFIX.startswith(head):
            line = bytes(buf[start : start + _SHOW_LIMIT + 1]).split(b"\n", 1)[0]
            raise HttpError(f"the peer did not answer in HTTP: received {_show(line)}")
        line_end = buf.find(b"\n", start, MAX_HEADER_BYTES)
        if line_end >= 0 and self._status is None:
            self._status = self._parse_status(bytes(buf[start:line_end]).removesuffix(b"\r"))[1]
        # The header block must end within the first MAX_HEADER_BYTES of the stream,
        # whatever the split, so the outcome never depends on how the bytes arrived.
        end = _END_RE.search(buf, start, MAX_HEADER_BYTES)
        if end is None:
            if len(buf) >= MAX_HEADER_BYTES:
                raise HttpError(
                    f"response headers too long (over {MAX_HEADER_BYTES} bytes)", self._status
                )
            return None
        lines = [line.removesuffix(b"\r") for line in bytes(buf[start : end.start()]).split(b"\n")]
        self._start = end.end()
        version, status, reason = self._parse_status(lines[0])
        return HttpResponse(
            version=version, status=status, reason=reason, headers=_parse_headers(lines[1:], status)
        )

    @staticmethod
    def _parse_status(line: bytes) -> tuple[str, int, str]:
        match = _STATUS_RE.fullmatch(line)
        if match is None or int(match.group(2)) < 100:
            raise HttpError(f"malformed HTTP status line: {_show(line)}")
        reason = (match.group(3) or b"").decode("latin-1").strip()
        return match.group(1).decode("ascii"), int(match.group(2)), reason


def _parse_headers(lines: list[bytes], status: int) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if _CONTROL_RE.search(line) is not None:
            raise HttpError(f"control character in HTTP header: {_show(line)}", status)
        match = _HEADER_RE.fullmatch(line)
        if match is None:
            raise HttpError(f"malformed HTTP header line: {_show(line)}", status)
        headers.append((match.group(1).decode("ascii"), match.group(2).decode("latin-1")))
    return tuple(headers)


_SSTP_HINTS = {
    400: "the server found the SSTP request malformed",
    401: "the server refused the SSTP request (access denied before any VPN authentication)",
    403: "the server refused the SSTP request (access denied before any VPN authentication)",
    404: "the server does not serve SSTP at this address (wrong port or path?)",
    405: "the method SSTP_DUPLEX_POST is not allowed (not an SSTP server, or SSTP disabled?)",
    407: "a proxy on the way asks for authentication: use --proxy http://user:pass@host:port",
    501: "the method SSTP_DUPLEX_POST is not implemented (not an SSTP server, or SSTP disabled?)",
}


def check_sstp_response(resp: HttpResponse) -> tuple[str, ...]:
    """Accept the server's answer to ``SSTP_DUPLEX_POST`` or raise HttpError.

    Only 200 is accepted ([MS-SSTP] 3.2.4.1).  Returns warnings for the log (a
    Content-Length other than 2**64 - 1, a Transfer-Encoding) rather than failing on them.
    """
    status = resp.status
    if status != 200:
        if 300 <= status < 400:
            location = resp.header("Location")
            hint = "SSTP cannot follow redirects: the server does not take SSTP at this address"
            if location:
                hint += f" (it points to {_show(location)})"
        elif status in _SSTP_HINTS:
            hint = _SSTP_HINTS[status]
        elif 500 <= status < 600:
            hint = "the server (or a front end) failed; try again later"
        else:
            hint = "SSTP needs 200 OK"
        raise HttpError(
            f"the server answered the SSTP request with {_status_text(resp)}: {hint}", status
        )
    warnings = []
    length = resp.header("Content-Length")
    if length is not None and any(
        part.strip() != str(SSTP_CONTENT_LENGTH) for part in length.split(",")
    ):
        warnings.append(
            f"the server sent Content-Length {_show(length)}, not {SSTP_CONTENT_LENGTH} "
            "([MS-SSTP] 3.2.4.1); continuing"
        )
    encoding = resp.header("Transfer-Encoding")
    if encoding is not None:
        warnings.append(
            f"the server sent Transfer-Encoding {_show(encoding)}; a front end may be "
            "rewriting the SSTP stream"
        )
    return tuple(warnings)


def check_proxy_response(resp: HttpResponse, *, credentials_sent: bool = False) -> None:
    """Accept a proxy's answer to ``CONNECT`` (any 2xx) or raise HttpError.

    ``credentials_sent`` says whether the request carried Proxy-Authorization, to tell
    "missing" from "wrong" credentials on a 407.
    """
    status = resp.status
    if 200 <= status < 300:
        return
    if status == 407:
        if credentials_sent:
            hint = "proxy authentication failed: check the user name and password"
        else:
            hint = "proxy authentication required: use a proxy URL http://user:pass@host:port"
        challenge = resp.header("Proxy-Authenticate")
        if challenge and re.search(r"(?i)(?:^|,)\s*basic\b", challenge) is None:
            hint += f"; only Basic is supported and the proxy offers {_show(challenge)}"
    elif status == 403:
        hint = "the proxy refused the tunnel (its policy may forbid this host or port)"
    elif status in (405, 501):
        hint = "the proxy does not support CONNECT"
    elif status in (502, 503, 504):
        hint = "the proxy could not reach the server"
    else:
        hint = "the proxy refused the tunnel"
    raise HttpError(f"the proxy answered CONNECT with {_status_text(resp)}: {hint}", status)
