"""The webhook and Web Push deliverer (docs/protocol.md §5): POSTs the outbox's due rows, one worker
per row.

Every worker runs one. It claims due rows in batches (`storage.webhooks.claim`: a lease, with
``SKIP LOCKED`` on PostgreSQL), checks each account is still offline (a connected account had
the event on its socket: the row is marked `skipped`) and its URL still a permitted target, and
POSTs the event as JSON, signed ``X-Medreq-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``.
A Web Push row is the same event encrypted for one browser subscription (`webpush`), POSTed to
its push service; a 404 or 410 from it means the subscription is gone: it is removed.
A 2xx is `delivered`; anything else (status, timeout, refused connection) is retried after
``backoff * 2**(attempt-1)`` seconds, capped at `webhook_backoff_max`, times a random factor in
[0.5, 1) so receivers coming back from an outage are not hit by every retry at once; after
`webhook_max_attempts` attempts the row is `failed`. The POSTs go through `outbound.OutboundClient`
(keep-alive per receiver; every address checked at connect time against SSRF; redirects not
followed, since a redirect could lead to a private address the URL check never saw).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from .. import __version__
from ..config import Settings
from ..hub import Hub
from ..media import MediaStore
from ..outbound import OutboundClient, PostError, TargetRefused
from ..protocol.errors import Invalid
from ..storage import Store, Tx, utcnow, webhooks
from ..storage.webhooks import Claimed
from ..webpush import notification
from . import events
from .push import Push

log = logging.getLogger("medreq.webhooks")
BATCH = 50
LEASE_MARGIN = 10.0  # seconds beyond the POST timeout before another deliverer may retry a row


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Medreq-Signature` header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to, recorded with the rest of its batch."""

    claimed: Claimed
    status: str  # pending (again, at retry_at), delivered, failed or skipped
    http_status: int | None = None
    error: str | None = None
    retry_at: datetime | None = None

    def record(self, conn: Connection) -> bool:
        return webhooks.record(
            conn,
            self.claimed,
            status=self.status,
            http_status=self.http_status,
            error=self.error,
            retry_at=self.retry_at,
        )


class Deliverer:
    def __init__(
        self, settings: Settings, store: Store, hub: Hub, media: MediaStore, push: Push, bell: asyncio.Event
    ) -> None:
        self.settings = settings
        self._store = store
        self._hub = hub
        self._media = media
        self._push = push  # the VAPID key, and forgetting subscriptions that are gone
        self._bell = bell  # rung after a commit on this worker queued rows (`events.Outbox`)
        self.lease = self.settings.webhook_timeout + LEASE_MARGIN

    def backoff(self, attempts: int) -> float:
        doubled: float = self.settings.webhook_backoff * 2.0 ** min(attempts - 1, 60)
        base = min(self.settings.webhook_backoff_max, doubled)
        return base * random.uniform(0.5, 1.0)  # jitter, not a secret

    async def run(self) -> None:
        """Deliver until cancelled."""
        outcomes: list[Outcome] = []  # of the last batch, recorded with the next claim
        async with OutboundClient(
            timeout=self.settings.webhook_timeout, allow_private=self.settings.webhook_allow_private
        ) as client:
            try:
                while True:
                    try:
                        claimed = await self.settle_and_claim(outcomes)
                    except Exception:  # a database hiccup must not end delivery: retry on the next tick
                        log.exception("webhook delivery round failed; retrying")
                        claimed = []  # the outcomes stay, to be recorded by the next round
                    else:
                        outcomes = []
                    if claimed:
                        outcomes = await self.deliver_batch(client, claimed)
                        continue
                    # until a commit here queues rows, or the poll interval (retries, other workers)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._bell.wait(), self.settings.webhook_poll_interval)
                    self._bell.clear()  # rows committed before it rang are claimed by the next round
            finally:  # stopping (the service closes the store after this): keep what was sent
                if outcomes:
                    with contextlib.suppress(Exception):
                        await self.settle_and_claim(outcomes, claim=False)

    async def settle_and_claim(self, outcomes: list[Outcome], *, claim: bool = True) -> list[Claimed]:
        """Record the last batch's outcomes and claim the next batch, in one write transaction:
        a write transaction is most of a delivery's cost on SQLite (docs/benchmarks.md,
        "Webhook delivery"), so a busy deliverer pays one per batch, not one per row or two."""

        def settle_and_claim(tx: Tx) -> tuple[list[bool], list[Claimed]]:
            kept = [outcome.record(tx.conn) for outcome in outcomes]
            return kept, webhooks.claim(tx.conn, limit=BATCH, lease=self.lease) if claim else []

        kept, claimed = await self._store.write(settle_and_claim)
        for outcome, was_kept in zip(outcomes, kept, strict=True):
            if not was_kept:
                log.info("webhook delivery %s: claim lost (lease ran out); outcome dropped", outcome.claimed.id)
        return claimed

    async def deliver_batch(self, client: OutboundClient, claimed: list[Claimed]) -> list[Outcome]:
        """POST a claimed batch, concurrently; each row's outcome (not yet recorded)."""
        online = await self._hub.online({c.account_id for c in claimed})
        return list(await asyncio.gather(*(self.deliver(client, c, c.account_id in online) for c in claimed)))

    async def deliver(self, client: OutboundClient, claimed: Claimed, online: bool) -> Outcome:
        if online and claimed.type != "webhook_test":
            return Outcome(claimed, "skipped", error="the account was connected")
        target = claimed.endpoint if claimed.channel == "push" else claimed.url
        if not target or (claimed.channel == "webhook" and not claimed.secret):
            return Outcome(claimed, "failed", error=f"the {claimed.channel} target was removed")
        text = events.render(claimed.payload, self._media)
        if claimed.channel == "push":
            body, headers = self._push_request(claimed, text)
        else:
            body = text.encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"medreq-webhook/{__version__}",
                "X-Medreq-Delivery": str(claimed.id),
                "X-Medreq-Signature": signature(claimed.secret or "", int(time.time()), body),
            }
        status: int | None = None
        try:
            status = await client.post(target, body, headers)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Invalid as exc:  # the URL itself (its addresses are checked when the client connects)
            return Outcome(claimed, "failed", error=exc.message)
        except TargetRefused as exc:
            return Outcome(claimed, "failed", error=str(exc))
        except PostError as exc:
            error = str(exc)
        if error is None:
            return Outcome(claimed, "delivered", http_status=status)
        elif claimed.channel == "push" and status in (404, 410):
            # the browser unsubscribed or the subscription expired: never push there again
            await self._push.forget_subscription(claimed.account_id, claimed.subscription_id)
            return Outcome(claimed, "failed", http_status=status, error="push subscription expired")
        elif claimed.attempts >= self.settings.webhook_max_attempts:
            return Outcome(claimed, "failed", http_status=status, error=error)
        else:
            retry_at = utcnow() + timedelta(seconds=self.backoff(claimed.attempts))
            return Outcome(claimed, "pending", http_status=status, error=error, retry_at=retry_at)

    def _push_request(self, claimed: Claimed, text: str) -> tuple[bytes, dict[str, str]]:
        text = notification(text)  # the event's reference only, never its medical content
        assert claimed.endpoint
        assert claimed.p256dh
        assert claimed.auth
        return self._push.vapid.request(claimed.endpoint, claimed.p256dh, claimed.auth, text)
