"""The hot statements (storage/prepared.py) give the same rows on their fast path (compiled once,
run on the raw sqlite3 cursor) as through SQLAlchemy, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from medreq.storage import queries, webhooks
from medreq.storage import store as store_module
from medreq.storage.prepared import Prepared
from medreq.storage.queries import as_utc
from medreq.storage.schema import accounts, events, medicine_requests, webhook_deliveries
from medreq.storage.store import Store, Tx

from .conftest import create_database, drop_database, require_service

Run = Callable[[Prepared, Any, dict[str, Any]], list[Any]]
FAST: Run = lambda prepared, conn, params: prepared.run(conn, params)  # noqa: E731
PLAIN: Run = lambda prepared, conn, params: prepared.run_plain(conn, params)  # noqa: E731

CREATED = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
ANSWERED = CREATED + timedelta(minutes=3, microseconds=7)


@pytest.fixture(params=["sqlite", "postgresql"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two fresh, migrated databases of one kind: one for each path."""
    made: list[Store] = []
    databases: list[str] = []
    try:
        for n in range(2):
            if request.param == "postgresql":
                require_service("PostgreSQL", "127.0.0.1", 5432)
                url = await create_database()
                databases.append(url)
                url = "postgresql+asyncpg://" + url.split("://", 1)[1]
            else:
                url = f"sqlite:///{tmp_path / f'path{n}.db'}"
            store = Store(url)
            made.append(store)
            await store.migrate()
        yield made[0], made[1]
    finally:
        for store in made:
            await store.close()
        for url in databases:
            await drop_database(url)


def cycle(tx: Tx, run: Run) -> tuple[list[Any], list[int]]:
    """Every hot statement, as a request → answer cycle (and refused changes) runs them: the
    rows of each, then every row they wrote; and how many statements SQLAlchemy executed for each."""
    executed: list[str] = []
    event.listen(tx.conn, "before_cursor_execute", lambda _c, _cur, sql, *_: executed.append(sql))
    through_sqlalchemy: list[int] = []
    patient = tx.create_account(username="pat", password_hash="x", role="patient", name="Pat", phone=None)
    pharmacy = tx.create_account(username="pha", password_hash="x", role="pharmacy", name="Pha", phone=None)
    results: list[Any] = []

    def step(prepared: Prepared, params: dict[str, Any]) -> None:
        before = len(executed)
        rows = run(prepared, tx.conn, params)
        through_sqlalchemy.append(len(executed) - before)
        assert all(type(row) is prepared.row for row in rows)  # one row type, whichever path
        results.append([row._asdict() for row in rows])

    step(
        store_module.INSERT_REQUEST,
        {
            "patient_id": patient.id,
            "pharmacy_id": pharmacy.id,
            "quantity": 2,
            "medicine_name": "Amoxicillin 500mg",
            "note": None,
            "image_name": None,
            "status": "PENDING",
            "created_at": CREATED,
            "updated_at": CREATED,
        },
    )
    request_id = results[-1][0]["id"]
    for account_id in (pharmacy.id, pharmacy.id, patient.id):
        step(store_module.BUMP_EVENT_COUNTER, {"where_id": account_id})
        step(
            store_module.INSERT_EVENT,
            {
                "account_id": account_id,
                "event_id": results[-1][0]["last_event_id"],
                "type": "new_request",
                "request_id": request_id,
                "payload": '{"type":"new_request"}',
                "created_at": CREATED,
            },
        )
    by_patient = store_module._update_request_statement(("patient_id",))
    by_pharmacy = store_module._update_request_statement(("pharmacy_id",))
    anyone = store_module._update_request_statement(())
    where = {"where_id": request_id, "where_status": "PENDING"}
    # not the request's patient: nothing changes
    step(
        by_patient, {**where, "where_patient_id": pharmacy.id, "status": "CANCELLED", "updated_at": ANSWERED}
    )
    step(
        by_pharmacy,
        {
            **where,
            "where_pharmacy_id": pharmacy.id,
            "status": "ACCEPTED",
            "response_message": "Ready at 5",
            "response_audio_name": None,
            "responded_at": ANSWERED,
            "updated_at": ANSWERED,
        },
    )
    # no longer pending: nothing changes
    step(anyone, {**where, "status": "CANCELLED", "updated_at": ANSWERED})
    step(anyone, {**where, "where_status": "ACCEPTED", "note": "picked up", "updated_at": ANSWERED})
    assert results[-4] == [] and results[-2] == []  # the refused changes
    assert results[-3][0]["status"] == "ACCEPTED" and results[-1][0]["note"] == "picked up"
    # unread counts (the pharmacy has two new_request events of the request, the patient one)
    for account_id, expected in ((pharmacy.id, 2), (patient.id, 1)):
        step(queries.UNREAD_ONE, {"account_id": account_id, "request_id": request_id})
        assert results[-1] == [{"unread": expected}]
    # the webhook outbox: a row, an outcome recorded by its claim, one refused from a stale claim
    step(
        webhooks.INSERT_DELIVERY,
        {
            "account_id": patient.id,
            "channel": "webhook",
            "subscription_id": None,
            "event_id": 1,
            "type": "pharmacy_response",
            "payload": '{"type":"pharmacy_response"}',
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": CREATED,
            "created_at": CREATED,
        },
    )
    delivery_id = results[-1][0]["id"]
    due = {"now": ANSWERED, "per_target": webhooks.PER_TARGET, "scan": 10}
    step(webhooks.CANDIDATES, due)
    assert [row["id"] for row in results[-1]] == [delivery_id]
    # the lease itself is a plain statement (its id list expands), the same on both paths
    leased = tx.conn.execute(
        webhooks.CLAIM_CHOSEN, {"ids": [delivery_id], "now": ANSWERED, "until": ANSWERED + timedelta(seconds=20)}
    ).all()
    assert [(row.id, row.attempts) for row in leased] == [(delivery_id, 1)]
    step(webhooks.CANDIDATES, due)  # leased: not due
    assert results[-1] == []
    step(webhooks.WEBHOOK_TARGET, {"id": patient.id})
    delivery = {"where_id": delivery_id, "status": "delivered", "last_status": 200, "payload": None}
    step(webhooks.RECORD_OUTCOME, {**delivery, "where_attempts": 0, "delivered_at": ANSWERED})  # stale
    step(webhooks.RECORD_OUTCOME, {**delivery, "where_attempts": 1, "delivered_at": ANSWERED})
    assert results[-4] == [] and results[-2] == [] and results[-1] == [{"id": delivery_id}]
    written = [
        [row._asdict() for row in tx.conn.execute(select(table).order_by(table.c.id))]
        for table in (medicine_requests, events, webhook_deliveries)
    ]
    counters = tx.conn.execute(select(accounts.c.id, accounts.c.last_event_id).order_by(accounts.c.id))
    return results + written + [[tuple(row) for row in counters]], through_sqlalchemy


def normal(value: Any) -> Any:
    """Datetimes as aware UTC (SQLite gives them back naive, PostgreSQL aware)."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    return value


EXPECTED_REQUEST = {
    "quantity": 2,
    "medicine_name": "Amoxicillin 500mg",
    "note": "picked up",
    "image_name": None,
    "status": "ACCEPTED",
    "response_message": "Ready at 5",
    "response_audio_name": None,
    "responded_at": ANSWERED,
    "created_at": CREATED,
    "updated_at": ANSWERED,
}


async def test_hot_statements_give_the_same_rows_on_both_paths(stores: tuple[Store, Store]) -> None:
    fast_store, plain_store = stores
    fast, fast_executed = await fast_store.write(lambda tx: cycle(tx, FAST))
    plain, plain_executed = await plain_store.write(lambda tx: cycle(tx, PLAIN))

    assert normal(fast) == normal(plain)
    final = normal(plain[-4][0])  # the request as stored
    assert [row["status"] for row in plain[-2]] == ["delivered"]
    assert {k: final[k] for k in EXPECTED_REQUEST} == EXPECTED_REQUEST
    assert normal(fast[-1]) == normal(plain[-1]) and [n for _, n in plain[-1]] == [1, 2]
    # the fast path really bypassed SQLAlchemy on SQLite (and is SQLAlchemy's elsewhere)
    assert plain_executed == [1] * len(plain_executed)
    on_sqlite = fast_store.is_sqlite
    assert fast_executed == [0 if on_sqlite else 1] * len(fast_executed)


@pytest.mark.parametrize(
    "value",
    [
        CREATED,
        CREATED.replace(microsecond=0),  # isoformat drops the fraction unless told not to
        CREATED.astimezone(timezone(timedelta(hours=2))),  # another zone: stored as UTC
        CREATED.replace(tzinfo=None),  # naive: taken as UTC already
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # a four-digit year, as SQLAlchemy writes it
    ],
)
def test_a_bound_datetime_is_written_as_sqlalchemy_writes_it(value: datetime) -> None:
    from sqlalchemy.dialects import sqlite

    from medreq.storage.prepared import _bind

    sqlalchemy_writes = sqlite.DATETIME().bind_processor(sqlite.dialect())
    assert sqlalchemy_writes is not None
    expected = sqlalchemy_writes(value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value)
    assert _bind(value) == expected


TIMES = [
    CREATED,
    CREATED,  # the same object again: the last bound time's text, not formatted again
    CREATED.astimezone(timezone(timedelta(hours=2))),  # the same instant as CREATED, another zone
    CREATED.replace(microsecond=0),
    CREATED,
    CREATED.replace(tzinfo=None),
    CREATED.replace(tzinfo=None),
]


def test_times_bound_one_after_another_are_each_written_as_sqlalchemy_writes_them() -> None:
    from sqlalchemy.dialects import sqlite

    from medreq.storage.prepared import _bind

    sqlalchemy_writes = sqlite.DATETIME().bind_processor(sqlite.dialect())
    assert sqlalchemy_writes is not None
    written = [sqlalchemy_writes(v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v) for v in TIMES]
    assert [_bind(v) for v in TIMES] == written


def test_a_time_s_text_is_its_utc_isoformat_whatever_came_before() -> None:
    from medreq.storage.queries import as_utc, utc_text

    assert [utc_text(v) for v in TIMES] == [as_utc(v).isoformat() for v in TIMES]
    assert utc_text(CREATED) != utc_text(TIMES[2]) == TIMES[2].isoformat()  # equal times, other zones
