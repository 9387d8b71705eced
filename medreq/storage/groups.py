"""A group's writes (docs/protocol.md §3, groups): create it, and choose one of its requests.

Choosing runs in one transaction (`Store.write`): it locks the group's row first
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write transactions never run side by side), so
two choices of one group, on any worker, run one after the other and the second sees the first's
`chosen_request_id`. The chosen request must still be ACCEPTED and the others are cancelled by
conditional updates (`status IN ('PENDING', 'ACCEPTED')`): a pharmacy's answer that commits
first is cancelled with them, one that comes after finds its request CANCELLED and changes
nothing (its own update is conditional on PENDING).

The statements are built once (`Prepared`): on SQLite they run on the raw cursor, elsewhere
through SQLAlchemy, and return the same rows either way (tests/test_group_paths.py). Through
SQLAlchemy's plain path a choice's five statements cost more server CPU than everything else
in it (py-spy under `medreq bench cycle --pharmacies 3`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import bindparam, insert, literal, select, update
from sqlalchemy.engine import Connection

from .prepared import Prepared
from .schema import medicine_requests, request_groups

CANCELLABLE = ("PENDING", "ACCEPTED")
#: what PostgreSQL rolls a transaction back with when it lost a race it can safely run again
RACES_LOST: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,  # 40P01
    asyncpg.exceptions.SerializationError,  # 40001
)
ANOTHER_CHOSEN = "another_pharmacy_chosen"

INSERT_GROUP = Prepared(insert(request_groups).returning(request_groups.c.id))
REQUEST_ROW = Prepared(select(medicine_requests).where(medicine_requests.c.id == bindparam("id")))
LOCK_GROUP = Prepared(
    select(request_groups).where(request_groups.c.id == bindparam("id")).with_for_update()
)
SET_CHOSEN = Prepared(update(request_groups).where(request_groups.c.id == bindparam("where_id")))
CANCEL_OTHERS = Prepared(
    update(medicine_requests)
    .where(
        medicine_requests.c.group_id == bindparam("where_group_id"),
        medicine_requests.c.id != bindparam("where_id"),
        medicine_requests.c.status.in_([literal(status) for status in CANCELLABLE]),  # not an expanding IN
    )
    .returning(medicine_requests)
)


def insert_group(conn: Connection, patient_id: int, now: datetime) -> int:
    """A new group of `patient_id`; its id."""
    [row] = INSERT_GROUP.run(conn, {"patient_id": patient_id, "created_at": now})
    return int(row.id)


def request_row(conn: Connection, request_id: int) -> Any:
    """A request's own columns (no parties' names: `Core.named` adds them); None if there is none."""
    rows = REQUEST_ROW.run(conn, {"id": request_id})
    return rows[0] if rows else None


def lock_group(conn: Connection, group_id: int) -> Any:
    """The group's row (`id`, `patient_id`, `chosen_request_id`), locked until the transaction
    ends; None when there is no such group."""
    rows = LOCK_GROUP.run(conn, {"id": group_id})
    return rows[0] if rows else None


def set_chosen(conn: Connection, group_id: int, request_id: int) -> None:
    SET_CHOSEN.run(conn, {"where_id": group_id, "chosen_request_id": request_id})


def cancel_others(conn: Connection, group_id: int, chosen_id: int, now: datetime) -> list[Any]:
    """Cancel every other request of the group still PENDING or ACCEPTED, in id order; their rows."""
    params = {
        "where_group_id": group_id,
        "where_id": chosen_id,
        "status": "CANCELLED",
        "cancel_reason": ANOTHER_CHOSEN,
        "updated_at": now,
    }
    return sorted(CANCEL_OTHERS.run(conn, params), key=lambda row: row.id)


def lost_a_race(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps: SQLAlchemy's DBAPIError has asyncpg's error as a cause)
    is PostgreSQL rolling the transaction back to break a deadlock or a serialization conflict."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RACES_LOST):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False
