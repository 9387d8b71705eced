"""The fast path's connections (storage/pgpool.py) on the tests' PostgreSQL: never more than
`max_size` open, an idle one reused, one a statement error left sound kept, one that broke or was
given up by a cancelled statement replaced, and no place lost on the way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from medreq.storage.pgpool import Connections

from .conftest import POSTGRES_URL, require_service

BACKEND = "SELECT pg_backend_pid()"


@pytest.fixture
async def connections() -> AsyncIterator[Connections]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    pool = Connections(POSTGRES_URL, max_size=2)
    yield pool
    await pool.close()


async def test_concurrent_statements_share_at_most_max_size_connections(connections: Connections) -> None:
    backends = await asyncio.gather(
        *(connections.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.02)") for _ in range(10))
    )
    assert len(set(backends)) == 2
    assert connections.size == 2
    assert await connections.fetchval(BACKEND) in backends  # an idle one, not a third


async def test_a_statement_error_keeps_the_connection(connections: Connections) -> None:
    first = await connections.fetchval(BACKEND)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await connections.fetchval("SELECT 1 / 0")
    assert await connections.fetchval(BACKEND) == first
    assert connections.size == 1


async def test_a_broken_connection_is_replaced(connections: Connections) -> None:
    first = await connections.fetchval(BACKEND)
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()
    async with asyncio.timeout(5):
        while True:
            try:
                backend = await connections.fetchval(BACKEND)
            except (
                asyncpg.PostgresConnectionError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,  # asyncpg's protocol state, when its peer died mid-use
                ConnectionError,
            ):
                continue  # the statement that found it broken, before its socket said so
            if backend != first:
                break  # a closed connection is skipped once its socket said so
            await asyncio.sleep(0.01)
    assert connections.size == 1


async def test_cancelled_waiters_and_statements_lose_no_place(connections: Connections) -> None:
    async with connections.acquire(), connections.acquire():  # both places taken
        waiting = asyncio.create_task(connections.fetchval(BACKEND))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    running = asyncio.create_task(connections.fetchval("SELECT pg_sleep(10)"))
    await asyncio.sleep(0.2)
    running.cancel()  # mid-statement: that connection is dropped, not reused
    with pytest.raises(asyncio.CancelledError):
        await running
    assert connections.size == 1  # the idle one; the cancelled statement's was closed
    results = await asyncio.gather(*(connections.fetchval("SELECT 7 FROM pg_sleep(0.02)") for _ in range(4)))
    assert results == [7] * 4
    assert connections.size == 2
