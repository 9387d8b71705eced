"""The server's own HTTP requests: POSTs to webhook receivers and push services (HTTP/1.1).

The deliverer (`service.deliverer`) sends one small POST per event and needs only the status
code back. httpx did that for ~2.5 ms of server CPU per delivery, most of it in httpcore's
connection-pool bookkeeping, and made the full cycle by webhook 47 % slower than by socket
(docs/benchmarks.md, "Webhook delivery"). This client does only what the deliverer needs: the
request head written by hand (every part of it checked to be plain visible ASCII, so a URL
cannot smuggle a header), the response read by `httptools` (llhttp, the parser uvicorn uses)
over asyncio streams:

- **Keep-alive per origin.** Idle connections are kept per (scheme, host, port), newest first,
  at most `MAX_IDLE` each and for at most `IDLE_SECONDS` (under the 5 s keep-alive of common
  servers, uvicorn's included, so a pooled connection is rarely one the receiver is closing).
  A reused connection that fails before any byte of the response arrived was closed by the
  receiver while idle: the request is sent once more on a new connection.
- **SSRF checked at connect time.** A new connection resolves the host once, refuses it unless
  every address is public (`netguard.is_public`; unless private targets are allowed), and
  connects to one of *those* addresses, so DNS cannot re-point the name between the check and
  the connection. A pooled connection stays on the address that was checked.
- **No redirects** (a 3xx is just a status), no cookies, no proxies from the environment,
  TLS verified with the system's CA store, one deadline for the whole exchange, and response
  bodies read to at most `MAX_RESPONSE_BODY` (a longer one closes the connection instead).

Errors are `PostError` (or its `TargetRefused`) with a one-line reason for the delivery log; never
the request body.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from .netguard import RESOLVE_SECONDS, VISIBLE_ASCII, is_public, parse_target

MAX_IDLE = 32  # idle connections kept per origin
IDLE_SECONDS = 4.0
MAX_RESPONSE_BODY = 64 * 1024
READ_CHUNK = 16 * 1024

Origin = tuple[str, str, int]  # scheme, host, port
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")


class PostError(Exception):
    """The POST got no HTTP response: DNS, connection, TLS, timeout or protocol; worth a retry."""


class TargetRefused(PostError):
    """The host resolves to an address the server must not send to (SSRF): not worth a retry."""


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class OutboundClient:
    """POSTs with keep-alive; `async with` it, or call `close()`."""

    def __init__(
        self, *, timeout: float, allow_private: bool, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}

    async def __aenter__(self) -> OutboundClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST `body` to `url`; the response's status code. PostError when there is none;
        `netguard`'s Invalid when the URL itself is not a permitted target."""
        origin, head = _request_head(url)
        lines = [head, f"Content-Length: {len(body)}"]
        for name, value in headers.items():
            if not (VISIBLE_ASCII.fullmatch(name) and _HEADER_VALUE.fullmatch(value)):  # ours, never a user's
                raise ValueError(f"header {name!r} is not plain ASCII")
            lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        try:
            async with asyncio.timeout(self.timeout):
                connection = self._reuse(origin)
                if connection is not None:
                    try:
                        return await self._exchange(origin, connection, request)
                    except _ClosedWhileIdle:
                        pass  # the receiver closed it while it was idle: once more, on a new one
                connection = await self._connect(origin)
                try:
                    return await self._exchange(origin, connection, request)
                except _ClosedWhileIdle as exc:
                    raise PostError(_describe(exc.__cause__)) from None
        except TimeoutError:
            raise PostError(f"no response within {self.timeout:g} s") from None
        except httptools.HttpParserError as exc:
            raise PostError(f"invalid HTTP response: {exc}"[:200]) from None
        except ssl.SSLError as exc:
            raise PostError(f"TLS: {exc.reason or exc}"[:200]) from None
        except OSError as exc:
            raise PostError(_describe(exc)) from None

    # --- connections ----------------------------------------------------------------------

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if now - connection.idle_since < IDLE_SECONDS and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    def _keep(self, origin: Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        addresses = await self._addresses(host, port)
        context = None
        if scheme == "https":
            context = self._ssl or _default_ssl_context()
        failure: OSError | None = None
        for family, address in addresses:
            try:
                reader, writer = await asyncio.open_connection(
                    address,
                    port,
                    family=family,
                    ssl=context,
                    server_hostname=host if context else None,
                    limit=READ_CHUNK * 4,
                )
            except OSError as exc:  # try the next address
                failure = exc
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _Connection(reader, writer)
        assert failure is not None
        raise failure

    async def _addresses(self, host: str, port: int) -> list[tuple[int, str]]:
        """The addresses to connect to, every one of them checked (unless private ones are allowed)."""
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_SECONDS
            )
        except (OSError, TimeoutError):
            raise PostError(f"host name {host!r} does not resolve") from None
        addresses = list(dict.fromkeys((int(info[0]), str(info[4][0])) for info in infos))
        if not self.allow_private and not all(is_public(address) for _family, address in addresses):
            raise TargetRefused(f"{host!r} resolves to a non-public address: refused")
        if not addresses:
            raise PostError(f"host name {host!r} does not resolve")
        return addresses

    async def _exchange(self, origin: Origin, connection: _Connection, request: bytes) -> int:
        response = _Response()
        parser = response.parser = httptools.HttpResponseParser(response)
        received_any = False
        try:
            connection.writer.write(request)
            while not response.complete:
                chunk = await connection.reader.read(READ_CHUNK)
                if not chunk:  # the receiver closed the connection
                    if response.status is None:
                        raise ConnectionResetError("connection closed before a response")
                    response.keep_alive = False  # a body delimited by the close (HTTP/1.0 style)
                    break
                received_any = True
                parser.feed_data(chunk)
                if response.body_size > MAX_RESPONSE_BODY:  # the status is known: stop reading
                    response.keep_alive = False
                    break
        except (OSError, httptools.HttpParserError) as exc:
            connection.close()
            if not received_any:  # nothing came back
                raise _ClosedWhileIdle from exc
            raise
        except BaseException:  # a timeout or cancellation mid-exchange: the connection is unusable
            connection.close()
            raise
        assert response.status is not None
        if response.keep_alive:
            self._keep(origin, connection)
        else:
            connection.close()
        return response.status


class _Response:
    """httptools' callbacks for one response: its status, how much body, whether it ended."""

    __slots__ = ("body_size", "complete", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.status: int | None = None
        self.body_size = 0
        self.complete = False
        self.keep_alive = False

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()  # after a 1xx, the final response's

    def on_body(self, data: bytes) -> None:
        self.body_size += len(data)

    def on_message_complete(self) -> None:
        assert self.parser is not None
        if self.status is not None and self.status >= 200:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()  # only valid inside the callback


@functools.lru_cache(maxsize=1024)
def _request_head(url: str) -> tuple[Origin, str]:
    """The origin and the request line + Host header of a URL (a receiver's URL rarely changes)."""
    host, port = parse_target(url)  # Invalid: not a URL the server may send to
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, host, port), f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}"


class _ClosedWhileIdle(Exception):
    """The connection failed before any response byte: safe to send the request once more."""


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"[:200]
    if isinstance(exc, httptools.HttpParserError):
        return "connection closed before a response"
    return f"{type(exc).__name__}: {exc}"[:200]


_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    """The system's CA store, loaded once (loading it costs milliseconds)."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context
