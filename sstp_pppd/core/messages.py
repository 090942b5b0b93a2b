"""SSTP packets ([MS-SSTP] 2.2): codec and incremental stream decoder.

The attributes are in :mod:`.attributes`, and every name of it is re-exported here:
this module is where the rest of the code takes the wire format from.

Decoding policy (what is strict and what is lenient, and why):

* Strict, because nothing can be framed after it: a version other than ``0x10`` and a
  packet length under 4 raise :class:`FramingError` ([MS-SSTP] 3.1.5.1: drop the
  connection). :func:`decode` also raises it when the length disagrees with the data.
* Strict, because the values feed crypto binding or the state machine: a control
  packet under 8 bytes, an attribute header cut short, an attribute length under 4 or
  past the end of the packet, an unknown message type, and the fixed-size attributes
  with any other size (ENCAPSULATED_PROTOCOL_ID 2, CRYPTO_BINDING_REQ 36,
  CRYPTO_BINDING 100 value bytes) raise :class:`ProtocolError` with the status a
  CALL_ABORT should carry.
* Lenient, because real servers send it: reserved bits and bytes are ignored (sorz
  and SoftEther mask the length to 12 bits); NumAttr is ignored and the attributes are
  read up to the packet length, since the length is what frames them and sloppy peers
  get the count wrong; attribute-less CALL_ABORT/CALL_DISCONNECT (SoftEther) decode
  with ``attributes=()``; sorz's 4-byte STATUS_INFO value (just the status) decodes as
  ``StatusInfo(attrib_id=0, status=...)``; attribute IDs with no meaning here, such as
  the ID 0 in sorz's CALL_DISCONNECT, are kept as :class:`UnknownAttribute`; a
  STATUS_INFO AttribValue longer than the 64 bytes of the spec is kept; an empty data
  packet is a ``DataPacket(payload=b"")``.
* Not checked here, because they are rules of the state machine: which attributes a
  message may carry, duplicates, hash bitmask values, the protocol ID value.

Constructors validate their fields and raise :class:`ProtocolError` (never
``ValueError``) for sizes and ranges the wire cannot carry, so ``encode()`` of an
attribute cannot fail; ``encode()`` of a packet raises it only when the whole packet
is longer than :data:`MAX_PACKET_LENGTH`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import TypeAlias

from .attributes import (
    ATTRIBUTE_HEADER_LENGTH,
    HASH_FIELD_LENGTH,
    MAX_ATTRIBUTE_VALUE,
    NONCE_LENGTH,
    PROTOCOL_ID_PPP,
    Attribute,
    AttributeId,
    CryptoBinding,
    CryptoBindingRequest,
    EncapsulatedProtocolId,
    HashProtocol,
    StatusCode,
    StatusInfo,
    UnknownAttribute,
    parse_attribute,
)
from .errors import FramingError, ProtocolError

__all__ = [
    "ATTRIBUTE_HEADER_LENGTH",
    "CONTROL_HEADER_LENGTH",
    "HASH_FIELD_LENGTH",
    "HEADER_LENGTH",
    "MAX_ATTRIBUTE_VALUE",
    "MAX_DATA_PAYLOAD",
    "MAX_PACKET_LENGTH",
    "NONCE_LENGTH",
    "PROTOCOL_ID_PPP",
    "SSTP_VERSION",
    "Attribute",
    "AttributeId",
    "ControlPacket",
    "CryptoBinding",
    "CryptoBindingRequest",
    "DataPacket",
    "EncapsulatedProtocolId",
    "HashProtocol",
    "MessageType",
    "Packet",
    "StatusCode",
    "StatusInfo",
    "StreamDecoder",
    "UnknownAttribute",
    "call_abort",
    "call_connect_request",
    "call_disconnect",
    "call_disconnect_ack",
    "decode",
    "echo_request",
    "echo_response",
    "encode_data",
    "status_name",
]

SSTP_VERSION = 0x10
MAX_PACKET_LENGTH = 4095  # the length field has 12 bits
HEADER_LENGTH = 4
CONTROL_HEADER_LENGTH = 8
MAX_DATA_PAYLOAD = MAX_PACKET_LENGTH - HEADER_LENGTH  # 4091: the largest PPP frame

_CONTROL_BIT = 0x01

_HEADER = struct.Struct("!BBH")
_CONTROL_HEADER = struct.Struct("!BBHHH")


@enum.unique
class MessageType(enum.IntEnum):
    """Control message types ([MS-SSTP] 2.2.2)."""

    CALL_CONNECT_REQUEST = 1
    CALL_CONNECT_ACK = 2
    CALL_CONNECT_NAK = 3
    CALL_CONNECTED = 4
    CALL_ABORT = 5
    CALL_DISCONNECT = 6
    CALL_DISCONNECT_ACK = 7
    ECHO_REQUEST = 8
    ECHO_RESPONSE = 9


def _bad_frame(message: str) -> ProtocolError:
    return ProtocolError(message, StatusCode.INVALID_FRAME_RECEIVED)


def _framing_error(message: str) -> FramingError:
    return FramingError(message, StatusCode.INVALID_FRAME_RECEIVED)


@dataclass(frozen=True, slots=True, kw_only=True)
class DataPacket:
    """A data packet: ``payload`` is one raw PPP frame (no flags, FCS or escaping)."""

    payload: bytes

    def encode(self) -> bytes:
        """The packet on the wire; :class:`ProtocolError` if over 4091 payload bytes."""
        return encode_data(self.payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPacket:
    """A control packet: ``message_type`` and its ``attributes`` in wire order."""

    message_type: MessageType
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        message_type = _MESSAGE_TYPES.get(self.message_type)
        if message_type is None:
            message = f"unknown SSTP message type {self.message_type!r}"
            raise ProtocolError(message, StatusCode.UNACCEPTED_FRAME_RECEIVED)
        # Normalised so that equal packets compare and hash equal whatever was passed.
        object.__setattr__(self, "message_type", message_type)
        object.__setattr__(self, "attributes", tuple(self.attributes))

    def encode(self) -> bytes:
        """The packet on the wire; :class:`ProtocolError` if over 4095 bytes."""
        body = b"".join([attribute.encode() for attribute in self.attributes])
        length = CONTROL_HEADER_LENGTH + len(body)
        if length > MAX_PACKET_LENGTH:
            raise _bad_frame(f"control packet of {length} bytes exceeds {MAX_PACKET_LENGTH}")
        header = _CONTROL_HEADER.pack(
            SSTP_VERSION, _CONTROL_BIT, length, self.message_type, len(self.attributes)
        )
        return header + body


Packet: TypeAlias = DataPacket | ControlPacket

_MESSAGE_TYPES: dict[int, MessageType] = {member.value: member for member in MessageType}


def encode_data(payload: bytes) -> bytes:
    """Frame one PPP frame as a data packet (the hot path: no dataclass involved).

    Raises :class:`ProtocolError` (INVALID_FRAME_RECEIVED) if ``payload`` is longer
    than :data:`MAX_DATA_PAYLOAD`; the caller decides whether to drop the frame.
    """
    length = HEADER_LENGTH + len(payload)
    if length > MAX_PACKET_LENGTH:
        raise _bad_frame(f"PPP frame of {len(payload)} bytes exceeds {MAX_DATA_PAYLOAD}")
    return _HEADER.pack(SSTP_VERSION, 0, length) + payload


def _decode_control(packet: bytes) -> ControlPacket:
    """Decode a control packet whose header was already checked and whose length fits."""
    end = len(packet)
    if end < CONTROL_HEADER_LENGTH:
        raise _bad_frame(f"control packet of {end} bytes is shorter than 8")
    raw_type = (packet[4] << 8) | packet[5]
    message_type = _MESSAGE_TYPES.get(raw_type)
    if message_type is None:
        message = f"unknown SSTP message type {raw_type:#06x}"
        raise ProtocolError(message, StatusCode.UNACCEPTED_FRAME_RECEIVED)
    attributes: list[Attribute] = []
    pos = CONTROL_HEADER_LENGTH
    while pos < end:
        if end - pos < ATTRIBUTE_HEADER_LENGTH:
            raise _bad_frame(f"{end - pos} stray bytes after the attributes")
        attribute_id = packet[pos + 1]
        length = ((packet[pos + 2] & 0x0F) << 8) | packet[pos + 3]
        if length < ATTRIBUTE_HEADER_LENGTH or pos + length > end:
            left = end - pos
            message = f"attribute {attribute_id} length {length}, {left} bytes left"
            raise ProtocolError(message, StatusCode.INVALID_ATTRIB_VALUE_LENGTH)
        value = packet[pos + ATTRIBUTE_HEADER_LENGTH : pos + length]
        attributes.append(parse_attribute(attribute_id, value))
        pos += length
    return ControlPacket(message_type=message_type, attributes=tuple(attributes))


def decode(data: bytes) -> Packet:
    """Decode exactly one whole packet.

    :class:`FramingError` if the version is not 0x10 or the length field is under 4
    or differs from ``len(data)``; :class:`ProtocolError` for a malformed control
    packet (see the module docstring).
    """
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise _framing_error(f"{len(data)} bytes are too short for an SSTP header")
    if data[0] != SSTP_VERSION:
        raise _framing_error(f"unsupported SSTP version {data[0]:#04x}")
    length = ((data[2] & 0x0F) << 8) | data[3]
    if length != len(data):
        raise _framing_error(f"length field {length} but {len(data)} bytes given")
    if data[1] & _CONTROL_BIT:
        return _decode_control(data)
    return DataPacket(payload=data[HEADER_LENGTH:])


class StreamDecoder:
    """Incremental decoder for the server-to-client byte stream, split anywhere.

    ``feed`` returns the whole packets in order and keeps the remainder (at most one
    packet, so under 4095 bytes). A bad packet is reported in order: if good packets
    came before it in the buffer, ``feed`` returns those, and the bad packet raises
    on the next call (``feed(b"")`` checks at once; it returns ``[]`` when nothing is
    pending). After a :class:`ProtocolError` the bad packet is consumed and decoding
    can go on; a :class:`FramingError` is final and every later call raises it again.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as packets."""
        return len(self._buffer)

    def take(self) -> bytes:
        """Return and forget the buffered bytes (a batch decoder goes on from them)."""
        buf, self._buffer = self._buffer, b""
        return buf

    def feed(self, data: bytes) -> list[Packet]:
        """Add ``data`` and return every packet now complete (see the class docstring)."""
        buf = self._buffer + data if self._buffer else bytes(data)
        end = len(buf)
        packets: list[Packet] = []
        append = packets.append
        pos = 0
        try:
            while pos < end:
                # Checked before the length is complete so garbage fails on its first byte.
                if buf[pos] != SSTP_VERSION:
                    if packets:
                        break
                    raise _framing_error(f"unsupported SSTP version {buf[pos]:#04x}")
                if end - pos < HEADER_LENGTH:
                    break
                length = ((buf[pos + 2] & 0x0F) << 8) | buf[pos + 3]
                if length < HEADER_LENGTH:
                    if packets:
                        break
                    raise _framing_error(f"SSTP length field {length} is under 4")
                next_pos = pos + length
                if next_pos > end:
                    break
                if buf[pos + 1] & _CONTROL_BIT:
                    try:
                        append(_decode_control(buf[pos:next_pos]))
                    except ProtocolError:
                        if packets:
                            break
                        pos = next_pos  # well framed, so the stream can go on after it
                        raise
                else:
                    append(DataPacket(payload=buf[pos + HEADER_LENGTH : next_pos]))
                pos = next_pos
        finally:
            self._buffer = buf[pos:] if pos else buf
        return packets


def call_connect_request() -> ControlPacket:
    """CALL_CONNECT_REQUEST for PPP (14 bytes on the wire)."""
    protocol_id = EncapsulatedProtocolId(protocol_id=PROTOCOL_ID_PPP)
    return ControlPacket(message_type=MessageType.CALL_CONNECT_REQUEST, attributes=(protocol_id,))


def status_name(status: int) -> str:
    """``INVALID_FRAME_RECEIVED`` for a known [MS-SSTP] 2.2.8 status, else ``status 77``."""
    try:
        return StatusCode(status).name
    except ValueError:
        return f"status {status}"


def call_abort(status: int = StatusCode.NO_ERROR, attrib_id: int = 0) -> ControlPacket:
    """CALL_ABORT with one STATUS_INFO (20 bytes on the wire)."""
    status_info = StatusInfo(attrib_id=attrib_id, status=status)
    return ControlPacket(message_type=MessageType.CALL_ABORT, attributes=(status_info,))


def call_disconnect(status: int = StatusCode.NO_ERROR) -> ControlPacket:
    """CALL_DISCONNECT with one STATUS_INFO (20 bytes on the wire)."""
    status_info = StatusInfo(attrib_id=0, status=status)
    return ControlPacket(message_type=MessageType.CALL_DISCONNECT, attributes=(status_info,))


def call_disconnect_ack() -> ControlPacket:
    """CALL_DISCONNECT_ACK (8 bytes, no attributes)."""
    return ControlPacket(message_type=MessageType.CALL_DISCONNECT_ACK)


def echo_request() -> ControlPacket:
    """ECHO_REQUEST (8 bytes, no attributes)."""
    return ControlPacket(message_type=MessageType.ECHO_REQUEST)


def echo_response() -> ControlPacket:
    """ECHO_RESPONSE (8 bytes, no attributes)."""
    return ControlPacket(message_type=MessageType.ECHO_RESPONSE)
