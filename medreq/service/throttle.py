"""The back-off on wrong guesses (docs/protocol.md §1 "Rate limits", docs/security.md "Guessing"):
per account for passwords, per name for everything else guessed at (unknown usernames, the
`/metrics` token), in the database so every worker agrees.

Each attempt is claimed before the guess is checked (storage/throttle.py: one atomic statement
that counts it and sets the hold it earns, refused while a hold runs) and a right guess clears
the series afterwards. So 300 guesses sent at once, on one worker or on several, check at most
the allowance (`MEDREQ_LOGIN_MAX_FAILURES`, 5) and refuse the rest with 429 without hashing them;
while the hold runs even the right password is refused. An unknown username gets exactly the
same treatment (a claim, a hash, a 429 past the allowance), so a hold does not tell whether a
username exists.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from ..config import Settings
from ..protocol.errors import RateLimited, Unauthorized
from ..storage import Store, Tx, as_utc, throttle, utcnow
from ..storage.throttle import Policy

#: a name's series is forgotten this long after its last guess (unknown usernames would pile up)
FORGET_AFTER = timedelta(days=1)
#: prune forgotten series about once per this many claims
PRUNE_EVERY = 1000
METRICS = "token:metrics"


class Throttle:
    def __init__(self, settings: Settings, store: Store, fingerprint: Callable[[str], str]) -> None:
        self._store = store
        self._policy = Policy(
            settings.login_max_failures, settings.login_backoff_max, settings.login_backoff_first
        )
        self._fingerprint = fingerprint
        self._claims = 0

    # --- one account's password -----------------------------------------------------------------

    async def claim_account(self, account_id: int) -> None:
        """Count an attempt at the account's password; RateLimited (nothing checked) while held."""
        if (
            await self._store.write(lambda tx: throttle.claim_account(tx.conn, account_id, self._policy))
            is None
        ):
            until = await self._store.read(lambda c: throttle.account_held_until(c, account_id))
            raise _held(until, "passwords")

    async def account_succeeded(self, account_id: int) -> None:
        await self._store.write(lambda tx: throttle.clear_account(tx.conn, account_id))

    # --- any other name -------------------------------------------------------------------------

    async def claim_name(self, name: str) -> None:
        """`claim_account` for a name that is not an account's (an unknown username)."""
        subject = self._fingerprint(name)
        self._claims += 1
        prune = self._claims % PRUNE_EVERY == 0

        def claim(tx: Tx) -> int | None:
            if prune:
                throttle.prune_subjects(tx.conn, utcnow() - FORGET_AFTER)
            return throttle.claim_subject(tx.conn, subject, self._policy)

        if await self._store.write(claim) is None:
            until = await self._store.read(lambda c: throttle.subject_held_until(c, subject))
            raise _held(until, "tokens" if name == METRICS else "passwords")

    async def name_succeeded(self, name: str) -> None:
        subject = self._fingerprint(name)
        await self._store.write(lambda tx: throttle.clear_subject(tx.conn, subject))

    async def check_metrics_token(self, given: str | None, expected: str) -> None:
        """The bearer of `/metrics`: Unauthorized unless it is `expected`, RateLimited while a
        series of wrong ones is held back (a missing token is no guess and is not counted)."""
        if not given:
            raise Unauthorized("metrics need the configured bearer token")
        await self.claim_name(METRICS)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("metrics need the configured bearer token")
        await self.name_succeeded(METRICS)


def _held(until: datetime | None, what: str) -> RateLimited:
    wait = as_utc(until).timestamp() - time.time() if until is not None else 1.0
    return RateLimited(f"too many wrong {what}; try again later", retry_after=max(1.0, wait))
