"""The lean stand-ins for asyncio.Queue and asyncio.Event under every socket (web/ws_lean.py)."""

from __future__ import annotations

import asyncio

import pytest

from medreq.web.ws_lean import Flag, Inbox


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
