"""SQLite group commit (storage/group_commit.py): the writes of one event-loop iteration share a
COMMIT, a failing one undoes only itself, and none returns before its COMMIT."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from medreq.storage import Store, Tx
from medreq.storage.queries import utcnow
from medreq.storage.schema import accounts


class Refused(Exception):
    pass


def add(tx: Tx, username: str, *, fail: bool = False) -> str:
    tx.conn.execute(
        insert(accounts).values(
            username=username, password_hash="x", role="patient", name=username, phone=None,
            status="active", last_event_id=0, created_at=utcnow(), synthetic=False,
        )
    )  # fmt: skip
    if fail:
        raise Refused(username)
    return username


def stored(database: Path) -> set[str]:
    """What another connection (another process) sees: committed rows only."""
    with sqlite3.connect(database) as raw:
        return {row[0] for row in raw.execute("SELECT username FROM accounts")}


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = Store(f"sqlite:///{tmp_path / 'g.db'}")
    await s.migrate()
    yield s
    await s.close()


async def test_concurrent_writes_share_one_commit_and_all_land(store: Store, tmp_path: Path) -> None:
    names = [f"user{n}" for n in range(30)]
    results = await asyncio.gather(*(store.write(lambda tx, n=n: add(tx, n)) for n in names))
    assert results == names
    group = store._group_commit
    assert group is not None
    assert group.changes == 30 and group.commits < 30  # one iteration's writes shared commits
    assert stored(tmp_path / "g.db") == set(names)


@pytest.mark.parametrize("failing", [0, 1, 2])
async def test_a_failing_write_undoes_only_itself(store: Store, tmp_path: Path, failing: int) -> None:
    """The first change of a group (no savepoint) and a later one (a savepoint) alike."""
    names = ["a", "b", "c"]
    results = await asyncio.gather(
        *(store.write(lambda tx, n=n, i=i: add(tx, n, fail=i == failing)) for i, n in enumerate(names)),
        return_exceptions=True,
    )
    assert isinstance(results[failing], Refused)
    kept = {n for i, n in enumerate(names) if i != failing}
    assert [r for r in results if not isinstance(r, Exception)] == [n for n in names if n in kept]
    assert stored(tmp_path / "g.db") == kept
    assert await store.write(lambda tx: add(tx, "after")) == "after"  # the store goes on
    assert stored(tmp_path / "g.db") == kept | {"after"}


async def test_a_write_returns_only_once_committed(store: Store, tmp_path: Path) -> None:
    seen_inside: list[set[str]] = []

    def add_and_look(tx: Tx) -> str:
        name = add(tx, "durable")
        seen_inside.append(stored(tmp_path / "g.db"))  # from outside, before the COMMIT
        return name

    assert await store.write(add_and_look) == "durable"
    assert seen_inside == [set()]
    assert stored(tmp_path / "g.db") == {"durable"}  # returned: committed


def sqlite_temp_files() -> list[str]:
    """SQLite's own temporary files this process holds open (`etilqs_*`, unlinked on open)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if "etilqs_" in target.name:
            found.append(str(target))
    return found


async def test_a_change_inside_a_group_keeps_its_statement_journal_in_memory(store: Store) -> None:
    """A change after the first of a group runs inside a SAVEPOINT, whose statement journal keeps
    the pages it rewrites. Past 64 KiB SQLite spilled that journal to a file in /var/tmp: page
    images of the data (medical data) outside the data dir, and a write per page for every later
    change of the group. `temp_store=MEMORY` keeps it in memory."""
    seen: list[list[str]] = []

    def many(tx: Tx) -> str:
        for n in range(60):
            add(tx, f"bulk{n:02}")
        tx.conn.exec_driver_sql("UPDATE accounts SET name = ? WHERE username LIKE 'bulk%'", ("x" * 1500,))
        return "many"

    def rewrite(tx: Tx) -> str:  # the same 60 rows' pages, already dirty in the transaction
        tx.conn.exec_driver_sql("UPDATE accounts SET name = ? WHERE username LIKE 'bulk%'", ("y" * 1500,))
        seen.append(sqlite_temp_files())
        return "rewrite"

    assert await asyncio.gather(store.write(many), store.write(rewrite)) == ["many", "rewrite"]
    assert seen == [[]]
