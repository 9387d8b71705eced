"""`Connection`'s slow-consumer bounds, with a socket stand-in whose sends never complete.

The wire tests (test_protection.py) cover the byte bound and the heartbeat on real sockets;
the time bound needs megabytes queued before a send blocks, so it is proved here."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from starlette.websockets import WebSocketState

from medreq.auth import Claims
from medreq.config import Limits, Settings
from medreq.protocol import CloseCode
from medreq.web.guard.websocket import EXTENSION
from medreq.web.socket.connection import Connection


class StuckSocket:
    """A WebSocket whose client never reads: every send waits forever."""

    application_state = WebSocketState.CONNECTED

    def __init__(self) -> None:
        self.dropped: list[int] = []
        self.buffered = 0
        self.scope = {"extensions": {EXTENSION: self}}

    async def send_text(self, text: str) -> None:
        await asyncio.Event().wait()

    def unsent_bytes(self) -> int:
        return self.buffered

    def unsent_over(self, limit: int) -> bool:
        return self.buffered > limit

    def drop(self, code: int, reason: str) -> None:
        self.dropped.append(code)

    def send_text_now(self, text: str) -> bool:
        return False  # never writable: every frame waits for the sender task


class Service:
    """The façade as a connection uses it; media links as configured (no client base)."""

    def __init__(self, settings: Settings) -> None:
        self.limits = Limits.of(settings)

    def client_base(self, base: str | None) -> str | None:
        return None

    def rebase(self, text: str, base: str | None) -> str:
        return text


CLAIMS = Claims(account_id=1, role="pharmacy", kind="access", expires_at=2**40)


def connection(**limits: Any) -> tuple[Connection, StuckSocket]:
    sock = StuckSocket()
    service = Service(replace(Settings(), **limits))
    return Connection(sock, object(), CLAIMS, service, queue_size=1000), sock  # type: ignore[arg-type]


async def test_a_send_blocked_past_the_send_timeout_drops_with_1013() -> None:
    conn, sock = connection(ws_send_timeout=0.05)
    conn.deliver(1, "event one")
    await asyncio.sleep(0.2)  # the sender is stuck on the first event
    assert sock.dropped == []
    conn.deliver(2, "event two")
    assert sock.dropped == [CloseCode.TRY_AGAIN_LATER]
    assert conn.queue is None or not conn.queue  # the queue is freed at once
    conn.deliver(3, "event three")  # nothing more is queued for a dropped socket
    assert sock.dropped == [CloseCode.TRY_AGAIN_LATER]
    await conn.stop()


async def test_unsent_bytes_past_the_bound_drop_with_1013() -> None:
    conn, sock = connection(ws_max_unsent=1000)
    sock.buffered = 900  # in the transport and the kernel
    conn.deliver(1, "x" * 50)
    assert sock.dropped == []
    conn.deliver(2, "x" * 100)
    assert sock.dropped == [CloseCode.TRY_AGAIN_LATER]
    await conn.stop()


async def test_a_full_queue_drops_with_1013() -> None:
    sock = StuckSocket()
    conn = Connection(sock, object(), CLAIMS, Service(Settings()), queue_size=3)  # type: ignore[arg-type]
    for event_id in range(1, 6):
        conn.deliver(event_id, "e")
    assert sock.dropped == [CloseCode.TRY_AGAIN_LATER]
    await conn.stop()


def test_the_kernel_is_asked_whenever_the_bound_could_be_over(monkeypatch: Any) -> None:
    """`unsent_over` skips the SIOCOUTQ `ioctl` only while the last reading plus every frame
    written since (four bytes a character, plus a header) cannot pass the limit."""
    from medreq.web.guard import websocket as ws_guard

    class Transport:
        def is_closing(self) -> bool:
            return False

        def get_write_buffer_size(self) -> int:
            return 0

    readings: list[int] = []
    kernel = {"queued": 0}

    def kernel_unsent(transport: Any) -> int:
        readings.append(kernel["queued"])
        return kernel["queued"]

    monkeypatch.setattr(ws_guard, "_kernel_unsent", kernel_unsent)
    sock = object.__new__(ws_guard.GuardedWebSocketProtocol)
    sock.transport = Transport()  # type: ignore[assignment]
    assert sock.unsent_over(1000) is False and readings == []  # nothing written: nothing to ask
    sock.written_since += 100 * ws_guard.UTF8_MAX + ws_guard.FRAME_HEADER_MAX  # a 100-character frame
    assert sock.unsent_over(1000) is False and readings == []  # 414 bytes at most
    sock.written_since += 200 * ws_guard.UTF8_MAX + ws_guard.FRAME_HEADER_MAX
    kernel["queued"] = 300  # the peer read most of it
    assert sock.unsent_over(1000) is False and readings == [300]  # 1,228 could be over: asked
    assert sock.written_since == 0 and sock.kernel_queued == 300
    kernel["queued"] = 1200  # the peer stopped reading
    sock.written_since += 200 * ws_guard.UTF8_MAX + ws_guard.FRAME_HEADER_MAX
    assert sock.unsent_over(1000) is True and readings == [300, 1200]
    sock.written_since = 0
    kernel["queued"] = 0
    sock.kernel_queued = 0
    for _ in range(ws_guard.READ_EVERY):  # small frames: answered from the bound ...
        assert sock.unsent_over(1000) is False
    assert readings == [300, 1200]
    assert sock.unsent_over(1000) is False and readings == [300, 1200, 0]  # ... then asked anyway
