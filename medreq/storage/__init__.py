"""Storage: schema (`schema`), reads (`queries`), transactions (`store`), Alembic migrations."""

from . import groups, queries, throttle, tokens, webhooks
from .queries import as_utc, utcnow
from .store import Store, Tx

__all__ = ["Store", "Tx", "as_utc", "groups", "queries", "throttle", "tokens", "utcnow", "webhooks"]
