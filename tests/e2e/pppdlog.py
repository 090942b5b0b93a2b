"""pppd's debug log: the set-up packets each side sent and received, in order.

Shared by the set-up frame test (test_setup_frames.py) and bench/connect_bench.py.
"""

from __future__ import annotations

import re

__all__ = ["PACKET", "packets"]

#: pppd's debug lines of set-up packets: "sent [LCP ConfReq id=0x1 <asyncmap 0x0> ...]".
PACKET = re.compile(
    r"\b(sent|rcvd) \[((?:LCP|IPCP|IPV6CP|CHAP) "
    r"(?:ConfReq|ConfAck|ConfNak|ConfRej|Challenge|Response|Success|Failure)\b[^\]]*)\]"
)


def packets(log: str) -> tuple[list[str], list[str]]:
    """(sent, received) set-up packets in one pppd's debug log, in order."""
    sent: list[str] = []
    rcvd: list[str] = []
    for m in PACKET.finditer(log):
        (sent if m.group(1) == "sent" else rcvd).append(m.group(2))
    return sent, rcvd
