"""One timer for every socket's next ping (web/guard/heartbeat.py); the wire heartbeat itself is
tested on real sockets in test_websocket.py and test_protection.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from medreq.web.guard.heartbeat import TICK, Heartbeat, heartbeat_for


class Socket:
    def __init__(self, loop: asyncio.AbstractEventLoop, fail: bool = False) -> None:
        self.loop = loop
        self.fail = fail
        self.pinged: list[float] = []

    def send_keepalive_ping(self) -> None:
        self.pinged.append(self.loop.time())
        if self.fail:
            raise RuntimeError("broken socket")


async def test_each_socket_is_pinged_once_when_due_and_never_early() -> None:
    loop = asyncio.get_running_loop()
    heartbeat = Heartbeat(loop)
    start = loop.time()
    sockets = {delay: Socket(loop) for delay in (0.0, 0.05, 0.12, 0.3)}
    for delay, socket in sockets.items():
        heartbeat.add(socket, delay)
    assert len(heartbeat) == 4
    await asyncio.sleep(0.3 + 3 * TICK)
    for delay, socket in sockets.items():
        assert len(socket.pinged) == 1
        assert delay <= socket.pinged[0] - start <= delay + 2 * TICK
    assert len(heartbeat) == 0 and heartbeat._timer is None


async def test_a_removed_socket_is_not_pinged_and_the_others_still_are() -> None:
    loop = asyncio.get_running_loop()
    heartbeat = Heartbeat(loop)
    kept, removed = Socket(loop), Socket(loop)
    heartbeat.add(kept, 0.1)
    heartbeat.remove(removed, heartbeat.add(removed, 0.1))
    gone = Socket(loop)
    heartbeat.remove(gone, heartbeat.add(gone, 0.01))  # the earliest tick, emptied: skipped
    await asyncio.sleep(0.1 + 3 * TICK)
    assert len(kept.pinged) == 1 and removed.pinged == [] and gone.pinged == []


async def test_a_failing_ping_does_not_cost_the_others_theirs() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        heartbeat = Heartbeat(loop)
        sockets = [Socket(loop, fail=(i == 1)) for i in range(3)]
        for socket in sockets:
            heartbeat.add(socket, 0.0)
        await asyncio.sleep(3 * TICK)
    finally:
        loop.set_exception_handler(None)
    assert [len(s.pinged) for s in sockets] == [1, 1, 1]
    assert [type(c["exception"]) for c in reported] == [RuntimeError]


async def test_a_socket_rescheduled_from_its_ping_is_pinged_again_later() -> None:
    loop = asyncio.get_running_loop()
    heartbeat = Heartbeat(loop)

    class Again(Socket):
        def send_keepalive_ping(self) -> None:
            super().send_keepalive_ping()
            if len(self.pinged) < 3:
                heartbeat.add(self, 0.0)  # uvicorn does this when ping_timeout is None

    socket = Again(loop)
    heartbeat.add(socket, 0.0)
    await asyncio.sleep(6 * TICK)
    assert len(socket.pinged) == 3
    assert all(b - a >= TICK * 0.5 for a, b in zip(socket.pinged, socket.pinged[1:], strict=False))


@pytest.mark.parametrize("same_loop", [True, False])
async def test_one_heartbeat_per_server_and_loop(same_loop: bool) -> None:
    class State:
        pass

    state, loop = State(), asyncio.get_running_loop()
    first = heartbeat_for(state, loop)
    other_loop = loop if same_loop else asyncio.new_event_loop()
    try:
        assert (heartbeat_for(state, other_loop) is first) is same_loop
    finally:
        if not same_loop:
            other_loop.close()
