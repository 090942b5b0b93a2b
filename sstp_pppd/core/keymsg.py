"""The sstp-api messages of sstpc's unix socket, as pppd plugins speak them (sans-IO).

sstp-client's ``sstp-pppd-plugin.so`` and NetworkManager-sstp's ``nm-sstp-pppd-plugin.so``
connect to the transport's unix socket, send one message and read one reply. The format
(sstp-client 1.0.18 ``sstp-api.h``; see ``/work/shared/sstp-client.md`` section 2), every field
in the host's byte order (both ends run on the same machine):

* header, 8 bytes: ``u32 magic 0x73737470``, ``u16 payload length``, ``u16 type``
  (AUTH 1, ADDR 2, ACK 3);
* then attributes: ``u16 type``, ``u16 length``, data, padded with zeros to a multiple of 4
  (MPPE send key 1, MPPE receive key 2, gateway name 3, raw ``struct sockaddr`` 4).

The attribute length is the length of the data alone, without the 4-byte attribute header or
the padding; the payload length counts headers, data and padding. Measured against the real
sstpc 1.0.18: its ADDR reply is ``ACK`` with payload length 36 = ``(3, 9, "127.0.0.1" + 3
pad)`` + ``(4, 16, sockaddr_in)``. A last attribute whose padding is missing (the payload
ends right after its data) is accepted: that reading is unambiguous.

Nothing here logs or formats key bytes: :class:`ApiMessage`'s repr shows attribute lengths only.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import struct

from .errors import SstpError

__all__ = [
    "AF_INET",
    "AF_INET6",
    "HEADER_LENGTH",
    "MAGIC",
    "ApiMessage",
    "AttrType",
    "KeyMessageError",
    "MsgType",
    "addr_reply",
    "decode",
    "parse_header",
    "parse_sockaddr",
    "sockaddr",
    "socket_path",
]

MAGIC = 0x73737470
#: Native byte order and standard sizes, no alignment: the C structs are packed this way.
_HEADER = struct.Struct("=IHH")
_ATTR = struct.Struct("=HH")
HEADER_LENGTH = _HEADER.size
_MAX_PAYLOAD = 0xFFFF

#: Linux's address family numbers (the core may not import socket; these are ABI constants).
AF_INET = 2
AF_INET6 = 10
_SOCKADDR_IN = struct.Struct("=H2s4s8x")  # family, port (big-endian bytes), address, zero
_SOCKADDR_IN6 = struct.Struct("=H2s4s16sI")  # family, port, flowinfo, address, scope id


#: sstpc's directory for its sockets, hard-coded in peers files and NetworkManager-sstp.
SOCKET_DIR = "/var/run/sstpc"
#: sockaddr_un's sun_path holds 108 bytes, the terminating NUL included.
_MAX_SOCKET_PATH = 107


def socket_path(ipparam: str | None, directory: str = SOCKET_DIR) -> str:
    """sstpc's socket for ``--ipparam``: ``DIR/sstpc-NAME``, or ``DIR/sstpc-uds-sock``.

    Refuses a name that would leave the directory or not fit in a ``sockaddr_un``.
    """
    if not ipparam:
        return f"{directory}/sstpc-uds-sock"
    if "/" in ipparam or "\0" in ipparam or ipparam in (".", ".."):
        raise KeyMessageError(f"--ipparam {ipparam!r} cannot name a socket (it contains '/')")
    path = f"{directory}/sstpc-{ipparam}"
    if len(path.encode("utf-8", "surrogateescape")) > _MAX_SOCKET_PATH:
        raise KeyMessageError(f"the key socket {path} is longer than {_MAX_SOCKET_PATH} bytes")
    return path


class KeyMessageError(SstpError):
    """A malformed sstp-api message, or one this side cannot build."""


@enum.unique
class MsgType(enum.IntEnum):
    AUTH = 1
    ADDR = 2
    ACK = 3


@enum.unique
class AttrType(enum.IntEnum):
    MPPE_SEND = 1
    MPPE_RECV = 2
    GATEWAY = 3
    ADDR = 4


def _pad(length: int) -> int:
    return -length % 4


@dataclasses.dataclass(frozen=True, slots=True)
class ApiMessage:
    """One sstp-api message. Attribute types other than :class:`AttrType` are kept as ints."""

    type: MsgType
    attributes: tuple[tuple[int, bytes], ...] = ()

    def __repr__(self) -> str:
        # Attribute 1 and 2 are MPPE keys: never show their bytes.
        attrs = ", ".join(f"{t}:{len(d)}B" for t, d in self.attributes)
        return f"ApiMessage({self.type.name}, [{attrs}])"

    def get(self, attr: int) -> bytes | None:
        """The data of the first attribute of type ``attr``, or None."""
        for t, data in self.attributes:
            if t == attr:
                return data
        return None

    @property
    def keys(self) -> tuple[bytes, bytes]:
        """AUTH's (send, receive) MPPE keys as pppd gave them; a missing key is empty."""
        return self.get(AttrType.MPPE_SEND) or b"", self.get(AttrType.MPPE_RECV) or b""

    def encode(self) -> bytes:
        body = bytearray()
        for t, data in self.attributes:
            if not 0 <= t <= 0xFFFF or len(data) > _MAX_PAYLOAD:
                raise KeyMessageError(f"attribute {t} of {len(data)} bytes cannot be encoded")
            body += _ATTR.pack(t, len(data)) + data + bytes(_pad(len(data)))
        if len(body) > _MAX_PAYLOAD:
            raise KeyMessageError(f"a payload of {len(body)} bytes does not fit in 16 bits")
        return _HEADER.pack(MAGIC, len(body), self.type) + bytes(body)


def parse_header(header: bytes) -> tuple[MsgType, int]:
    """Check an 8-byte header; return the message type and the payload length that follows."""
    if len(header) != HEADER_LENGTH:
        raise KeyMessageError(f"an sstp-api header is {HEADER_LENGTH} bytes, not {len(header)}")
    magic, length, kind = _HEADER.unpack(header)
    if magic != MAGIC:
        raise KeyMessageError(f"bad sstp-api magic 0x{magic:08x}")
    try:
        msg_type = MsgType(kind)
    except ValueError:
        raise KeyMessageError(f"unknown sstp-api message type {kind}") from None
    return msg_type, length


def decode(message: bytes) -> ApiMessage:
    """Decode one whole message (header and exactly its payload)."""
    msg_type, length = parse_header(message[:HEADER_LENGTH])
    payload = message[HEADER_LENGTH:]
    if len(payload) != length:
        raise KeyMessageError(f"sstp-api payload is {len(payload)} bytes, header says {length}")
    attributes: list[tuple[int, bytes]] = []
    pos = 0
    while pos < length:
        if length - pos < _ATTR.size:
            raise KeyMessageError(f"{length - pos} stray bytes after the sstp-api attributes")
        t, n = _ATTR.unpack_from(payload, pos)
        start = pos + _ATTR.size
        if n > length - start:
            raise KeyMessageError(f"sstp-api attribute {t} of {n} bytes overruns the payload")
        attributes.append((t, bytes(payload[start : start + n])))
        # The padding, or the end of the payload when a sender left the last one out.
        pos = min(start + n + _pad(n), length)
    return ApiMessage(msg_type, tuple(attributes))


def sockaddr(host: str, port: int) -> bytes:
    """The raw Linux ``struct sockaddr_in`` (16 bytes) or ``sockaddr_in6`` (28) of an address.

    The family is in host order, port and address in network order, as ``connect()`` takes
    them. An IPv6 zone (``fe80::1%eth0``) must be numeric to become the scope id.
    """
    if not 0 <= port <= 0xFFFF:
        raise KeyMessageError(f"port {port} is out of range")
    addr, _, zone = host.partition("%")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise KeyMessageError(f"{host!r} is not an IP address") from None
    port_be = port.to_bytes(2, "big")
    if isinstance(ip, ipaddress.IPv4Address):
        return _SOCKADDR_IN.pack(AF_INET, port_be, ip.packed)
    scope = int(zone) if zone.isdigit() else 0
    if scope > 0xFFFFFFFF:
        raise KeyMessageError(f"IPv6 scope id {zone} is out of range")
    return _SOCKADDR_IN6.pack(AF_INET6, port_be, bytes(4), ip.packed, scope)


def parse_sockaddr(raw: bytes) -> tuple[str, int]:
    """The (address, port) of a raw ``sockaddr_in``/``sockaddr_in6``, as :func:`sockaddr`
    builds them (the inverse, for tests and for plugins' requests)."""
    if len(raw) < 2:
        raise KeyMessageError(f"a sockaddr of {len(raw)} bytes has no family")
    (family,) = struct.unpack_from("=H", raw)
    if family == AF_INET and len(raw) == _SOCKADDR_IN.size:
        _, port, addr = _SOCKADDR_IN.unpack(raw)
        return str(ipaddress.IPv4Address(addr)), int.from_bytes(port, "big")
    if family == AF_INET6 and len(raw) == _SOCKADDR_IN6.size:
        _, port, _, addr6, scope = _SOCKADDR_IN6.unpack(raw)
        text = str(ipaddress.IPv6Address(addr6))
        return (f"{text}%{scope}" if scope else text), int.from_bytes(port, "big")
    raise KeyMessageError(f"unsupported sockaddr: family {family}, {len(raw)} bytes")


def addr_reply(gateway: str, host: str, port: int) -> ApiMessage:
    """The ACK that answers ADDR: the gateway as the user named it, and its raw sockaddr."""
    return ApiMessage(
        MsgType.ACK,
        (
            (AttrType.GATEWAY, gateway.encode("utf-8", "replace")),
            (AttrType.ADDR, sockaddr(host, port)),
        ),
    )
