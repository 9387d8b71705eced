"""The store: an async SQLAlchemy engine (SQLite in WAL mode, or PostgreSQL) and its queries.

Reads go through `Store`; everything that changes state runs inside `Store.transaction()`,
whose `Tx` appends events in the same transaction as the change they describe (§5).
On SQLite, write transactions are serialized in-process (`BEGIN IMMEDIATE` under one lock)
so they never fail with "database is locked" and event ids are handed out in commit order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Row, and_, event, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import aliased

from ..errors import Conflict
from .schema import accounts, events, idempotency_keys, medicine_requests, messages, read_marks

MIGRATIONS = Path(__file__).with_name("migrations")

patient_account = aliased(accounts, name="patient")
pharmacy_account = aliased(accounts, name="pharmacy")

REQUEST_COLUMNS = (
    medicine_requests,
    patient_account.c.name.label("patient_name"),
    patient_account.c.phone.label("patient_phone"),
    pharmacy_account.c.name.label("pharmacy_name"),
)
REQUEST_FROM = medicine_requests.join(
    patient_account, patient_account.c.id == medicine_requests.c.patient_id
).join(pharmacy_account, pharmacy_account.c.id == medicine_requests.c.pharmacy_id)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Store:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": 30}
        else:
            options.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **options)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)

    async def close(self) -> None:
        await self.engine.dispose()

    # --- schema -------------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Apply every Alembic migration not yet applied (`alembic upgrade head`)."""
        if self.is_sqlite:
            database = self.url.split("///", 1)[-1]
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    # --- transactions -------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield Tx(conn)
            return
        async with self._write_lock, self.engine.connect() as conn:
            conn = await conn.execution_options(medreq_immediate=True)
            async with conn.begin():
                yield Tx(conn)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    # --- reads --------------------------------------------------------------------------------

    async def account(self, account_id: int) -> Row[Any] | None:
        async with self.reading() as conn:
            result = await conn.execute(select(accounts).where(accounts.c.id == account_id))
            return result.first()

    async def account_by_username(self, username: str) -> Row[Any] | None:
        async with self.reading() as conn:
            result = await conn.execute(select(accounts).where(accounts.c.username == username))
            return result.first()

    async def pharmacies(self) -> Sequence[Row[Any]]:
        query = (
            select(accounts.c.id, accounts.c.name)
            .where(accounts.c.role == "pharmacy")
            .order_by(accounts.c.id)
        )
        async with self.reading() as conn:
            return (await conn.execute(query)).all()

    async def request(self, request_id: int) -> Row[Any] | None:
        async with self.reading() as conn:
            return await _request(conn, request_id)

    async def requests(
        self,
        *,
        patient_id: int | None = None,
        pharmacy_id: int | None = None,
        status: str | None = None,
        before_id: int | None = None,
        limit: int = 20,
    ) -> Sequence[Row[Any]]:
        conditions = []
        if patient_id is not None:
            conditions.append(medicine_requests.c.patient_id == patient_id)
        if pharmacy_id is not None:
            conditions.append(medicine_requests.c.pharmacy_id == pharmacy_id)
        if status is not None:
            conditions.append(medicine_requests.c.status == status)
        if before_id is not None:
            conditions.append(medicine_requests.c.id < before_id)
        query = (
            select(*REQUEST_COLUMNS)
            .select_from(REQUEST_FROM)
            .where(and_(*conditions))
            .order_by(medicine_requests.c.id.desc())
            .limit(limit)
        )
        async with self.reading() as conn:
            return (await conn.execute(query)).all()

    async def messages(self, request_id: int) -> Sequence[Row[Any]]:
        query = select(messages).where(messages.c.request_id == request_id).order_by(messages.c.id)
        async with self.reading() as conn:
            return (await conn.execute(query)).all()

    async def request_by_media(self, kind: str, name: str) -> Row[Any] | None:
        column = (
            medicine_requests.c.image_name if kind == "image" else medicine_requests.c.response_audio_name
        )
        query = select(
            medicine_requests.c.id, medicine_requests.c.patient_id, medicine_requests.c.pharmacy_id
        ).where(column == name)
        async with self.reading() as conn:
            return (await conn.execute(query)).first()

    async def events_after(
        self, account_id: int, after: int, *, before: int | None = None, limit: int = 1000
    ) -> list[tuple[int, str]]:
        """Stored events of an account with `after < event_id (< before)`, in order: (event_id, json)."""
        conditions = [events.c.account_id == account_id, events.c.event_id > after]
        if before is not None:
            conditions.append(events.c.event_id < before)
        query = (
            select(events.c.event_id, events.c.payload)
            .where(and_(*conditions))
            .order_by(events.c.event_id)
            .limit(limit)
        )
        async with self.reading() as conn:
            return [(row.event_id, row.payload) for row in await conn.execute(query)]

    async def last_event_id(self, account_id: int) -> int:
        query = select(accounts.c.last_event_id).where(accounts.c.id == account_id)
        async with self.reading() as conn:
            return int((await conn.execute(query)).scalar_one_or_none() or 0)

    async def read_mark(self, account_id: int, request_id: int) -> int:
        query = select(read_marks.c.up_to_event_id).where(
            read_marks.c.account_id == account_id, read_marks.c.request_id == request_id
        )
        async with self.reading() as conn:
            return int((await conn.execute(query)).scalar_one_or_none() or 0)


class Tx:
    """One write transaction. Every method runs on the same connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def create_account(
        self, *, username: str, password_hash: str, role: str, name: str, phone: str | None
    ) -> Row[Any]:
        values = {
            "username": username,
            "password_hash": password_hash,
            "role": role,
            "name": name,
            "phone": phone,
            "last_event_id": 0,
            "created_at": utcnow(),
        }
        try:
            async with self.conn.begin_nested():
                result = await self.conn.execute(insert(accounts).values(values).returning(accounts))
        except IntegrityError:
            raise Conflict("username is taken", fields={"username": "is taken"}) from None
        return result.one()

    async def account(self, account_id: int) -> Row[Any] | None:
        return (await self.conn.execute(select(accounts).where(accounts.c.id == account_id))).first()

    async def insert_request(self, values: dict[str, Any]) -> int:
        result = await self.conn.execute(
            insert(medicine_requests).values(values).returning(medicine_requests.c.id)
        )
        return int(result.scalar_one())

    async def request(self, request_id: int) -> Row[Any] | None:
        return await _request(self.conn, request_id)

    async def update_request(self, request_id: int, *, only_if_status: str, **values: Any) -> bool:
        """Change a request if it still has `only_if_status`; False when someone got there first."""
        result = await self.conn.execute(
            update(medicine_requests)
            .where(medicine_requests.c.id == request_id, medicine_requests.c.status == only_if_status)
            .values(**values)
        )
        return result.rowcount == 1

    async def insert_message(self, *, request_id: int, sender_id: int, text: str) -> Row[Any]:
        result = await self.conn.execute(
            insert(messages)
            .values(request_id=request_id, sender_id=sender_id, text=text, created_at=utcnow())
            .returning(messages)
        )
        return result.one()

    async def append_event(self, account_id: int, event: Any) -> tuple[int, str]:
        """Store an event for `account_id` and return (event_id, json).

        `event.build(event_id)` gives the event's dict; the id comes from the account's counter,
        bumped with UPDATE … RETURNING, which also locks the row on PostgreSQL.
        """
        result = await self.conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(last_event_id=accounts.c.last_event_id + 1)
            .returning(accounts.c.last_event_id)
        )
        event_id = int(result.scalar_one())
        payload = json.dumps(event.build(event_id), separators=(",", ":"), ensure_ascii=False)
        await self.conn.execute(
            insert(events).values(
                account_id=account_id,
                event_id=event_id,
                type=event.type,
                request_id=event.request_id,
                payload=payload,
                created_at=utcnow(),
            )
        )
        return event_id, payload

    async def idempotent_request(self, account_id: int, key: str) -> int | None:
        query = select(idempotency_keys.c.request_id).where(
            idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
        )
        return (await self.conn.execute(query)).scalar_one_or_none()

    async def remember_idempotency_key(self, account_id: int, key: str, request_id: int) -> None:
        await self.conn.execute(
            insert(idempotency_keys).values(
                account_id=account_id, key=key, request_id=request_id, created_at=utcnow()
            )
        )

    async def set_read_mark(self, account_id: int, request_id: int, up_to: int) -> int:
        """Raise the read mark (never lower it); return the mark now stored."""
        current = (
            await self.conn.execute(
                select(read_marks.c.up_to_event_id).where(
                    read_marks.c.account_id == account_id, read_marks.c.request_id == request_id
                )
            )
        ).scalar_one_or_none()
        if current is None:
            await self.conn.execute(
                insert(read_marks).values(
                    account_id=account_id, request_id=request_id, up_to_event_id=up_to, updated_at=utcnow()
                )
            )
            return up_to
        if up_to > current:
            await self.conn.execute(
                update(read_marks)
                .where(read_marks.c.account_id == account_id, read_marks.c.request_id == request_id)
                .values(up_to_event_id=up_to, updated_at=utcnow())
            )
            return up_to
        return int(current)

    async def set_webhook(self, account_id: int, url: str | None) -> None:
        await self.conn.execute(update(accounts).where(accounts.c.id == account_id).values(webhook_url=url))

    async def count(self, table: Any) -> int:
        return int((await self.conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _request(conn: AsyncConnection, request_id: int) -> Row[Any] | None:
    query = select(*REQUEST_COLUMNS).select_from(REQUEST_FROM).where(medicine_requests.c.id == request_id)
    return (await conn.execute(query)).first()


def _upgrade(connection: Connection) -> None:
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
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front; readers start a plain (deferred) snapshot.
    immediate = conn.get_execution_options().get("medreq_immediate")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
