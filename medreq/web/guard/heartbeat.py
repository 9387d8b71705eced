"""One timer for every idle socket's next heartbeat ping, instead of one per socket.

uvicorn's websockets-sansio protocol schedules each socket's next ping with its own
`loop.call_later`: under uvloop a `TimerHandle`, a `UVTimer` (a libuv timer) and a bound
method, 577 bytes of an idle socket by tracemalloc. Here the sockets due within the same
`TICK` share one set, and one loop timer serves the earliest tick: an idle socket costs its
entry in that set. A ping goes out at most `TICK` late; the pong's deadline is still
uvicorn's own per-socket timer, which exists only while a ping is in flight.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from typing import Any

TICK = 0.05  # seconds: how late a ping may go out, and how often the timer may wake


class Heartbeat:
    """The sockets of one event loop whose next ping is due, by tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._due: dict[int, set[Any]] = {}  # tick → sockets to ping then
        self._ticks: list[int] = []  # a heap of the keys of _due
        self._timer: asyncio.TimerHandle | None = None
        self._timer_tick: int | None = None

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self._due.values())

    def add(self, socket: Any, delay: float) -> int:
        """Ping `socket` (call its `send_keepalive_ping`) in `delay` seconds; the tick to
        `remove` it with."""
        now = self.loop.time()
        # never the tick being fired: a ping due at once goes out on the next one
        tick = max(math.ceil((now + delay) / TICK), math.floor(now / TICK) + 1)
        sockets = self._due.get(tick)
        if sockets is None:
            sockets = self._due[tick] = set()
            heapq.heappush(self._ticks, tick)
        sockets.add(socket)
        if self._timer_tick is None or tick < self._timer_tick:
            self._arm(tick)
        return tick

    def remove(self, socket: Any, tick: int) -> None:
        sockets = self._due.get(tick)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._due[tick]  # its heap entry is skipped when it comes up

    def _arm(self, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_tick = tick
        self._timer = self.loop.call_at(tick * TICK, self._fire)

    def _fire(self) -> None:
        self._timer = self._timer_tick = None
        now = self.loop.time()
        ticks = self._ticks
        while ticks and ticks[0] * TICK <= now:
            sockets = self._due.pop(heapq.heappop(ticks), None)
            for socket in sockets or ():
                _ping(socket.send_keepalive_ping)
        while ticks and ticks[0] not in self._due:
            heapq.heappop(ticks)
        if ticks:
            self._arm(ticks[0])


def _ping(send: Callable[[], None]) -> None:
    """One socket's ping; its failure must not cost the other sockets theirs."""
    try:
        send()
    except Exception as exc:  # as the loop would report a failing call_later callback
        asyncio.get_running_loop().call_exception_handler(
            {"message": "heartbeat ping failed", "exception": exc}
        )


def heartbeat_for(server_state: Any, loop: asyncio.AbstractEventLoop) -> Heartbeat:
    """The heartbeat shared by every WebSocket of one uvicorn server (made on first use)."""
    heartbeat: Heartbeat | None = getattr(server_state, "medreq_heartbeat", None)
    if heartbeat is None or heartbeat.loop is not loop:
        heartbeat = Heartbeat(loop)
        server_state.medreq_heartbeat = heartbeat
    return heartbeat
