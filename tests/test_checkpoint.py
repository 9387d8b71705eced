"""SQLite's WAL checkpoints run on the store's own thread (storage/checkpoint.py), never inside a
commit on the event loop, and keep up with the writes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import insert

from medreq.storage import Store
from medreq.storage.queries import utcnow
from medreq.storage.schema import accounts


def add_accounts(tx: object, start: int, count: int) -> None:
    for n in range(start, start + count):
        tx.conn.execute(  # type: ignore[attr-defined]
            insert(accounts).values(
                username=f"user{n}", password_hash="x", role="patient", name="N" * 200, phone=None,
                status="active", last_event_id=0, created_at=utcnow(), synthetic=False,
            )
        )  # fmt: skip


async def test_checkpoints_run_on_their_own_thread_and_keep_the_wal_checkpointed(tmp_path: Path) -> None:
    database = tmp_path / "medreq.db"
    store = Store(f"sqlite:///{database}")
    try:
        await store.migrate()
        checkpointer = store.checkpointer
        assert checkpointer is not None
        # the store's connections never checkpoint in a commit
        assert await store.read(lambda c: c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()) == 0
        for batch in range(300):  # 300 commits, far more pages than SQLite's 1,000-page trigger
            await store.write(lambda tx, b=batch: add_accounts(tx, b * 10, 10))
        rounds = checkpointer.rounds
        for _ in range(100):  # bounded: 10 s
            await asyncio.sleep(0.1)
            if checkpointer.rounds > rounds + 1:
                break
        assert checkpointer.last is not None
        _busy, frames, done = checkpointer.last
        assert frames > 0 and done == frames, checkpointer.last  # every committed frame is in the database
    finally:
        await store.close()
    assert not checkpointer._thread.is_alive()
    # nothing written was lost on the way
    with sqlite3.connect(database) as raw:
        assert raw.execute("SELECT count(*) FROM accounts").fetchone() == (3000,)


async def test_a_store_without_background_checkpoints_keeps_sqlites_own(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'other.db'}", background_checkpoints=False)
    try:
        await store.migrate()
        assert store.checkpointer is None
        assert await store.read(lambda c: c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()) == 1000
    finally:
        await store.close()
