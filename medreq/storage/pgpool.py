"""The fast path's asyncpg connections (storage/pgfast.py): at most `max_size` open, an idle one
reused for the next statement.

asyncpg's own `Pool` costs more CPU than the statement it runs: its `release` shields a new task
per call and resets the connection through it, and on this machine ``pool.fetchrow`` took 110 µs of
CPU where ``connection.fetchrow`` on a held connection took 29 µs (3,000 ``SELECT $1`` each,
issue 29). A plain cycle runs two statements, so that was ~0.16 ms of the server's CPU per cycle.
Here a connection is taken from a list and put back, with nothing to reset: the fast path's
statements change no session state (no SET, LISTEN, cursor or advisory lock), and a transaction
(`Connection.transaction`) is closed by its own context manager.

A connection that failed in any way other than a statement error the server reported (a
constraint, a bad value) is closed instead of being put back: a lost or cancelled one, a primary
switching over (`outage.py`). The next statement opens a new one, where asyncpg tries the URL's
hosts in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from .outage import is_outage


class Connections:
    """Connections to the URL's primary for one statement (or transaction) at a time each."""

    def __init__(self, dsn: str, *, max_size: int = 10) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._idle: list[asyncpg.Connection] = []
        self._count = 0  # open or being opened
        # statements waiting for a connection: each is handed one, or None (open your own)
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await self._take()
        try:
            yield conn
        except asyncpg.PostgresError as exc:  # the statement failed: the connection may not have
            self._give(conn, reuse=not is_outage(exc) and not conn.is_in_transaction())
            raise
        except BaseException:
            self._give(conn, reuse=False)
            raise
        self._give(conn, reuse=True)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self.acquire() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.acquire() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    async def close(self) -> None:
        """Close the idle connections; those in use are closed when they are given back."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._count -= len(idle)
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return self._count

    async def _take(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the fast path's connections are closed")
        while self._idle:
            conn = self._idle.pop()  # the most recently used: its caches are warm
            if not conn.is_closed():
                return conn
            self._count -= 1
        if self._count >= self._max_size:
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed one as we were cancelled
                    handed = waiter.result()
                    if handed is None:
                        self._count -= 1  # the place it was counted in
                    self._pass_on(handed)
                raise
            if handed is not None:
                return handed
            # handed None: a closed connection's place, already counted for us
        else:
            self._count += 1
        try:
            return await asyncpg.connect(self._dsn)
        except BaseException:
            self._count -= 1
            self._pass_on(None)
            raise

    def _give(self, conn: asyncpg.Connection, *, reuse: bool) -> None:
        if reuse and not self._closed and not conn.is_closed():
            self._pass_on(conn)
            return
        conn.terminate()  # no round trip: the connection is dropped as it is
        self._count -= 1
        self._pass_on(None)

    def _pass_on(self, conn: asyncpg.Connection | None) -> None:
        """A connection (or, with None, a free place for one) to the first statement waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if conn is None:
                    self._count += 1  # the waiter opens it
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)
