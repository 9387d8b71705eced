"""Accounts by id, cached.

An account's id, role, name and phone never change once created; its `status`,
`token_version` and webhook do (approval, disabling, a password change, `PUT /auth/me`). Every such change is written
with a row in `account_changes`; the worker that made it calls `forget` at once, and every
other worker (and the operator CLI's changes) reaches `forget` through
`Accounts.account_changes` (polled by `web.sessions.watch`), within its poll interval. So the cache saves a query on
every authenticated call and lets a write transaction name a request's parties without a join,
and a revocation still reaches every worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from ..storage import Store, queries, tokens, webhooks


@dataclass(frozen=True)
class AccountInfo:
    id: int
    role: str
    name: str
    phone: str | None
    status: str = "active"
    token_version: int = 0

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    synthetic: bool = False
    #: has a webhook URL: its events go to the webhook outbox while it has no live connection
    webhook: bool = False
    #: has Web Push subscriptions: the same, one delivery per subscription
    push: bool = False
    #: sign-ins (refresh token families) revoked because a refresh token was reused: their
    #: access tokens are refused too (storage/tokens.py)
    reused_families: frozenset[str] = frozenset()


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
                row.id,
                row.role,
                row.name,
                row.phone,
                row.status,
                row.token_version,
                bool(row.synthetic),
                bool(row.webhook_url),
                bool(webhooks.subscription_ids(conn, account_id)),
                tokens.reused_families(conn, account_id),
            )
        return info

    def forget(self, account_id: int) -> None:
        """Drop a changed or removed account: the next `get` reads it afresh."""
        self._cache.pop(account_id, None)
