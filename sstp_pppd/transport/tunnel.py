"""The transport: TLS to the server, the SSTP state machine, and the relay to pppd's pty.

Everything protocol-shaped happens in the sans-IO core (``connection``, ``hdlc``,
``pppwatch``, ``crypto``); this module only moves bytes between asyncio transports, runs
the timers the core asks for, and turns the core's events into log lines and an outcome.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from ..config import Config
from ..core import connection as sstp
from ..core import crypto, hdlc, pppwatch
from ..core.errors import HttpError, ProtocolError, SstpError
from ..core.messages import HashProtocol, StatusCode
from ..core.pppwatch import PasswordLookup, ppp_protocol
from ..diagnose import explain_auth_failure, status_name
from ..errors import (
    ConnectionLost,
    Interrupted,
    KeepaliveTimeout,
    ProtocolFailure,
    RemoteAbort,
    SstpPppdError,
)
from ..logsetup import NOTICE
from ..trace import PacketTrace
from .links import PtyLink, TlsLink
from .pppd import (
    Pppd,
    drop_privileges,
)

log = logging.getLogger("sstp_pppd")

#: Frames pppd sends before the server acknowledged the call are held, not lost: a lost
#: first LCP Configure-Request costs pppd's 3 s restart timer. Beyond this, drop.
EARLY_FRAMES_MAX = 64
#: PPP protocols below this carry network-layer data (RFC 1661 3.1): once the server
#: sends such a frame after CALL_CONNECTED, it has accepted the binding.
_FIRST_CONTROL_PROTOCOL = 0x4000


class Tunnel:
    """One SSTP session from TCP connect to the last byte, in either pppd mode."""

    def __init__(self, config: Config, password_lookup: PasswordLookup) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.conn = sstp.Connection(hello_interval=config.hello_interval)
        self.decoder = hdlc.Decoder()
        self.watcher: pppwatch.AuthWatcher | None = pppwatch.AuthWatcher(password_lookup)
        self.tls: TlsLink | None = None
        self.pty: PtyLink | None = None
        self.pppd: Pppd | None = None
        self.cert_der = b""
        self.cert_hash = b""
        self.acked = asyncio.Event()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.outcome: SstpPppdError | SstpError | None = None
        self.early: list[bytes] | None = []
        self.connected = False
        self.data_seen = False
        self.stopping = False
        self.auth_failed: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        debug = log.isEnabledFor(logging.DEBUG)
        self.trace_in = PacketTrace(log, "<-") if debug else None
        self.trace_out = PacketTrace(log, "->") if debug else None

    # ----- outcome -------------------------------------------------------------------

    def finish(self, outcome: SstpPppdError | SstpError | None = None) -> None:
        """Record how the session ends (the first reason wins) and wake ``run``."""
        if self.outcome is None and outcome is not None and not self.done.done():
            self.outcome = outcome
        if not self.done.done():
            self.done.set_result(None)

    # ----- the TLS side ----------------------------------------------------------------

    def from_server(self, data: bytes) -> None:
        """Bytes from TLS: through the state machine, PPP frames on to pppd."""
        if self.trace_in is not None:
            self.trace_in.feed(data)
        try:
            events = self.conn.receive_data(data, self.loop.time())
        except SstpError as exc:
            # The machine has queued its CALL_ABORT; send it, then stop.
            self.flush()
            self.finish(exc)
            return
        for event in events:
            self.handle_event(event)
        self.flush()

    def handle_event(self, event: sstp.Event) -> None:
        match event:
            case sstp.PppFrames(frames=frames):
                self.frames_from_server(frames)
            case sstp.ConnectAcked(hash_protocol=hash_protocol):
                self.cert_hash = crypto.cert_hash(self.cert_der, int(hash_protocol))
                log.log(
                    NOTICE,
                    "SSTP call accepted by the server (binding hash %s)",
                    "SHA-256"
                    if hash_protocol == HashProtocol.CERT_HASH_PROTOCOL_SHA256
                    else "SHA-1",
                )
                self.acked.set()
            case sstp.EchoRequested():
                log.debug("echo request from the server answered")
            case sstp.Disconnected(status=status):
                if self.stopping:
                    log.log(NOTICE, "SSTP disconnected")
                else:
                    self.finish(
                        ConnectionLost(f"the server disconnected the call ({status_name(status)})")
                    )
            case sstp.Aborted(status=status, local=local):
                if local and self.conn.state is sstp.State.CLOSED:
                    # [MS-SSTP] 3.1.5.1: unframeable bytes drop the connection, no CALL_ABORT.
                    self.finish(
                        ProtocolFailure(
                            "the server sent bytes that are not SSTP: connection dropped"
                        )
                    )
                elif local:
                    self.finish(
                        ProtocolFailure(
                            f"SSTP protocol error from the server: sent CALL_ABORT "
                            f"({status_name(status)})"
                        )
                    )
                else:
                    hint = (
                        " (the server rejected the crypto binding)"
                        if status == StatusCode.INVALID_FRAME_RECEIVED and self.connected
                        else ""
                    )
                    self.finish(
                        RemoteAbort(
                            f"the server aborted the call ({status_name(status)}){hint}", status
                        )
                    )
            case sstp.KeepaliveExpired():
                self.finish(
                    KeepaliveTimeout(
                        "the server stopped answering (no packet for two hello periods)"
                    )
                )
            case sstp.ConnectionClosed():
                if self.tls is not None:
                    self.tls.close()
                self.finish()
            case _:
                log.debug("event %r", event)

    def frames_from_server(self, frames: list[bytes]) -> None:
        watcher = self.watcher
        if watcher is not None:
            for frame in frames:
                self.auth_event(watcher.from_server(frame))
        if not self.data_seen and self.connected:
            for frame in frames:
                if 0 <= ppp_protocol(frame)[0] < _FIRST_CONTROL_PROTOCOL:
                    self.data_seen = True
                    log.log(NOTICE, "crypto binding accepted: the server passes IP traffic")
                    break
        if self.pty is not None:
            self.pty.write(hdlc.encode_frames(frames))

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.tls is not None:
            self.tls.write(data)
            if self.trace_out is not None:
                self.trace_out.feed(data)
        self.arm_timer()

    def arm_timer(self) -> None:
        deadline = self.conn.next_deadline()
        if deadline == self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self.on_timer)

    def on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        for event in self.conn.handle_timer(self.loop.time()):
            self.handle_event(event)
        self.flush()

    def tls_lost(self, exc: Exception | None) -> None:
        link = self.tls
        if link is not None and link.http_parser is not None:
            # Closed during the HTTP exchange: that is the server refusing us, not a drop.
            error: SstpPppdError | SstpError = HttpError(
                "the server closed the connection during the HTTP handshake "
                "(not an SSTP server, or it refused the request)"
            )
            try:
                link.http_parser.feed_eof()
            except HttpError as exc_http:
                error = exc_http
            link.fail_http(error)
            self.finish(error)
        elif not self.stopping:
            # Recorded before the state machine's own events, which only say "closed".
            reason = f": {exc}" if exc else ""
            self.finish(ConnectionLost(f"the server closed the connection{reason}"))
        for event in self.conn.connection_lost(self.loop.time()):
            self.handle_event(event)
        self.finish()

    # ----- the pppd side ---------------------------------------------------------------

    def from_pppd(self, data: bytes) -> None:
        frames = self.decoder.feed(data)
        if not frames:
            return
        if self.early is not None:
            room = EARLY_FRAMES_MAX - len(self.early)
            self.early.extend(frames[:room])
            return
        self.frames_from_pppd(frames)

    def frames_from_pppd(self, frames: list[bytes]) -> None:
        watcher = self.watcher
        send = self.conn.send_ppp_frame
        for frame in frames:
            if watcher is not None:
                self.auth_event(watcher.from_pppd(frame))
                watcher = self.watcher
            try:
                send(frame)
            except ProtocolError as exc:
                # One frame too big for SSTP (pppd's MRU above 4091): drop it, keep the rest.
                log.warning("frame from pppd dropped: %s", exc)
            except SstpError as exc:
                log.debug("frames from pppd not sent: %s", exc)
                break
        self.flush()

    def start_relay(self) -> None:
        """The call is acknowledged: release the frames pppd sent early."""
        early, self.early = self.early or [], None
        if early:
            self.frames_from_pppd(early)

    def pppd_eof(self) -> None:
        """pppd closed its end (pty mode) or exited (launch mode)."""
        if not self.stopping:
            log.info("pppd ended the link")
        self.shutdown()

    def auth_event(self, event: pppwatch.AuthEvent | None) -> None:
        if event is None:
            return
        if isinstance(event, pppwatch.AuthFailed):
            self.auth_failed = explain_auth_failure(event.method, event.message)
            log.error("PPP authentication failed (%s)", self.auth_failed)
            self.watcher = None
            return
        self.watcher = None
        if not event.keys_known:
            log.warning(
                "%s succeeded but its keys are unknown (%s): the crypto binding uses a "
                "zero key, which a verifying server rejects",
                event.method,
                event.why_unknown or "this method's keys come only from pppd",
            )
        log.log(NOTICE, "PPP authentication succeeded (%s)", event.method)
        try:
            self.conn.send_call_connected(self.cert_hash, event.hlak, self.loop.time())
        except SstpError as exc:
            self.finish(exc)
            return
        self.connected = True
        log.log(NOTICE, "SSTP call connected: crypto binding sent")
        self.flush()
        if self.config.priv_user or self.config.priv_group:
            drop_privileges(self.config.priv_user, self.config.priv_group)

    # ----- shutdown ----------------------------------------------------------------------

    def shutdown(self, signum: int | None = None) -> None:
        """Graceful end: stop pppd (launch mode), then CALL_DISCONNECT and wait for the ACK."""
        if signum is not None:
            if self.stopping:
                log.warning("second signal: closing at once")
                self.finish(Interrupted("interrupted"))
                return
            log.log(NOTICE, "signal %s: disconnecting", signal.Signals(signum).name)
            if not self.connected:
                self.outcome = self.outcome or Interrupted("interrupted before the tunnel was up")
        self.stopping = True
        if self.pppd is not None and self.pppd.process.returncode is None:
            # pppd sends LCP Terminate through us and exits; pppd_exited() goes on.
            self.pppd.process.send_signal(signal.SIGTERM)
            return
        try:
            self.conn.disconnect(self.loop.time())
        except SstpError:
            # Nothing to say goodbye to: the call never started or is already ending.
            self.finish()
            return
        self.flush()
