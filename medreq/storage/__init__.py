"""Storage: schema (`schema`), reads (`queries`), transactions (`store`), Alembic migrations."""

from . import groups, queries, throttle, tokens, webhooks
from .queries import as_utc, utc_text, utcnow
from .store import Store, Tx

__all__ = ["Store", "Tx", "as_utc", "groups", "queries", "throttle", "tokens", "utc_text", "utcnow", "webhooks"]
