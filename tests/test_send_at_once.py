"""`Connection` writes an event or a reply at once, without a sender task, when nothing is queued
before it and the socket takes it at once; everything else goes through the queue as before.
The order guarantees of docs/protocol.md §5 must hold across both ways: in `event_id` order, no
gaps, no duplicates, replies in turn with the events. (Real sockets: test_delivery.py,
test_protection.py and the rest of the suite, whose servers send this way.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.websockets import WebSocketState
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from medreq.config import Settings
from medreq.protocol import AckFrame
from medreq.web import wire_record
from medreq.web.guard.lean import Flag
from medreq.web.guard.websocket import EXTENSION, GuardedWebSocketProtocol
from medreq.web.socket.connection import Connection

from .test_slow_consumer import CLAIMS, Service


class Recorder:
    """`wire_record.Recorder`'s side that `_send_at_once` uses (the suite's real recorder checks
    every frame it records against /asyncapi.json: these test frames are not real events)."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    def frame(self, scope: Any, text: str) -> None:
        self.frames.append(text)


@pytest.fixture(autouse=True)
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recording = Recorder()
    monkeypatch.setattr(wire_record, "recorder", lambda: recording)
    return recording


class Socket:
    """A WebSocket and its `SocketControl`: takes frames at once while `writable`; otherwise
    `send_text` waits until it is writable again (as uvicorn's `send` waits on its flag)."""

    application_state = WebSocketState.CONNECTED

    def __init__(self) -> None:
        self.scope = {"extensions": {EXTENSION: self}}
        self.wire: list[str] = []
        self.at_once = 0  # frames written by `send_text_now`
        self.writable = asyncio.Event()
        self.writable.set()
        self.dropped: list[int] = []

    def send_text_now(self, text: str) -> bool:
        if not self.writable.is_set():
            return False
        self.wire.append(text)
        self.at_once += 1
        return True

    async def send_text(self, text: str) -> None:
        await self.writable.wait()
        self.wire.append(text)

    def unsent_over(self, limit: int) -> bool:
        return limit < 0

    def unsent_bytes(self) -> int:
        return 0

    def drop(self, code: int, reason: str) -> None:
        self.dropped.append(code)


class StoredEvents(Service):
    """The façade with a store of events 1..n for the replays that fill gaps."""

    def __init__(self, stored: int) -> None:
        super().__init__(Settings())
        self.stored = [(i, e(i)) for i in range(1, stored + 1)]

    async def events_after(self, account_id: int, after: int, *, before: int | None, limit: int) -> list[Any]:
        await asyncio.sleep(0)  # a real read hops through the loop
        ceiling = before if before is not None else 10**9
        return [(i, text) for i, text in self.stored if after < i < ceiling][:limit]


def e(event_id: int) -> str:
    """An event's text (JSON: the suite records every frame written, `wire_record`)."""
    return f'{{"event_id":{event_id}}}'


TYPING = '{"type":"typing"}'


def connection(stored: int = 0) -> tuple[Connection, Socket]:
    sock = Socket()
    caller = SimpleNamespace(id=CLAIMS.account_id)
    conn = Connection(sock, caller, CLAIMS, StoredEvents(stored), queue_size=1000)  # type: ignore[arg-type]
    return conn, sock


async def test_in_order_events_and_replies_go_out_at_once_without_a_task(recorder: Recorder) -> None:
    conn, sock = connection()
    conn.deliver(1, e(1))
    conn.reply(AckFrame(type="ack", ref="r1"))
    conn.deliver(2, e(2))
    conn.deliver(None, TYPING)  # not stored, not ordered
    conn.deliver(2, e(2))  # a duplicate: dropped
    conn.deliver(1, e(1))
    assert conn.sender is None and conn.queue is None
    assert sock.wire == [e(1), '{"type":"ack","ref":"r1"}', e(2), TYPING]
    assert sock.at_once == 4
    assert conn.last_sent == 2
    assert recorder.frames == sock.wire  # MEDREQ_WIRE_RECORD sees them as it sees queued ones


async def test_a_gap_is_filled_from_the_store_in_order() -> None:
    conn, sock = connection(stored=5)
    conn.deliver(1, e(1))
    conn.deliver(4, e(4))  # 2 and 3 were published elsewhere first: read them back
    conn.deliver(5, e(5))  # while the replay runs: queued behind it, not sent at once
    assert conn.sender is not None
    await conn.flush()
    assert sock.wire == [e(1), e(2), e(3), e(4), e(5)]
    conn.deliver(6, e(6))  # the queue is empty again: at once
    assert sock.wire[-1] == e(6) and conn.sender is None


async def test_nothing_overtakes_a_queued_frame() -> None:
    conn, sock = connection()
    sock.writable.clear()  # the client is behind: the transport paused writing
    conn.deliver(1, e(1))
    conn.reply(AckFrame(type="ack", ref="r"))
    sock.writable.set()  # writable again before the sender task ran
    conn.deliver(2, e(2))  # must wait behind e1 and the ack, though the socket takes it now
    assert sock.wire == []
    await conn.flush()
    assert sock.wire == [e(1), '{"type":"ack","ref":"r"}', e(2)]
    assert sock.at_once == 0


async def test_a_closing_connection_sends_nothing_more() -> None:
    conn, sock = connection()
    conn.deliver(1, e(1))
    await conn.stop()
    conn.deliver(2, e(2))
    conn.reply(AckFrame(type="ack", ref="r"))
    assert sock.wire == [e(1)]


class SubscribingEvents(StoredEvents):
    """The store and hub of an account whose next event is published while a socket subscribes."""

    def __init__(self, stored: int, published_meanwhile: int) -> None:
        super().__init__(stored)
        self.published_meanwhile = published_meanwhile

    async def last_event_id(self, account_id: int) -> int:
        return self.stored[-1][0] if self.stored else 0

    async def subscribe(self, account_id: int, sink: Connection) -> None:
        await asyncio.sleep(0)  # the hub awaits (presence; Redis: a round trip)
        event_id = self.published_meanwhile
        self.stored.append((event_id, e(event_id)))
        sink.deliver(event_id, e(event_id))


def attaching(stored: int, published_meanwhile: int) -> tuple[Connection, Socket]:
    sock = Socket()
    caller = SimpleNamespace(id=CLAIMS.account_id)
    service = SubscribingEvents(stored, published_meanwhile)
    return Connection(sock, caller, CLAIMS, service, queue_size=1000), sock  # type: ignore[arg-type]


@pytest.mark.parametrize("after", [0, 3, 5, 9])
async def test_a_resuming_socket_gets_each_event_past_after_once_when_one_is_published_as_it_subscribes(
    after: int,
) -> None:
    """A client back with `?after=` while its account gets event 11: events after..11, in order,
    once each; not the account's history before `after`, and nothing twice."""
    conn, sock = attaching(stored=10, published_meanwhile=11)
    await conn.attach(after)
    await conn.flush()
    assert sock.wire == [e(i) for i in range(after + 1, 12)]
    assert conn.last_sent == 11


async def test_the_next_event_published_as_a_resuming_socket_subscribes_goes_out_at_once() -> None:
    conn, sock = attaching(stored=10, published_meanwhile=11)
    await conn.attach(10)
    await conn.flush()
    assert sock.wire == [e(11)]
    assert sock.at_once == 1


async def test_a_live_socket_starts_at_the_present_and_gets_what_is_published_as_it_subscribes() -> None:
    conn, sock = attaching(stored=10, published_meanwhile=11)
    await conn.attach(None)
    await conn.flush()
    assert sock.wire == [e(11)]


class Transport:
    """What the guarded protocol writes to, as it wrote it: one entry a `write` call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> None:
        return None  # no socket: the kernel's queue reads as empty


def guarded_protocol(transport: Transport) -> GuardedWebSocketProtocol:
    """The guarded protocol past its handshake, on `transport` (no server, no socket)."""
    sock = object.__new__(GuardedWebSocketProtocol)
    sock.conn = ServerProtocol(state=State.OPEN)
    sock.transport = transport  # type: ignore[assignment]
    sock.loop = asyncio.get_running_loop()
    sock.writable = Flag()  # type: ignore[assignment]
    sock.writable.set()
    sock.disconnected = False
    sock.handshake_complete = True
    sock.close_sent = False
    sock.initial_response = None
    return sock


def frames_on_the_wire(writes: list[bytes]) -> list[tuple[Opcode, bytes]]:
    client = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN)
    client.receive_data(b"".join(writes))
    return [(frame.opcode, bytes(frame.data)) for frame in client.events_received()]


async def test_frames_sent_at_once_in_one_callback_leave_in_one_write_in_the_order_made() -> None:
    """`send_text_now` holds its frames for one write at the end of the loop iteration; a write
    uvicorn makes meanwhile (a ping here) takes the held frames first, so the order holds."""
    transport = Transport()
    sock = guarded_protocol(transport)
    assert sock.send_text_now("a") and sock.send_text_now("b")
    assert transport.writes == []  # held for this iteration's write
    assert sock.unsent_bytes() > 0  # but counted as unsent (`Connection` bounds it)
    sock.conn.send_ping(b"p")  # as uvicorn's heartbeat does: all of `data_to_send()` in one write
    sock.transport.write(b"".join(sock.conn.data_to_send()))
    assert sock.send_text_now("c") and sock.send_text_now("d")
    await asyncio.sleep(0)  # the iteration's write
    assert len(transport.writes) == 2
    assert frames_on_the_wire(transport.writes) == [
        (Opcode.TEXT, b"a"),
        (Opcode.TEXT, b"b"),
        (Opcode.PING, b"p"),
        (Opcode.TEXT, b"c"),
        (Opcode.TEXT, b"d"),
    ]
    await asyncio.sleep(0)
    assert len(transport.writes) == 2 and sock.held == 0  # nothing left to write
