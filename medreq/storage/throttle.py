"""The wrong-guess back-off's statements (service/throttle.py): one attempt claimed per statement.

An attempt is claimed *before* the guess is checked, by one atomic statement that adds it to the
series of failures and sets the hold the new count earns, only while no hold is running, and
returns the new count (no row: held, refuse without checking). A right guess clears the series
afterwards. So the count never depends on a value read earlier: parallel guesses on one worker
(SQLite's single writer) or on many (PostgreSQL locks the row and re-checks the WHERE on its
latest version) each see the count the one before left, and none past the allowance is checked.

- An account's series: `accounts.failed_logins` / `login_blocked_until`, UPDATE … RETURNING.
- Any other name's (an unknown username, the `/metrics` token): a `login_guards` row keyed by a
  keyed hash of it, INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Update, bindparam, case, delete, null, or_, select, update
from sqlalchemy.engine import Connection

from .queries import utcnow
from .schema import accounts, login_guards

A = accounts.c
G = login_guards.c


class Policy:
    """How long a series of `failures` holds the next attempt back: nothing below `allowance`
    failures, then `first` seconds (1 by default), twice that, four times … up to `longest`."""

    def __init__(self, allowance: int, longest: float, first: float = 1.0) -> None:
        self.allowance = max(1, allowance)
        self.longest = longest
        self.first = first

    def hold(self, failures: int) -> float:
        over = failures - self.allowance
        return 0.0 if over < 0 else float(min(self.first * 2 ** min(over, 62), self.longest))

    def holds(self) -> Sequence[float]:
        """The distinct holds from `allowance` failures on, the last one repeating forever."""
        found: list[float] = []
        failures = self.allowance
        while not found or (found[-1] < self.longest and len(found) < 64):
            found.append(self.hold(failures))
            failures += 1
        return found

    def until(self, count: ColumnElement[Any], now: datetime, column: Any) -> ColumnElement[Any]:
        """SQL: the end of the hold a series of `count` failures earns (NULL below the allowance)."""
        holds = self.holds()
        branches: list[tuple[ColumnElement[bool], Any]] = [(count < self.allowance, null())]
        for offset, seconds in enumerate(holds[:-1]):
            branches.append((count == self.allowance + offset, self._at(now, seconds, column, offset)))
        return case(*branches, else_=self._at(now, holds[-1], column, len(holds)))

    def until_value(self, count: int, now: datetime) -> datetime | None:
        seconds = self.hold(count)
        return now + timedelta(seconds=seconds) if seconds else None

    @staticmethod
    def _at(now: datetime, seconds: float, column: Any, key: int) -> Any:
        return bindparam(f"hold_{key}", now + timedelta(seconds=seconds), type_=column.type)


def _not_held(column: Any, now: datetime) -> ColumnElement[bool]:
    return or_(column.is_(None), column <= bindparam("now", now, type_=column.type))


def claim_account(conn: Connection, account_id: int, policy: Policy) -> int | None:
    """Count one attempt on the account; its failures in a row now, or None while it is held."""
    now = utcnow()
    count = A.failed_logins + 1
    statement: Update = (
        update(accounts)
        .where(A.id == account_id, _not_held(A.login_blocked_until, now))
        .values(failed_logins=count, login_blocked_until=policy.until(count, now, A.login_blocked_until))
        .returning(A.failed_logins)
    )
    row = conn.execute(statement).first()
    return None if row is None else int(row.failed_logins)


def clear_account(conn: Connection, account_id: int) -> None:
    conn.execute(
        update(accounts)
        .where(A.id == account_id, or_(A.failed_logins != 0, A.login_blocked_until.is_not(None)))
        .values(failed_logins=0, login_blocked_until=None)
    )


def account_held_until(conn: Connection, account_id: int) -> datetime | None:
    value = conn.execute(select(A.login_blocked_until).where(A.id == account_id)).scalar_one_or_none()
    return value if isinstance(value, datetime) else None


def claim_subject(conn: Connection, subject: str, policy: Policy) -> int | None:
    """`claim_account` for a name that is not an account's (`subject`: its keyed hash)."""
    now = utcnow()
    count = G.failures + 1
    values = {
        "subject": subject,
        "failures": 1,
        "blocked_until": policy.until_value(1, now),
        "updated_at": now,
    }
    update_set = {
        "failures": count,
        "blocked_until": policy.until(count, now, G.blocked_until),
        "updated_at": now,
    }
    statement: Any
    if conn.dialect.name == "postgresql":  # the dialects' own INSERT has ON CONFLICT; imported here,
        from sqlalchemy.dialects import postgresql  # as the store imports PostgreSQL's only for it

        statement = postgresql.insert(login_guards).values(values)
    else:
        from sqlalchemy.dialects import sqlite

        statement = sqlite.insert(login_guards).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[G.subject], set_=update_set, where=_not_held(G.blocked_until, now)
    ).returning(G.failures)
    row = conn.execute(statement).first()
    return None if row is None else int(row.failures)


def clear_subject(conn: Connection, subject: str) -> None:
    conn.execute(delete(login_guards).where(G.subject == subject))


def subject_held_until(conn: Connection, subject: str) -> datetime | None:
    value = conn.execute(select(G.blocked_until).where(G.subject == subject)).scalar_one_or_none()
    return value if isinstance(value, datetime) else None


def prune_subjects(conn: Connection, before: datetime) -> int:
    """Forget the series of names last guessed before `before` and no longer held."""
    stale = delete(login_guards).where(G.updated_at < before, _not_held(G.blocked_until, utcnow()))
    return int(conn.execute(stale).rowcount or 0)
