"""RFC 1662 asynchronous HDLC-like framing, as pppd reads and writes it on a pty.

pppd's side of the pty runs the kernel's ``ppp_async`` line discipline, which
frames every PPP packet as ``7E  escaped(frame + FCS-16)  7E``.  SSTP data
packets carry the bare frame (no flags, no FCS, no escaping), so the relay
decodes what pppd writes with :class:`Decoder` and encodes what the server sends
with :func:`encode` / :func:`encode_frames`.  Frames keep their ``FF 03``
address and control fields when pppd sent them; this module never adds or
strips them.

Everything runs at C speed: there is no per-byte Python loop.  The FCS goes
through :func:`binascii.crc_hqx` on bit-reversed bytes, escaping through a
charmap codec that widens each byte to a UTF-16 code unit, and unescaping
through big-integer arithmetic that acts as a byte-wise SIMD unit.

Which ACCM to encode with: ``ppp_async`` silently *drops* unescaped control
characters that are set in its receive ACCM, which is all ones until LCP has
negotiated another one.  :data:`ACCM_ALL` is therefore the only safe choice
unless the caller knows the ACCM pppd asked for and the peer acknowledged.
"""

from __future__ import annotations

import binascii
import codecs
import dataclasses
import functools
from collections.abc import Iterable

__all__ = [
    "ACCELERATED",
    "ACCM_ALL",
    "DEFAULT_MAX_LENGTH",
    "ESCAPE",
    "FLAG",
    "GOOD_FCS",
    "INITIAL_FCS",
    "Decoder",
    "PacketDecoder",
    "PyPacketDecoder",
    "encode",
    "encode_frames",
    "encode_packets",
    "fcs16",
    "py_encode_packets",
    "split_packets",
]

#: RFC 1662 Flag Sequence: starts and ends every frame.
FLAG = 0x7E
#: RFC 1662 Control Escape: the next octet is the original one XOR 0x20.
ESCAPE = 0x7D
#: RFC 1662 PPPINITFCS16.
INITIAL_FCS = 0xFFFF
#: RFC 1662 PPPGOODFCS16: the FCS over a frame followed by its own FCS.
GOOD_FCS = 0xF0B8
#: The default Async-Control-Character-Map: escape every control character.
ACCM_ALL = 0xFFFFFFFF
#: Escaped bytes a frame may span (flag to flag) before the Decoder drops it.
DEFAULT_MAX_LENGTH = 65536
#: The largest PPP frame one SSTP data packet carries (a 12-bit length, 4-byte header).
MAX_SSTP_PAYLOAD = 4091
_SSTP_VERSION = 0x10

_FLAG_BYTE = b"\x7e"
_ESCAPE_BYTE = b"\x7d"
# Each byte with its bit order reversed: crc_hqx is the MSB-first CCITT CRC,
# RFC 1662's FCS is the same polynomial LSB-first.
_REV = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
# 7D -> 80, anything else -> 00: the escape mask of _unescape.
_ESCAPE_MARK = bytes(0x80 if i == ESCAPE else 0 for i in range(256))


def _rev16(value: int) -> int:
    return (_REV[value & 0xFF] << 8) | _REV[value >> 8]


# The good-FCS residue as crc_hqx reports it, so the Decoder compares raw results.
_GOOD_HQX = _rev16(GOOD_FCS)


def fcs16(data: bytes, fcs: int = INITIAL_FCS) -> int:
    """Return the RFC 1662 FCS-16 of ``data``, continuing from ``fcs``.

    This is the register value (no final complement): a frame is sent with
    ``fcs16(frame) ^ 0xFFFF`` appended least significant byte first, and
    ``fcs16(frame + that) == GOOD_FCS``.  ``fcs`` is taken modulo 2**16.
    """
    fcs &= 0xFFFF
    return _rev16(binascii.crc_hqx(data.translate(_REV), _rev16(fcs)))


def _reversed_with_fcs(frame: bytes) -> bytes:
    """``frame`` and its complemented FCS (LSB first), every byte bit-reversed."""
    # On bit-reversed bytes crc_hqx yields the RFC 1662 register bit-reversed
    # as a whole, so the reversed LSB-first FCS bytes are its big-endian bytes.
    rev = frame.translate(_REV)
    return rev + (binascii.crc_hqx(rev, INITIAL_FCS) ^ 0xFFFF).to_bytes(2, "big")


def _with_fcs(frame: bytes) -> bytes:
    """``frame`` followed by its complemented FCS, least significant byte first."""
    crc = binascii.crc_hqx(frame.translate(_REV), INITIAL_FCS)
    return frame + (crc ^ 0xFFFF).to_bytes(2, "big").translate(_REV)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Escaper:
    """How to escape for one ACCM (built once per ACCM by :func:`_escaper`).

    With few bytes to escape, ``pairs`` lists ``bytes.replace`` arguments, 7D
    first so that no inserted escape is escaped again.  Otherwise ``table``
    is a charmap that takes each *bit-reversed* byte ``b`` to the code unit
    ``F<<8 | b`` (``F``: the lowest escaped control character) or, if ``b``
    needs escaping, to ``7D<<8 | b^0x20``: UTF-16-BE turns that into ``F b``
    or ``7D b^20`` pairs, and deleting every ``F``, which cannot occur
    anywhere else, leaves the escaped stream.  ``flag`` is ``F<<8 | 7E``.
    """

    pairs: tuple[tuple[bytes, bytes], ...]
    table: str
    filler: bytes
    flag: str


@functools.lru_cache(maxsize=64)
def _escaper(accm: int) -> _Escaper:
    controls = [c for c in range(32) if accm >> c & 1]
    if len(controls) <= 2:
        pairs = tuple((bytes((b,)), bytes((ESCAPE, b ^ 0x20))) for b in (ESCAPE, FLAG, *controls))
        return _Escaper(pairs=pairs, table="", filler=b"", flag="")
    filler = controls[0]
    escaped = {ESCAPE, FLAG, *controls}
    table = "".join(
        chr(ESCAPE << 8 | b ^ 0x20) if b in escaped else chr(filler << 8 | b)
        for b in _REV  # the codec reads bit-reversed bytes
    )
    return _Escaper(pairs=(), table=table, filler=bytes((filler,)), flag=chr(filler << 8 | FLAG))


def _replace_all(raw: bytes, pairs: tuple[tuple[bytes, bytes], ...]) -> bytes:
    for old, new in pairs:
        raw = raw.replace(old, new)
    return raw


def encode(frame: bytes, accm: int = ACCM_ALL) -> bytes:
    """Frame one PPP packet: ``7E``, escaped ``frame`` + FCS, ``7E``.

    0x7E and 0x7D are always escaped, and so is every byte below 0x20 whose
    bit is set in ``accm`` (RFC 1662 7.1; bit 0 is byte 0x00).
    """
    esc = _escaper(accm & ACCM_ALL)
    if esc.pairs:
        body = _replace_all(_with_fcs(frame), esc.pairs)
    else:
        text = codecs.charmap_decode(_reversed_with_fcs(frame), None, esc.table)[0]
        body = text.encode("utf-16-be").translate(None, esc.filler)
    return b"".join((_FLAG_BYTE, body, _FLAG_BYTE))


def encode_frames(frames: Iterable[bytes], accm: int = ACCM_ALL) -> bytes:
    """Frame several PPP packets for one write: ``7E f1 7E f2 ... 7E``.

    Consecutive frames share one flag, as RFC 1662 section 3 allows and pppd
    accepts; the result starts and ends with a flag.  No frames gives ``b""``.
    The output decodes to the same frames as ``b"".join(map(encode, frames))``.
    """
    esc = _escaper(accm & ACCM_ALL)
    if esc.pairs:
        parts = [b""]
        parts.extend(_replace_all(_with_fcs(frame), esc.pairs) for frame in frames)
        if len(parts) == 1:
            return b""
        parts.append(b"")
        return _FLAG_BYTE.join(parts)
    # One charmap decode per frame, then a single encode and delete for all.
    table = esc.table
    decode = codecs.charmap_decode
    texts = [""]
    texts.extend(decode(_reversed_with_fcs(frame), None, table)[0] for frame in frames)
    if len(texts) == 1:
        return b""
    texts.append("")
    return esc.flag.join(texts).encode("utf-16-be").translate(None, esc.filler)


def _unescape(piece: bytes) -> bytes | None:
    """Undo the escaping of one flag-free piece.

    Returns None for a piece that ends in an escape: the abort sequence 7D 7E.
    """
    # Big integers act as byte-wise SIMD: `mark` has 80 wherever the piece
    # has 7D and `>> 10` moves each 80 to a 20 in the next byte, the XOR for
    # the escaped octet.  Deleting the 80s aligns those XORs with the piece
    # minus its escapes.
    mark = int.from_bytes(piece.translate(_ESCAPE_MARK), "big")
    xor = (mark | (mark >> 10)).to_bytes(len(piece), "big").translate(None, b"\x80")
    kept = piece.translate(None, _ESCAPE_BYTE)
    if len(xor) != len(kept):
        # 7D 7D made an A0 that was not deleted: the second 7D is escaped
        # data (5D).  Pair runs left to right as RFC 1662 4.2 reads them.
        return _unescape(piece.replace(b"}}", b"]"))
    if mark & 0xFF:
        return None
    value = int.from_bytes(kept, "big") ^ int.from_bytes(xor, "big")
    return value.to_bytes(len(kept), "big")


class Decoder:
    """Incremental RFC 1662 deframer for the byte stream pppd writes.

    :meth:`feed` takes bytes split anywhere (even inside an escape pair) and
    returns the whole frames completed by them, FCS checked and removed.
    Frames that cannot be delivered are dropped and counted:

    * ``bad_fcs``: the FCS did not check;
    * ``too_short``: fewer than 4 octets (FCS included) after unescaping;
    * ``aborted``: ended by the abort sequence 7D 7E;
    * ``oversized``: more than ``max_length`` escaped bytes between two flags;
      the bytes are not buffered, so memory stays bounded.

    Empty frames (consecutive flags) are skipped silently.  As RFC 1662 4.2
    says, 7D escapes the octet after it whatever it is, so 7D 7D is 5D.
    Unescaped control characters are kept: nothing between pppd and us can
    insert them.  ``feed`` never raises, whatever the bytes.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        """Create a decoder that drops frames longer than ``max_length`` bytes."""
        self.max_length = max_length
        self.bad_fcs = 0
        self.too_short = 0
        self.oversized = 0
        self.aborted = 0
        # Chunks of the unfinished frame, joined once its closing flag comes,
        # so that many small reads cost linear rather than quadratic time.
        self._partial: list[bytes] = []
        self._partial_length = 0
        # True after an oversized frame was dropped, until its closing flag.
        self._discarding = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume ``data`` and return the frames it completes, in order."""
        if not isinstance(data, bytes):
            data = bytes(data)
        if _FLAG_BYTE not in data:
            self._buffer(data)
            return []
        pieces = data.split(_FLAG_BYTE)
        if self._discarding:
            self._discarding = False
            pieces[0] = b""
        elif self._partial:
            self._partial.append(pieces[0])
            pieces[0] = b"".join(self._partial)
        self._partial = []
        self._partial_length = 0
        tail = pieces.pop()
        frames: list[bytes] = []
        max_length = self.max_length
        for piece in pieces:
            if not piece:
                continue
            if len(piece) > max_length:
                self.oversized += 1
                continue
            frame = _unescape(piece) if _ESCAPE_BYTE in piece else piece
            if frame is None:
                self.aborted += 1
            elif len(frame) < 4:
                self.too_short += 1
            elif binascii.crc_hqx(frame.translate(_REV), INITIAL_FCS) != _GOOD_HQX:
                self.bad_fcs += 1
            else:
                frames.append(frame[:-2])
        self._buffer(tail)
        return frames

    def _buffer(self, chunk: bytes) -> None:
        """Keep ``chunk`` as part of the unfinished frame, within max_length."""
        if not chunk or self._discarding:
            return
        self._partial_length += len(chunk)
        if self._partial_length > self.max_length:
            self.oversized += 1
            self._partial = []
            self._partial_length = 0
            self._discarding = True
        else:
            self._partial.append(chunk)


# ----- batches: HDLC stream <-> consecutive SSTP data packets -----------------------------


class PyPacketDecoder:
    """pppd's HDLC byte stream in, SSTP data packets out: the reference implementation.

    :meth:`feed` returns one ``bytes`` holding, back to back, an SSTP data packet
    (``10 00`` and a 12-bit length, then the frame) for every frame completed, exactly
    what :class:`Decoder` would return, and keeps the same counters.  Frames longer
    than ``max_payload`` cannot travel in one data packet: they are dropped and
    counted in ``too_big``.  :class:`PacketDecoder` is the same thing in C when the
    accelerator is built; tests/core/test_hdlc_accel.py holds the two equal.
    """

    def __init__(
        self, max_length: int = DEFAULT_MAX_LENGTH, max_payload: int = MAX_SSTP_PAYLOAD
    ) -> None:
        """Drop frames over ``max_length`` escaped or ``max_payload`` unescaped bytes."""
        if not 0 <= max_payload <= MAX_SSTP_PAYLOAD or max_length < 0:
            raise ValueError("max_length or max_payload out of range")
        self._decoder = Decoder(max_length)
        self._max_payload = max_payload
        self.too_big = 0

    @property
    def bad_fcs(self) -> int:
        """Frames dropped: the FCS did not check."""
        return self._decoder.bad_fcs

    @property
    def too_short(self) -> int:
        """Frames dropped: under 4 octets with the FCS."""
        return self._decoder.too_short

    @property
    def aborted(self) -> int:
        """Frames dropped: ended by 7D 7E."""
        return self._decoder.aborted

    @property
    def oversized(self) -> int:
        """Frames dropped: more than max_length escaped bytes."""
        return self._decoder.oversized

    @property
    def buffered(self) -> int:
        """Escaped bytes of the unfinished frame."""
        return self._decoder._partial_length

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Consume ``data``; return the SSTP data packets of the frames it completes."""
        parts: list[bytes] = []
        limit = self._max_payload
        for frame in self._decoder.feed(data):
            if len(frame) > limit:
                self.too_big += 1
                continue
            parts.append(((_SSTP_VERSION << 24) | (4 + len(frame))).to_bytes(4, "big"))
            parts.append(frame)
        return b"".join(parts)


def split_packets(packets: bytes) -> list[bytes]:
    """The frames of consecutive, well-formed SSTP data packets (PacketDecoder output)."""
    frames: list[bytes] = []
    pos, end = 0, len(packets)
    while pos + 4 <= end:
        length = ((packets[pos + 2] & 0x0F) << 8) | packets[pos + 3]
        if length < 4:
            break
        frames.append(packets[pos + 4 : pos + length])
        pos += length
    return frames


def py_encode_packets(data: bytes, accm: int = ACCM_ALL) -> tuple[bytes, int]:
    """The leading complete SSTP *data* packets of ``data`` as one HDLC byte stream.

    Returns the stream (as :func:`encode_frames` makes it, ``b""`` for none) and the
    number of bytes those packets took; the walk stops at the first control packet,
    incomplete packet or bad header, which the caller hands to the stream decoder.
    """
    pos, end = 0, len(data)
    frames: list[bytes] = []
    while end - pos >= 4:
        length = ((data[pos + 2] & 0x0F) << 8) | data[pos + 3]
        if data[pos] != _SSTP_VERSION or data[pos + 1] & 1 or length < 4 or length > end - pos:
            break
        frames.append(bytes(data[pos + 4 : pos + length]))
        pos += length
    return encode_frames(frames, accm), pos


# The C accelerator when it was built (setup.py; optional) and not refused by setting
# SSTP_PPPD_PURE_PYTHON, which sstp_pppd/__init__.py turns into a failing import.
try:
    from . import _hdlc
except ImportError:
    ACCELERATED = False
    PacketDecoder: type[PyPacketDecoder] | type[_hdlc.PacketDecoder] = PyPacketDecoder
    encode_packets = py_encode_packets
else:
    ACCELERATED = True
    PacketDecoder = _hdlc.PacketDecoder
    encode_packets = _hdlc.encode_packets
