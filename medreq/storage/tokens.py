"""Refresh token families: rotation with reuse detection (docs/security.md, "A stolen refresh token").

A sign-in starts a family (its id is the first refresh token's `jti`). The family row names the
one refresh token of it that is still good (`current_jti`); each refresh replaces it, so every
refresh token works once. A refresh token of the family that is not the current one has been
used already: someone holds a copy (a thief, or the owner after the thief refreshed first), so
the whole family is revoked (`revoked_at`) and every worker is told through `account_changes`.
The access tokens of a family revoked for reuse stop working too (`Directory` loads the account's
such families). Logout revokes its family's refresh tokens; its access tokens run out.

The row is read `FOR UPDATE` (PostgreSQL; SQLite's write transaction holds its lock already), so
two workers given the same token at once cannot both rotate it: the second sees it replaced.

Rows are removed by the retention task once the family's refresh tokens have expired
(`prune_expired`): a token past its `exp` fails before its family is looked at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import Column, DateTime, ForeignKey, Index, String, Table, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .queries import utcnow
from .schema import Id, account_changes, metadata, revoked_tokens

refresh_families = Table(
    "refresh_families",
    metadata,
    Column("family", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    # the family's only refresh token still good: any other of it is a reuse
    Column("current_jti", String(64), nullable=False),
    # the family's refresh tokens expire then (a rotation does not extend a sign-in)
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("rotated_at", DateTime(timezone=True)),
    # logout, or a reused refresh token: no refresh token of the family works any more
    Column("revoked_at", DateTime(timezone=True)),
    # `logout` (its access tokens run out) or `reuse` (its access tokens stop at once too)
    Column("revoked_why", String(16)),
)
Index("ix_refresh_families_account", refresh_families.c.account_id)

#: what `rotate` found: the token was the current one (now replaced), a copy of an older one
#: (the family is now revoked), or no good token at all (revoked before, or no such family)
Rotation = Literal["rotated", "reused", "revoked"]


def start(conn: Connection, family: str, account_id: int, expires_at: datetime) -> None:
    """A new sign-in: its family, whose current refresh token is the one with `jti` = `family`."""
    now = utcnow()
    conn.execute(
        insert(refresh_families).values(
            family=family, account_id=account_id, current_jti=family, expires_at=expires_at, created_at=now
        )
    )


def rotate(
    conn: Connection,
    *,
    family: str,
    account_id: int,
    token_id: str,
    new_token_id: str,
    expires_at: datetime,
    legacy: bool = False,
) -> Rotation:
    """Replace the family's current refresh token `token_id` by `new_token_id`; a `token_id` that
    is not the current one revokes the family. `legacy`: a token issued before families existed
    (its family is its own `jti`), whose family is started here on its first refresh."""
    f = refresh_families.c
    row = conn.execute(
        select(f.account_id, f.current_jti, f.revoked_at).where(f.family == family).with_for_update()
    ).first()
    if row is None:
        if not legacy:
            return "revoked"  # a family nobody started: not a token of ours to honour
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(refresh_families).values(
                        family=family,
                        account_id=account_id,
                        current_jti=new_token_id,
                        expires_at=expires_at,
                        created_at=utcnow(),
                        rotated_at=utcnow(),
                    )
                )
        except IntegrityError:  # the same old token, refreshed at once on another worker
            revoke(conn, family, account_id, why="reuse")
            return "reused"
        return "rotated"
    if row.account_id != account_id or row.revoked_at is not None:
        return "revoked"
    if row.current_jti != token_id:
        revoke(conn, family, account_id, why="reuse")
        return "reused"
    conn.execute(
        update(refresh_families)
        .where(f.family == family, f.current_jti == token_id)
        .values(current_jti=new_token_id, rotated_at=utcnow())
    )
    return "rotated"


def revoke(
    conn: Connection,
    family: str,
    account_id: int,
    *,
    why: Literal["logout", "reuse"],
    expires_at: datetime | None = None,
) -> None:
    """Revoke the family (made revoked when it has no row yet and `expires_at` is given: a token
    issued before families). For a reuse, every worker re-checks the account's sessions, whose
    access tokens of this family then fail."""
    f = refresh_families.c
    now = utcnow()
    changed = conn.execute(
        update(refresh_families)
        .where(f.family == family, f.account_id == account_id, f.revoked_at.is_(None))
        .values(revoked_at=now, revoked_why=why)
    ).rowcount
    if not changed and expires_at is not None:
        exists = conn.execute(select(f.family).where(f.family == family)).first()
        if exists is None:
            conn.execute(
                insert(refresh_families).values(
                    family=family,
                    account_id=account_id,
                    current_jti=family,
                    expires_at=expires_at,
                    created_at=now,
                    revoked_at=now,
                    revoked_why=why,
                )
            )
            changed = 1
    if changed and why == "reuse":
        conn.execute(insert(account_changes).values(account_id=account_id, created_at=now))


def reused_families(conn: Connection, account_id: int) -> frozenset[str]:
    """The account's families revoked for a reuse, whose tokens have not expired yet."""
    f = refresh_families.c
    query = select(f.family).where(f.account_id == account_id, f.revoked_why == "reuse", f.expires_at > utcnow())
    return frozenset(conn.execute(query).scalars())


def prune_expired(conn: Connection, now: datetime, *, limit: int) -> int:
    """Delete up to `limit` families, and logouts' revoked refresh tokens, past their expiry:
    their tokens fail on `exp` before either is looked at."""
    f = refresh_families.c
    old = select(f.family).where(f.expires_at < now).limit(limit)
    removed = conn.execute(delete(refresh_families).where(f.family.in_(old))).rowcount
    r = revoked_tokens.c
    old_jti = select(r.jti).where(r.expires_at < now).limit(limit)
    removed += conn.execute(delete(revoked_tokens).where(r.jti.in_(old_jti))).rowcount
    return int(removed)
