"""The webhook and Web Push deliverer (docs/protocol.md §5): POSTs the outbox's due rows, each
as a task of its own, fairly between receivers.

Every worker runs one. It claims due rows (`storage.webhooks.claim`: a lease, with ``SKIP LOCKED``
on PostgreSQL), checks each account is still offline (a connected account had the event on its
socket: the row is marked `skipped`) and its URL still a permitted target, and POSTs the event as
JSON, signed ``X-Medreq-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``: the whole event
(its media links issued to the account and valid `WEBHOOK_LINK_TTL`; a `new_request` whose request
was CANCELLED before it went out `events.withdrawn`), or for an account that chose `thin` webhooks
its ids only (type, event_id, request_id).
A Web Push row is the same event's ids encrypted for one browser subscription (`webpush`), POSTed
to its push service; a 404 or 410 from it means the subscription is gone: it is removed.
A 2xx is `delivered`; anything else (status, timeout, refused connection) is retried after
``backoff * 2**(attempt-1)`` seconds, capped at `webhook_backoff_max`, times a random factor in
[0.5, 1) so receivers coming back from an outage are not hit by every retry at once; after
`webhook_max_attempts` attempts the row is `failed`. The POSTs go through `outbound.OutboundClient`
(keep-alive per receiver; every address checked at connect time against SSRF; redirects not
followed, since a redirect could lead to a private address the URL check never saw).

**Fairness.** A receiver that never answers holds a POST for the whole `webhook_timeout`, and a
backlog of its rows would hold every slot it could get. So no POST waits for another: each runs as
its own task, at most `MAX_IN_FLIGHT` at once, and at most `PER_TARGET` of them to one target (an
account's webhook, one push subscription); the claim takes no row of a target that has no room
(its rows wait in the pending, unleased, in order). A slow or hanging receiver delays its own
account's deliveries and no one else's (docs/benchmarks.md, "One hanging receiver").
Outcomes are recorded in the transaction that claims the next rows: a write transaction is most of
a delivery's cost on SQLite, and a round that finds several POSTs finished records them at once.
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

from ... import __version__
from ...config import Settings
from ...hub import Hub
from ...media import MediaStore
from ...protocol import Event
from ...protocol.errors import Invalid
from ...storage import Store, Tx, queries, utcnow, webhooks
from ...storage.webhooks import Claimed
from .. import events
from .http import OutboundClient, PostError, TargetRefused
from .push import Push
from .webpush import notification

log = logging.getLogger("medreq.webhooks")
MAX_IN_FLIGHT = 128  # POSTs at once, all receivers together
PER_TARGET = webhooks.PER_TARGET  # POSTs at once to one account's webhook or push subscription
LEASE_MARGIN = 10.0  # seconds beyond the POST timeout before another deliverer may retry a row
WEBHOOK_LINK_TTL = 600  # seconds a media link in a webhook's payload stays valid


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
        self._bell = bell  # rung after a commit on this worker queued rows (`events.PendingEvents`)
        self.lease = self.settings.webhook_timeout + LEASE_MARGIN
        self._tasks: dict[asyncio.Task[Outcome], Claimed] = {}  # POSTs under way
        self._in_flight: dict[webhooks.Target, int] = {}  # of them, per target
        self._finished_outcomes: list[Outcome] = []  # to be recorded by the next round

    def backoff(self, attempts: int) -> float:
        doubled: float = self.settings.webhook_backoff * 2.0 ** min(attempts - 1, 60)
        base = min(self.settings.webhook_backoff_max, doubled)
        return base * random.uniform(0.5, 1.0)  # jitter, not a secret

    async def run(self) -> None:
        """Deliver until cancelled."""
        async with OutboundClient(
            timeout=self.settings.webhook_timeout, allow_private=self.settings.webhook_allow_private
        ) as client:
            try:
                while True:
                    await self.round(client)
                    # until a commit here queues rows, a POST ends (`_finished`), or the poll interval
                    # (retries coming due, other workers' rows)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._bell.wait(), self.settings.webhook_poll_interval)
                    self._bell.clear()  # what rang it before is handled by the next round
            finally:  # stopping (the service closes the store after this): keep what was sent
                await self.stop()

    async def round(self, client: OutboundClient) -> list[Claimed]:
        """Record the finished POSTs, claim what there is room for, and start POSTing it."""
        outcomes, self._finished_outcomes = self._finished_outcomes, []
        try:
            claimed = await self.settle_and_claim(outcomes, limit=MAX_IN_FLIGHT - len(self._tasks))
        except Exception:  # a database hiccup must not end delivery: retry on the next tick
            log.exception("webhook delivery round failed; retrying")
            self._finished_outcomes[:0] = outcomes  # to be recorded by the next round
            return []
        if claimed:
            try:
                online = await self._hub.online({c.account_id for c in claimed})
            except Exception:  # the hub is down: POST anyway (at least once; receivers drop duplicates)
                log.exception("webhook delivery: presence unknown; delivering")
                online = set()
            for c in claimed:
                self._start(client, c, c.account_id in online)
        return claimed

    def _start(self, client: OutboundClient, claimed: Claimed, online: bool) -> None:
        target = claimed.target
        self._in_flight[target] = self._in_flight.get(target, 0) + 1
        task = asyncio.create_task(self.deliver(client, claimed, online), name=f"medreq-webhook-{claimed.id}")
        self._tasks[task] = claimed
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Outcome]) -> None:
        claimed = self._tasks.pop(task)
        target = claimed.target
        left = self._in_flight[target] - 1
        if left:
            self._in_flight[target] = left
        else:
            del self._in_flight[target]
        if task.cancelled():
            return  # stopping: its lease runs out and the row is retried
        exc = task.exception()
        if exc is not None:  # a bug, not the receiver: retried like a failed POST
            log.error("webhook delivery %s failed", claimed.id, exc_info=exc)
            self._finished_outcomes.append(self._retry_or_fail(claimed, None, f"internal error: {type(exc).__name__}"))
        else:
            self._finished_outcomes.append(task.result())
        self._bell.set()  # room for its target's next row, and an outcome to record

    async def stop(self) -> None:
        """Cancel the POSTs still in flight (their leases run out: retried later, possibly by
        another worker) and record those that finished."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        outcomes, self._finished_outcomes = self._finished_outcomes, []
        if outcomes:
            with contextlib.suppress(Exception):
                await self.settle_and_claim(outcomes, claim=False)

    @property
    def in_flight(self) -> dict[webhooks.Target, int]:
        """POSTs under way per target (a copy)."""
        return dict(self._in_flight)

    async def settle_and_claim(
        self, outcomes: list[Outcome], *, claim: bool = True, limit: int = MAX_IN_FLIGHT
    ) -> list[Claimed]:
        """Record finished outcomes and claim up to `limit` rows the targets have room for, in one
        write transaction: a write transaction is most of a delivery's cost on SQLite
        (docs/benchmarks.md, "Webhook delivery"), so a busy deliverer pays one per round, not one
        per row or two."""
        in_flight = dict(self._in_flight)

        def settle_and_claim(tx: Tx) -> tuple[list[bool], list[Claimed]]:
            kept = [outcome.record(tx.conn) for outcome in outcomes]
            if not claim:
                return kept, []
            return kept, webhooks.claim(tx.conn, limit=limit, lease=self.lease, in_flight=in_flight)

        if not outcomes and (not claim or limit <= 0):
            return []
        kept, claimed = await self._store.write(settle_and_claim)
        for outcome, was_kept in zip(outcomes, kept, strict=True):
            if not was_kept:
                log.info("webhook delivery %s: claim lost (lease ran out); outcome dropped", outcome.claimed.id)
        return claimed

    async def deliver(self, client: OutboundClient, claimed: Claimed, online: bool) -> Outcome:
        """POST one claimed row; its outcome (not yet recorded)."""
        if online and claimed.type != "webhook_test":
            return Outcome(claimed, "skipped", error="the account was connected")
        target = claimed.endpoint if claimed.channel == "push" else claimed.url
        if not target or (claimed.channel == "webhook" and not claimed.secret):
            return Outcome(claimed, "failed", error=f"the {claimed.channel} target was removed")
        if claimed.channel == "push":
            body, headers = self._push_request(claimed, notification(claimed.payload))
        else:
            if claimed.thin:  # the event's ids: the receiver reads the rest with its own token
                text = notification(claimed.payload)
            else:
                ttl = min(WEBHOOK_LINK_TTL, self._media.url_ttl)
                payload = await self._current(claimed)
                text = events.render(payload, self._media, to=claimed.account_id, ttl=ttl)
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
        return self._retry_or_fail(claimed, status, error)

    async def _current(self, claimed: Claimed) -> str:
        """The stored event as it may be sent now: a `new_request` whose request was CANCELLED
        meanwhile is `withdrawn` (no phone, no prescription; one read, for `new_request`s only)."""
        payload = claimed.payload
        if not payload.startswith(events.NEW_REQUEST_PREFIX):
            return payload
        event_id = Event.model_validate_json(payload).event_id or 0
        cancelled = await self._store.read(
            lambda c: queries.cancelled_new_requests(c, claimed.account_id, event_id, event_id)
        )
        return events.withdrawn(payload) if cancelled else payload

    def _retry_or_fail(self, claimed: Claimed, status: int | None, error: str) -> Outcome:
        if claimed.attempts >= self.settings.webhook_max_attempts:
            return Outcome(claimed, "failed", http_status=status, error=error)
        retry_at = utcnow() + timedelta(seconds=self.backoff(claimed.attempts))
        return Outcome(claimed, "pending", http_status=status, error=error, retry_at=retry_at)

    def _push_request(self, claimed: Claimed, text: str) -> tuple[bytes, dict[str, str]]:
        """`text`: the event's reference only (`notification`), never its medical content."""
        assert claimed.endpoint
        assert claimed.p256dh
        assert claimed.auth
        return self._push.vapid.request(claimed.endpoint, claimed.p256dh, claimed.auth, text)
