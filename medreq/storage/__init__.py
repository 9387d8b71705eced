"""Storage: schema (`schema`), queries and transactions (`store`), Alembic migrations."""

from .store import Store, Tx, as_utc, utcnow

__all__ = ["Store", "Tx", "as_utc", "utcnow"]
