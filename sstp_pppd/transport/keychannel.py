"""The key channel: sstpc's unix socket, where pppd plugins hand over the MPPE keys.

sstp-client's ``sstp-pppd-plugin.so`` (option ``sstp-sock``), NetworkManager-sstp's
``nm-sstp-pppd-plugin.so`` and our own plugin connect here from inside pppd (as root), send one
sstp-api message (:mod:`sstp_pppd.core.keymsg`) and read one reply:

* AUTH carries the MPPE send and receive keys at auth-up: ``on_keys(send, recv)`` is called,
  then a bare ACK is sent (the plugin waits for it before pppd goes on to CCP/IPCP);
* ADDR (NetworkManager, at ip-up) is answered with ACK, the gateway name as the user gave it
  and the raw sockaddr of the TLS peer (the server, or the proxy when there is one: the address
  a host route must go to).

The path is sstpc's, which peers files and NetworkManager's plugin hard-code:
``/var/run/sstpc/sstpc-<ipparam>``, or ``sstpc-uds-sock`` without ``--ipparam``.

Access: the socket file is mode 0600 (root, which pppd runs as, connects anyway), and each
connection's SO_PEERCRED uid must be 0, this process's uid or the ``--priv-user``'s; others are
refused and logged. A socket left by a killed run (nobody accepts on it) is replaced; one on
which a live process accepts is not touched. The file is removed on close when it is still
ours (same inode). After ``--priv-user`` drops root, the removal may fail in a root-owned
directory: that is logged and the next run replaces the stale file. Keys are never logged.

In launch mode :func:`keys_plugin_options` adds our own plugin (``sstp-pppd-keys.so``) to
pppd's options when it is installed for that pppd's version, with ``sstp-sock`` naming this
socket, so that any method pppd authenticates with hands its keys over.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pwd
import re
import socket
import stat
import struct
from collections.abc import Callable, Iterable
from types import TracebackType

from ..core import keymsg
from ..core.keymsg import ApiMessage, KeyMessageError, MsgType
from ..errors import ConfigError, NetworkError

log = logging.getLogger("sstp_pppd")

SOCKET_DIR = keymsg.SOCKET_DIR
#: A plugin writes its message at once; one that stalls longer is dropped.
READ_TIMEOUT = 5.0
_UCRED = struct.Struct("=iII")  # pid, uid, gid

#: ``on_keys(send_key, recv_key)``: the keys as pppd gave them (usually 16 bytes each).
KeysCallback = Callable[[bytes, bytes], None]
#: The TLS peer's address as asyncio reports it (``peername``), or None before connecting.
PeerGetter = Callable[[], "tuple[object, ...] | None"]


class LiveSocketError(NetworkError):
    """Another process accepts on the key socket: two clients must not share one name."""


def socket_path(ipparam: str | None, directory: str = SOCKET_DIR) -> str:
    """sstpc's socket name for ``--ipparam`` in ``directory``; ConfigError for a bad name."""
    try:
        return keymsg.socket_path(ipparam, directory)
    except KeyMessageError as exc:
        raise ConfigError(str(exc)) from None


def peer_sockaddr(peer: tuple[object, ...]) -> tuple[str, int]:
    """(address with a numeric zone, port) from asyncio's peername of an INET/INET6 socket."""
    host, port = str(peer[0]), peer[1]
    if not isinstance(port, int):
        raise KeyMessageError(f"peer port {port!r} is not a number")
    host = host.split("%", 1)[0]
    scope = peer[3] if len(peer) >= 4 else 0
    if isinstance(scope, int) and scope:
        host = f"{host}%{scope}"
    return host, port


class KeyChannel:
    """The listening socket. ``async with KeyChannel(...)`` or ``await start()`` / ``close()``."""

    def __init__(
        self,
        path: str,
        *,
        on_keys: KeysCallback,
        gateway: str,
        peer: PeerGetter,
        allowed_uids: Iterable[int] = (),
    ) -> None:
        self.path = path
        self.on_keys = on_keys
        self.gateway = gateway
        self.peer = peer
        self.allowed_uids = frozenset({0, os.getuid(), *allowed_uids})
        self.server: asyncio.base_events.Server | None = None
        self._inode: tuple[int, int] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.keys_received = 0

    async def __aenter__(self) -> KeyChannel:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ----- setup ---------------------------------------------------------------------

    async def start(self) -> None:
        # str paths, not pathlib: its import is start-up time on every pty-mode run.
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            try:
                os.makedirs(directory, mode=0o755, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create {directory}: {exc.strerror}") from exc
        await self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # bind() creates the file with 0777 & ~umask: no window in which it is open.
            old = os.umask(0o177)
            try:
                sock.bind(os.fsencode(self.path))
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            st = os.stat(self.path)
            self._inode = (st.st_dev, st.st_ino)
            sock.listen(8)
            sock.setblocking(False)
            self.server = await asyncio.start_unix_server(self._serve, sock=sock)
        except OSError as exc:
            sock.close()
            self._unlink()
            raise NetworkError(f"cannot listen on {self.path}: {exc.strerror or exc}") from exc
        log.info("key channel listening on %s", self.path)

    async def _clear_stale(self) -> None:
        """Remove a socket nobody accepts on; refuse a live one or a file that is no socket."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"{self.path} exists and is not a socket: not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            probe.connect(os.fsencode(self.path))
        except BlockingIOError:
            # The backlog is full: someone listens, and is busy.
            live = True
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise NetworkError(f"cannot probe {self.path}: {exc.strerror}") from exc
            live = False
        else:
            live = True
        finally:
            probe.close()
        if live:
            raise LiveSocketError(
                f"another process is listening on {self.path} "
                "(another sstpc or sstp-pppd with the same --ipparam?)"
            )
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        log.info("replaced the stale key socket %s", self.path)

    # ----- teardown ------------------------------------------------------------------

    def _unlink(self) -> None:
        if self._inode is None:
            return
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning(
                "could not remove the key socket %s (%s); the next run replaces it",
                self.path,
                exc.strerror,
            )
        self._inode = None

    def hand_over_removal(self) -> Callable[[], None]:
        """The file's removal, for a privileged part to run: this object no longer removes it."""
        inode, self._inode = self._inode, None

        def remove() -> None:
            self._inode = inode
            self._unlink()

        return remove

    def close_now(self) -> None:
        """Stop listening and remove the socket file, synchronously (also from atexit paths)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for task in self._handlers:
            task.cancel()
        self._unlink()

    async def close(self) -> None:
        handlers = list(self._handlers)
        self.close_now()
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)

    # ----- one connection, one message -------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.warning(
                "key channel: the plugin's connection failed: %s", exc or type(exc).__name__
            )
        except KeyMessageError as exc:
            log.warning("key channel: bad message from the plugin: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        pid, uid, _gid = _UCRED.unpack(raw)
        if uid not in self.allowed_uids:
            log.warning("key channel: refused a connection from pid %d uid %d", pid, uid)
            return
        async with asyncio.timeout(READ_TIMEOUT):
            header = await reader.readexactly(keymsg.HEADER_LENGTH)
            _, length = keymsg.parse_header(header)
            payload = await reader.readexactly(length)
        msg = keymsg.decode(header + payload)
        if msg.type is MsgType.AUTH:
            send, recv = msg.keys
            log.info(
                "key channel: MPPE keys from the pppd plugin (pid %d): %d + %d bytes",
                pid,
                len(send),
                len(recv),
            )
            self.keys_received += 1
            self.on_keys(send, recv)
            reply = ApiMessage(MsgType.ACK)
        elif msg.type is MsgType.ADDR:
            reply = self._addr_reply()
            log.info("key channel: answered the gateway query of pid %d", pid)
        else:
            log.warning("key channel: ignored an unexpected %s from pid %d", msg.type.name, pid)
            return
        writer.write(reply.encode())
        await writer.drain()

    def _addr_reply(self) -> ApiMessage:
        peer = self.peer()
        if peer is None or len(peer) < 2:
            # Not connected yet: the name alone, as much as is known.
            gateway = self.gateway.encode("utf-8", "replace")
            return ApiMessage(MsgType.ACK, ((keymsg.AttrType.GATEWAY, gateway),))
        host, port = peer_sockaddr(peer)
        return keymsg.addr_reply(self.gateway, host, port)


async def open_channel(
    path: str | None,
    *,
    on_keys: KeysCallback,
    gateway: str,
    peer: PeerGetter,
    priv_user: str | None = None,
) -> KeyChannel | None:
    """The session's key channel, or None when there is none (``--key-socket none``) or it
    cannot be made (not root): then a warning, and keys come from elsewhere. Another live
    listener on the same name is an error (:class:`LiveSocketError`)."""
    if path is None:
        return None
    allowed: list[int] = []
    if priv_user:
        try:
            allowed.append(pwd.getpwnam(priv_user).pw_uid)
        except KeyError:
            log.warning("key channel: no user %r for --priv-user", priv_user)
    channel = KeyChannel(path, on_keys=on_keys, gateway=gateway, peer=peer, allowed_uids=allowed)
    try:
        await channel.start()
    except LiveSocketError:
        raise
    except (ConfigError, NetworkError) as exc:
        log.warning("key channel: %s; pppd plugins cannot hand over keys", exc)
        return None
    return channel


#: Our plugin (sstp_pppd/plugin, ``sstp-helper install-plugin``) in pppd's plugin directory.
PLUGIN_NAME = "sstp-pppd-keys.so"
PLUGIN_BASE = "/usr/lib/pppd"
_PPPD_VERSION = re.compile(rb"pppd version (\S+)")


async def pppd_version(pppd: str) -> str | None:
    """What ``pppd --version`` says, or None if it cannot tell."""
    try:
        proc = await asyncio.create_subprocess_exec(
            pppd,
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    except (OSError, TimeoutError):
        return None
    m = _PPPD_VERSION.search(out)
    return m.group(1).decode("ascii", "replace") if m else None


async def keys_plugin_options(
    pppd: str, key_socket: str | None, base: str = PLUGIN_BASE
) -> tuple[str, ...]:
    """Launch mode: pppd options that load our plugin, if it is installed for this pppd.

    pppd loads only plugins built for its own version, from ``/usr/lib/pppd/VERSION``. With
    the plugin, every method pppd authenticates with hands its keys over the key socket.
    """
    if key_socket is None:
        return ()
    version = await pppd_version(pppd)
    plugin = os.path.join(base, version, PLUGIN_NAME) if version else None
    if plugin is None or not os.path.isfile(plugin):
        log.info(
            "our pppd plugin is not installed for pppd %s (sstp-helper install-plugin): "
            "binding keys come from the password",
            version or "?",
        )
        return ()
    log.info("loading our pppd plugin %s", plugin)
    return ("plugin", plugin, "sstp-sock", key_socket)
