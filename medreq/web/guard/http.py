"""uvicorn's httptools protocol with the limits it lacks: header size, header time, connection caps.

Measured on the unguarded server (docs/security.md, `loadtests/attacks.py`):

- httptools has no limit on a header line: one 100 MiB header took the server from 85 to 247 MB
  and `/health` to 3.8 s. Here the request line and headers are fed to the parser at most
  `max_header_bytes` at a time; a request whose headers do not end within them is answered
  431 `headers_too_large` and the connection closed.
- uvicorn arms no timer until a first response is sent: 500 slowloris connections (a header
  byte every 5 s) stayed open for as long as the attacker liked, as did idle ones. Here a
  request's headers must be complete `header_timeout` seconds after the connection opened (or
  the request's first byte arrived); its body may not pause longer than `body_timeout`
  (the same attack on the body: headers sent at once, then a byte now and then); between
  requests uvicorn's `timeout_keep_alive` applies.
- Connections over `ConnectionGate`'s caps are answered 503 `unavailable` with Retry-After.

uvicorn's own `limit_concurrency` was not used: it answers text/plain without Retry-After, has
no per-address cap, and counts in-flight requests, not sockets (it still accepts every one).

A refused or oversize request gets its answer, then a half-close and `LINGER` seconds in which
whatever else it sends is read and discarded: closing at once with unread data makes the
kernel send a reset that can destroy the answer before the client reads it.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ...protocol import dumps
from ...protocol.errors import HeadersTooLarge, InvalidJSON, MedreqError, Unavailable
from .admission import ConnectionGate, gate_for

LINGER = 1.0  # seconds a refused connection is drained before it is closed
MAX_LINGERING = 128  # refused sockets drained at once (half of the default fd_reserve)


class GuardedHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with `max_header_bytes`, `header_timeout`, `body_timeout` and
    connection caps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate: ConnectionGate = gate_for(self.server_state, self.config)
        self.address = ""
        self.admitted = False  # counted in the gate: released when the socket ends
        self.refusing = False  # answered with an error: only draining until closed
        self.lingering = False  # counted in the gate's `lingering` until closed
        self.upgraded = False  # handed to the WebSocket protocol, which releases the gate
        self.awaiting_headers = True
        self.header_bytes = 0  # bytes received since the current request's headers began
        self.head_size = 0  # request line and headers as the parser reported them
        self.header_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.in_body = False  # the current request's headers are in and its body is not
        self.last_body = 0.0  # loop time the current request's body last made progress

    # --- connection life ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = self.client[0] if self.client else ""
        if not self.gate.admit(self.address, len(self.connections) - 1):
            self.connections.discard(self)  # a refused socket never counts against the cap
            self.refuse(self.gate.refusal(self.address))
            return
        self.admitted = True
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()
        if self.lingering:
            self.lingering = False
            self.gate.lingering -= 1
        if self.admitted and not self.upgraded:
            self.admitted = False
            self.gate.release(self.address)
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self.upgraded = True  # from here the WebSocket protocol owns this socket's gate slot
        self._cancel_header_timer()
        self._cancel_body_timer()
        super().handle_websocket_upgrade()

    # --- bytes in ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._feed(data)
        # Timers are armed only for a request still incomplete when its bytes so far are parsed:
        # one whose headers (and body) came in one read, as nearly all do, needs none. Armed
        # and cancelled in the same call, the two cost 5 µs of a request (timeit: 2.6 µs a
        # pair on uvloop). The header deadline still runs from the request's first byte.
        if self.refusing or self.upgraded or self.transport.is_closing():
            return
        if self.awaiting_headers:
            if self.header_timer is None:
                self._arm_header_timer()
        elif self.in_body and self.body_timer is None:
            self.body_timer = self.loop.call_later(self.gate.limits.body_timeout, self._body_timeout)

    def _feed(self, data: bytes) -> None:
        if self.refusing:
            return  # draining: read and discarded
        if not self.awaiting_headers:
            super().data_received(data)
            return
        room = self.gate.limits.max_header_bytes - self.header_bytes
        if len(data) <= room:
            self.header_bytes += len(data)
            super().data_received(data)
            return
        # Feed no more than the limit; if the headers end within it, the rest is body or the
        # next pipelined request, and parsing goes on as usual.
        self.header_bytes += room
        super().data_received(data[:room])
        if self.awaiting_headers and not self.refusing and not self.transport.is_closing():
            limit = self.gate.limits.max_header_bytes
            self.refuse(HeadersTooLarge(f"request line and headers exceed {limit} bytes"))
            return
        if not self.refusing and not self.transport.is_closing():
            self._feed(data[room:])

    # --- parser callbacks --------------------------------------------------------------------
    # The byte count above bounds what the parser buffers; `head_size` (what the callbacks saw)
    # also catches the headers of a pipelined request that arrived in one chunk with the last.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.awaiting_headers = True
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        self.head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4  # ": " and CRLF
        if not self.refusing:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.awaiting_headers = False
        self.header_bytes = 0
        self._cancel_header_timer()
        if self.refusing:
            return
        limit = self.gate.limits.max_header_bytes
        if self.head_size > limit:
            self.refuse(HeadersTooLarge(f"request line and headers exceed {limit} bytes"))
            return
        super().on_headers_complete()
        if not self.upgraded and not self.transport.is_closing():
            self.last_body = self.loop.time()
            self.in_body = True  # until the message completes (data_received arms the timer)

    def on_body(self, body: bytes) -> None:
        if not self.refusing:
            self.last_body = self.loop.time()  # no timer per chunk: `_body_timeout` re-arms itself
            super().on_body(body)

    def on_message_complete(self) -> None:
        self.in_body = False
        self._cancel_body_timer()
        if not self.refusing:
            super().on_message_complete()

    # --- answers that end the connection -----------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """An HTTP request httptools cannot parse: the §1 body (uvicorn's own is plain text)."""
        self.refuse(InvalidJSON(f"malformed HTTP request: {msg.rstrip('.')}"))

    def refuse(self, error: MedreqError) -> None:
        """Answer `error` (§1 body), half-close, drain for `LINGER` seconds, then close.

        A flood of refusals would spend the descriptors kept in reserve on lingering sockets:
        past `MAX_LINGERING` of them, a refused socket is just closed, without an answer."""
        self.refusing = True
        self._cancel_header_timer()
        self._unset_keepalive_if_required()
        if self.gate.lingering >= MAX_LINGERING:
            self.transport.abort()
            return
        self.gate.lingering += 1
        self.lingering = True
        body = dumps(error.body()).encode()
        lines = [f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}"]
        lines += [f"{name.decode()}: {value.decode()}" for name, value in self.server_state.default_headers]
        lines += ["content-type: application/json", f"content-length: {len(body)}", "connection: close"]
        if isinstance(error, Unavailable):
            lines.append(f"retry-after: {round(error.retry_after)}")
        self.transport.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self._close)

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    # --- the header timer --------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        self.header_timer = self.loop.call_later(self.gate.limits.header_timeout, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _cancel_body_timer(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _body_timeout(self) -> None:
        """A request body that paused longer than `body_timeout`: close (the app sees a disconnect)."""
        self.body_timer = None
        if self.transport.is_closing():
            return
        idle = self.loop.time() - self.last_body
        timeout = self.gate.limits.body_timeout
        if idle >= timeout:
            self.transport.close()
        else:
            self.body_timer = self.loop.call_later(timeout - idle, self._body_timeout)

    def _header_timeout(self) -> None:
        """Headers still incomplete: close without an answer (a slowloris client gets nothing)."""
        self.header_timer = None
        if self.awaiting_headers and not self.refusing and not self.transport.is_closing():
            self.transport.close()
