"""Bounded storage: events and media older than their retention are pruned (docs/protocol.md §5).

- Events older than `event_retention_days` (default 90) are deleted, except each account's
  latest (`accounts.last_event_id`), so its counter keeps counting from where it was and a
  replay can tell a pruned range from an empty one: `?after=N` (or `resume`) below the oldest
  kept event gets `{"type":"resync_required","oldest_event_id"}` first (web/socket/connection.py).
- Media of requests closed (answered or cancelled) longer than `media_retention_days` ago
  (default 0: kept) are deleted and the request's `image_url`/`audio_url` become null.
  Files go first, then the names: a crash in between leaves a name whose file is gone
  (served 404, pruned again next time), never a file nobody points to. A prescription the
  requests of a group share (docs/protocol.md §3, groups) is removed with the last request that names
  it: until then only the pruned requests forget its name.
- Never what is still wanted, however old: no event of a request still PENDING, no event that
  counts as unread (after its account's read mark), and no media of a request whose patient has
  not read all of it (an unheard voice reply stays, and so does its unread count).
- Token bookkeeping once it can no longer matter: refresh token families and logouts' revoked
  tokens past their tokens' expiry, and `account_changes` older than `changes_horizon` (the
  longest token lifetime: every worker has polled them long before).

Work is done in batches of `BATCH` rows, each its own transaction, so a first prune of a
large table holds SQLite's write lock for one batch at a time, not for the whole prune.
The server runs `prune` every `prune_interval` seconds; `medreq db prune` runs it on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, not_, or_, select, update
from sqlalchemy.engine import Connection

from ..media import Kind, MediaStore
from ..storage import Store, Tx, queries, tokens, utcnow
from ..storage.queries import UNREAD_TYPES
from ..storage.schema import account_changes, accounts, events, medicine_requests, read_marks

log = logging.getLogger("medreq.retention")
BATCH = 2000
#: `account_changes` kept at least this long when no horizon is given (the default refresh token lifetime)
CHANGES_HORIZON = 14 * 24 * 3600


@dataclass
class PruneReport:
    events: int = 0
    requests: int = 0  # requests whose media were removed
    media_files: int = 0
    media_bytes: int = 0
    tokens: int = 0  # refresh token families and revoked refresh tokens past their expiry
    account_changes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def prune(
    store: Store,
    media: MediaStore,
    *,
    event_days: int,
    media_days: int,
    changes_horizon: float = CHANGES_HORIZON,
    now: datetime | None = None,
) -> PruneReport:
    """Delete what is past its retention (0 days: keep forever) and say what went."""
    now = now or utcnow()
    report = PruneReport()
    while (removed := await store.write(lambda tx: tokens.prune_expired(tx.conn, now, limit=BATCH))) > 0:
        report.tokens += removed
    changes_cutoff = now - timedelta(seconds=max(changes_horizon, 0))
    while (removed := await store.write(lambda tx: _delete_changes(tx, changes_cutoff))) > 0:
        report.account_changes += removed
    if event_days > 0:
        cutoff = now - timedelta(days=event_days)
        while True:
            removed = await store.write(lambda tx: _delete_events(tx, cutoff))
            report.events += removed
            if removed < BATCH:
                break
    if media_days > 0:
        cutoff = now - timedelta(days=media_days)
        while True:
            rows, shared = await store.read(lambda conn: _closed_with_media(conn, cutoff))
            for row in rows:
                if row.image_name not in shared:
                    _remove_file(media, "image", row.image_name, report)
                _remove_file(media, "audio", row.response_audio_name, report)
            ids = [row.id for row in rows]
            if ids:
                await store.write(functools.partial(_forget_media, ids=ids))
            report.requests += len(ids)
            if len(rows) < BATCH:
                break
    return report


def _delete_events(tx: Tx, cutoff: datetime) -> int:
    e, r = events.c, medicine_requests.c
    latest = select(accounts.c.last_event_id).where(accounts.c.id == e.account_id).scalar_subquery()
    pending = exists().where(r.id == e.request_id, r.status == "PENDING")
    old = (
        select(e.id)
        .where(e.created_at < cutoff, e.event_id < latest, not_(pending), not_(_unread(events)))
        .limit(BATCH)
    )
    return tx.conn.execute(delete(events).where(e.id.in_(old))).rowcount


def _unread(table: Any) -> Any:
    """An event of `table` (events or an alias) that its account has not read (queries.unread_counts)."""
    mark = (
        select(read_marks.c.up_to_event_id)
        .where(read_marks.c.account_id == table.c.account_id, read_marks.c.request_id == table.c.request_id)
        .scalar_subquery()
    )
    return and_(
        table.c.request_id.is_not(None),
        table.c.type.in_(UNREAD_TYPES),
        table.c.event_id > func.coalesce(mark, 0),
    )


def _delete_changes(tx: Tx, cutoff: datetime) -> int:
    c = account_changes.c
    old = select(c.id).where(c.created_at < cutoff).limit(BATCH)
    return int(tx.conn.execute(delete(account_changes).where(c.id.in_(old))).rowcount)


def _closed_with_media(conn: Connection, cutoff: datetime) -> tuple[list[Any], set[str]]:
    """A batch of requests whose media are past retention, and the prescriptions among theirs
    that another request still names (kept until that one goes too)."""
    r = medicine_requests.c
    # the patient has not caught up on it: an unheard voice reply stays with its unread mark
    unread = exists().where(events.c.request_id == r.id, events.c.account_id == r.patient_id, _unread(events))
    query = (
        select(r.id, r.image_name, r.response_audio_name)
        .where(
            r.status != "PENDING",
            r.updated_at < cutoff,
            or_(r.image_name.is_not(None), r.response_audio_name.is_not(None)),
            not_(unread),
        )
        .order_by(r.id)
        .limit(BATCH)
    )
    rows = list(conn.execute(query))
    names = sorted({row.image_name for row in rows if row.image_name})
    return rows, queries.image_in_use(conn, names, besides=[row.id for row in rows])


def _forget_media(tx: Tx, *, ids: list[int]) -> None:
    tx.conn.execute(
        update(medicine_requests)
        .where(medicine_requests.c.id.in_(ids))
        .values(image_name=None, response_audio_name=None)
    )


def _remove_file(media: MediaStore, kind: Kind, name: str | None, report: PruneReport) -> None:
    path = media.path(kind, name) if name else None
    if path is None:
        return
    with contextlib.suppress(FileNotFoundError):  # another worker's prune got there first
        size = path.stat().st_size
        path.unlink()
        report.media_files += 1
        report.media_bytes += size


async def run_periodically(
    store: Store,
    media: MediaStore,
    *,
    event_days: int,
    media_days: int,
    interval: float,
    changes_horizon: float = CHANGES_HORIZON,
) -> None:
    """The server's background prune: every `interval` seconds (jittered, so several workers
    do not all prune at once), until cancelled. A failed prune is logged and tried again.
    It runs even when events and media are kept forever: token bookkeeping still expires."""
    while True:
        await asyncio.sleep(max(1.0, interval) * random.uniform(0.5, 1.0))
        try:
            report = await prune(
                store, media, event_days=event_days, media_days=media_days, changes_horizon=changes_horizon
            )
        except Exception:
            log.exception("pruning failed; trying again at the next interval")
            continue
        if any(report.as_dict().values()):
            log.info("pruned %s", report.as_dict(), extra={"fields": {"pruned": report.as_dict()}})
