"""Accounts and tokens (PROTOCOL.md §2)."""

from __future__ import annotations

from typing import Any

from .. import auth
from ..errors import Conflict, Forbidden, Unauthorized
from ..schemas import RegisterIn, TokenIn
from ..storage import queries
from .base import Caller, ServiceBase
from .views import account_view


class Accounts(ServiceBase):
    async def register(self, data: RegisterIn, *, by_operator: bool = False) -> dict[str, Any]:
        if not (self.settings.open_registration or by_operator):
            raise Forbidden("registration is closed on this server")
        if data.synthetic and not self.settings.synthetic_accounts:
            raise Forbidden("synthetic (simulation) accounts are not allowed on this server")
        if await self.store.read(lambda c: queries.account_by_username(c, data.username)) is not None:
            raise Conflict("username is taken", fields={"username": "is taken"})
        password_hash = await auth.hash_password_async(data.password, n=self.settings.scrypt_n)
        row = await self.store.write(
            lambda tx: tx.create_account(
                username=data.username,
                password_hash=password_hash,
                role=data.role,
                name=data.name,
                phone=data.phone or None,
                synthetic=data.synthetic,
            )
        )
        return account_view(row)

    async def issue_tokens(self, data: TokenIn) -> dict[str, Any]:
        row = await self.store.read(lambda c: queries.account_by_username(c, data.username))
        stored_hash = row.password_hash if row is not None else None
        if row is None or not await auth.verify_or_waste(
            data.password, stored_hash, n=self.settings.scrypt_n
        ):
            raise Unauthorized("wrong username or password")
        return {
            "access": self.tokens.issue(row.id, row.role, "access"),
            "refresh": self.tokens.issue(row.id, row.role, "refresh"),
            "token_type": "bearer",
            "expires_in": self.tokens.access_ttl,
            "account": account_view(row),
        }

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        claims = self.tokens.verify(refresh_token, "refresh")
        account = await self.directory.get(claims.account_id)
        if account is None:
            raise Unauthorized("account no longer exists")
        return {
            "access": self.tokens.issue(account.id, account.role, "access"),
            "token_type": "bearer",
            "expires_in": self.tokens.access_ttl,
        }

    async def authenticate(self, token: str | None) -> Caller:
        """The caller an access token names; Unauthorized when missing, bad, expired or orphaned."""
        if not token:
            raise Unauthorized("missing bearer token")
        claims = self.tokens.verify(token, "access")
        account = await self.directory.get(claims.account_id)
        if account is None:
            raise Unauthorized("account no longer exists")
        return Caller(account.id, account.role, account.name)

    async def me(self, caller: Caller) -> dict[str, Any]:
        row = await self.store.read(lambda c: queries.account(c, caller.id))
        if row is None:
            raise Unauthorized("account no longer exists")
        return account_view(row)

