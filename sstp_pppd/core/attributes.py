"""SSTP attributes ([MS-SSTP] 2.2.3-2.2.8): IDs, status codes, the attribute classes.

The attribute half of :mod:`.messages`, which frames attributes into packets and
re-exports every name here; its docstring gives the decoding policy. What concerns
attributes: the fixed-size ones with any other size (ENCAPSULATED_PROTOCOL_ID 2,
CRYPTO_BINDING_REQ 36, CRYPTO_BINDING 100 value bytes) raise :class:`ProtocolError`
(INVALID_ATTRIB_VALUE_LENGTH); sorz's 4-byte STATUS_INFO value decodes as
``StatusInfo(attrib_id=0, status=...)``; an ID with no class here is kept as
:class:`UnknownAttribute`. Constructors validate their fields, so ``encode()`` of an
attribute cannot fail.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from .errors import ProtocolError

__all__ = [
    "ATTRIBUTE_HEADER_LENGTH",
    "HASH_FIELD_LENGTH",
    "MAX_ATTRIBUTE_VALUE",
    "NONCE_LENGTH",
    "PROTOCOL_ID_PPP",
    "Attribute",
    "AttributeId",
    "CryptoBinding",
    "CryptoBindingRequest",
    "EncapsulatedProtocolId",
    "HashProtocol",
    "StatusCode",
    "StatusInfo",
    "UnknownAttribute",
    "parse_attribute",
]

ATTRIBUTE_HEADER_LENGTH = 4
PROTOCOL_ID_PPP = 1
NONCE_LENGTH = 32
HASH_FIELD_LENGTH = 32  # CertHash and Compound MAC; SHA-1 values are zero-padded
#: The largest AttribValue: a control packet of at most 4095 bytes, less its 8-byte
#: header and the attribute's own 4-byte one.
MAX_ATTRIBUTE_VALUE = 4095 - 8 - ATTRIBUTE_HEADER_LENGTH

_ATTRIBUTE_HEADER = struct.Struct("!BBH")
_STATUS_INFO = struct.Struct("!BBH3xBI")
_BINDING_HEADER = struct.Struct("!BBH3xB")
_ENCAPSULATED = struct.Struct("!BBHH")


@enum.unique
class AttributeId(enum.IntEnum):
    """Attribute IDs ([MS-SSTP] 2.2.3); NO_ERROR appears only as a STATUS_INFO AttribID."""

    NO_ERROR = 0
    ENCAPSULATED_PROTOCOL_ID = 1
    STATUS_INFO = 2
    CRYPTO_BINDING = 3
    CRYPTO_BINDING_REQ = 4


@enum.unique
class StatusCode(enum.IntEnum):
    """STATUS_INFO Status values ([MS-SSTP] 2.2.8)."""

    NO_ERROR = 0x00
    DUPLICATE_ATTRIBUTE = 0x01
    UNRECOGNIZED_ATTRIBUTE = 0x02
    INVALID_ATTRIB_VALUE_LENGTH = 0x03
    VALUE_NOT_SUPPORTED = 0x04
    UNACCEPTED_FRAME_RECEIVED = 0x05
    RETRY_COUNT_EXCEEDED = 0x06
    INVALID_FRAME_RECEIVED = 0x07
    NEGOTIATION_TIMEOUT = 0x08
    ATTRIB_NOT_SUPPORTED_IN_MSG = 0x09
    REQUIRED_ATTRIBUTE_MISSING = 0x0A
    STATUS_INFO_NOT_SUPPORTED_IN_MSG = 0x0B


@enum.unique
class HashProtocol(enum.IntFlag):
    """Certificate hash protocols: the CRYPTO_BINDING_REQ bitmask ([MS-SSTP] 2.2.6)."""

    CERT_HASH_PROTOCOL_SHA1 = 0x01
    CERT_HASH_PROTOCOL_SHA256 = 0x02


def _bad_length(message: str) -> ProtocolError:
    return ProtocolError(message, StatusCode.INVALID_ATTRIB_VALUE_LENGTH)


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        message = f"{name} {value!r} does not fit in {bits} bits"
        raise ProtocolError(message, StatusCode.VALUE_NOT_SUPPORTED)


def _check_size(name: str, value: bytes, size: int, maximum: bool = False) -> None:
    if len(value) > size if maximum else len(value) != size:
        raise _bad_length(f"{name} of {len(value)} bytes, {'at most ' if maximum else ''}{size}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EncapsulatedProtocolId:
    """ENCAPSULATED_PROTOCOL_ID ([MS-SSTP] 2.2.4): ``protocol_id`` u16, 1 means PPP."""

    protocol_id: int = PROTOCOL_ID_PPP

    def __post_init__(self) -> None:
        _check_uint("protocol_id", self.protocol_id, 16)

    def encode(self) -> bytes:
        """The attribute on the wire (6 bytes)."""
        return _ENCAPSULATED.pack(0, AttributeId.ENCAPSULATED_PROTOCOL_ID, 6, self.protocol_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusInfo:
    """STATUS_INFO ([MS-SSTP] 2.2.5): ``status`` (a :class:`StatusCode`, u32) about the
    attribute ``attrib_id`` (0 for none), whose offending value is ``attrib_value``."""

    attrib_id: int
    status: int
    attrib_value: bytes = b""

    def __post_init__(self) -> None:
        _check_uint("attrib_id", self.attrib_id, 8)
        _check_uint("status", self.status, 32)
        _check_size("attrib_value", self.attrib_value, MAX_ATTRIBUTE_VALUE - 8, maximum=True)

    def encode(self) -> bytes:
        """The attribute on the wire (12 bytes plus ``attrib_value``)."""
        length = 12 + len(self.attrib_value)
        header = _STATUS_INFO.pack(0, AttributeId.STATUS_INFO, length, self.attrib_id, self.status)
        return header + self.attrib_value


@dataclass(frozen=True, slots=True, kw_only=True)
class CryptoBinding:
    """CRYPTO_BINDING ([MS-SSTP] 2.2.7) of CALL_CONNECTED: ``hash_protocol`` (one
    :class:`HashProtocol` bit), the server's 32-byte ``nonce``, and the 32-byte
    ``cert_hash`` and ``compound_mac`` (SHA-1 values zero-padded)."""

    hash_protocol: int
    nonce: bytes
    cert_hash: bytes
    compound_mac: bytes

    def __post_init__(self) -> None:
        _check_uint("hash_protocol", self.hash_protocol, 8)
        _check_size("nonce", self.nonce, NONCE_LENGTH)
        _check_size("cert_hash", self.cert_hash, HASH_FIELD_LENGTH)
        _check_size("compound_mac", self.compound_mac, HASH_FIELD_LENGTH)

    def encode(self) -> bytes:
        """The attribute on the wire (104 bytes)."""
        header = _BINDING_HEADER.pack(0, AttributeId.CRYPTO_BINDING, 104, self.hash_protocol)
        return header + self.nonce + self.cert_hash + self.compound_mac


@dataclass(frozen=True, slots=True, kw_only=True)
class CryptoBindingRequest:
    """CRYPTO_BINDING_REQ ([MS-SSTP] 2.2.6) of CALL_CONNECT_ACK: ``hash_bitmask`` (the
    :class:`HashProtocol` bits offered; sorz may send 0) and the 32-byte ``nonce``."""

    hash_bitmask: int
    nonce: bytes

    def __post_init__(self) -> None:
        _check_uint("hash_bitmask", self.hash_bitmask, 8)
        _check_size("nonce", self.nonce, NONCE_LENGTH)

    def encode(self) -> bytes:
        """The attribute on the wire (40 bytes)."""
        header = _BINDING_HEADER.pack(0, AttributeId.CRYPTO_BINDING_REQ, 40, self.hash_bitmask)
        return header + self.nonce


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownAttribute:
    """An attribute kept for the state machine to judge: ``attribute_id`` (any u8 but
    1-4, which have their classes) and ``value`` (the bytes after the header)."""

    attribute_id: int
    value: bytes

    def __post_init__(self) -> None:
        _check_uint("attribute_id", self.attribute_id, 8)
        if self.attribute_id in _ATTRIBUTE_PARSERS:
            # decode() would turn it into the typed class, so it could not round-trip.
            message = f"attribute ID {self.attribute_id} has its own class"
            raise ProtocolError(message, StatusCode.VALUE_NOT_SUPPORTED)
        _check_size("value", self.value, MAX_ATTRIBUTE_VALUE, maximum=True)

    def encode(self) -> bytes:
        """The attribute on the wire (4 bytes plus ``value``)."""
        header = _ATTRIBUTE_HEADER.pack(0, self.attribute_id, 4 + len(self.value))
        return header + self.value


Attribute: TypeAlias = (
    EncapsulatedProtocolId | StatusInfo | CryptoBinding | CryptoBindingRequest | UnknownAttribute
)


def _parse_encapsulated(value: bytes) -> Attribute:
    _check_size("ENCAPSULATED_PROTOCOL_ID value", value, 2)
    return EncapsulatedProtocolId(protocol_id=int.from_bytes(value, "big"))


def _parse_status_info(value: bytes) -> Attribute:
    if len(value) >= 8:
        status = int.from_bytes(value[4:8], "big")
        return StatusInfo(attrib_id=value[3], status=status, attrib_value=value[8:])
    if len(value) == 4:
        # sstp-server (sorz) writes only the u32 status, without reserved bytes/AttribID.
        return StatusInfo(attrib_id=0, status=int.from_bytes(value, "big"))
    raise _bad_length(f"STATUS_INFO value of {len(value)} bytes, 4 or at least 8")


def _parse_crypto_binding(value: bytes) -> Attribute:
    _check_size("CRYPTO_BINDING value", value, 100)
    return CryptoBinding(
        hash_protocol=value[3], nonce=value[4:36], cert_hash=value[36:68], compound_mac=value[68:]
    )


def _parse_crypto_binding_req(value: bytes) -> Attribute:
    _check_size("CRYPTO_BINDING_REQ value", value, 36)
    return CryptoBindingRequest(hash_bitmask=value[3], nonce=value[4:])


_ATTRIBUTE_PARSERS: dict[int, Callable[[bytes], Attribute]] = {
    AttributeId.ENCAPSULATED_PROTOCOL_ID: _parse_encapsulated,
    AttributeId.STATUS_INFO: _parse_status_info,
    AttributeId.CRYPTO_BINDING: _parse_crypto_binding,
    AttributeId.CRYPTO_BINDING_REQ: _parse_crypto_binding_req,
}


def parse_attribute(attribute_id: int, value: bytes) -> Attribute:
    """The attribute ``attribute_id`` of AttribValue ``value`` (its header checked)."""
    parser = _ATTRIBUTE_PARSERS.get(attribute_id)
    if parser is None:
        return UnknownAttribute(attribute_id=attribute_id, value=value)
    return parser(value)
