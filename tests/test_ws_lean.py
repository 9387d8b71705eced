"""What keeps an idle socket small: the lean stand-ins for asyncio.Queue and asyncio.Event
(web/guard/lean.py), and the frame parser restarted without the handshake (web/guard/websocket.py)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

from medreq.web.guard.lean import Flag, Inbox
from medreq.web.guard.websocket import _drop_handshake_parser

HANDSHAKE = (
    b"GET /ws/user/1/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _masked_text(text: str) -> bytes:
    """A client's text frame (clients mask theirs)."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[])


async def test_inbox_is_fifo_and_keeps_no_deque_when_empty() -> None:
    inbox = Inbox()
    assert inbox.empty() and inbox._items is None
    for n in range(3):
        inbox.put_nowait(n)
    assert not inbox.empty()
    assert [await inbox.get() for _ in range(3)] == [0, 1, 2]
    assert inbox.empty() and inbox._items is None


async def test_inbox_wakes_its_waiting_receiver() -> None:
    inbox = Inbox()
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not getter.done()
    inbox.put_nowait({"type": "websocket.receive", "text": "a"})
    inbox.put_nowait({"type": "websocket.disconnect"})
    assert await getter == {"type": "websocket.receive", "text": "a"}
    assert await inbox.get() == {"type": "websocket.disconnect"}
    assert inbox._waiter is None


async def test_inbox_refuses_a_second_receiver_and_survives_a_cancelled_one() -> None:
    inbox = Inbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already being awaited"):
        await inbox.get()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert inbox._waiter is None
    inbox.put_nowait("x")  # nothing waits: it is kept for the next get
    assert await inbox.get() == "x"


async def test_flag_wakes_every_waiter_and_forgets_them() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert flag._waiters is None
    assert await flag.wait() is True  # set: returns at once
    flag.clear()
    assert not flag.is_set()


async def test_flag_drops_a_cancelled_waiter() -> None:
    flag = Flag()
    waiter = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert flag._waiters == []
    flag.set()
    assert flag.is_set() and flag._waiters is None


def _opened() -> ServerProtocol:
    conn = ServerProtocol()
    conn.receive_data(HANDSHAKE)
    (request,) = conn.events_received()
    conn.send_response(conn.accept(request))
    return conn


def test_the_frame_parser_runs_on_without_the_handshake_frame() -> None:
    conn = _opened()
    _drop_handshake_parser(conn)
    assert conn.parser.gi_code is Protocol.parse.__code__  # type: ignore[attr-defined]
    # a frame split across reads still parses, then the next one
    data = _masked_text('{"type":"ping","id":1}')
    conn.receive_data(data[:3])
    assert conn.events_received() == []
    conn.receive_data(data[3:] + _masked_text("second"))
    frames = conn.events_received()
    assert [bytes(f.data) for f in frames] == [b'{"type":"ping","id":1}', b"second"]  # type: ignore[union-attr]
    assert conn.parser_exc is None


@pytest.mark.parametrize("received", [2, 3])  # header read, buffer empty; and bytes unread
def test_a_parser_in_the_middle_of_a_frame_is_left_alone(received: int) -> None:
    conn = _opened()
    conn.receive_data(_masked_text("early")[:received])  # restarting would lose these bytes
    before = conn.parser
    _drop_handshake_parser(conn)
    assert conn.parser is before
