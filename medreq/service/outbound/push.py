"""Web Push subscriptions (docs/protocol.md §5): a browser's `PushSubscription`, kept per account.

While the account has no live connection, each of its events is queued once per subscription
in the same outbox as webhooks (`base.Core.emit`) and sent encrypted (aes128gcm) by the
deliverer; a subscription the push service reports gone (404/410) is removed. Adding one needs a
recent password sign-in and tells every device of the owner (`target_added`); the owner lists
and removes them (`GET`/`DELETE /push/subscriptions`, `medreq user push`).
"""

from __future__ import annotations

import base64
import binascii
from functools import cached_property
from pathlib import Path
from typing import Any

from ...config import Settings
from ...protocol import PushSubscriptionIn, PushSubscriptionListOut, PushSubscriptionOut, VapidKeyOut
from ...protocol.errors import Invalid, NotFound
from ...storage import Store, Tx, webhooks
from .. import events
from ..base import Caller, Core
from ..directory import Directory
from ..views import push_subscription_view
from .netguard import check_target
from .webhooks import now, require_recent_sign_in
from .webpush import KEY_FILE, VapidKeys


def _key(value: str, name: str, size: int) -> str:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise Invalid(
            f"keys.{name}: is not a base64url key of {size} bytes", fields={f"keys.{name}": "invalid"}
        )
    return value


class Push:
    def __init__(self, settings: Settings, core: Core, store: Store, directory: Directory) -> None:
        self._core = core  # emits `target_added`
        self._settings = settings
        self._store = store
        self._directory = directory

    @cached_property
    def vapid(self) -> VapidKeys:
        configured = self._settings.vapid_private_key
        path = Path(configured) if configured else self._settings.data_dir / KEY_FILE
        return VapidKeys(path, self._settings.vapid_subject)

    def vapid_public_key(self) -> VapidKeyOut:
        return VapidKeyOut(public_key=self.vapid.public_key())

    async def subscribe_push(self, caller: Caller, data: PushSubscriptionIn) -> PushSubscriptionOut:
        require_recent_sign_in(caller)
        await check_target(
            data.endpoint, allow_private=self._settings.webhook_allow_private, field="endpoint"
        )
        p256dh = _key(data.keys.p256dh, "p256dh", 65)
        auth = _key(data.keys.auth, "auth", 16)
        pending = self._core.pending_events()

        def save(tx: Tx) -> Any:
            saved = webhooks.save_subscription(tx.conn, caller.id, data.endpoint, p256dh, auth)
            if saved is None:
                return None
            row, new = saved
            tx.note_account_change(caller.id)  # every worker's directory learns of it
            if new:
                event = events.target_added("push", data.endpoint, row.id, now())
                self._core.emit(tx, pending, caller.id, event)
            return row

        row = await self._store.write(save)
        self._directory.forget(caller.id)
        if row is None:
            raise Invalid("endpoint: is another account's subscription", fields={"endpoint": "taken"})
        await pending.publish()
        return push_subscription_view(row)

    async def push_subscriptions(self, caller: Caller) -> PushSubscriptionListOut:
        rows = await self._store.read(lambda c: webhooks.subscriptions(c, caller.id))
        return PushSubscriptionListOut(results=[push_subscription_view(row) for row in rows])

    async def remove_push_subscription(self, caller: Caller, subscription_id: int) -> None:
        """Remove one of the caller's subscriptions by id; NotFound for any other id."""

        def remove(tx: Tx) -> bool:
            removed = webhooks.delete_subscription(
                tx.conn, subscription_id=subscription_id, account_id=caller.id
            )
            if removed:
                tx.note_account_change(caller.id)
            return removed

        if not await self._store.write(remove):
            raise NotFound(f"push subscription {subscription_id} not found")
        self._directory.forget(caller.id)

    async def unsubscribe_push(self, caller: Caller, endpoint: str) -> None:
        def remove(tx: Tx) -> bool:
            removed = webhooks.delete_subscription(tx.conn, endpoint=endpoint, account_id=caller.id)
            if removed:
                tx.note_account_change(caller.id)
            return removed

        if not await self._store.write(remove):
            raise NotFound("no such push subscription")
        self._directory.forget(caller.id)

    async def forget_subscription(self, account_id: int, subscription_id: int | None) -> None:
        """A subscription its push service said is gone (404/410)."""
        if subscription_id is None:
            return

        def remove(tx: Tx) -> None:
            if webhooks.delete_subscription(tx.conn, subscription_id=subscription_id):
                tx.note_account_change(account_id)

        await self._store.write(remove)
        self._directory.forget(account_id)
