"""The errors of the sans-IO core, without exit codes.

The core says *what* went wrong; how the program ends because of it is the
application's business (:func:`sstp_pppd.errors.exit_code_of` maps these to exit
codes in one place). Bytes received from the network never raise out of
:class:`~sstp_pppd.core.connection.Connection` after ``start()``; the classes below
are raised by the codecs (and caught by the machine) or by a caller's own mistake.
"""

from __future__ import annotations

__all__ = ["FramingError", "HttpError", "ProtocolError", "SstpError", "UsageError"]


class SstpError(Exception):
    """Base of every error the core raises on purpose."""


class UsageError(SstpError, ValueError):
    """The caller misused the core: a wrong length, a call the state does not allow.

    Also a :class:`ValueError` (h2's pattern), so code that validates local input
    (host names, GUIDs, proxy URLs) with ``except ValueError`` keeps working.
    """


class HttpError(SstpError):
    """The HTTP part of the handshake failed (bad or refused response).

    ``status`` is the HTTP status code when a status line was parsed, else ``None``.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProtocolError(SstpError):
    """Malformed or unexpected SSTP input.

    ``status`` is the [MS-SSTP] 2.2.8 status code (an ``int``, normally a
    ``messages.StatusCode``) to put in the CALL_ABORT that answers it.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class FramingError(ProtocolError):
    """Bytes that cannot be framed as SSTP packets at all (bad version, bad length).

    [MS-SSTP] 3.1.5.1: the connection is dropped without sending CALL_ABORT.
    """
