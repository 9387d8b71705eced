"""Queries: plain functions over a synchronous SQLAlchemy Core `Connection`.

They run wherever the store runs them: in the SQLite worker threads, or through
`AsyncConnection.run_sync` on PostgreSQL. Reads are free functions; writes live on `Tx`
(store.py) so that they only ever run inside a write transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, or_, select
from sqlalchemy.engine import Connection

from ..protocol import UNREAD
from .prepared import Prepared
from .schema import (
    account_changes,
    accounts,
    events,
    medicine_requests,
    messages,
    read_marks,
    revoked_tokens,
)

# Core aliases, not `orm.aliased`: the ORM is not needed and costs start-up time to import
patient_account = accounts.alias("patient")
pharmacy_account = accounts.alias("pharmacy")

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


_last_text: tuple[datetime | None, str] = (None, "")


def utc_text(value: datetime) -> str:
    """`as_utc(value).isoformat()`, without `replace` (a naive time gets the UTC offset's text),
    and the last time's text again for an equal time with the same tzinfo: a change stamps its
    rows and events with one time. In a group cycle `replace` and `isoformat` were 8.5 % of the
    server's instructions (callgrind, `bench cycle --pharmacies 3`), ~50 calls a cycle."""
    global _last_text
    last, text = _last_text  # one tuple: read and replaced whole, by any thread
    if last is None or value != last or value.tzinfo is not last.tzinfo:
        text = value.isoformat() + "+00:00" if value.tzinfo is None else value.isoformat()
        _last_text = (value, text)
    return text


def account(conn: Connection, account_id: int) -> Any:
    return conn.execute(select(accounts).where(accounts.c.id == account_id)).first()


def account_by_username(conn: Connection, username: str) -> Any:
    return conn.execute(select(accounts).where(accounts.c.username == username)).first()


def pharmacies(conn: Connection, *, synthetic: bool = False) -> Sequence[Any]:
    """Pharmacies a patient may send requests to: active ones (not pending, not disabled), real
    ones or (``synthetic``) those of the simulation sandbox."""
    query = (
        select(accounts.c.id, accounts.c.name)
        .where(accounts.c.role == "pharmacy", accounts.c.status == "active", accounts.c.synthetic == synthetic)
        .order_by(accounts.c.id)
    )
    return conn.execute(query).all()


def pending_patients(conn: Connection, pharmacy_id: int) -> list[int]:
    """The patients with a PENDING request to this pharmacy (who hear of its presence)."""
    query = (
        select(medicine_requests.c.patient_id)
        .where(medicine_requests.c.pharmacy_id == pharmacy_id, medicine_requests.c.status == "PENDING")
        .distinct()
    )
    return [int(patient_id) for patient_id in conn.execute(query).scalars()]


def account_list(conn: Connection, *, status: str | None = None, limit: int = 1000) -> Sequence[Any]:
    """Accounts for operators, oldest first, optionally of one status."""
    query = select(accounts).order_by(accounts.c.id).limit(limit)
    if status is not None:
        query = query.where(accounts.c.status == status)
    return conn.execute(query).all()


def token_revoked(conn: Connection, token_id: str) -> bool:
    query = select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == token_id)
    return conn.execute(query).first() is not None


def account_changes_after(conn: Connection, after: int, *, limit: int = 1000) -> list[tuple[int, int]]:
    """Revocations recorded after change `after`, in order: (change id, account id)."""
    query = (
        select(account_changes.c.id, account_changes.c.account_id)
        .where(account_changes.c.id > after)
        .order_by(account_changes.c.id)
        .limit(limit)
    )
    return [(row.id, row.account_id) for row in conn.execute(query)]


def last_account_change(conn: Connection) -> int:
    query = select(account_changes.c.id).order_by(account_changes.c.id.desc()).limit(1)
    return int(conn.execute(query).scalar_one_or_none() or 0)


def request(conn: Connection, request_id: int) -> Any:
    """A request with its parties' names (`patient_name`, `patient_phone`, `pharmacy_name`)."""
    query = select(*REQUEST_COLUMNS).select_from(REQUEST_FROM).where(medicine_requests.c.id == request_id)
    return conn.execute(query).first()


def requests(
    conn: Connection,
    *,
    patient_id: int | None = None,
    pharmacy_id: int | None = None,
    status: str | None = None,
    group_id: int | None = None,
    before_id: int | None = None,
    limit: int = 20,
) -> Sequence[Any]:
    """Requests newest first, filtered; `before_id` is the cursor."""
    conditions = []
    if patient_id is not None:
        conditions.append(medicine_requests.c.patient_id == patient_id)
    if group_id is not None:
        conditions.append(medicine_requests.c.group_id == group_id)
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
    return conn.execute(query).all()


def group_requests(conn: Connection, group_id: int) -> Sequence[Any]:
    """The requests of a group with their parties' names, in the order they were created (the
    order their pharmacies were named)."""
    query = (
        select(*REQUEST_COLUMNS)
        .select_from(REQUEST_FROM)
        .where(medicine_requests.c.group_id == group_id)
        .order_by(medicine_requests.c.id)
    )
    return conn.execute(query).all()


def image_in_use(conn: Connection, names: Sequence[str], *, besides: Sequence[int]) -> set[str]:
    """Of the prescription `names`, those a request other than `besides` still names (a group's
    requests share one file: it is removed with the last of them)."""
    if not names:
        return set()
    r = medicine_requests.c
    query = select(r.image_name).where(r.image_name.in_(list(names)), r.id.not_in(list(besides))).distinct()
    return {str(name) for name in conn.execute(query).scalars()}


def thread(conn: Connection, request_id: int) -> Sequence[Any]:
    query = select(messages).where(messages.c.request_id == request_id).order_by(messages.c.id)
    return conn.execute(query).all()


def request_by_media(conn: Connection, kind: str, name: str, account_id: int | None = None) -> Any:
    """The request that names a file (`id`, `patient_id`, `pharmacy_id`, `status`). A group's
    requests share one prescription (docs/protocol.md §3, groups): with `account_id`, the one that account
    takes part in comes first."""
    column = medicine_requests.c.image_name if kind == "image" else medicine_requests.c.response_audio_name
    r = medicine_requests.c
    query = select(r.id, r.patient_id, r.pharmacy_id, r.status).where(column == name)
    if account_id is not None:
        query = query.order_by(or_(r.patient_id == account_id, r.pharmacy_id == account_id).desc(), r.id)
    return conn.execute(query.limit(1)).first()


def cancelled_new_requests(conn: Connection, account_id: int, first: int, last: int) -> set[int]:
    """Of the account's events `first`..`last`, the `new_request`s of requests now CANCELLED."""
    query = (
        select(events.c.event_id)
        .select_from(events.join(medicine_requests, medicine_requests.c.id == events.c.request_id))
        .where(
            events.c.account_id == account_id,
            events.c.event_id.between(first, last),
            events.c.type == "new_request",
            medicine_requests.c.status == "CANCELLED",
        )
    )
    return set(conn.execute(query).scalars())


def events_after(
    conn: Connection, account_id: int, after: int, *, before: int | None = None, limit: int = 1000
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
    return [(row.event_id, row.payload) for row in conn.execute(query)]


# What `unread` counts: news from the other party (protocol.UNREAD), in a fixed order so that the
# statements built from it read the same in every process.
UNREAD_TYPES = tuple(sorted(UNREAD))


# One request's count, on the hot path (every answer, cancel and replayed create returns the
# caller's count): built once. Building the grouped query per call was 17 % of the server's
# CPU under `bench cycle` (py-spy), more than the rest of the answer's transaction.
UNREAD_ONE = Prepared(
    select(func.count().label("unread")).where(
        events.c.account_id == bindparam("account_id"),
        events.c.request_id == bindparam("request_id"),
        events.c.type.in_([literal(kind) for kind in UNREAD_TYPES]),  # constants, not an expanding IN
        events.c.event_id
        > func.coalesce(
            select(read_marks.c.up_to_event_id)
            .where(
                read_marks.c.account_id == bindparam("account_id"),
                read_marks.c.request_id == bindparam("request_id"),
            )
            .scalar_subquery(),
            0,
        ),
    )
)


def unread_count(conn: Connection, account_id: int, request_id: int) -> int:
    """`unread_counts` for one request (the same count, from a statement built once)."""
    [row] = UNREAD_ONE.run(conn, {"account_id": account_id, "request_id": request_id})
    return int(row.unread)


def unread_counts(conn: Connection, account_id: int, request_ids: Sequence[int]) -> dict[int, int]:
    """Per request: the account's stored events of that request after its read mark (docs/protocol.md §3, `unread`).

    One grouped query for a whole page, on the (account_id, request_id, event_id) index."""
    if not request_ids:
        return {}
    mark = (
        select(read_marks.c.up_to_event_id)
        .where(read_marks.c.account_id == account_id, read_marks.c.request_id == events.c.request_id)
        .scalar_subquery()
    )
    query = (
        select(events.c.request_id, func.count())
        .where(
            events.c.account_id == account_id,
            events.c.request_id.in_(list(request_ids)),
            events.c.type.in_(UNREAD_TYPES),
            events.c.event_id > func.coalesce(mark, 0),
        )
        .group_by(events.c.request_id)
    )
    counts = {int(request_id): int(count) for request_id, count in conn.execute(query)}
    return {request_id: counts.get(request_id, 0) for request_id in request_ids}


def last_event_id(conn: Connection, account_id: int) -> int:
    query = select(accounts.c.last_event_id).where(accounts.c.id == account_id)
    return int(conn.execute(query).scalar_one_or_none() or 0)
