"""The store: runs queries and write transactions on SQLite (WAL) or PostgreSQL.

Callers hand it *synchronous* functions: `await store.read(fn)` runs `fn(conn)` and
`await store.write(fn)` runs `fn(tx)` inside one transaction, whose `Tx` appends events in
the same transaction as the change they describe (§5). A whole transaction is one call:

- SQLite: a sync engine (pysqlite) called right on the event loop thread. SQLite is a
  library, not a server: with WAL and synchronous=NORMAL a commit does no fsync and a whole
  transaction takes well under a millisecond, less than the thread hop that aiosqlite pays
  per statement (measured: docs/benchmarks.md). Transactions cannot interleave, so event ids
  are handed out in commit order; `BEGIN IMMEDIATE` takes the write lock up front so that
  another process (`medreq account create`) makes us wait instead of failing. WAL checkpoints
  (the only fsyncs) run on a thread of their own (`checkpoint.Checkpointer`), and the write
  transactions of one event-loop iteration share one COMMIT (`group_commit.GroupCommit`).
- PostgreSQL: the async engine (asyncpg), with the same function run through
  `AsyncConnection.run_sync`; the per-account counter row lock orders event ids. The hot
  transactions (create a request, answer it, post a message, and the replay page's read) also
  exist as one statement each on raw asyncpg connections (`store.fast`, storage/pgfast.py): the
  service uses those when `fast` is set (the default; ``MEDREQ_PG_FAST_PATH=false`` turns it
  off), this generic path for everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Row, bindparam, create_engine, event, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ..files import make_private_dir
from ..protocol import dumps
from ..protocol.errors import Conflict
from . import purge
from .checkpoint import Checkpointer, connection_pragmas
from .group_commit import GroupCommit
from .outage import unavailable_while_switching
from .pgfast import FastPath
from .prepared import Prepared
from .queries import utcnow
from .schema import (
    account_changes,
    accounts,
    events,
    idempotency_keys,
    medicine_requests,
    messages,
    read_marks,
    revoked_tokens,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_SECONDS = 10


# Hot statements are built once: building a statement costs more than SQLite running it.
# Values come from the execute() parameters; WHERE parameters are prefixed `where_`.
INSERT_REQUEST = Prepared(insert(medicine_requests).returning(medicine_requests))
INSERT_EVENT = Prepared(insert(events))
BUMP_EVENT_COUNTER = Prepared(
    update(accounts)
    .where(accounts.c.id == bindparam("where_id"))
    .values(last_event_id=accounts.c.last_event_id + 1)
    .returning(accounts.c.last_event_id)
)
# several events for one account in one transaction (a group's): one bump by their number
BUMP_EVENT_COUNTER_BY = Prepared(
    update(accounts)
    .where(accounts.c.id == bindparam("where_id"))
    .values(last_event_id=accounts.c.last_event_id + bindparam("by"))
    .returning(accounts.c.last_event_id)
)


@functools.cache
def _update_request_statement(only_if: tuple[str, ...]) -> Prepared:
    conditions = [
        medicine_requests.c.id == bindparam("where_id"),
        medicine_requests.c.status == bindparam("where_status"),
        *(medicine_requests.c[name] == bindparam(f"where_{name}") for name in only_if),
    ]
    return Prepared(update(medicine_requests).where(*conditions).returning(medicine_requests))


class Store:
    def __init__(
        self, url: str, *, echo: bool = False, fast: bool = True, background_checkpoints: bool = True
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._held_connections: tuple[Connection, Connection] | None = None  # SQLite: `_held`
        self._held_thread: int | None = None
        #: SQLite: the writes of one event-loop iteration share a COMMIT (group_commit.py)
        self._group_commit: GroupCommit | None = None
        #: SQLite: WAL checkpoints on a thread of their own, not in a commit on the event loop
        self.checkpointer: Checkpointer | None = None
        #: the hot transactions as single statements on asyncpg (PostgreSQL only; None: use `write`)
        self.fast: FastPath | None = None
        if self.is_sqlite:
            path = url.split(":///", 1)[1]
            sync_url = "sqlite:///" + path
            _private_database_file(path)
            if background_checkpoints and path and path != ":memory:" and not path.startswith("file:"):
                self.checkpointer = Checkpointer(path, busy_seconds=SQLITE_BUSY_SECONDS)
            self._sync = create_engine(
                sync_url,
                echo=echo,
                connect_args={"timeout": SQLITE_BUSY_SECONDS},
                pool_size=2,
                max_overflow=2,
            )
            event.listen(self._sync, "connect", _sqlite_pragmas)
            event.listen(self._sync, "begin", _sqlite_begin)
            if self.checkpointer is not None:
                pragmas = connection_pragmas(background=True)
                event.listen(self._sync, "connect", lambda raw, _record: [raw.execute(p) for p in pragmas])
                self.checkpointer.start()
        else:
            from sqlalchemy.ext.asyncio import create_async_engine  # PostgreSQL only: it imports the ORM

            self._async = create_async_engine(
                url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
            if fast:
                self.fast = FastPath(url)

    async def close(self) -> None:
        self._release_held()
        if self._sync is not None:
            self._sync.dispose()
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.close)
        if self.fast is not None:
            await self.fast.close()
        if self._async is not None:
            await self._async.dispose()

    # --- running ------------------------------------------------------------------------------

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(conn)` in a read-only snapshot and return its result."""
        if self._sync is not None:
            return self._run_sync_read(fn)
        assert self._async is not None
        with unavailable_while_switching():
            async with self._async.connect() as conn:
                return await conn.run_sync(fn)

    async def write(self, fn: Callable[[Tx], T]) -> T:
        """Run `fn(tx)` in one write transaction: committed if it returns, rolled back if it raises."""
        if self._sync is not None:
            if self._held() is None:  # not the event loop's thread: a transaction of its own
                return self._run_sync_write(fn)
            assert self._group_commit is not None
            return await self._group_commit.run(lambda conn: fn(Tx(conn)))
        assert self._async is not None
        with unavailable_while_switching():
            async with self._async.begin() as conn:
                return await conn.run_sync(lambda sync_conn: fn(Tx(sync_conn)))

    def _run_sync_read(self, fn: Callable[[Connection], T]) -> T:
        held = self._held()
        if held is None:  # not the event loop's thread: a pooled connection, as before
            assert self._sync is not None
            with self._sync.connect() as conn:
                return fn(conn)
        conn = held[0]
        try:
            return fn(conn)
        finally:
            if conn.in_transaction():
                conn.rollback()  # end the snapshot; the connection stays open

    def _run_sync_write(self, fn: Callable[[Tx], T]) -> T:
        assert self._sync is not None
        with self._sync.connect() as pooled:
            conn = pooled.execution_options(medreq_immediate=True)
            with conn.begin():
                return fn(Tx(conn))

    def _held(self) -> tuple[Connection, Connection] | None:
        """The (reader, writer) connections the first thread to use the store keeps open.

        SQLite transactions on the event loop never interleave (each is one synchronous call),
        so one connection for snapshots and one for writes serve them all. Checking a connection
        out of the pool and back in for every transaction (connect, reset, close) was ~8 % of the
        server's samples under `bench cycle` (py-spy)."""
        if self._held_thread is None:
            self._held_thread = threading.get_ident()
        elif threading.get_ident() != self._held_thread:
            return None
        if self._held_connections is not None:
            reader, writer = self._held_connections
            if not (reader.invalidated or writer.invalidated or reader.closed or writer.closed):
                return self._held_connections
            self._release_held()  # broken: open new ones
        assert self._sync is not None
        reader = self._sync.connect()
        writer = self._sync.connect().execution_options(medreq_immediate=True)
        self._held_connections = (reader, writer)
        self._group_commit = GroupCommit(writer)
        return self._held_connections

    def _release_held(self) -> None:
        if self._group_commit is not None:
            self._group_commit.commit()  # a group still open when the store closes
            self._group_commit = None
        held, self._held_connections = self._held_connections, None
        for conn in held or ():
            with contextlib.suppress(Exception):
                conn.close()

    # --- schema -------------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Apply every Alembic migration not yet applied (`alembic upgrade head`); nothing, and
        no Alembic import, when the database is at `migrations.HEAD` already."""
        if self._sync is not None:
            if self._group_commit is not None:
                self._group_commit.commit()  # its write lock would make the migration wait on us
            database = self.url.split("///", 1)[-1]
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            with self._sync.connect() as conn:
                if _at_head(conn):
                    return
            self._migrate_sqlite()
            return
        assert self._async is not None
        async with self._async.begin() as conn:
            if not await conn.run_sync(_at_head):
                await conn.run_sync(_upgrade)

    def _migrate_sqlite(self) -> None:
        """SQLite's table-rebuild procedure: foreign keys off (outside the transaction, where
        the pragma takes effect), migrate in one transaction, check every key, keys back on."""
        assert self._sync is not None
        with self._sync.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                conn = conn.execution_options(medreq_immediate=True)
                with conn.begin():
                    _upgrade(conn)
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
            finally:
                raw.execute("PRAGMA foreign_keys=ON")


class Tx:
    """One write transaction. Every method runs on the same connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def create_account(
        self,
        *,
        username: str,
        password_hash: str,
        role: str,
        name: str,
        phone: str | None,
        status: str = "active",
        synthetic: bool = False,
    ) -> Row[Any]:
        values = {
            "username": username,
            "password_hash": password_hash,
            "role": role,
            "name": name,
            "phone": phone,
            "status": status,
            "last_event_id": 0,
            "created_at": utcnow(),
            "synthetic": synthetic,
        }
        try:
            with self.conn.begin_nested():
                result = self.conn.execute(insert(accounts).values(values).returning(accounts))
                return result.one()
        except IntegrityError:
            raise Conflict("username is taken", fields={"username": "is taken"}) from None

    def update_account(self, account_id: int, *, revoke_tokens: bool = False, **values: Any) -> Row[Any] | None:
        """Change an account's columns; `revoke_tokens` bumps its token_version, which makes
        every token issued before invalid, and records the change for every worker to see."""
        statement = update(accounts).where(accounts.c.id == account_id)
        if revoke_tokens:
            statement = statement.values(token_version=accounts.c.token_version + 1)
        row = self.conn.execute(statement.values(**values).returning(accounts)).first()
        if row is not None and revoke_tokens:
            self.note_account_change(account_id)
        return row

    def note_account_change(self, account_id: int) -> None:
        """Tell every worker (through `account_changes`) to re-check this account's sessions."""
        self.conn.execute(insert(account_changes).values(account_id=account_id, created_at=utcnow()))

    def revoke_token(self, token_id: str, account_id: int, expires_at: Any) -> None:
        if self.conn.execute(select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == token_id)).first():
            return
        self.conn.execute(
            insert(revoked_tokens).values(jti=token_id, account_id=account_id, expires_at=expires_at)
        )

    def insert_request(self, values: dict[str, Any]) -> Any:
        """Insert a request and return its row (request columns only; `INSERT_REQUEST.row`)."""
        [row] = INSERT_REQUEST.run(self.conn, values)
        return row

    def update_request(
        self, request_id: int, *, only_if_status: str, only_if: dict[str, Any] | None = None, **values: Any
    ) -> Any:
        """Change a request if it still has `only_if_status` (and the `only_if` column values).

        Returns the changed row (request columns only, a named tuple), or None when the request
        does not match: someone got there first, or it is not the caller's to change.
        """
        only_if = only_if or {}
        statement = _update_request_statement(tuple(sorted(only_if)))
        params = {**values, "where_id": request_id, "where_status": only_if_status}
        params.update({f"where_{name}": value for name, value in only_if.items()})
        rows = statement.run(self.conn, params)
        return rows[0] if rows else None

    def insert_message(self, *, request_id: int, sender_id: int, text: str) -> Row[Any]:
        result = self.conn.execute(
            insert(messages)
            .values(request_id=request_id, sender_id=sender_id, text=text, created_at=utcnow())
            .returning(messages)
        )
        return result.one()

    def append_event(self, account_id: int, event: Any) -> tuple[int, str]:
        """Store an event for `account_id` and return (event_id, json).

        `event.build(event_id)` gives the event's dict; the id comes from the account's counter,
        bumped with UPDATE … RETURNING, which also locks the row on PostgreSQL.
        """
        [counter] = BUMP_EVENT_COUNTER.run(self.conn, {"where_id": account_id})
        event_id = int(counter.last_event_id)
        payload = dumps(event.build(event_id))
        INSERT_EVENT.run(
            self.conn,
            {
                "account_id": account_id,
                "event_id": event_id,
                "type": event.type,
                "request_id": event.request_id,
                "payload": payload,
                "created_at": utcnow(),
            },
        )
        return event_id, payload

    def append_events(self, sends: Sequence[tuple[int, Any]]) -> list[tuple[int, str]]:
        """`append_event` for several events at once (a group's): each account's counter bumped
        once by its number of events, in account id order (two such transactions lock the same
        counters in the same order on PostgreSQL), and every event stored by one executemany, in
        the order given. Each event's (event_id, json), in that order; an account's events get
        consecutive ids in the order given."""
        counts = Counter(account_id for account_id, _ in sends)
        next_id: dict[int, int] = {}
        for account_id in sorted(counts):
            by = counts[account_id]
            [counter] = BUMP_EVENT_COUNTER_BY.run(self.conn, {"where_id": account_id, "by": by})
            next_id[account_id] = int(counter.last_event_id) - by + 1
        now = utcnow()
        stored: list[tuple[int, str]] = []
        rows = []
        for account_id, change in sends:
            event_id = next_id[account_id]
            next_id[account_id] = event_id + 1
            payload = dumps(change.build(event_id))
            stored.append((event_id, payload))
            rows.append(
                {
                    "account_id": account_id,
                    "event_id": event_id,
                    "type": change.type,
                    "request_id": change.request_id,
                    "payload": payload,
                    "created_at": now,
                }
            )
        INSERT_EVENT.run_many(self.conn, rows)
        return stored

    def idempotent_request(self, account_id: int, key: str) -> int | None:
        query = select(idempotency_keys.c.request_id).where(
            idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
        )
        return self.conn.execute(query).scalar_one_or_none()

    def remember_idempotency_key(self, account_id: int, key: str, request_id: int) -> None:
        self.conn.execute(
            insert(idempotency_keys).values(
                account_id=account_id, key=key, request_id=request_id, created_at=utcnow()
            )
        )

    def purge_account(self, account_id: int) -> list[tuple[str, str]]:
        """Delete an account and every request it is a party to, with their messages and events;
        the (kind, name) of the media files those requests named, for the caller to remove."""
        return purge.purge_account(self.conn, account_id)

    def set_read_mark(self, account_id: int, request_id: int, up_to: int) -> int:
        """Raise the read mark (never lower it); return the mark now stored."""
        where = (read_marks.c.account_id == account_id, read_marks.c.request_id == request_id)
        current = self.conn.execute(select(read_marks.c.up_to_event_id).where(*where)).scalar_one_or_none()
        if current is None:
            self.conn.execute(
                insert(read_marks).values(
                    account_id=account_id, request_id=request_id, up_to_event_id=up_to, updated_at=utcnow()
                )
            )
            return up_to
        if up_to > current:
            self.conn.execute(
                update(read_marks).where(*where).values(up_to_event_id=up_to, updated_at=utcnow())
            )
            return up_to
        return int(current)


def _private_database_file(path: str) -> None:
    """Create the SQLite file 0600 before SQLite does (its WAL and shm files copy the
    database file's mode), and tighten one that exists: it holds patients' data."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    database = Path(path)
    make_private_dir(database.parent)
    fd = os.open(database, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for file in (database, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def _at_head(connection: Connection) -> bool:
    from .migrations import HEAD

    if not connection.dialect.has_table(connection, "alembic_version"):
        return False
    return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD


def _upgrade(connection: Connection) -> None:
    from alembic import command  # here, not at the top: most starts find the schema up to date
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is off; `_sqlite_begin` issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a crash or restart of the process (not of the OS).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Statement journals (each group-commit SAVEPOINT's) stay in memory. Past 64 KiB SQLite spilled
    # them to /var/tmp/etilqs_*: page images of medical data outside the data dir, and a write
    # per page for each later change of the group. Measured: 0.474 -> 0.442 ms of server CPU per
    # cycle (docs/benchmarks-history.md, "What changed, each measured on its own").
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front; readers start a plain (deferred) snapshot.
    immediate = conn.get_execution_options().get("medreq_immediate")
    conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[union-attr]
