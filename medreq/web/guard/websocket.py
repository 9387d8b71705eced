"""uvicorn's websockets-sansio protocol, made to let go of sockets that stopped reading.

Measured on the unguarded server (docs/security.md): a client that never reads stayed
ESTABLISHED for as long as we watched, with megabytes queued. Where they wait: first in the
kernel's send queue (autotuned up to `tcp_wmem`'s 4 MiB), then in the transport's buffer,
then, since uvicorn's `send` waits for the transport to drain, in the connection's queue. And every
way uvicorn ends such a socket (the heartbeat's "keepalive ping timeout", the close after the
app returns) calls `transport.close()`: asyncio and uvloop wait for their buffer to flush
(never), and the kernel keeps an orphaned socket with its queue behind the FIN. Here:

- `unsent_bytes()` counts both the transport's buffer and the kernel's send queue;
- `drop(code, reason)` sends the close frame and gives the peer `CLOSE_GRACE` seconds to take
  it; then the socket is reset (SO_LINGER 0 + abort), so kernel and process memory both go.
  `Connection` drops past `ws_max_unsent` bytes or `ws_send_timeout` seconds;
- a peer that does not answer the heartbeat's ping is closed, and reset at once if it has
  data queued (it does not read);
- a close the app started waits `CLOSE_GRACE` for the peer's answer (not uvicorn's 10 s),
  then the socket is reset;
- the socket releases its slot in the `ConnectionGate` (the HTTP protocol that accepted it
  hands it over at the upgrade);
- the server's shutdown lets the app close the socket (``on_shutdown``: 1001 after what it
  already queued, docs/protocol.md) instead of uvicorn's immediate 1012, and closes it the
  uvicorn way only if the app has not within `SHUTDOWN_DRAIN` seconds.

The app finds this protocol as `scope["extensions"]["medreq.socket"]` (a `SocketControl`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
from collections.abc import Callable
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request
from websockets.protocol import Protocol as WebSocketProtocol
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from .admission import ConnectionGate, gate_for
from .heartbeat import Heartbeat, heartbeat_for
from .lean import Flag, Inbox

CLOSE_GRACE = 2.0  # seconds a closing socket may take to flush before it is reset
READ_EVERY = 64  # `unsent_over` answers from its bound before the kernel is asked anyway
UTF8_MAX = 4  # bytes per character at most: a text frame's length bound from its `len`
FRAME_HEADER_MAX = 14  # a frame's header at most (RFC 6455 §5.2)
SHUTDOWN_DRAIN = 5.0  # seconds the app has to close a socket itself when the server stops
EXTENSION = "medreq.socket"


class SocketControl(Protocol):
    """What the app may ask of the socket under a WebSocket, beyond ASGI."""

    def unsent_bytes(self) -> int:
        """Bytes sent but not yet acknowledged by the peer: the frames held for this loop
        iteration's write, the transport's buffer and the kernel's send queue."""

    def unsent_over(self, limit: int) -> bool:
        """Whether `unsent_bytes()` is over `limit`, asking the kernel only when it may be."""

    def drop(self, code: int, reason: str) -> None:
        """Close with `code` if the frame gets through within `CLOSE_GRACE`; reset it if not."""

    def send_text_now(self, text: str) -> bool:
        """Write a text frame at once, as `send` would, if nothing would make `send` wait or
        fail (the transport writable, the socket open); False: nothing written, use `send`."""

    #: Set by the app: how it closes this socket when the server shuts down.
    on_shutdown: Callable[[], None] | None


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    # `unsent_over`'s bound: the kernel's send queue when last read, and at most how many bytes
    # of frames were written since (the queue only shrinks as the peer acknowledges). Class
    # defaults, so a socket that never sent a frame keeps no copy of its own.
    kernel_queued = 0
    written_since = 0
    answers_unread = 0  # `unsent_over` answers given since the kernel was last asked
    held = 0  # bytes of `send_text_now` frames waiting in `conn` for `_flush_frames`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # an asyncio.Queue and Event hold five deques, 3.8 KB of an idle socket (lean.py)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()
        self.gate: ConnectionGate = gate_for(kwargs["server_state"], self.config)
        self.on_shutdown: Callable[[], None] | None = None
        self.heartbeat: Heartbeat = heartbeat_for(kwargs["server_state"], self.loop)
        self.ping_tick: int | None = None  # the heartbeat's, instead of uvicorn's ping_timer

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None:
            self.gate.release(self.client[0])
        super().connection_lost(exc)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the app task is created but has not run yet
            scope["extensions"][EXTENSION] = self

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.send":
            data = message.get("text") or message.get("bytes") or b""
            self.written_since += len(data) * UTF8_MAX + FRAME_HEADER_MAX
        elif message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake's request and response (websockets `Headers`, each header twice:
            # a list and a dict) stayed for the socket's life, read by nothing after it:
            # 3.5 KB of an idle socket.
            with contextlib.suppress(AttributeError):
                del self.request, self.response
            _drop_handshake_parser(self.conn)

    def send_text_now(self, text: str) -> bool:
        # uvicorn's `send` for a `websocket.send`, without its awaits: most frames never wait
        # (connection.py's `Connection._send_at_once` says what that saves)
        if (
            not self.writable.is_set()
            or self.disconnected
            or not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
            or self.conn.state is not State.OPEN
        ):
            return False
        data = text.encode()
        self.conn.send_text(data)
        # Written once per loop iteration, not per frame: the frames one callback sends this
        # socket (a pharmacy's `request_updated` and the ack of its answer; a group's three
        # `request_updated` to its patient) leave in one write, one system call. Every other
        # write here and in uvicorn takes `conn.data_to_send()` whole, so frames still leave
        # in the order they were made.
        if not self.held:
            self.loop.call_soon(self._flush_frames)
        self.held += len(data) + FRAME_HEADER_MAX
        self.written_since += len(text) * UTF8_MAX + FRAME_HEADER_MAX
        return True

    def _flush_frames(self) -> None:
        self.held = 0
        output = self.conn.data_to_send()
        if output and not self.transport.is_closing():
            self.transport.write(b"".join(output))

    # --- the heartbeat: one timer for all sockets (heartbeat.py) ------------------------------

    def schedule_ping(self) -> None:
        assert self.ping_interval is not None
        delay = max(0.0, self.ping_interval - self.last_ping_rtt)  # as uvicorn's
        self.ping_tick = self.heartbeat.add(self, delay)

    def send_keepalive_ping(self) -> None:
        self.ping_tick = None
        super().send_keepalive_ping()

    def stop_keepalive(self) -> None:
        if self.ping_tick is not None:
            self.heartbeat.remove(self, self.ping_tick)
            self.ping_tick = None
        super().stop_keepalive()

    # --- SocketControl -----------------------------------------------------------------------

    def unsent_bytes(self) -> int:
        if self.transport.is_closing():
            return 0
        # the frames held for this iteration's write go to the kernel next: counted with it
        self.kernel_queued = _kernel_unsent(self.transport) + self.held
        self.written_since = self.answers_unread = 0
        return self.transport.get_write_buffer_size() + self.kernel_queued

    def unsent_over(self, limit: int) -> bool:
        """`unsent_bytes() > limit`, with the `ioctl` only when the kernel's queue at its last
        reading plus every frame written since could be over, or after `READ_EVERY` answers
        (pings and pongs, a few bytes each, are not counted): the `ioctl` was ~8 µs of four
        sends per full cycle (cProfile under `bench cycle`, issue 14)."""
        if self.transport.is_closing():
            return False
        bound = self.transport.get_write_buffer_size() + self.kernel_queued + self.written_since
        if bound <= limit and self.answers_unread < READ_EVERY:
            self.answers_unread += 1
            return False
        return self.unsent_bytes() > limit

    def drop(self, code: int, reason: str) -> None:
        if self.disconnected:
            return
        if not self.close_sent and not self.transport.is_closing():
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            with contextlib.suppress(InvalidState):
                self.conn.send_close(code, reason)
                self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.stop_keepalive()
            if self.read_paused:  # to read the peer's answering close frame
                self.read_paused = False
                self.transport.resume_reading()
        self._reset_later()

    # --- every way uvicorn ends a socket, made to end ----------------------------------------

    def keepalive_timeout(self) -> None:
        # No pong within ws_ping_timeout. A peer that still reads gets uvicorn's close frame;
        # for one that does not, whatever is queued will not be read either: reset.
        if self.unsent_bytes() > 0:
            _linger_zero(self.transport)
        super().keepalive_timeout()
        self._reset_later()  # if the transport's own buffer keeps close() waiting

    def on_task_complete(self, task: asyncio.Task[None]) -> None:
        super().on_task_complete(task)
        if self.close_timer is not None:  # the app closed; uvicorn would wait 10 s, then close()
            self._reset_later()

    def shutdown(self) -> None:
        # uvicorn's Server.shutdown asks every connection to end, then waits for them all.
        if self.on_shutdown is not None and self.handshake_complete and not self.close_sent:
            self.on_shutdown()
            self.loop.call_later(SHUTDOWN_DRAIN, self._shutdown_now)
        else:
            self._shutdown_now()

    def _shutdown_now(self) -> None:
        if self.disconnected:
            return
        super().shutdown()
        self._reset_later()

    def _reset_later(self) -> None:
        """Reset the socket in `CLOSE_GRACE` s unless it ends by then (uvicorn's `close_timer`:
        a peer's close frame cancels it and closes the transport normally)."""
        if self.disconnected:
            return
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = self.loop.call_later(CLOSE_GRACE, self._reset)

    def _reset(self) -> None:
        self.close_timer = None
        if not self.disconnected:
            _linger_zero(self.transport)
            self.transport.abort()


def _drop_handshake_parser(conn: ServerProtocol) -> None:
    """Run the frame parser without the handshake's generator frame around it.

    `ServerProtocol.parse` reads the request, then runs `Protocol.parse` (the frame loop)
    inside its own frame, which keeps the parsed request (headers and all) as a local for
    the socket's life: 1.7 KB of an idle socket. Right after the 101, the client has sent
    nothing yet (it waits for the response), so the loop waits at its top for data: a fresh
    `Protocol.parse` there is the same parser without the handshake's frame. If the parser
    is anywhere else it is left alone.
    """
    if conn.reader.buffer:
        return
    chain: Any = conn.parser
    for expected in (ServerProtocol.parse, WebSocketProtocol.parse, StreamReader.at_eof):
        if getattr(chain, "gi_code", None) is not expected.__code__:
            return
        chain = chain.gi_yieldfrom
    fresh = WebSocketProtocol.parse(conn)
    next(fresh)  # to the same place: waiting in at_eof for the first frame
    conn.parser = fresh


def _linger_zero(transport: asyncio.BaseTransport) -> None:
    """Make the next close a reset: the kernel drops the socket's queue instead of keeping an
    orphan that retransmits to a peer that never reads."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _kernel_unsent(transport: asyncio.BaseTransport) -> int:
    """Bytes in the kernel's send queue not yet acknowledged by the peer (Linux SIOCOUTQ)."""
    sock = transport.get_extra_info("socket")
    if sock is None or _SIOCOUTQ is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


_SIOCOUTQ: int | None = getattr(termios, "TIOCOUTQ", None)  # same number as SIOCOUTQ on Linux
