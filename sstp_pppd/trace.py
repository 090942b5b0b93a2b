"""Packet tracing for --log-level 4 to 6, with the secrets left out.

Level 4 decodes every SSTP control packet, level 5 adds one line per PPP frame, level 6 hex
dumps. Authentication frames (PAP carries the password in clear, CHAP and EAP responses can
be cracked offline) are never dumped at any level. Tracing re-decodes the byte stream on
its own, so the relay pays for it only when it is switched on.
"""

from __future__ import annotations

import logging

from .core import ppp
from .core.errors import SstpError
from .core.messages import ControlPacket, DataPacket, StreamDecoder
from .core.ppp import ppp_protocol

#: logging levels of --log-level 5 and 6.
FRAMES = 7
HEXDUMP = 5
#: PPP protocols whose contents are never logged: PAP, CHAP, EAP.
_SECRET_PROTOCOLS = frozenset({ppp.PROTO_PAP, ppp.PROTO_CHAP, ppp.PROTO_EAP})
_NAMES = {ppp.PROTO_LCP: "LCP", ppp.PROTO_PAP: "PAP", ppp.PROTO_CHAP: "CHAP",
          ppp.PROTO_EAP: "EAP", ppp.PROTO_IPCP: "IPCP", ppp.PROTO_IPV6CP: "IPv6CP",
          ppp.PROTO_CCP: "CCP", ppp.PROTO_IPV4: "IPv4", ppp.PROTO_IPV6: "IPv6", 0x002D: "VJ",
          0x002F: "VJ-uncompressed", 0x00FD: "compressed"}  # fmt: skip


def describe_frame(frame: bytes) -> str:
    proto = ppp_protocol(frame)[0]
    if proto < 0:
        return f"short frame, {len(frame)} bytes"
    return f"{_NAMES.get(proto, f'protocol 0x{proto:04x}')}, {len(frame)} bytes"


class PacketTrace:
    """Logs the SSTP packets of one direction ("<-" from the server, "->" to it)."""

    def __init__(self, log: logging.Logger, direction: str) -> None:
        self.log = log
        self.direction = direction
        self.decoder = StreamDecoder()
        self.frames = log.isEnabledFor(FRAMES)
        self.dumps = log.isEnabledFor(HEXDUMP)

    def feed(self, data: bytes) -> None:
        try:
            packets = self.decoder.feed(data)
        except SstpError as exc:
            self.log.debug("%s undecodable SSTP bytes: %s", self.direction, exc)
            self.decoder = StreamDecoder()
            return
        for packet in packets:
            if isinstance(packet, ControlPacket):
                self.log.debug("%s %s", self.direction, packet)
            elif isinstance(packet, DataPacket) and self.frames:
                self.frame(packet.payload)

    def frame(self, frame: bytes) -> None:
        self.log.log(FRAMES, "%s PPP %s", self.direction, describe_frame(frame))
        if self.dumps:
            if ppp_protocol(frame)[0] in _SECRET_PROTOCOLS:
                self.log.log(HEXDUMP, "%s   (authentication frame: not dumped)", self.direction)
            else:
                self.log.log(HEXDUMP, "%s   %s", self.direction, frame.hex(" "))
