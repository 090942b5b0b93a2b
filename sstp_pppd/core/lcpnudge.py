"""Resend pppd's first LCP Configure-Request once, early, to a server that said nothing.

Why: pppd's first Configure-Request can reach an SSTP server while the server is still
starting its own pppd. sstp-server 0.7.2 drops data packets while it has no pppd yet,
and what it writes into the new pppd's pty before that pppd has set its line up goes in
pppd's ``tcsetattr(TCSAFLUSH)`` (bench/README.md, connect_bench.py). In pty mode this
is nearly every connect: pppd's request waits for CALL_CONNECT_ACK in the client and goes
out right after it, exactly then. pppd's restart timer resends it after 3 s; this does
it after :data:`NUDGE_DELAY`, once.

The rule (:class:`LcpNudge`): after CALL_CONNECT_ACK, when pppd's latest LCP
Configure-Request has been on its way to the server for :data:`NUDGE_DELAY` and the
server has sent no PPP frame at all, send that same frame again (same bytes, so same
Identifier and options: RFC 1661 5.1 lets a retransmission keep its Identifier). At most
once per connection; never once the server has sent anything, once pppd has sent
anything but a Configure-Request, or once the call is ending.

Why a duplicate is harmless (RFC 1661 4.1 state table): the server has sent us no LCP
packet, so it has sent no Configure-Ack for our request, and pppd cannot have acked a
request of the server it never received; frames travel in order over TLS, so the
duplicate reaches the server before anything pppd sends in reply to the server. The
server's LCP is therefore in one of: Initial/Starting (no pppd, or a line not set up:
dropped, the loss this repairs), Stopped (a ``silent``/``passive`` pppd: RCR starts the
negotiation as the lost first copy would have), Req-Sent (it sent a request still in
flight: RCR gives sca/scn as any first request does), or Ack-Sent (the first copy
arrived and was acked, the reply slower than the delay: RCR+ gives one more
Configure-Ack and it stays in Ack-Sent). Never Ack-Rcvd or Opened, where a request
would restart the negotiation. pppd on our side tosses the second Configure-Ack with the
same Identifier (fsm.c ``fsm_rconfack``: ``id != f->reqid || f->seen_ack``), exactly as
it would after its own retransmission.

Why :data:`NUDGE_DELAY` is 0.5 s: sstp-server started its pppd within 0.3 s of the
first copy and that pppd had its line up and its first frame out about 0.05 s after
starting (the ``--verbose`` connects of bench/README.md); a copy 0.5 s after the first
lands after that window with room for a loaded machine, and saves 2.5 of the 3 s. A
server farther away than the delay (its answer takes longer than 0.5 s) gets one
duplicate, which per the above costs it one Configure-Ack.

Frames are raw PPP frames as in :mod:`.ppp`. Nothing raises on what pppd sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .ppp import PROTO_LCP, ppp_protocol

__all__ = ["NUDGE_DELAY", "LcpNudge", "LcpResent", "lcp_code"]

#: Seconds pppd's Configure-Request may go unanswered before its one early copy.
NUDGE_DELAY = 0.5

_CONF_REQ = 1  # RFC 1661 5.1


def lcp_code(frame: bytes) -> int | None:
    """The Code of a well-formed LCP packet in ``frame``, else ``None``."""
    protocol, offset = ppp_protocol(frame)
    if protocol != PROTO_LCP or len(frame) < offset + 4:
        return None
    length = (frame[offset + 2] << 8) | frame[offset + 3]
    if length < 4 or offset + length > len(frame):
        return None
    return frame[offset]


@dataclass(frozen=True, slots=True, kw_only=True)
class LcpResent:
    """pppd's LCP Configure-Request went out a second time (``after`` s unanswered)."""

    identifier: int
    after: float


class LcpNudge:
    """One early copy of pppd's unanswered LCP Configure-Request; see the module doc.

    Feed it pppd's frames as they are sent to the server (:meth:`relayed`) and tell it
    when the server sent anything (:meth:`server_spoke`) or the call is ending
    (:meth:`stop`); :meth:`due` returns the frame to send again, once.
    """

    def __init__(self, delay: float = NUDGE_DELAY) -> None:
        self._delay = delay
        self._frame: bytes | None = None
        self._deadline: float | None = None
        #: True once it has resent or can no longer resend: it stays so.
        self.done = False

    def __repr__(self) -> str:
        return f"<LcpNudge done={self.done} deadline={self._deadline}>"

    @property
    def deadline(self) -> float | None:
        """When :meth:`due` may return the frame, or ``None``."""
        return self._deadline

    def relayed(self, frames: Iterable[bytes], now: float) -> None:
        """pppd's frames, as they go to the server at ``now`` (held ones at the ACK)."""
        for frame in frames:
            if self.done:
                return
            if lcp_code(frame) == _CONF_REQ:
                # The latest request counts: the delay runs from when it went out.
                self._frame = frame
                self._deadline = now + self._delay
            else:
                # pppd is past its first request (a Terminate-Request when it gives up,
                # anything else): its own timers decide from here.
                self.stop()

    def server_spoke(self) -> None:
        """The server sent a PPP frame: it is alive and pppd's timers are enough."""
        self.stop()

    def stop(self) -> None:
        """No copy from now on (the call is ending, or there is no need)."""
        self.done = True
        self._frame = None
        self._deadline = None

    def due(self, now: float) -> tuple[bytes, LcpResent] | None:
        """The frame to send again and the event saying so, if due at ``now``; once."""
        deadline, frame = self._deadline, self._frame
        if deadline is None or frame is None or now < deadline:
            return None
        self.stop()
        _protocol, offset = ppp_protocol(frame)
        return frame, LcpResent(identifier=frame[offset + 1], after=self._delay)
