"""The domain service: accounts, medicine requests, answers, and the events they cause.

It knows nothing of HTTP or WebSockets: transports parse input into `protocol` models,
call a method with the authenticated `Caller`, and render the dict or the `MedreqError`.
Every state change stores its events in the same transaction (`base.Core.emit`) and
publishes them only after the commit (`events.PendingEvents`).

`MedreqService` is a façade over parts, each given only the collaborators it needs (as private
attributes) and, where it changes requests, the shared `base.Core`::

    MedreqService ── accounts.Accounts        register, tokens, authenticate, operators
                     throttle.Throttle        the back-off on wrong passwords and tokens
     (the only       requests.Requests        create, answer, cancel, list, detail; uploads
      object a       conversation.Conversation  thread messages, typing, read receipts
      transport      delivery.Delivery        subscribe, replay, last event id, media files
      holds)         presence.Presence        telling patients when a pharmacy comes or goes
                     webhooks.Webhooks        an account's webhook and its deliveries
                     push.Push                Web Push subscriptions and the VAPID key
                     sandbox.Sandbox          synthetic (simulation) accounts
                     deliverer.Deliverer      POSTs the webhook/push outbox (background)
                     retention                prunes old events and media (background)

The store, hub, media store and token issuer are the parts' business: the façade exposes
operations, the transports' `limits`, and `start`/`close`, never its collaborators.
`medreq.bootstrap` assembles it from `Settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..auth import TokenIssuer
from ..config import Limits, Settings
from ..hub import Hub
from ..media import MediaStore
from ..storage import Store
from . import retention
from .accounts import Accounts
from .base import Core
from .choice import Choice
from .conversation import Conversation
from .directory import Directory
from .live import Delivery
from .outbound.deliverer import Deliverer
from .outbound.push import Push
from .outbound.webhooks import Webhooks
from .presence import Presence
from .requests import Requests
from .sandbox import Sandbox
from .throttle import Throttle


class MedreqService:
    """The service as transports see it: its operations, delegated to the parts that own them."""

    def __init__(
        self, settings: Settings, store: Store, hub: Hub, media: MediaStore, tokens: TokenIssuer
    ) -> None:
        self._settings = settings
        self._store = store
        self._hub = hub
        self._media = media
        self._running: list[asyncio.Task[Any]] = []
        self._serving = False
        #: the one `Limits` object of this server: the service, the web layer and the uvicorn
        #: protocols below it all read this one (config/limits.py)
        self.limits = Limits.of(settings)

        directory = Directory(store)
        bell = asyncio.Event()  # a commit that queued webhook/push rows wakes the deliverer at once
        core = Core(store, hub, media, directory, bell)
        throttle = Throttle(settings, store, tokens.fingerprint)
        accounts = Accounts(settings, store, tokens, directory, throttle)
        requests = Requests(core, store, media, directory, self.limits, settings.default_currency)
        choice = Choice(core, store, media)
        conversation = Conversation(core, store, hub)
        delivery = Delivery(store, hub, media, accounts)
        presence = Presence(store, hub, directory)
        webhooks = Webhooks(core, store, directory, allow_private=settings.webhook_allow_private)
        push = Push(settings, core, store, directory)
        sandbox = Sandbox(store, hub, media, directory)
        self._deliverer = Deliverer(settings, store, hub, media, push, bell)
        hub.on_presence(presence.presence_changed)

        # Bound methods, not wrappers: a façade call costs what a call on the part costs.
        # --- accounts and tokens (§2) --------------------------------------------------------
        self.register = accounts.register
        self.issue_tokens = accounts.issue_tokens
        self.refresh = accounts.refresh
        self.authenticate = accounts.authenticate
        self.session = accounts.session
        self.check_claims = accounts.check_claims
        self.logout = accounts.logout
        self.logout_everywhere = accounts.logout_everywhere
        self.change_password = accounts.change_password
        self.me = accounts.me
        self.last_account_change = accounts.last_account_change
        self.account_changes = accounts.account_changes
        # the operator's (`medreq account …`)
        self.list_accounts = accounts.list_accounts
        self.set_status = accounts.set_status
        self.reset_password = accounts.reset_password
        self.check_metrics_token = throttle.check_metrics_token
        # --- requests and answers (§3) -------------------------------------------------------
        self.create_request = requests.create_request
        self.respond = requests.respond
        self.cancel = requests.cancel
        self.choose = choice.choose
        self.list_requests = requests.list_requests
        self.request_detail = requests.request_detail
        # --- the thread (§3–§4) ----------------------------------------------------------------
        self.post_message = conversation.post_message
        self.typing = conversation.typing
        self.mark_read = conversation.mark_read
        # --- delivery to live connections (§5) and media files ---------------------------------
        self.subscribe = delivery.subscribe
        self.unsubscribe = delivery.unsubscribe
        self.events_after = delivery.events_after
        self.last_event_id = delivery.last_event_id
        self.media_file = delivery.media_file
        # media links for one client (media.py): its base, links made for it, events moved to it
        self.client_base = media.client_base
        self.for_client = media.for_client
        self.rebase = media.rebase
        # --- presence, webhooks, Web Push (§5) ---------------------------------------------------
        self.presence_changed = presence.presence_changed
        self.set_webhook = webhooks.set_webhook
        self.webhook_deliveries = webhooks.webhook_deliveries
        self.outbox_backlog = webhooks.outbox_backlog
        self.test_webhook = webhooks.test_webhook
        self.vapid_public_key = push.vapid_public_key
        self.subscribe_push = push.subscribe_push
        self.unsubscribe_push = push.unsubscribe_push
        self.push_subscriptions = push.push_subscriptions
        self.remove_push_subscription = push.remove_push_subscription
        self.forget_subscription = push.forget_subscription
        # --- the simulation sandbox --------------------------------------------------------------
        self.is_synthetic = sandbox.is_synthetic
        self.pharmacies_for = sandbox.pharmacies_for
        self.remove_synthetic_account = sandbox.remove_synthetic_account

    async def start(self, *, migrate: bool = True, serve: bool = True) -> None:
        """Make the service ready: apply migrations (unless the caller did), and when it serves
        clients, start the hub and the background work (webhook/push delivery, pruning).
        A command-line tool passes `serve=False`: it needs the database and nothing else."""
        if migrate:
            await self._store.migrate()
        if not serve:
            return
        await self._hub.start()
        self._serving = True
        settings = self._settings
        self._running = [
            asyncio.create_task(
                retention.run_periodically(
                    self._store,
                    self._media,
                    event_days=settings.event_retention_days,
                    media_days=settings.media_retention_days,
                    interval=settings.prune_interval,
                    changes_horizon=max(settings.access_token_ttl, settings.refresh_token_ttl),
                ),
                name="medreq-prune",
            ),
            asyncio.create_task(self._deliverer.run(), name="medreq-webhooks"),
        ]

    async def close(self) -> None:
        """Stop the background work, then the hub, then the store."""
        for task in self._running:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._running = []
        if self._serving:
            await self._hub.close()
            self._serving = False
        await self._store.close()
