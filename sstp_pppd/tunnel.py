"""The transport: TLS to the server, the SSTP state machine, and the relay to pppd's pty.

Everything protocol-shaped happens in the sans-IO core (``connection``, ``hdlc``,
``pppwatch``, ``crypto``); this module only moves bytes between asyncio transports, runs
the timers the core asks for, and turns the core's events into log lines and an outcome.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from typing import Any

from . import connection as sstp
from . import crypto, hdlc, pppwatch
from .config import Config
from .errors import (
    AuthenticationError,
    ConnectionLost,
    ExitCode,
    HttpError,
    Interrupted,
    KeepaliveTimeout,
    PppdError,
    RemoteAbort,
    SstpError,
    SstpPppdError,
    TlsError,
)
from .handshake import ResponseParser, check_sstp_response, new_correlation_id, sstp_request
from .logsetup import NOTICE
from .messages import StatusCode
from .net import open_tcp, open_via_proxy, proxy_for
from .pppd import (
    PPPD_AUTH_FAILED,
    PPPD_NORMAL,
    Pppd,
    describe_exit,
    drop_privileges,
    find_pppd,
)
from .pppwatch import PasswordLookup, ppp_protocol
from .relay import PtyLink, TlsLink
from .tls import check_pins, describe_failure, make_context, server_hostname
from .trace import PacketTrace

log = logging.getLogger("sstp_pppd")

#: [MS-SSTP] 3.2.4.1: the client waits this long for the HTTP response.
HTTP_TIMEOUT = 60.0
#: Frames pppd sends before the server acknowledged the call are held, not lost: a lost
#: first LCP Configure-Request costs pppd's 3 s restart timer. Beyond this, drop.
EARLY_FRAMES_MAX = 64
#: PPP protocols below this carry network-layer data (RFC 1661 3.1): once the server
#: sends such a frame after CALL_CONNECTED, it has accepted the binding.
_FIRST_CONTROL_PROTOCOL = 0x4000


#: MS-CHAP failure codes (RFC 2759 6; Windows RAS error numbers).
_MSCHAP_ERRORS = {
    646: "logons are not allowed at this time",
    647: "the account is disabled",
    648: "the password has expired",
    649: "the account has no dial-in permission",
    691: "wrong user name or password",
    709: "changing the password failed",
}


def explain_auth_failure(method: str, message: str) -> str:
    """``MS-CHAPv2: wrong user name or password (server: Access denied)`` from E=/M= fields."""
    fields = dict(
        part.split("=", 1) for part in message.split() if "=" in part and part[:2] != "M="
    )
    text = message.split("M=", 1)[1].strip() if "M=" in message else ""
    code = fields.get("E", "")
    reason = _MSCHAP_ERRORS.get(int(code), f"error {code}") if code.isdigit() else ""
    if not reason:
        return f"{method}: {message}" if message else method
    return f"{method}: {reason}" + (f" (server: {text})" if text else "")


def _status_name(status: int) -> str:
    try:
        return StatusCode(status).name
    except ValueError:
        return f"status {status}"


class Tunnel:
    """One SSTP session from TCP connect to the last byte, in either pppd mode."""

    def __init__(self, config: Config, password_lookup: PasswordLookup) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.conn = sstp.Connection()
        self.decoder = hdlc.Decoder()
        self.watcher: pppwatch.AuthWatcher | None = pppwatch.AuthWatcher(password_lookup)
        self.tls: TlsLink | None = None
        self.pty: PtyLink | None = None
        self.pppd: Pppd | None = None
        self.cert_der = b""
        self.cert_hash = b""
        self.acked = asyncio.Event()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.outcome: SstpPppdError | None = None
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

    def finish(self, outcome: SstpPppdError | None = None) -> None:
        """Record how the session ends (the first reason wins) and wake ``run``."""
        if self.outcome is None and outcome is not None and not self.done.done():
            self.outcome = outcome
        if not self.done.done():
            self.done.set_result(None)

    # ----- the TLS side ----------------------------------------------------------------

    async def connect(self, sock: Any) -> None:
        """TLS handshake on a connected socket, then the HTTP SSTP_DUPLEX_POST exchange."""
        cfg = self.config
        ctx = make_context(cfg)
        try:
            transport, link = await self.loop.create_connection(
                lambda: TlsLink(self),
                sock=sock,
                ssl=ctx,
                server_hostname=server_hostname(cfg),
                ssl_handshake_timeout=cfg.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                raise TlsError("TLS: the server did not complete the handshake in time") from exc
            raise TlsError(describe_failure(exc, cfg)) from exc
        self.tls = link
        ssl_obj = transport.get_extra_info("ssl_object")
        self.cert_der = ssl_obj.getpeercert(binary_form=True) or b""
        check_pins(self.cert_der, cfg.pins)
        log.log(
            NOTICE,
            "TLS established: %s, %s, certificate %s",
            ssl_obj.version(),
            ssl_obj.cipher()[0] if ssl_obj.cipher() else "?",
            "pinned" if cfg.pins else ("NOT verified" if cfg.insecure else "verified"),
        )
        guid = cfg.correlation_id or new_correlation_id(uuid.uuid4())
        parser = ResponseParser()
        link.http_parser = parser
        link.write(sstp_request(cfg.tls_name, guid))
        log.info("sent SSTP_DUPLEX_POST, correlation id %s", guid)
        try:
            response = await asyncio.wait_for(link.http_response, HTTP_TIMEOUT)
        except TimeoutError:
            raise HttpError(
                f"the server did not answer the HTTP request within {HTTP_TIMEOUT:.0f} s"
            ) from None
        for warning in check_sstp_response(response):
            log.warning("%s", warning)
        log.info("HTTP %d %s", response.status, response.reason)
        link.http_parser = None
        self.conn.start(self.loop.time())
        self.flush()
        if parser.trailing:
            self.from_server(parser.trailing)

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

    def handle_event(self, event: object) -> None:
        match event:
            case sstp.PppFrames(frames=frames):
                self.frames_from_server(frames)
            case sstp.ConnectAcked(hash_protocol=hash_protocol):
                self.cert_hash = crypto.cert_hash(self.cert_der, int(hash_protocol))
                log.log(
                    NOTICE,
                    "SSTP call accepted by the server (binding hash %s)",
                    "SHA-256" if int(hash_protocol) == 2 else "SHA-1",
                )
                self.acked.set()
            case sstp.EchoRequested():
                log.debug("echo request from the server answered")
            case sstp.Disconnected(status=status):
                if self.stopping:
                    log.log(NOTICE, "SSTP disconnected")
                else:
                    self.finish(
                        ConnectionLost(f"the server disconnected the call ({_status_name(status)})")
                    )
            case sstp.Aborted(status=status, local=local):
                if local:
                    self.finish(
                        SstpError(f"SSTP protocol error: aborted the call ({_status_name(status)})")
                    )
                else:
                    hint = (
                        " (the server rejected the crypto binding)"
                        if status == StatusCode.INVALID_FRAME_RECEIVED and self.connected
                        else ""
                    )
                    self.finish(
                        RemoteAbort(
                            f"the server aborted the call ({_status_name(status)}){hint}", status
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
            error: SstpPppdError = HttpError(
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
        try:
            for frame in frames:
                if watcher is not None:
                    self.auth_event(watcher.from_pppd(frame))
                    watcher = self.watcher
                send(frame)
        except SstpError as exc:
            log.debug("frame from pppd not sent: %s", exc)
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
                "%s succeeded but its keys are unknown (no password at hand): the "
                "crypto binding uses a zero key and a verifying server will reject it",
                event.method,
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

    async def supervise_pppd(self) -> None:
        assert self.pppd is not None
        status = await self.pppd.process.wait()
        log.info("%s", describe_exit(status))
        if status == PPPD_AUTH_FAILED or self.auth_failed:
            self.outcome = self.outcome or AuthenticationError(
                f"PPP authentication failed ({self.auth_failed or describe_exit(status)})"
            )
        elif status not in PPPD_NORMAL and not self.stopping:
            self.outcome = self.outcome or PppdError(describe_exit(status))
        elif not self.connected and not self.stopping:
            self.outcome = self.outcome or PppdError(
                f"{describe_exit(status)} before the tunnel was up"
            )
        self.stopping = True
        self.shutdown()

    async def run(self) -> None:
        """Drive the session until it ends; raise its outcome, if any."""
        cfg = self.config
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.loop.add_signal_handler(signum, self.shutdown, signum)
        try:
            proxy = proxy_for(cfg)
            if proxy:
                sock = await open_via_proxy(
                    proxy, cfg.server.host, cfg.server.port, cfg.connect_timeout
                )
            else:
                sock = await open_tcp(cfg.server.host, cfg.server.port, cfg.connect_timeout)
            await self.race(self.connect(sock))
            if cfg.nolaunchpppd:
                self.pty = await PtyLink.open(self, os.dup(0), os.dup(1))
                await self.race(self.acked.wait())
            else:
                await self.race(self.acked.wait())
                self.pppd = await Pppd.start(
                    find_pppd(cfg.pppd),
                    user=cfg.user,
                    password=cfg.password,
                    ipparam=cfg.ipparam,
                    options=cfg.pppd_options,
                )
                master = self.pppd.take_master()
                self.pty = await PtyLink.open(self, master, os.dup(master))
                self.loop.create_task(self.supervise_pppd())
            self.start_relay()
            await self.done
        finally:
            await self.cleanup()
        if self.auth_failed and not isinstance(self.outcome, AuthenticationError):
            self.outcome = AuthenticationError(f"PPP authentication failed ({self.auth_failed})")
        if self.outcome is not None:
            raise self.outcome

    async def race(self, aw: Any) -> None:
        """Await ``aw`` unless the session ends first."""
        task = asyncio.ensure_future(aw)
        await asyncio.wait({task, self.done}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            return
        task.cancel()
        if self.outcome is not None:
            raise self.outcome
        raise Interrupted("interrupted")

    async def cleanup(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.loop.remove_signal_handler(signum)
        if self._timer is not None:
            self._timer.cancel()
        if self.pppd is not None:
            status = await self.pppd.stop()
            log.debug("pppd reaped: %s", describe_exit(status))
        if self.pty is not None:
            self.pty.close()
        if self.tls is not None:
            self.tls.close()
            await self.tls.closed_wait(2.0)


def exit_code_of(exc: BaseException | None) -> ExitCode:
    if exc is None:
        return ExitCode.OK
    if isinstance(exc, SstpPppdError):
        return exc.exit_code
    return ExitCode.INTERNAL
