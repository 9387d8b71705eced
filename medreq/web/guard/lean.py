"""Stand-ins for the `asyncio.Queue` and `asyncio.Event` uvicorn's websockets-sansio protocol
keeps per socket, sized for a socket that is idle nearly all its life.

An `asyncio.Queue` holds three `collections.deque`s (items, getters, putters) and an
`asyncio.Event`, and an `Event` one more deque: 624 bytes each when empty, five per socket
with the protocol's own `writable` Event. `tracemalloc` on a server holding 2,000 idle
sockets put them at 3.8 KB of its 24.6 KB per socket. These keep nothing while idle but
the waiter that is actually waiting.

Only what the protocol calls is here: `Inbox.put_nowait/get/empty` and
`Flag.set/clear/is_set/wait`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Inbox:
    """A FIFO with one consumer (the ASGI app's `receive`), unbounded like the protocol's queue."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None  # made on the first message, dropped when empty
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            if self._waiter is not None:
                # ASGI has one receiver per connection; a second would never be woken
                raise RuntimeError("Inbox.get() is already being awaited")
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        items = self._items
        item = items.popleft()
        if not items:
            self._items = None
        return item


class Flag:
    """`asyncio.Event`'s set/clear/wait, with no deque while nobody waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True
