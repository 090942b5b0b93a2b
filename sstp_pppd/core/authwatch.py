"""Watching PPP's authentication from the frames relayed, until the binding is accepted.

Two readers see the frames between pppd and the server: the
:class:`~.pppwatch.AuthWatcher`, whose verdict decides CALL_CONNECTED, and the
:class:`~.lcpauth.LcpAuthTracker`, which explains a link that ends because LCP agreed
on no authentication method. :class:`AuthWatch` keeps both while they matter and
drops each once it has nothing more to say: the watcher at its verdict, the tracker
at the first network-layer frame from the server after CALL_CONNECTED
(:func:`network_layer`: the server accepted the binding, the link works), and both
once the tracker has found the cause of the link's end (pppd's NCP frames already on
their way are then no authentication success to bind on).
"""

from __future__ import annotations

from collections.abc import Sequence

from .lcpauth import AuthNotAgreed, LcpAuthTracker
from .ppp import FIRST_CONTROL_PROTOCOL, ppp_protocol
from .pppwatch import AuthEvent, AuthWatcher, PasswordLookup

__all__ = ["AuthWatch", "network_layer"]

#: An LCP frame's first bytes: RFC 1662 never compresses address/control for LCP.
_LCP_HEADER = b"\xff\x03\xc0\x21"


def network_layer(frames: Sequence[bytes]) -> bool:
    """One of ``frames`` is network-layer data (IP, not a control protocol)."""
    for frame in frames:
        if 0 <= ppp_protocol(frame)[0] < FIRST_CONTROL_PROTOCOL:
            return True
    return False


class AuthWatch:
    """The authentication watcher and the LCP tracker, while either is still needed."""

    __slots__ = ("_lcp", "_watcher")

    def __init__(self, password_lookup: PasswordLookup | None = None) -> None:
        self._watcher: AuthWatcher | None = AuthWatcher(password_lookup)
        #: Why LCP agreed on no authentication method, until the binding is accepted.
        self._lcp: LcpAuthTracker | None = LcpAuthTracker()

    @property
    def watching(self) -> bool:
        """No verdict yet: pppd's frames must be shown one by one (:meth:`from_pppd`)."""
        return self._watcher is not None

    @property
    def idle(self) -> bool:
        """Neither reader has anything more to say."""
        return self._watcher is None and self._lcp is None

    def needs_frames(self, packets: bytes) -> bool:
        """pppd's batch of data packets must be split into frames to be watched."""
        # The tracker reads only LCP, which pppd always sends with its address and
        # control fields: one C-speed search keeps the batch path for the rest (a data
        # frame between CALL_CONNECTED and the first one from the server).
        return self._watcher is not None or (self._lcp is not None and _LCP_HEADER in packets)

    def from_pppd(self, frame: bytes) -> AuthEvent | None:
        """One of pppd's frames, in order: the verdict it carries, if any (once)."""
        watcher = self._watcher
        if watcher is None:
            return None
        verdict = watcher.from_pppd(frame)
        if verdict is not None:
            self._watcher = None
        return verdict

    def from_server(self, frames: Sequence[bytes]) -> AuthEvent | None:
        """The server's frames: the verdict the first of them carries, if any (once)."""
        watcher = self._watcher
        if watcher is None:
            return None
        for frame in frames:
            verdict = watcher.from_server(frame)
            if verdict is not None:
                self._watcher = None
                return verdict
        return None

    def lcp_frames(self, frames: Sequence[bytes], *, from_pppd: bool) -> list[AuthNotAgreed]:
        """Show the tracker frames; its verdict, the first cause of what follows, if any."""
        lcp = self._lcp
        if lcp is None:
            return []
        look = lcp.from_pppd if from_pppd else lcp.from_server
        for frame in frames:
            found = look(frame)
            if found is not None:
                # The link is ending for it: nothing left to bind on.
                self._lcp = self._watcher = None
                return [found]
        return []

    def link_ended(self, *, closing: bool) -> list[AuthNotAgreed]:
        """The call ends: an authentication refusal seen before is why (unless we ended it)."""
        lcp, self._lcp = self._lcp, None
        found = lcp.link_ended() if lcp is not None and not closing else None
        return [found] if found is not None else []

    def binding_accepted(self) -> None:
        """The link works: no refusal left to explain."""
        self._lcp = None
