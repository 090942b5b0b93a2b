"""PPP protocol numbers and the protocol field, in one place (RFC 1661, IANA PPP DLL).

Frames here are raw PPP frames as SSTP data packets carry them: with or without the
``FF 03`` address and control fields, with a one- or two-byte protocol field.
"""

from __future__ import annotations

__all__ = [
    "FIRST_CONTROL_PROTOCOL",
    "FIRST_LINK_PROTOCOL",
    "FIRST_NETWORK_CONTROL_PROTOCOL",
    "PROTO_CCP",
    "PROTO_CHAP",
    "PROTO_EAP",
    "PROTO_IPCP",
    "PROTO_IPV4",
    "PROTO_IPV6",
    "PROTO_IPV6CP",
    "PROTO_LCP",
    "PROTO_PAP",
    "ppp_protocol",
]

# Network-layer protocols (0x0001-0x3FFF).
PROTO_IPV4 = 0x0021
PROTO_IPV6 = 0x0057
# Network control protocols (0x8001-0xBFFF).
PROTO_IPCP = 0x8021
PROTO_IPV6CP = 0x8057
PROTO_CCP = 0x80FD
# Link-layer control protocols (0xC001-0xFFFF).
PROTO_LCP = 0xC021
PROTO_PAP = 0xC023
PROTO_CHAP = 0xC223
PROTO_EAP = 0xC227

#: RFC 1661 3.1: protocols from here on are control protocols; below, network-layer data.
FIRST_CONTROL_PROTOCOL = 0x4000
#: From here to :data:`FIRST_LINK_PROTOCOL`: NCPs (IPCP, IPv6CP, CCP...), which pppd
#: sends only in the network phase, after authentication.
FIRST_NETWORK_CONTROL_PROTOCOL = 0x8000
#: From here on: LCP and the authentication protocols.
FIRST_LINK_PROTOCOL = 0xC000


def ppp_protocol(frame: bytes) -> tuple[int, int]:
    """Return (protocol, offset of the information field); protocol -1 if too short."""
    start = 2 if frame[:2] == b"\xff\x03" else 0
    if len(frame) <= start:
        return -1, 0
    first = frame[start]
    if first & 1:  # RFC 1661 6.5: protocol field compression
        return first, start + 1
    if len(frame) <= start + 1:
        return -1, 0
    return (first << 8) | frame[start + 1], start + 2
