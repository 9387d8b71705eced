"""A group's writes (docs/protocol.md §3, groups): create it, and choose one of its requests.

Choosing runs in one transaction (`Store.write`): it locks the group's row first
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write transactions never run side by side), so
two choices of one group, on any worker, run one after the other and the second sees the first's
`chosen_request_id`. The chosen request must still be ACCEPTED and the others are cancelled by
conditional updates (`status IN ('PENDING', 'ACCEPTED')`): a pharmacy's answer that commits
first is cancelled with them, one that comes after finds its request CANCELLED and changes
nothing (its own update is conditional on PENDING).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from .schema import medicine_requests, request_groups

CANCELLABLE = ("PENDING", "ACCEPTED")
ANOTHER_CHOSEN = "another_pharmacy_chosen"


def insert_group(conn: Connection, patient_id: int, now: datetime) -> int:
    """A new group of `patient_id`; its id."""
    statement = (
        insert(request_groups).values(patient_id=patient_id, created_at=now).returning(request_groups.c.id)
    )
    return int(conn.execute(statement).scalar_one())


def lock_group(conn: Connection, group_id: int) -> Any:
    """The group's row (`id`, `patient_id`, `chosen_request_id`), locked until the transaction
    ends; None when there is no such group."""
    query = select(request_groups).where(request_groups.c.id == group_id).with_for_update()
    return conn.execute(query).first()


def set_chosen(conn: Connection, group_id: int, request_id: int) -> None:
    conn.execute(
        update(request_groups).where(request_groups.c.id == group_id).values(chosen_request_id=request_id)
    )


def cancel_others(conn: Connection, group_id: int, chosen_id: int, now: datetime) -> list[Any]:
    """Cancel every other request of the group still PENDING or ACCEPTED, in id order; their rows."""
    r = medicine_requests.c
    statement = (
        update(medicine_requests)
        .where(r.group_id == group_id, r.id != chosen_id, r.status.in_(CANCELLABLE))
        .values(status="CANCELLED", cancel_reason=ANOTHER_CHOSEN, updated_at=now)
        .returning(medicine_requests)
    )
    return sorted(conn.execute(statement).all(), key=lambda row: row.id)
