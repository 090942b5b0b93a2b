"""Resend pppd's first LCP Configure-Request once, early, when the server lost it.

Why: pppd's first Configure-Request can reach an SSTP server while the server is still
starting its own pppd. sstp-server 0.7.2 drops data packets while it has no pppd yet,
and what it writes into the new pppd's pty before that pppd has set its line up goes in
pppd's ``tcsetattr(TCSAFLUSH)`` (bench/README.md, connect_bench.py). In pty mode this
is nearly every connect: pppd's request waits for CALL_CONNECT_ACK in the client and goes
out right after it, exactly then. pppd's restart timer resends it after 3 s; this does
it sooner, once.

The rule (:class:`LcpNudge`): after CALL_CONNECT_ACK, while pppd's latest LCP
Configure-Request is unanswered (it went out after the ACK, pppd has sent nothing else
since, and the server no answer to it), send that same frame again (same bytes, so same
Identifier and options: RFC 1661 5.1 lets a retransmission keep its Identifier) when
either comes first:

a. *silent server*: the request has been on its way for :data:`NUDGE_DELAY`;
b. *the server speaks first*: the server's first PPP frame is an LCP Configure-Request
   (a pppd without ``silent`` sends one as soon as its line is up). The copy goes right
   before pppd's next frames (its answer to that request), so in the stream to the
   server it precedes anything pppd sends in reply; not at all if the server's answer to
   pppd's request (Configure-Ack, -Nak or -Reject with its Identifier) comes first, or
   if pppd's next frame is a Configure-Request of its own. Waiting for pppd's answer
   costs the server nothing (it needs that answer too) and spares a ``silent`` server a
   needless copy: its pppd answers pppd's request with its own request and then its
   Ack, and the two may come in separate reads (a copy sent as the request arrived went
   to 5 of 20 such connects in a bench/README.md run); pppd's answer comes after the Ack.

At most once per connection, (a) and (b) together; never once the server's first frame
was anything else, once pppd has sent anything but a Configure-Request, or once the call
is ending.

Why a duplicate is harmless (RFC 1661 4.1 state table). Frames travel in order over TLS,
and ahead of the copy the server has had from us only pppd's Configure-Requests since
the ACK (anything else from pppd ends the rule, except in (b) the answer the copy goes
ahead of; before the ACK nothing goes out). So when the copy arrives, the server has
received no Configure-Ack or -Nak of its own request (the RCA/RCN events): it cannot be
in Ack-Rcvd, nor in Opened, the states where a request would restart the negotiation
(Opened is reached only through Ack-Rcvd + RCR+ or Ack-Sent + RCA). What is left:

- Initial/Starting (no pppd, or a line not set up): dropped, the loss this repairs.
  Only in (a): in (b) the server's pppd has its line up, it sent from it.
- Stopped (a ``silent``/``passive`` pppd, (a) only): RCR starts the negotiation as the
  lost first copy would have.
- Req-Sent (the first copy lost, the server's own request sent): RCR gives sca/scn,
  Ack-Sent or Req-Sent, as any first request does. This is case (b) against
  sstp-server: 3 s of pppd's restart timer saved.
- Ack-Sent (the first copy arrived and was acked, the Ack still in flight): RCR+ gives
  one more Configure-Ack with the same Identifier and it stays in Ack-Sent (pppd's
  ``fsm_rconfreq`` does exactly that: Ack-Sent is no case of its state switch, and a
  CONFACK leaves it in Ack-Sent).

pppd on our side takes the first Configure-Ack and tosses the second: ``fsm_rconfack``
returns at once on ``id != f->reqid || f->seen_ack``, before its state switch, so the
Opened branch that would restart the negotiation is never reached. ``seen_ack`` is set by
the first Ack and cleared only by ``fsm_sconfreq``: by pppd's next request (a new
Identifier: the second Ack no longer matches) or by its restart-timer retransmission
(the same Identifier and bytes, so the second Ack is then that retransmission's Ack, and
the server's Ack of the retransmission the one tossed), exactly as when pppd's own
retransmission crosses a late Ack. Checked against pppd's ``pppd/fsm.c``
(``fsm_rconfack``, ``fsm_rconfreq``, ``fsm_sconfreq``, ``fsm_timeout``) as stored from
ppp-project/ppp (the 2.4 series, commit f831f27, K&R source as 2.4.9 still is).

Why :data:`NUDGE_DELAY` is 0.5 s: sstp-server started its pppd within 0.3 s of the
first copy and that pppd had its line up and its first frame out about 0.05 s after
starting (the ``--verbose`` connects of bench/README.md); a copy 0.5 s after the first
lands after that window with room for a loaded machine, and saves 2.5 of the 3 s. A
server farther away than the delay (its answer takes longer than 0.5 s) gets one
duplicate, which per the above costs it one Configure-Ack. (b) needs no delay: the
server's own request shows that its pppd is up.

Frames are raw PPP frames as in :mod:`.ppp`. Nothing raises on what pppd or the server
sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .ppp import PROTO_LCP, ppp_protocol

__all__ = ["NUDGE_DELAY", "LcpNudge", "LcpResent", "lcp_code"]

#: Seconds pppd's Configure-Request may go unanswered before its one early copy.
NUDGE_DELAY = 0.5

_CONF_REQ = 1  # RFC 1661 5.1
#: Configure-Ack, -Nak, -Reject (RFC 1661 5.2-5.4): an answer to a Configure-Request.
_CONF_ANSWERS = frozenset((2, 3, 4))


def lcp_code(frame: bytes) -> int | None:
    """The Code of a well-formed LCP packet in ``frame``, else ``None``."""
    protocol, offset = ppp_protocol(frame)
    if protocol != PROTO_LCP or len(frame) < offset + 4:
        return None
    length = (frame[offset + 2] << 8) | frame[offset + 3]
    if length < 4 or offset + length > len(frame):
        return None
    return frame[offset]


def _lcp_identifier(frame: bytes) -> int:
    """The Identifier of a frame :func:`lcp_code` has read."""
    _protocol, offset = ppp_protocol(frame)
    return frame[offset + 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class LcpResent:
    """pppd's LCP Configure-Request went out a second time, ``after`` s unanswered.

    ``server_asked``: sent as the server's own first Configure-Request arrived (rule
    (b) of :mod:`.lcpnudge`), not after the delay.
    """

    identifier: int
    after: float
    server_asked: bool = False


class LcpNudge:
    """One early copy of pppd's unanswered LCP Configure-Request; see the module doc.

    Feed it pppd's frames before they are sent to the server (:meth:`relayed`, which may
    return the copy to send ahead of them) and the server's PPP frames
    (:meth:`server_frames`); tell it when the call is ending (:meth:`stop`); :meth:`due`
    returns the frame to send again after the delay. One copy in all.
    """

    def __init__(self, delay: float = NUDGE_DELAY) -> None:
        self._delay = delay
        self._frame: bytes | None = None
        self._sent_at = 0.0
        self._deadline: float | None = None
        #: (b): the server's request came first; the copy waits for pppd's answer.
        self._pending = False
        #: True once it has resent or can no longer resend: it stays so.
        self.done = False

    def __repr__(self) -> str:
        return f"<LcpNudge done={self.done} deadline={self._deadline}>"

    @property
    def deadline(self) -> float | None:
        """When :meth:`due` may return the frame, or ``None``."""
        return self._deadline

    def relayed(self, frames: Sequence[bytes], now: float) -> tuple[bytes, LcpResent] | None:
        """pppd's frames, as they go to the server at ``now`` (held ones at the ACK); the
        copy to send ahead of them and the event saying so, if (b) waits for them."""
        if self._pending:
            return self._answering(frames, now)
        for frame in frames:
            if self.done:
                return None
            if lcp_code(frame) == _CONF_REQ:
                # The latest request counts: the delay runs from when it went out.
                self._frame = frame
                self._sent_at = now
                self._deadline = now + self._delay
            else:
                # pppd is past its first request (a Terminate-Request when it gives up,
                # anything else): its own timers decide from here.
                self.stop()
        return None

    def _answering(self, frames: Sequence[bytes], now: float) -> tuple[bytes, LcpResent] | None:
        frame = self._frame
        if not frames:
            return None
        self.stop()
        if frame is None or lcp_code(frames[0]) == _CONF_REQ:
            return None  # pppd sends its request again itself
        return frame, LcpResent(
            identifier=_lcp_identifier(frame),
            after=max(now - self._sent_at, 0.0),
            server_asked=True,
        )

    def server_frames(self, frames: Sequence[bytes]) -> None:
        """The server's PPP frames, as they arrive: the first ones decide whether (b)
        waits for pppd's answer; any answer to pppd's request cancels the copy."""
        frame = self._frame
        if frame is None:
            self.stop()
            return
        identifier = _lcp_identifier(frame)
        for reply in frames:
            if lcp_code(reply) in _CONF_ANSWERS and _lcp_identifier(reply) == identifier:
                self.stop()  # the first copy arrived: nothing to repair
                return
        if self._pending:
            return
        if not frames or lcp_code(frames[0]) != _CONF_REQ:
            self.stop()  # the server is alive and said something else: pppd's timers do
            return
        self._pending = True
        self._deadline = None  # the server has spoken: (a) is off

    def server_spoke(self) -> None:
        """The server sent a PPP frame: it is alive and pppd's timers are enough."""
        self.stop()

    def stop(self) -> None:
        """No copy from now on (the call is ending, or there is no need)."""
        self.done = True
        self._frame = None
        self._deadline = None
        self._pending = False

    def due(self, now: float) -> tuple[bytes, LcpResent] | None:
        """The frame to send again and the event saying so, if due at ``now``; once."""
        deadline, frame = self._deadline, self._frame
        if deadline is None or frame is None or now < deadline:
            return None
        self.stop()
        return frame, LcpResent(identifier=_lcp_identifier(frame), after=self._delay)
