"""TCP to the server: every resolved address in turn, directly or through an HTTP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..core.handshake import ResponseParser, check_proxy_response, connect_request
from ..core.proxy import parse_proxy_url, proxy_from_environment
from ..errors import ConfigError, HttpError, NetworkError

log = logging.getLogger(__name__)


#: A blocking resolver with socket.getaddrinfo's signature (tests give one that stalls).
Resolver = Callable[..., list[tuple[Any, Any, Any, Any, Any]]]


async def resolve(
    host: str, port: int, timeout: float = 10.0, resolver: Resolver | None = None
) -> list[tuple[int, tuple[str, int]]]:
    """All (family, sockaddr) pairs for host:port, in the resolver's order.

    The lookup runs in a thread of its own, a daemon, and is awaited for ``timeout``
    seconds at most. Not in asyncio's executor (``loop.getaddrinfo``): a cancelled lookup
    would go on blocking one of its threads, and asyncio.run waits for those at exit, so
    a signal during a slow lookup would end the process only when the resolver gives up
    (30 s and more with a dead DNS server). A daemon thread is simply left behind.
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        # An address needs no resolver, nor a thread (memory).
        return [(int(family), (host, port))]
    lookup = resolver or socket.getaddrinfo  # looked up now: tests may replace it
    name = _ascii_name(host)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[list[tuple[Any, Any, Any, Any, Any]]] = loop.create_future()

    def settle(
        result: list[tuple[Any, Any, Any, Any, Any]] | None, exc: BaseException | None
    ) -> None:
        if answer.done():
            return  # timed out or cancelled meanwhile
        if exc is not None:
            answer.set_exception(exc)
        else:
            answer.set_result(result or [])

    def work() -> None:
        try:
            result = lookup(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except Exception as exc:  # noqa: BLE001 (handed to the loop, which decides)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name=f"resolve {host}", daemon=True).start()
    try:
        infos = await asyncio.wait_for(answer, timeout)
    except TimeoutError:
        raise NetworkError(
            f"cannot resolve {host!r}: no answer within {timeout:g} s (--connect-timeout)"
        ) from None
    except socket.gaierror as exc:
        raise NetworkError(f"cannot resolve {host!r}: {exc.strerror}") from exc
    except OSError as exc:
        raise NetworkError(f"cannot resolve {host!r}: {exc.strerror or exc}") from exc
    except UnicodeError:  # IDNA: an empty or over-long label
        raise NetworkError(f"cannot resolve {host!r}: not a valid host name") from None
    seen: list[tuple[int, tuple[str, int]]] = []
    for family, _type, _proto, _canon, addr in infos:
        pair = (int(family), (str(addr[0]), int(addr[1])))
        if pair not in seen:
            seen.append(pair)
    return seen


def _ascii_name(host: str) -> str | bytes:
    """``host`` as getaddrinfo should get it: an ASCII name as bytes.

    getaddrinfo runs any str through the "idna" codec, whose import (stringprep,
    unicodedata) costs start-up time and RSS that nothing else needs. IDNA leaves an
    ASCII name as it is, but refuses an empty or over-long label: so does this.
    """
    if not host or not host.isascii():
        return host  # a real IDNA name (or none at all): the codec decides
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not all(0 < len(label) < 64 for label in labels):
        raise NetworkError(f"cannot resolve {host!r}: not a valid host name")
    return host.encode("ascii")


async def open_tcp(
    host: str, port: int, timeout: float, resolver: Resolver | None = None
) -> socket.socket:
    """A connected non-blocking socket to the first address of ``host`` that answers."""
    loop = asyncio.get_running_loop()
    failures = []
    for family, addr in await resolve(host, port, timeout, resolver):
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setblocking(False)
        try:
            log.log(25, "connecting to %s port %d", addr[0], addr[1])
            await asyncio.wait_for(loop.sock_connect(sock, addr), timeout)
        except (OSError, TimeoutError) as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                reason = "timed out"
            else:
                # asyncio's strerror is "Connect call failed (addr)": the errno says why.
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
            log.info("%s port %d: %s", addr[0], addr[1], reason)
            failures.append(f"{addr[0]}: {reason}")
            continue
        except BaseException:
            sock.close()  # cancelled (a signal): leave no socket behind
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise NetworkError(f"cannot connect to {host} port {port}: " + "; ".join(failures))


async def open_via_proxy(proxy_url: str, host: str, port: int, timeout: float) -> socket.socket:
    """Connect to the proxy and ask it (HTTP CONNECT) for a tunnel to host:port."""
    try:
        proxy = parse_proxy_url(proxy_url)
    except ValueError as exc:
        raise ConfigError(f"proxy: {exc}") from None
    # Every failure names the proxy: one taken from $https_proxy is easily forgotten, and
    # its address or its HTTP refusal would otherwise pass for the VPN server's.
    name = f"proxy {proxy.host} port {proxy.port}"
    try:
        sock = await open_tcp(proxy.host, proxy.port, timeout)
    except NetworkError as exc:
        raise NetworkError(f"proxy: {exc}") from None
    loop = asyncio.get_running_loop()
    request = connect_request(host, port, proxy.username, proxy.password)
    parser = ResponseParser()
    try:
        await loop.sock_sendall(sock, request)
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(sock, 4096)
                if not data:
                    raise NetworkError(f"the {name} closed the connection during CONNECT")
                response = parser.feed(data)
                if response is not None:
                    break
        check_proxy_response(response, credentials_sent=proxy.username is not None)
    except TimeoutError:
        sock.close()
        raise NetworkError(f"the {name} did not answer CONNECT in time") from None
    except OSError as exc:
        sock.close()
        raise NetworkError(f"{name}: {exc.strerror or exc}") from exc
    except HttpError as exc:
        sock.close()
        raise HttpError(f"{name}: {exc}", exc.status) from None
    except BaseException:
        sock.close()
        raise
    log.info("proxy %s:%d opened a tunnel to %s:%d", proxy.host, proxy.port, host, port)
    return sock


def proxy_for(config: Config) -> str | None:
    """--proxy, else the proxy the environment names for this server (honouring no_proxy)."""
    if config.proxy:
        return config.proxy
    return proxy_from_environment(os.environ, config.server.host, config.server.port)
