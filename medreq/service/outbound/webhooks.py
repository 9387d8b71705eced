"""Webhooks (docs/protocol.md §5): an account's URL and secret, its deliveries, a test delivery.

An account chooses what its webhook carries (`webhook_payload`): `full`, the event as a socket
gets it, or `thin`, its ids only (the receiver fetches the rest with its own token). A test
delivery may be asked for once every `TEST_INTERVAL` seconds per account (429 with Retry-After):
each one is a POST to a receiver the account chose.

Setting a URL needs a recent password sign-in (`require_recent_sign_in`), checks it (`netguard`:
http/https, public addresses only unless configured), tells every device of the owner
(`target_added`) and makes a fresh secret, returned this once: the receiver verifies
``X-Medreq-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` with it. Events go
to the outbox in `base.Core.emit`; `deliverer.Deliverer` POSTs them.
"""

from __future__ import annotations

import secrets
import time
from math import ceil
from typing import Any

from ...protocol import WebhookAccountOut, WebhookDeliveryListOut, WebhookDeliveryOut, dumps
from ...protocol.errors import Conflict, RateLimited, ReauthenticationRequired, Unauthorized
from ...protocol.rest import WebhookPayload
from ...storage import Store, Tx, as_utc, utcnow, webhooks
from .. import events
from ..base import Caller, Core
from ..directory import Directory
from ..views import delivery_view, iso, webhook_account_view
from .netguard import check_target

SECRET_PREFIX = "whsec_"
#: how recent a password sign-in must be to add a place the account's events go (seconds)
RECENT_SIGN_IN = 600
#: seconds between two test deliveries of one account
TEST_INTERVAL = 10.0
_UNSET: Any = object()


def require_recent_sign_in(caller: Caller) -> None:
    """ReauthenticationRequired (403) unless the caller's token series began with a password
    sign-in within `RECENT_SIGN_IN`: a stolen token, refreshed or not, cannot add a target."""
    if time.time() - caller.auth_time > RECENT_SIGN_IN:
        raise ReauthenticationRequired(
            f"sign in again with your password: adding a webhook or a push subscription needs a "
            f"sign-in of the last {RECENT_SIGN_IN // 60} minutes"
        )


class Webhooks:
    def __init__(self, core: Core, store: Store, directory: Directory, *, allow_private: bool) -> None:
        self._core = core  # emits `target_added`
        self._store = store
        self._directory = directory
        self._allow_private = allow_private  # webhook targets on private addresses (tests, LANs)

    async def set_webhook(
        self, caller: Caller, url: str | None = _UNSET, payload: WebhookPayload | None = None
    ) -> WebhookAccountOut:
        """Set (with a new secret, shown once) or clear (None or "") the caller's webhook, and/or
        choose its payload (`full` or `thin`); what is not given stays as it is."""
        setting_url = url is not _UNSET
        if setting_url and url:
            require_recent_sign_in(caller)
            await check_target(url, allow_private=self._allow_private)
        elif payload == "full" and not setting_url:
            require_recent_sign_in(caller)  # more of the account's data to a target set earlier
        values: dict[str, Any] = {}
        secret = None
        if setting_url:
            secret = SECRET_PREFIX + secrets.token_urlsafe(32) if url else None
            values.update(webhook_url=url or None, webhook_secret=secret)
        if payload is not None:
            values["webhook_payload"] = payload
        pending = self._core.pending_events()

        def change(tx: Tx) -> Any:
            row = tx.update_account(caller.id, **values)
            if row is not None and setting_url:
                tx.note_account_change(caller.id)  # every worker's directory learns of the webhook
                if url:  # set, not cleared
                    self._core.emit(tx, pending, caller.id, events.target_added("webhook", url, None, now()))
            return row

        row = await self._store.write(change)
        self._directory.forget(caller.id)
        await pending.publish()
        if row is None:
            raise Unauthorized("account no longer exists")
        return webhook_account_view(row, with_secret=setting_url, secret=secret)

    async def outbox_backlog(self) -> tuple[int, float]:
        """Deliveries waiting (pending, retries included) and the age in seconds of the oldest:
        what an operator watches to see receivers falling behind (`medreq_webhook_outbox_*`)."""
        pending, oldest = await self._store.read(webhooks.backlog)
        age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
        return pending, max(0.0, age)

    async def webhook_deliveries(self, caller: Caller, limit: int = 50) -> WebhookDeliveryListOut:
        rows = await self._store.read(lambda c: webhooks.for_account(c, caller.id, limit=limit))
        return WebhookDeliveryListOut(results=[delivery_view(row) for row in rows])

    async def test_webhook(self, caller: Caller) -> WebhookDeliveryOut:
        """Queue a `webhook_test` delivery (no event_id) to the caller's webhook, connected or not;
        RateLimited within `TEST_INTERVAL` of the account's previous one."""
        body = dumps({"type": "webhook_test", "event_id": None, "timestamp": iso(utcnow())})
        pending = self._core.pending_events()

        def queue(tx: Tx) -> int:
            row = webhooks.lock_account(tx.conn, caller.id)  # one request at a time per account
            if row is None:
                raise Unauthorized("account no longer exists")
            if not row.webhook_url:
                raise Conflict('no webhook is set: PUT /auth/me {"webhook_url"} first')
            last = webhooks.last_test_at(tx.conn, caller.id)
            if last is not None:
                wait = TEST_INTERVAL - (utcnow() - as_utc(last)).total_seconds()
                if wait > 0:
                    raise RateLimited(
                        f"one test delivery every {TEST_INTERVAL:g} s: try again in {ceil(wait)} s",
                        retry_after=wait,
                    )
            pending.queued_deliveries = True  # the deliverer is woken once this commits
            return webhooks.enqueue(tx.conn, caller.id, None, "webhook_test", body)

        delivery_id = await self._store.write(queue)
        await pending.publish()
        rows = await self._store.read(lambda c: webhooks.for_account(c, caller.id, limit=1))
        [stored] = [r for r in rows if r.id == delivery_id] or rows
        return delivery_view(stored)


def now() -> str:
    return iso(utcnow()) or ""
