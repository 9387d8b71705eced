"""The webhook outbox (docs/protocol.md §5): rows written in the transaction of the event they carry,
claimed by one deliverer at a time, and their outcome.

Claiming is fair between receivers: a claim takes at most `per_target` due rows of each target
(an account's webhook, or one push subscription: `Target`), oldest first, and none of a target
the deliverer already has `per_target` POSTs in flight to, so one receiver's backlog never fills
a claim and a hanging receiver holds no more than its own share (docs/security.md, "One account's
receiver"). Claiming is a lease: the claim bumps `attempts` and moves `next_attempt_at` past the time a
POST can take, in a transaction of its own, so the row is not due for anyone else meanwhile. On
PostgreSQL several workers claim at once with ``FOR UPDATE SKIP LOCKED`` (none waits on, or takes,
another's rows); SQLite's write lock (``BEGIN IMMEDIATE``) serialises claims. A deliverer that
dies mid-POST (kill -9) leaves the row to be claimed again once its lease ends: a delivery may
repeat (receivers drop duplicates by `event_id`), none is lost. A result is recorded only by the
claim it belongs to (same `attempts`), so a late deliverer never overwrites a newer attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from .prepared import Prepared
from .queries import utcnow
from .schema import accounts, push_subscriptions, webhook_deliveries

S = push_subscriptions.c
A = accounts.c

#: one receiver's queue: (account, channel, push subscription or None for the webhook)
Target = tuple[int, str, int | None]

D = webhook_deliveries.c
# On the hot path (one row per event for an offline account with a webhook): built once, run
# straight on SQLite's cursor like the event insert (prepared.py). Measured with
# loadtests/outbox_cost.py: building the statement per call cost more than the insert itself.
INSERT_DELIVERY = Prepared(insert(webhook_deliveries).returning(D.id))
# One per attempt, values from the parameters (a SET clause per parameter set, compiled once):
# building it per call was 4.5 % of the server's CPU under `bench cycle --webhook` (py-spy).
RECORD_OUTCOME = Prepared(
    update(webhook_deliveries)
    .where(D.id == bindparam("where_id"), D.attempts == bindparam("where_attempts"), D.status == "pending")
    .returning(D.id)
)


@dataclass(frozen=True)
class Claimed:
    id: int
    account_id: int
    type: str
    attempts: int
    payload: str
    url: str | None
    secret: str | None
    channel: str = "webhook"
    subscription_id: int | None = None
    #: push: the subscription's endpoint and keys (None when it was removed meanwhile)
    endpoint: str | None = None
    p256dh: str | None = None
    auth: str | None = None
    #: webhook: the account wants ids only (`webhook_payload` "thin"), not the event's content
    thin: bool = False

    @property
    def target(self) -> Target:
        return (self.account_id, self.channel, self.subscription_id)


def enqueue(
    conn: Connection,
    account_id: int,
    event_id: int | None,
    kind: str,
    payload: str,
    *,
    channel: str = "webhook",
    subscription_id: int | None = None,
) -> int:
    now = utcnow()
    values = {
        "account_id": account_id,
        "channel": channel,
        "subscription_id": subscription_id,
        "event_id": event_id,
        "type": kind,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    [row] = INSERT_DELIVERY.run(conn, values)
    return int(row.id)


# Claiming, in two steps inside one write transaction. First the candidates, built once (claims
# run once per deliverer round; building them per call was 3.8 % of the server's CPU under `bench
# cycle --webhook`, py-spy): due rows numbered within their target, oldest first, at most
# `per_target` of each, so a target with thousands of due rows offers only its first few.
_DUE = (
    select(
        D.id,
        D.account_id,
        D.channel,
        D.subscription_id,
        D.next_attempt_at,
        func.row_number()
        .over(partition_by=(D.account_id, D.channel, D.subscription_id), order_by=(D.next_attempt_at, D.id))
        .label("rank"),
    )
    .where(D.status == literal("pending"), D.next_attempt_at <= bindparam("now"))
    .subquery("due")
)
CANDIDATES = Prepared(
    select(_DUE.c.id, _DUE.c.account_id, _DUE.c.channel, _DUE.c.subscription_id)
    .where(_DUE.c.rank <= bindparam("per_target"))
    .order_by(_DUE.c.next_attempt_at, _DUE.c.id)
    .limit(bindparam("scan"))
)
# Then the lease on the chosen rows, re-checked: on PostgreSQL another worker may have leased one
# meanwhile (then it is no longer due) or hold it right now (``SKIP LOCKED``: not waited for).
CLAIM_CHOSEN = (
    update(webhook_deliveries)
    .where(
        D.id.in_(
            select(D.id)
            .where(D.id.in_(bindparam("ids", expanding=True)), D.status == literal("pending"), D.next_attempt_at <= bindparam("now"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(attempts=D.attempts + 1, last_attempt_at=bindparam("now"), next_attempt_at=bindparam("until"))
    .returning(D.id, D.account_id, D.type, D.attempts, D.payload, D.channel, D.subscription_id)
)
WEBHOOK_TARGET = Prepared(
    select(A.webhook_url, A.webhook_secret, A.webhook_payload).where(A.id == bindparam("id"))
)
PUSH_TARGET = Prepared(select(S.endpoint, S.p256dh, S.auth).where(S.id == bindparam("id")))
PER_TARGET = 2


def claim(
    conn: Connection,
    *,
    limit: int,
    lease: float,
    per_target: int = PER_TARGET,
    in_flight: Mapping[Target, int] | None = None,
) -> list[Claimed]:
    """Up to `limit` due deliveries, leased to the caller for `lease` seconds (inside a write
    transaction): at most `per_target` for each target, counting the caller's `in_flight` ones."""
    if limit <= 0:
        return []
    in_flight = in_flight or {}
    now = utcnow()
    # every target in flight may offer rows it has no room for: look past them
    scan = limit + per_target * len(in_flight)
    candidates = CANDIDATES.run(conn, {"now": now, "per_target": per_target, "scan": scan})
    taken: dict[Target, int] = {}
    chosen: list[int] = []
    for c in candidates:
        target = (c.account_id, c.channel, c.subscription_id)
        if in_flight.get(target, 0) + taken.get(target, 0) >= per_target:
            continue
        taken[target] = taken.get(target, 0) + 1
        chosen.append(c.id)
        if len(chosen) >= limit:
            break
    if not chosen:
        return []
    until = now + timedelta(seconds=lease)
    rows = conn.execute(CLAIM_CHOSEN, {"ids": chosen, "now": now, "until": until}).all()
    claimed = []
    for r in sorted(rows, key=lambda r: r.id):
        hook = WEBHOOK_TARGET.run(conn, {"id": r.account_id})
        url, secret, payload = hook[0] if hook else (None, None, None)
        push = PUSH_TARGET.run(conn, {"id": r.subscription_id}) if r.subscription_id is not None else []
        endpoint, p256dh, auth = push[0] if push else (None, None, None)  # None: unsubscribed meanwhile
        claimed.append(
            Claimed(
                id=r.id,
                account_id=r.account_id,
                type=r.type,
                attempts=r.attempts,
                payload=r.payload or "",
                url=url,
                secret=secret,
                channel=r.channel,
                subscription_id=r.subscription_id,
                endpoint=endpoint,
                p256dh=p256dh,
                auth=auth,
                thin=payload == "thin",
            )
        )
    return claimed


def record(
    conn: Connection,
    claimed: Claimed,
    *,
    status: str,
    http_status: int | None = None,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> bool:
    """The outcome of a claimed attempt: `pending` again (at `retry_at`), or final. False when the
    claim was lost meanwhile (its lease ran out and another deliverer took it)."""
    values: dict[str, Any] = {"status": status, "last_status": http_status, "last_error": (error or None)}
    if status == "pending":
        assert retry_at is not None
        values["next_attempt_at"] = retry_at
    else:
        values["payload"] = None  # delivered, failed or skipped: keep no copy of the event
    if status == "delivered":
        values["delivered_at"] = utcnow()
    if values["last_error"] is not None:
        values["last_error"] = values["last_error"][:200]
    values.update(where_id=claimed.id, where_attempts=claimed.attempts)
    return bool(RECORD_OUTCOME.run(conn, values))


def lock_account(conn: Connection, account_id: int) -> Any:
    """The account's webhook columns, its row locked until the transaction ends (PostgreSQL;
    SQLite's write transaction holds the whole database): None when it is gone."""
    query = select(A.id, A.webhook_url, A.webhook_payload).where(A.id == account_id).with_for_update()
    return conn.execute(query).first()


def last_test_at(conn: Connection, account_id: int) -> datetime | None:
    """When the account's latest `webhook_test` delivery was queued (None: never, or purged)."""
    query = select(func.max(D.created_at)).where(D.account_id == account_id, D.type == "webhook_test")
    last: datetime | None = conn.execute(query).scalar()
    return last


def for_account(conn: Connection, account_id: int, *, limit: int) -> Sequence[Any]:
    """An account's deliveries, newest first."""
    query = (
        select(
            D.id,
            D.channel,
            D.event_id,
            D.type,
            D.status,
            D.attempts,
            D.next_attempt_at,
            D.last_attempt_at,
            D.last_status,
            D.last_error,
            D.created_at,
            D.delivered_at,
        )
        .where(D.account_id == account_id)
        .order_by(D.id.desc())
        .limit(limit)
    )
    return conn.execute(query).all()


# --- Web Push subscriptions -------------------------------------------------------------------


def drop_pending(conn: Connection, account_id: int, reason: str) -> int:
    """Fail every delivery of the account still waiting (its copy of the event cleared): its
    targets were removed, so none of them may go out later. A POST already in flight ends as a
    lost claim (`record` finds the row no longer pending)."""
    statement = (
        update(webhook_deliveries)
        .where(D.account_id == account_id, D.status == "pending")
        .values(status="failed", payload=None, last_error=reason[:200])
    )
    return int(conn.execute(statement).rowcount or 0)


def subscriptions(conn: Connection, account_id: int) -> Sequence[Any]:
    """The account's push subscriptions, oldest first."""
    return conn.execute(select(push_subscriptions).where(S.account_id == account_id).order_by(S.id)).all()


def subscription_ids(conn: Connection, account_id: int) -> list[int]:
    return [int(i) for i in conn.execute(select(S.id).where(S.account_id == account_id)).scalars()]


def save_subscription(
    conn: Connection, account_id: int, endpoint: str, p256dh: str, auth: str
) -> tuple[Any, bool] | None:
    """Add a subscription, or renew the keys of one the caller already has at that endpoint:
    (the row, whether it is new); None when the endpoint belongs to another account."""
    existing = conn.execute(select(S.id, S.account_id).where(S.endpoint == endpoint)).first()
    if existing is not None and existing.account_id != account_id:
        return None
    if existing is not None:
        conn.execute(update(push_subscriptions).where(S.id == existing.id).values(p256dh=p256dh, auth=auth))
        return conn.execute(select(push_subscriptions).where(S.id == existing.id)).one(), False
    values = {
        "account_id": account_id,
        "endpoint": endpoint,
        "p256dh": p256dh,
        "auth": auth,
        "created_at": utcnow(),
    }
    return conn.execute(insert(push_subscriptions).values(values).returning(push_subscriptions)).one(), True


def delete_subscription(conn: Connection, *, endpoint: str | None = None, subscription_id: int | None = None,
                        account_id: int | None = None) -> bool:  # fmt: skip
    statement = delete(push_subscriptions)
    if endpoint is not None:
        statement = statement.where(S.endpoint == endpoint)
    if subscription_id is not None:
        statement = statement.where(S.id == subscription_id)
    if account_id is not None:
        statement = statement.where(S.account_id == account_id)
    return bool(conn.execute(statement).rowcount)


def backlog(conn: Connection) -> tuple[int, datetime | None]:
    """Rows waiting to be delivered, and when the oldest of them was queued (None: no backlog).
    The `(status, next_attempt_at)` index covers the `status = 'pending'` range."""
    count, oldest = conn.execute(
        select(func.count(), func.min(D.created_at)).where(D.status == "pending")
    ).one()
    return int(count), oldest
