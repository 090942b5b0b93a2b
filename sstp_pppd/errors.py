"""The error hierarchy and the exit codes of sstp-pppd.

Every failure the program can report is one of these classes; each carries the
exit code the command line ends with, so ``cli.main`` needs no mapping table of
its own. The sans-IO core raises only :class:`SstpError` subclasses.
"""

from __future__ import annotations

import enum


@enum.unique
class ExitCode(enum.IntEnum):
    """Process exit codes, documented in the man page and the README."""

    #: The tunnel ran and was closed cleanly (CALL_DISCONNECT acknowledged, or pppd ended).
    OK = 0
    #: Anything unexpected: a bug. The message says what happened.
    INTERNAL = 1
    #: Bad command line or configuration (unknown option, unreadable password file...).
    USAGE = 2
    #: The server's name did not resolve, or no address accepted a TCP connection.
    NETWORK = 3
    #: TLS failed: handshake error, untrusted chain, wrong hostname, pin mismatch.
    TLS = 4
    #: The server (or a proxy) refused the HTTPS SSTP_DUPLEX_POST request.
    HTTP = 5
    #: The SSTP control protocol failed: CALL_ABORT, NAK, malformed packets, timeouts
    #: in negotiation.
    SSTP = 6
    #: PPP authentication failed (CHAP/PAP/EAP Failure seen in the relayed frames).
    AUTH = 7
    #: pppd could not be started or died before the tunnel was up.
    PPPD = 8
    #: The server stopped answering: no packet within two hello periods.
    KEEPALIVE = 9
    #: The server closed the connection (TCP/TLS) without an SSTP goodbye.
    CONNECTION_LOST = 10
    #: Interrupted by a signal before the tunnel was established.
    INTERRUPTED = 11


class SstpPppdError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(SstpPppdError):
    """The command line, a password file or chap-secrets could not be used."""

    exit_code = ExitCode.USAGE


class NetworkError(SstpPppdError):
    """Name resolution or the TCP connection to the server (or proxy) failed."""

    exit_code = ExitCode.NETWORK


class TlsError(SstpPppdError):
    """The TLS handshake or the verification of the server failed."""

    exit_code = ExitCode.TLS


class AuthenticationError(SstpPppdError):
    """PPP authentication was refused by the server."""

    exit_code = ExitCode.AUTH


class PppdError(SstpPppdError):
    """pppd could not be started, or ended unexpectedly."""

    exit_code = ExitCode.PPPD


class KeepaliveTimeout(SstpPppdError):
    """Nothing was received for two hello periods."""

    exit_code = ExitCode.KEEPALIVE


class ConnectionLost(SstpPppdError):
    """The TLS connection ended without CALL_DISCONNECT or CALL_ABORT."""

    exit_code = ExitCode.CONNECTION_LOST


class Interrupted(SstpPppdError):
    """A signal asked us to stop before the tunnel was up."""

    exit_code = ExitCode.INTERRUPTED


class SstpError(SstpPppdError):
    """An error of the SSTP protocol layer (HTTP handshake or SSTP packets).

    The sans-IO core raises only subclasses of this class, whatever bytes it is fed.
    """

    exit_code = ExitCode.SSTP


class HttpError(SstpError):
    """The HTTP part of the handshake failed (bad or refused response).

    ``status`` is the HTTP status code when a status line was parsed, else ``None``.
    """

    exit_code = ExitCode.HTTP

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


class RemoteAbort(SstpError):
    """The server sent CALL_ABORT, CALL_DISCONNECT or too many CALL_CONNECT_NAKs.

    ``status`` is the status the server reported (0 when it gave none).
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status
