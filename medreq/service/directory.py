"""Accounts by id, cached.

An account's id, role, name and phone never change once created, so the cache needs no
invalidation, even across workers. It saves a query on every authenticated call and lets
a write transaction name a request's parties without a join.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from ..storage import Store, queries


@dataclass(frozen=True)
class AccountInfo:
    id: int
    role: str
    name: str
    phone: str | None
    synthetic: bool = False


class Directory:
    def __init__(self, store: Store, *, size: int = 100_000) -> None:
        self._store = store
        self._size = size
        self._cache: dict[int, AccountInfo] = {}

    async def get(self, account_id: int) -> AccountInfo | None:
        info = self._cache.get(account_id)
        if info is None:
            info = await self._store.read(lambda conn: self.get_in(conn, account_id))
        return info

    def get_in(self, conn: Connection, account_id: int) -> AccountInfo | None:
        """The same, from inside a store call (sync, on the store's connection)."""
        info = self._cache.get(account_id)
        if info is None:
            row = queries.account(conn, account_id)
            if row is None:
                return None
            if len(self._cache) >= self._size:
                self._cache.clear()
            info = self._cache[account_id] = AccountInfo(
                row.id, row.role, row.name, row.phone, bool(row.synthetic)
            )
        return info

    def forget(self, account_id: int) -> None:
        """After an account was removed (ids are never reused, so nothing else can go stale)."""
        self._cache.pop(account_id, None)
