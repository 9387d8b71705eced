"""The hot transactions on PostgreSQL, each one SQL statement on a raw asyncpg connection.

Through SQLAlchemy's async engine a request → answer cycle cost ~3.7 ms of server CPU on
PostgreSQL + Redis (docs/benchmarks.md, "Fast PostgreSQL path"): a greenlet switch, the
execution layer and an asyncpg round trip per statement, ~8 statements and a pool pre-ping per
transaction, where SQLite's whole cycle costs 0.9 ms. Here each hot transaction is a single
statement whose data-modifying CTEs do all of it: the change, the per-account counter bumps,
the events and the webhook/push outbox rows. A single statement is atomic on its own, so there
is no BEGIN or COMMIT to send: one round trip, and asyncpg prepares the statement once per
connection (its statement cache) and then only binds and executes it.

The guarantees are those of the plain path (`Store.write`):

- events are stored in the statement that makes the change (all or nothing), and the caller
  publishes them only after it returned, i.e. committed;
- per-account event ids are gap-free and strictly increasing: ``UPDATE accounts SET
  last_event_id = last_event_id + 1`` takes the account row's lock, a concurrent writer waits for
  it and then bumps the committed value (READ COMMITTED re-reads an updated row), and a failed
  statement rolls its bump back with everything else;
- idempotency keys are stored with the request they name, in the same statement;
- webhook and push outbox rows are written in the same statement for the accounts the caller
  names (offline here with a webhook or a push subscription: `service.base.Core` decides, as it
  does on the plain path).

An event's text depends on its event id (and a new request's or message's id), which only the
statement knows. The caller builds the text once with placeholder ids and `Template` cuts it at
them; the statement joins the pieces around the real ids (``p0 || event_id || p1 || id || p2``),
and `Template.fill` gives the caller the same text. A JSON string escapes every ``"`` in it, so
``"event_id":<placeholder>`` can only match the object's own key, never text a user wrote.

The plain path stays: SQLite, and PostgreSQL with ``MEDREQ_PG_FAST_PATH=false``; tests/test_pg_fast.py
runs both on PostgreSQL and compares everything they return and store.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ..config.urls import libpq_url
from .outage import unavailable_while_switching
from .pgpool import Connections
from .queries import UNREAD_TYPES
from .schema import medicine_requests, messages

#: ids no real row has: an event is built with these and cut at them (`Template`)
EVENT_ID_MARK = 9_007_199_254_740_881
ROW_ID_MARK = 9_007_199_254_740_771


@dataclass(frozen=True, slots=True)
class Template:
    """An event's text cut at its event id (and at the new row's id, if `row_key`)."""

    pieces: tuple[str, str, str]

    @classmethod
    def cut(cls, text: str, row_key: str | None = None) -> Template:
        head, rest = _split_once(text, f'"event_id":{EVENT_ID_MARK}', '"event_id":')
        if row_key is None:
            return cls((head, rest, ""))
        middle, tail = _split_once(rest, f'"{row_key}":{ROW_ID_MARK}', f'"{row_key}":')
        return cls((head, middle, tail))

    def fill(self, event_id: int, row_id: int | None = None) -> str:
        head, middle, tail = self.pieces
        return f"{head}{event_id}{middle}{'' if row_id is None else row_id}{tail}"


def _split_once(text: str, mark: str, key: str) -> tuple[str, str]:
    if text.count(mark) != 1:
        raise ValueError(f"event text has {text.count(mark)} placeholders {mark!r}, not one")
    head, tail = text.split(mark)
    return head + key, tail


@dataclass(frozen=True, slots=True)
class HotEvent:
    """One event a hot transaction stores: for whom, what, and which outbox rows go with it."""

    account_id: int
    type: str
    template: Template
    webhook: bool = False  # queue a webhook delivery
    push: bool = False  # queue a push delivery per subscription of the account


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as stored: for whom, its id and its text."""

    account_id: int
    event_id: int
    text: str


# --- the statements -------------------------------------------------------------------------------
# `ev` (account_id, event_id, type, payload, pos) feeds the outbox rows; `pos` keeps the
# order the plain path writes them in (event by event: webhook, then each subscription).

_DELIVERIES = """
deliveries AS (
    INSERT INTO webhook_deliveries (account_id, channel, subscription_id, event_id, type, payload,
                                    status, attempts, next_attempt_at, created_at)
    SELECT d.account_id, d.channel, d.subscription_id, d.event_id, d.type, d.payload,
           'pending', 0, $now, $now
    FROM (
        SELECT ev.account_id, 'webhook' AS channel, NULL::bigint AS subscription_id, ev.event_id,
               ev.type, ev.payload, ev.pos, 0 AS sort
        FROM ev WHERE ev.account_id = ANY($webhooks::bigint[])
        UNION ALL
        SELECT ev.account_id, 'push', s.id, ev.event_id, ev.type, ev.payload, ev.pos, s.id
        FROM ev JOIN push_subscriptions s ON s.account_id = ev.account_id
        WHERE ev.account_id = ANY($pushes::bigint[])
    ) d
    ORDER BY d.pos, d.sort
)"""

CREATE_REQUEST = f"""
WITH req AS (
    INSERT INTO medicine_requests (patient_id, pharmacy_id, quantity, medicine_name, note, image_name,
                                   status, created_at, updated_at)
    VALUES ($patient, $pharmacy, $quantity, $medicine_name, $note, $image_name, $status, $now, $now)
    RETURNING *
), idem AS (
    INSERT INTO idempotency_keys (account_id, key, request_id, created_at)
    SELECT $patient, $key::text, req.id, $now FROM req WHERE $key::text IS NOT NULL
), counter AS (
    UPDATE accounts SET last_event_id = last_event_id + 1
    WHERE id = $pharmacy AND EXISTS (SELECT FROM req)
    RETURNING id, last_event_id
), ev AS (
    INSERT INTO events (account_id, event_id, type, request_id, payload, created_at)
    SELECT counter.id, counter.last_event_id, $type, req.id,
           $p0::text || counter.last_event_id || $p1::text || req.id || $p2::text, $now
    FROM req, counter
    RETURNING account_id, event_id, type, payload, 0 AS pos
), {_DELIVERIES}
SELECT req.*, ev.event_id AS event_id_ FROM req, ev
"""

# The unread count is read in the statement's snapshot, without its own events: the caller's
# one event here (`request_updated`) is not a kind `unread` counts (queries.UNREAD_TYPES), so
# it is the count the plain path reads after its inserts.
ANSWER_REQUEST = f"""
WITH req AS (
    UPDATE medicine_requests
    SET status = $status, response_message = $response_message,
        response_audio_name = $response_audio_name, responded_at = $now, updated_at = $now,
        response_price = $response_price, response_currency = $response_currency,
        response_ready_at = $response_ready_at
    WHERE id = $request AND status = $only_if_status AND pharmacy_id = $caller AND patient_id = $other
    RETURNING *
), counter AS (
    UPDATE accounts SET last_event_id = last_event_id + 1
    WHERE id IN ($other, $caller) AND EXISTS (SELECT FROM req)
    RETURNING id, last_event_id
), ev AS (
    INSERT INTO events (account_id, event_id, type, request_id, payload, created_at)
    SELECT c.id, c.last_event_id,
           CASE WHEN c.id = $other THEN $type ELSE $type2 END, $request,
           CASE WHEN c.id = $other THEN $p0::text || c.last_event_id || $p1::text
                ELSE $q0::text || c.last_event_id || $q1::text END,
           $now
    FROM counter c
    ORDER BY c.id = $other DESC
    RETURNING account_id, event_id, type, payload, CASE WHEN account_id = $other THEN 0 ELSE 1 END AS pos
), {_DELIVERIES}
SELECT req.*,
       (SELECT event_id FROM ev WHERE account_id = $other) AS event_id_,
       (SELECT event_id FROM ev WHERE account_id = $caller) AS event_id_2,
       (SELECT count(*) FROM events e
        WHERE e.account_id = $caller AND e.request_id = $request
          AND e.type = ANY($unread_types::text[])
          AND e.event_id > coalesce((SELECT m.up_to_event_id FROM read_marks m
                                     WHERE m.account_id = $caller AND m.request_id = $request), 0)
       ) AS unread_
FROM req
"""

POST_MESSAGE = f"""
WITH msg AS (
    INSERT INTO messages (request_id, sender_id, text, created_at)
    VALUES ($request, $caller, $text, $now)
    RETURNING *
), counter AS (
    UPDATE accounts SET last_event_id = last_event_id + 1
    WHERE id = $other AND EXISTS (SELECT FROM msg)
    RETURNING id, last_event_id
), ev AS (
    INSERT INTO events (account_id, event_id, type, request_id, payload, created_at)
    SELECT counter.id, counter.last_event_id, $type, $request,
           $p0::text || counter.last_event_id || $p1::text || msg.id || $p2::text, $now
    FROM msg, counter
    RETURNING account_id, event_id, type, payload, 0 AS pos
), {_DELIVERIES}
SELECT msg.*, ev.event_id AS event_id_ FROM msg, ev
"""

EVENTS_AFTER = """
SELECT event_id, payload FROM events
WHERE account_id = $1 AND event_id > $2 AND event_id < $3
ORDER BY event_id LIMIT $4
"""

IDEMPOTENT_REQUEST = "SELECT request_id FROM idempotency_keys WHERE account_id = $1 AND key = $2"
REQUEST_PATIENT = "SELECT patient_id FROM medicine_requests WHERE id = $1 AND pharmacy_id = $2"
REQUEST_PARTIES = "SELECT patient_id, pharmacy_id FROM medicine_requests WHERE id = $1"


def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``$name`` placeholders → asyncpg's ``$1``…, and the names in that order."""
    names: list[str] = []
    out = []
    for i, part in enumerate(sql.split("$")):
        if i == 0:
            out.append(part)
            continue
        name = ""
        while part and (part[0].isalnum() or part[0] == "_"):
            name, part = name + part[0], part[1:]
        if name not in names:
            names.append(name)
        out.append(f"${names.index(name) + 1}{part}")
    return "".join(out), tuple(names)


class _Statement:
    def __init__(self, sql: str) -> None:
        self.sql, self.names = _numbered(sql)

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


_CREATE = _Statement(CREATE_REQUEST)
_ANSWER = _Statement(ANSWER_REQUEST)
_MESSAGE = _Statement(POST_MESSAGE)
NO_LIMIT = 2**63 - 1


def _deliveries(events: Sequence[HotEvent]) -> dict[str, list[int]]:
    return {
        "webhooks": [e.account_id for e in events if e.webhook],
        "pushes": [e.account_id for e in events if e.push],
    }


# rows as named tuples of the table's columns, like the plain path's (`Prepared.row`)
RequestRow = namedtuple("RequestRow", [column.key for column in medicine_requests.columns])  # type: ignore[misc]
MessageRow = namedtuple("MessageRow", [column.key for column in messages.columns])  # type: ignore[misc]


def _row(make: Any, record: asyncpg.Record) -> Any:
    """A result row's table columns (the statement's own columns, named `…_`, left out)."""
    return make(*(record[field] for field in make._fields))


class FastPath:
    """The hot transactions on asyncpg connections of their own (storage/pgpool.py)."""

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self._dsn = libpq_url(url)  # several hosts too: asyncpg tries them in order (urls.py)
        self._max_size = max_size
        self._pool: Connections | None = None

    async def pool(self) -> Connections:
        if self._pool is None:
            self._pool = Connections(self._dsn, max_size=self._max_size)
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _fetchrow(self, statement: _Statement, values: dict[str, Any]) -> asyncpg.Record | None:
        with unavailable_while_switching():
            pool = await self.pool()
            return await pool.fetchrow(statement.sql, *statement.args(values))

    # --- the hot transactions ---------------------------------------------------------------------

    async def create_request(
        self, values: dict[str, Any], event: HotEvent, *, idempotency_key: str | None = None
    ) -> tuple[Any, Stored] | None:
        """Insert a request (and its idempotency key) and its event for the pharmacy; the request's
        row and the stored event. None if the idempotency key was stored meanwhile (a concurrent
        retry): nothing is stored, and the caller replays the first request."""
        now = values["created_at"]
        try:
            record = await self._fetch_create(now, values, event, idempotency_key)
        except asyncpg.UniqueViolationError as exc:
            if idempotency_key is None or exc.constraint_name != "pk_idempotency_keys":
                raise
            return None
        assert record is not None  # the pharmacy exists: the request's foreign key
        row = _row(RequestRow, record)
        event_id = int(record["event_id_"])
        return row, Stored(event.account_id, event_id, event.template.fill(event_id, row.id))

    async def _fetch_create(
        self, now: datetime, values: dict[str, Any], event: HotEvent, idempotency_key: str | None
    ) -> asyncpg.Record | None:
        return await self._fetchrow(
            _CREATE,
            {
                "patient": values["patient_id"],
                "pharmacy": values["pharmacy_id"],
                "quantity": values["quantity"],
                "medicine_name": values["medicine_name"],
                "note": values["note"],
                "image_name": values["image_name"],
                "status": values["status"],
                "now": now,
                "key": idempotency_key,
                "type": event.type,
                "p0": event.template.pieces[0],
                "p1": event.template.pieces[1],
                "p2": event.template.pieces[2],
                **_deliveries([event]),
            },
        )

    async def answer_request(
        self,
        request_id: int,
        *,
        caller_id: int,
        patient_id: int,
        only_if_status: str,
        values: dict[str, Any],
        to_patient: HotEvent,
        to_caller: HotEvent,
    ) -> tuple[Any, list[Stored], int] | None:
        """Answer a request still `only_if_status`, addressed to `caller_id` and sent by
        `patient_id`: its new row, the two stored events (patient's first) and the caller's unread
        count on it; None when it no longer matches."""
        record = await self._fetchrow(
            _ANSWER,
            {
                "request": request_id,
                "caller": caller_id,
                "other": patient_id,
                "only_if_status": only_if_status,
                "status": values["status"],
                "response_message": values["response_message"],
                "response_audio_name": values["response_audio_name"],
                "response_price": values["response_price"],
                "response_currency": values["response_currency"],
                "response_ready_at": values["response_ready_at"],
                "now": values["updated_at"],
                "type": to_patient.type,
                "type2": to_caller.type,
                "p0": to_patient.template.pieces[0],
                "p1": to_patient.template.pieces[1],
                "q0": to_caller.template.pieces[0],
                "q1": to_caller.template.pieces[1],
                "unread_types": list(UNREAD_TYPES),
                **_deliveries([to_patient, to_caller]),
            },
        )
        if record is None:
            return None
        stored = [
            Stored(event.account_id, int(record[key]), event.template.fill(int(record[key])))
            for event, key in ((to_patient, "event_id_"), (to_caller, "event_id_2"))
        ]
        return _row(RequestRow, record), stored, int(record["unread_"])

    async def post_message(
        self, request_id: int, *, sender_id: int, text: str, created_at: datetime, event: HotEvent
    ) -> tuple[Any, Stored]:
        """Insert a thread message and its event for the other party (`event.account_id`)."""
        record = await self._fetchrow(
            _MESSAGE,
            {
                "request": request_id,
                "caller": sender_id,
                "text": text,
                "now": created_at,
                "other": event.account_id,
                "type": event.type,
                "p0": event.template.pieces[0],
                "p1": event.template.pieces[1],
                "p2": event.template.pieces[2],
                **_deliveries([event]),
            },
        )
        assert record is not None  # the request and both accounts exist: foreign keys
        row = _row(MessageRow, record)
        event_id = int(record["event_id_"])
        return row, Stored(event.account_id, event_id, event.template.fill(event_id, row.id))

    # --- reads ------------------------------------------------------------------------------------

    async def events_after(
        self, account_id: int, after: int, *, before: int | None = None, limit: int = 1000
    ) -> list[tuple[int, str]]:
        """`queries.events_after` as one prepared statement (the replay page)."""
        with unavailable_while_switching():
            pool = await self.pool()
            before_id = NO_LIMIT if before is None else before
            rows = await pool.fetch(EVENTS_AFTER, account_id, after, before_id, limit)
        return [(int(row["event_id"]), row["payload"]) for row in rows]

    async def idempotent_request(self, account_id: int, key: str) -> int | None:
        with unavailable_while_switching():
            pool = await self.pool()
            found = await pool.fetchval(IDEMPOTENT_REQUEST, account_id, key)
        return None if found is None else int(found)

    async def request_patient(self, request_id: int, pharmacy_id: int) -> int | None:
        """The patient of a request addressed to `pharmacy_id` (None: no such request of theirs)."""
        with unavailable_while_switching():
            pool = await self.pool()
            found = await pool.fetchval(REQUEST_PATIENT, request_id, pharmacy_id)
        return None if found is None else int(found)


    async def request_parties(self, request_id: int) -> tuple[int, int] | None:
        """A request's (patient_id, pharmacy_id), or None when there is no such request."""
        with unavailable_while_switching():
            pool = await self.pool()
            row = await pool.fetchrow(REQUEST_PARTIES, request_id)
        return None if row is None else (int(row["patient_id"]), int(row["pharmacy_id"]))
