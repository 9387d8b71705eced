"""A database that cannot be reached, or is no longer the primary, answers 503 (docs/deploy.md,
"Failover"): `unavailable_while_switching` turns the errors a PostgreSQL switch-over raises into
`Unavailable`, with Retry-After, instead of a 500 that reads as a bug.

During a switch the old primary's connections break (the statement in flight fails), and new
ones find no read-write server until the standby is promoted; asyncpg raises the errors below,
SQLAlchemy wraps them (``DBAPIError``, with the original as its cause) or flags the connection
invalidated. Nothing was committed by a statement that failed this way unless its commit reached
the standby first (synchronous replication): a client retrying with the same Idempotency-Key
gets the request either way, once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg
from sqlalchemy.exc import DBAPIError

from ..protocol.errors import Unavailable

RETRY_AFTER = 1.0
MESSAGE = "the database is unavailable for a moment (switching over?): try again"

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection that is gone
    asyncpg.exceptions.OperatorInterventionError,  # 57P01 admin shutdown, 57P02 crash, 57P03 starting
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a primary demoted under us
    asyncpg.TargetServerAttributeNotMatched,  # no host is a primary yet
)


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says the database is away, not that a statement is wrong."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OUTAGE_ERRORS):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


@contextlib.contextmanager
def unavailable_while_switching() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_outage(exc):
            raise Unavailable(MESSAGE, retry_after=RETRY_AFTER) from exc
        raise
