"""Accounts and tokens (docs/protocol.md §2): registration, sign-in with back-off, refresh, logout,
password changes, revocation, and the operator's approve / disable / enable / reset.

A token is valid while it is unexpired, its account exists and is not disabled, and its `ver`
equals the account's `token_version`: disabling an account or changing its password bumps the
version, so every token issued before stops working at once on this worker and, through
`account_changes`, within the poll interval on every other one.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import auth
from ..config import Settings
from ..protocol import AccessOut, AccountOut, RegisterIn, TokenIn, TokenOut, WebhookAccountOut
from ..protocol.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from ..storage import Store, Tx, queries, tokens, utcnow, webhooks
from .base import Caller
from .directory import AccountInfo, Directory
from .throttle import Throttle
from .views import access_view, account_view, tokens_view, webhook_account_view

log = logging.getLogger("medreq.service")

STATUSES = ("active", "pending", "disabled")
#: what `Throttle.claim_name` is given for a username that is no account's
USERNAME = "username:"


def revoke_everything(tx: Tx, account_id: int, **values: Any) -> Any:
    """Revoke every token of the account (its `token_version` bumped, every worker told) and
    remove every place its events go besides its sockets: the webhook (with its secret), every
    push subscription, and the deliveries still waiting for them. A token stolen before cannot
    leave a way in behind it (docs/security.md, "A stolen token")."""
    row = tx.update_account(account_id, revoke_tokens=True, webhook_url=None, webhook_secret=None, **values)
    webhooks.delete_subscription(tx.conn, account_id=account_id)
    webhooks.drop_pending(tx.conn, account_id, "the account's targets were removed (tokens revoked)")
    return row


class Accounts:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        tokens: auth.TokenIssuer,
        directory: Directory,
        throttle: Throttle,
    ) -> None:
        self._settings = settings
        self._store = store
        self._issuer = tokens
        self._directory = directory
        self._throttle = throttle  # the back-off on wrong passwords, per account and per unknown name

    # --- registration and sign-in -------------------------------------------------------------

    async def register(self, data: RegisterIn, *, by_operator: bool = False) -> AccountOut:
        if data.synthetic and not self._settings.synthetic_accounts:
            raise Forbidden("synthetic (simulation) accounts are not allowed on this server")
        status = self._registration_status(data.role, by_operator=by_operator, synthetic=data.synthetic)
        if await self._store.read(lambda c: queries.account_by_username(c, data.username)) is not None:
            raise Conflict("username is taken", fields={"username": "is taken"})
        password_hash = await auth.hash_password_async(data.password, n=self._settings.scrypt_n)
        row = await self._store.write(
            lambda tx: tx.create_account(
                username=data.username,
                password_hash=password_hash,
                role=data.role,
                name=data.name,
                phone=data.phone or None,
                status=status,
                synthetic=data.synthetic,
            )
        )
        return account_view(row)

    def _registration_status(self, role: str, *, by_operator: bool, synthetic: bool = False) -> str:
        if by_operator:
            return "active"
        if not self._settings.open_registration:
            raise Forbidden("registration is closed on this server")
        if role != "pharmacy" or synthetic:
            return "active"  # a synthetic pharmacy lives in the sandbox: no real patient reaches it
        mode = self._settings.pharmacy_registration
        if mode == "closed":
            raise Forbidden("pharmacies are registered by the server's operator")
        # "approval": listed and reachable only once an operator has checked who it is
        return "pending" if mode == "approval" else "active"

    async def issue_tokens(self, data: TokenIn) -> TokenOut:
        row = await self._store.read(lambda c: queries.account_by_username(c, data.username))
        # Claimed before hashing (throttle.py): past the allowance, 429 without checking anything.
        # An unknown username is claimed alike, so neither the time taken nor a hold tells which
        # usernames exist.
        if row is not None:
            await self._throttle.claim_account(row.id)
        else:
            await self._throttle.claim_name(USERNAME + data.username)
        stored_hash = row.password_hash if row is not None else None
        if not await auth.verify_or_waste(data.password, stored_hash, n=self._settings.scrypt_n):
            raise Unauthorized("wrong username or password")  # the claimed attempt stays counted
        assert row is not None
        await self._throttle.account_succeeded(row.id)
        if row.status == "disabled":
            raise Unauthorized("this account is disabled")
        version, family = row.token_version, auth.new_token_id()
        expires = int(time.time()) + self._issuer.refresh_ttl
        account_id = row.id
        await self._store.write(lambda tx: tokens.start(tx.conn, family, account_id, _utc(expires)))
        return tokens_view(
            self._issuer.issue(row.id, row.role, "access", version=version, family=family),
            self._issuer.issue(
                row.id, row.role, "refresh", version=version, family=family, token_id=family, expires_at=expires
            ),
            self._issuer.access_ttl,
            row,
        )

    # --- tokens --------------------------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> AccessOut:
        """A new access token and a new refresh token; the one given is used up (rotation).

        Given again, it is a reuse: someone else holds a copy, so every token of that sign-in
        (its family) is revoked, on every worker, and the owner signs in again (RFC 9700 §4.14.2).
        """
        claims = self._issuer.verify(refresh_token, "refresh")
        account = await self._account_for(claims)
        if await self._store.read(lambda c: queries.token_revoked(c, claims.token_id)):
            raise Unauthorized("token revoked")
        family = claims.family or claims.token_id  # a token from before rotation: its own family
        if not family:
            raise Unauthorized("invalid token")
        new_id = auth.new_token_id()
        outcome = await self._store.write(
            lambda tx: tokens.rotate(
                tx.conn,
                family=family,
                account_id=account.id,
                token_id=claims.token_id,
                new_token_id=new_id,
                expires_at=_utc(claims.expires_at),
                legacy=not claims.family,
            )
        )
        if outcome == "reused":
            self._directory.forget(account.id)  # this worker at once, the others through account_changes
            log.warning(
                "a used refresh token came back: its sign-in is revoked",
                extra={"fields": {"account_id": account.id, "event": "refresh_token_reused"}},
            )
            raise Unauthorized("refresh token already used: every token of this sign-in is revoked, sign in again")
        if outcome != "rotated":
            raise Unauthorized("token revoked")
        version, auth_time = account.token_version, claims.auth_time
        access = self._issuer.issue(
            account.id, account.role, "access", version=version, auth_time=auth_time, family=family
        )
        refresh = self._issuer.issue(
            account.id,
            account.role,
            "refresh",
            version=version,
            auth_time=auth_time,
            family=family,
            token_id=new_id,
            expires_at=claims.expires_at,
        )
        return access_view(access, self._issuer.access_ttl, refresh)

    async def authenticate(self, token: str | None) -> Caller:
        """The caller an access token names; Unauthorized when missing, bad, expired or revoked."""
        caller, _claims = await self.session(token)
        return caller

    async def session(self, token: str | None) -> tuple[Caller, auth.Claims]:
        """`authenticate`, with the token's claims (a socket lives as long as they do)."""
        if not token:
            raise Unauthorized("missing bearer token")
        claims = self._issuer.verify(token, "access")
        return await self.check_claims(claims), claims

    async def check_claims(self, claims: auth.Claims) -> Caller:
        """The caller of still-valid claims (the account may have changed since they were issued)."""
        account = await self._account_for(claims)
        return Caller(account.id, account.role, account.name, claims.auth_time)

    async def _account_for(self, claims: auth.Claims) -> AccountInfo:
        account = await self._directory.get(claims.account_id)
        if account is None:
            raise Unauthorized("account no longer exists")
        if account.status == "disabled":
            raise Unauthorized("this account is disabled")
        if claims.version != account.token_version:
            raise Unauthorized("token revoked")
        if claims.family and claims.family in account.reused_families:
            raise Unauthorized("token revoked: a refresh token of this sign-in was used twice, sign in again")
        return account

    async def logout(self, caller: Caller, refresh_token: str) -> None:
        """Revoke a refresh token of the caller's and every later one of its sign-in (a token
        already expired needs nothing); that sign-in's access tokens run out."""
        try:
            claims = self._issuer.verify(refresh_token, "refresh")
        except Unauthorized:
            return
        if claims.account_id != caller.id:
            raise Forbidden("that refresh token belongs to another account")
        expires = utcnow() + timedelta(seconds=max(0, claims.expires_at - time.time()))
        family = claims.family or claims.token_id

        def revoke(tx: Tx) -> None:
            tx.revoke_token(claims.token_id, caller.id, expires)
            if family:  # the sign-in's later refresh tokens too
                tokens.revoke(tx.conn, family, caller.id, why="logout", expires_at=expires)

        await self._store.write(revoke)

    async def change_password(self, caller: Caller, old: str, new: str) -> None:
        """Change the caller's password and revoke every token of the account (live sockets close)."""
        row = await self._store.read(lambda c: queries.account(c, caller.id))
        if row is None:
            raise Unauthorized("account no longer exists")
        await self._throttle.claim_account(row.id)  # a wrong `old` is a wrong password
        if not await auth.verify_or_waste(old, row.password_hash, n=self._settings.scrypt_n):
            raise Invalid("old: is not the current password", fields={"old": "is not the current password"})
        await self._set_password(caller.id, new)

    async def logout_everywhere(self, caller: Caller) -> None:
        """Revoke every token of the caller's account and remove its webhook and push subscriptions."""
        await self._store.write(lambda tx: revoke_everything(tx, caller.id))
        self._directory.forget(caller.id)

    async def _set_password(self, account_id: int, password: str) -> None:
        password_hash = await auth.hash_password_async(password, n=self._settings.scrypt_n)
        await self._store.write(
            lambda tx: revoke_everything(
                tx, account_id, password_hash=password_hash, failed_logins=0, login_blocked_until=None
            )
        )
        self._directory.forget(account_id)

    # --- the caller's own account, and what patients may choose from -------------------------

    async def me(self, caller: Caller) -> WebhookAccountOut:
        row = await self._store.read(lambda c: queries.account(c, caller.id))
        if row is None:
            raise Unauthorized("account no longer exists")
        return webhook_account_view(row)

    # --- revocations made elsewhere -----------------------------------------------------------

    async def last_account_change(self) -> int:
        return await self._store.read(queries.last_account_change)

    async def account_changes(self, after: int) -> tuple[int, set[int]]:
        """Accounts changed (disabled, password changed, …) since change `after`, forgotten from
        the directory so the next check reads them afresh; and the new high-water mark."""
        rows = await self._store.read(lambda c: queries.account_changes_after(c, after))
        changed = {account_id for _, account_id in rows}
        for account_id in changed:
            self._directory.forget(account_id)
        return (rows[-1][0] if rows else after), changed

    # --- operators (the `medreq account` commands) ----------------------------------------------

    async def list_accounts(self, status: str | None = None) -> list[dict[str, Any]]:
        rows = await self._store.read(lambda c: queries.account_list(c, status=status))
        return [{**account_view(row).model_dump(), "created_at": row.created_at.isoformat()} for row in rows]

    async def set_status(self, username: str, status: str) -> dict[str, Any]:
        """approve (pending → active), disable (→ disabled, tokens revoked), enable (→ active)."""
        if status not in STATUSES:
            raise Invalid(f"status: must be one of {', '.join(STATUSES)}", fields={"status": "unknown"})
        row = await self._by_username(username)

        def change(tx: Tx) -> Any:
            if status == "disabled":
                return revoke_everything(tx, row.id, status=status)
            changed = tx.update_account(row.id, status=status)
            tx.note_account_change(row.id)  # other workers' directories must see it too
            return changed

        changed = await self._store.write(change)
        self._directory.forget(row.id)
        return account_view(changed).model_dump()

    async def reset_password(self, username: str, password: str) -> dict[str, Any]:
        row = await self._by_username(username)
        await self._set_password(row.id, password)
        return account_view(row).model_dump()

    async def _by_username(self, username: str) -> Any:
        row = await self._store.read(lambda c: queries.account_by_username(c, username))
        if row is None:
            raise NotFound(f"no account named {username!r}")
        return row


def _utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
