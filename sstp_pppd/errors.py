"""The application's errors and the exit codes of sstp-pppd.

Every failure the program can report is one of these classes or one of the core's
(:mod:`sstp_pppd.core.errors`, which carry no exit code). :func:`exit_code_of` is the
one place that says how each ends the process.
"""

from __future__ import annotations

import enum

from .core.errors import FramingError, HttpError, ProtocolError, SstpError, UsageError

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConnectionLost",
    "ExitCode",
    "FramingError",
    "HttpError",
    "Interrupted",
    "KeepaliveTimeout",
    "NetworkError",
    "PppdError",
    "ProtocolError",
    "ProtocolFailure",
    "RemoteAbort",
    "SstpError",
    "SstpPppdError",
    "TlsError",
    "UsageError",
    "exit_code_of",
]


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
    #: PPP authentication failed (CHAP/PAP/EAP Failure seen in the relayed frames), or
    #: LCP agreed on no method (one end Nak'd or rejected the other's, then the link ended).
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


class ProtocolFailure(SstpPppdError):
    """The SSTP call failed on our side of the protocol: we aborted it, or the server
    sent bytes that are not SSTP."""

    exit_code = ExitCode.SSTP


class RemoteAbort(SstpPppdError):
    """The server sent CALL_ABORT, CALL_DISCONNECT or too many CALL_CONNECT_NAKs.

    ``status`` is the status the server reported (0 when it gave none).
    """

    exit_code = ExitCode.SSTP

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def exit_code_of(exc: BaseException) -> ExitCode:
    """The exit code a failure ends the process with: the one mapping of core errors."""
    if isinstance(exc, SstpPppdError):
        return exc.exit_code
    if isinstance(exc, HttpError):
        return ExitCode.HTTP
    if isinstance(exc, UsageError):
        # The core was called in a way it does not allow: a bug of ours, not the user's.
        return ExitCode.INTERNAL
    if isinstance(exc, SstpError):
        return ExitCode.SSTP
    return ExitCode.INTERNAL
