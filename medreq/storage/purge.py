"""Removing an account with everything it is a party to (the simulator's accounts, after a run).

Only the sandbox of synthetic accounts is ever purged (service/sandbox.py): a synthetic account
can only exchange requests with other synthetic accounts, so every row removed here belongs to
synthetic accounts. Children go before parents, so foreign keys hold at every step.

The last row written is an `account_changes` row for the account just removed (that table has no
foreign key since migration 0006): every worker polls it and closes the account's open sockets,
as it does for a disabled account, instead of letting them answer `ping` and `resume`.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.engine import Connection

from .queries import image_in_use, utcnow
from .schema import (
    account_changes,
    accounts,
    events,
    idempotency_keys,
    medicine_requests,
    messages,
    push_subscriptions,
    read_marks,
    request_groups,
    revoked_tokens,
    webhook_deliveries,
)
from .tokens import refresh_families


def purge_account(conn: Connection, account_id: int) -> list[tuple[str, str]]:
    """Delete the account, its requests (either side), their messages, read marks, idempotency
    keys, events (the other party's too) and groups; the (kind, name) of their media files that
    no remaining request names (a group's requests share one prescription: docs/protocol.md §3, groups)."""
    requests = medicine_requests.c
    mine = select(requests.id).where(or_(requests.patient_id == account_id, requests.pharmacy_id == account_id))
    media: dict[tuple[str, str], None] = {}  # in order, each once
    for image, audio in conn.execute(
        select(requests.image_name, requests.response_audio_name).where(requests.id.in_(mine))
    ):
        media.update({("image", image): None} if image else {})
        media.update({("audio", audio): None} if audio else {})
    conn.execute(delete(messages).where(or_(messages.c.request_id.in_(mine), messages.c.sender_id == account_id)))
    conn.execute(
        delete(read_marks).where(or_(read_marks.c.request_id.in_(mine), read_marks.c.account_id == account_id))
    )
    conn.execute(
        delete(idempotency_keys).where(
            or_(idempotency_keys.c.request_id.in_(mine), idempotency_keys.c.account_id == account_id)
        )
    )
    conn.execute(delete(events).where(or_(events.c.request_id.in_(mine), events.c.account_id == account_id)))
    conn.execute(delete(medicine_requests).where(requests.id.in_(mine)))
    # a patient's groups; a pharmacy's removal leaves the other pharmacies' requests of a group
    conn.execute(delete(request_groups).where(request_groups.c.patient_id == account_id))
    shared = image_in_use(conn, [name for kind, name in media if kind == "image"], besides=[])
    conn.execute(delete(revoked_tokens).where(revoked_tokens.c.account_id == account_id))
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.account_id == account_id))
    conn.execute(delete(push_subscriptions).where(push_subscriptions.c.account_id == account_id))
    conn.execute(delete(refresh_families).where(refresh_families.c.account_id == account_id))
    conn.execute(delete(account_changes).where(account_changes.c.account_id == account_id))
    conn.execute(delete(accounts).where(accounts.c.id == account_id))
    conn.execute(insert(account_changes).values(account_id=account_id, created_at=utcnow()))
    return [(kind, name) for kind, name in media if not (kind == "image" and name in shared)]
