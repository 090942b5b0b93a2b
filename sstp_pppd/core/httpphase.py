"""The HTTP exchange that opens an SSTP call: the request, the response head, its timer.

[MS-SSTP] 3.2.4.1: after TLS the client sends ``SSTP_DUPLEX_POST`` and waits up to
:data:`HTTP_TIMEOUT` for a 200 response; what follows the response head is already
the SSTP stream. :class:`HttpPhase` owns only that: bytes in, the request out, and the
phase's end as an event (:class:`~.client_events.HttpAccepted`, or a
:class:`~.client_events.CallEnded` with ``Outcome.HTTP_FAILED``). What comes after the
head is the owner's (:class:`~.client.ClientConnection` hands it to the SSTP machine).
"""

from __future__ import annotations

from .client_events import CallEnded, ClientEvent, HttpAccepted, Outcome
from .errors import HttpError, UsageError
from .events import ConnectionClosed
from .handshake import ResponseParser, check_sstp_response, sstp_request

__all__ = ["HTTP_TIMEOUT", "HttpPhase"]

#: [MS-SSTP] 3.2.4.1: the client waits this long for the HTTP response.
HTTP_TIMEOUT = 60.0


class HttpPhase:
    """One HTTP request and its response head; :attr:`accepted` once the server said 200.

    Every input returns the phase's events: none while the head is incomplete, else
    ``[HttpAccepted]`` or ``[CallEnded, ConnectionClosed]``. After either, it ignores
    further bytes. :attr:`deadline` is when :meth:`due` fails the phase, ``None`` before
    :meth:`start` and once the phase is over.
    """

    __slots__ = ("_correlation_id", "_host", "_over", "_parser", "_timeout", "accepted", "deadline")

    def __init__(self, host: str, correlation_id: str, timeout: float = HTTP_TIMEOUT) -> None:
        self._host = host
        self._correlation_id = correlation_id
        self._timeout = timeout
        self._parser = ResponseParser()
        #: Ended without a 200 (or we closed in it): nothing more to read.
        self._over = False
        self.accepted = False
        self.deadline: float | None = None

    @property
    def trailing(self) -> bytes:
        """The bytes after the response head: the start of the SSTP stream."""
        return self._parser.trailing

    def start(self, now: float) -> bytes:
        """The request to send; the response is due :data:`HTTP_TIMEOUT` from ``now``."""
        if self.deadline is not None or self.accepted:
            raise UsageError("start() twice")
        self.deadline = now + self._timeout
        return sstp_request(self._host, self._correlation_id)

    def receive(self, data: bytes) -> list[ClientEvent]:
        """Bytes from the server, up to and maybe past the response head."""
        if self._over or self.accepted:
            return []
        try:
            response = self._parser.feed(data)
            if response is None:
                return []
            warnings = check_sstp_response(response)
        except HttpError as exc:
            return self._failed(str(exc), exc.status)
        self.accepted = True
        self.deadline = None
        return [
            HttpAccepted(
                status=response.status,
                reason=response.reason,
                warnings=warnings,
                trailing=self._parser.trailing,
            )
        ]

    def due(self, now: float) -> list[ClientEvent]:
        """The phase's failure if the server has not answered by :attr:`deadline`."""
        if self.deadline is None or self.deadline > now:
            return []
        return self._failed(
            f"the server did not answer the HTTP request within {self._timeout:.0f} s", None
        )

    def connection_lost(self) -> list[ClientEvent]:
        """The transport ended before the response head (or after the phase failed)."""
        if self._over:
            return []
        # Closed during the HTTP exchange: the server refusing us, not a drop.
        message = (
            "the server closed the connection during the HTTP handshake "
            "(not an SSTP server, or it refused the request)"
        )
        status = None
        try:
            self._parser.feed_eof()
        except HttpError as exc:
            message, status = str(exc), exc.status
        return self._failed(message, status)

    def close(self) -> None:
        """We end the phase ourselves: no failure to report, nothing more to read."""
        self._over = True
        self.deadline = None

    def _failed(self, message: str, status: int | None) -> list[ClientEvent]:
        self.close()
        return [
            CallEnded(outcome=Outcome.HTTP_FAILED, message=message, status=status),
            ConnectionClosed(),
        ]
