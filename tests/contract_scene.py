"""The scene the contract tests share: a server, a patient, a pharmacy, one pending request, and a
snapshot of everything stored (SQLite rows + media, or PostgreSQL rows) to prove nothing changed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    Account,
    ServerProcess,
    create_database,
    drop_database,
    make_account,
    require_service,
)
from .wire import db_snapshot, post_request

NO_RATE_LIMIT = {"MEDREQ_RATE_LIMIT_ENABLED": "false"}


@dataclass
class Scene:
    server: ServerProcess
    patient: Account
    pharmacy: Account
    request_id: int
    snapshot: Callable[[], Any]


def make_scene(server: ServerProcess, snapshot: Callable[[], Any]) -> Scene:
    patient = make_account(server.url, "patient", name="Pat", phone="+1-555-0101")
    pharmacy = make_account(server.url, "pharmacy", name="Pharm")
    created = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Aspirin")
    assert created.status_code == 201, created.text
    return Scene(server, patient, pharmacy, int(created.json()["request_id"]), snapshot)


def module_scene(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Scene]:
    server = ServerProcess(tmp_path_factory.mktemp(name) / "data", env=NO_RATE_LIMIT)
    server.start()
    try:
        yield make_scene(server, lambda: db_snapshot(server))
    finally:
        server.stop()


async def pg_snapshot(url: str) -> dict[str, Any]:
    """Every row of every table of a PostgreSQL database."""
    import asyncpg

    db = await asyncpg.connect(url)
    try:
        tables = [
            r["tablename"]
            for r in await db.fetch("select tablename from pg_tables where schemaname = 'public'")
        ]
        return {
            t: sorted(map(tuple, await db.fetch(f'select * from "{t}"')), key=repr) for t in sorted(tables)
        }
    finally:
        await db.close()


async def postgres_scene(tmp_path: Path) -> AsyncIterator[Scene]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    url = await create_database()
    env = {**NO_RATE_LIMIT, "MEDREQ_DATABASE_URL": url}
    server = ServerProcess(tmp_path / "data", env=env)
    server.start()
    try:
        yield make_scene(server, lambda: asyncio.run(pg_snapshot(url)))
    finally:
        server.stop()
        await drop_database(url)
