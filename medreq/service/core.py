"""The domain service: accounts, medicine requests, answers, and the events they cause.

It knows nothing of HTTP or WebSockets: transports parse input into `protocol` models,
call a method with the authenticated `Caller`, and render the dict or the `MedreqError`.
Every state change stores its events in the same transaction (`ServiceBase.emit`) and
publishes them only after the commit (`Outbox`). The parts, by concern:

- `accounts.Accounts`: register, tokens, authenticate, pharmacies
- `requests.Requests`: create, answer, cancel, list, detail
- `conversation.Conversation`: thread messages, typing, read receipts
- `presence.Presence`: telling patients when a pharmacy comes online or goes offline
- `webhooks.Webhooks`: an account's webhook and its deliveries (`deliverer` sends them)
- `push.Push`: browsers' Web Push subscriptions and the server's VAPID key
- `sandbox.Sandbox`: synthetic (simulation) accounts: their own listings, their removal
- `MedreqService` below: delivery (replay) and media access
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import metrics
from ..errors import Forbidden, NotFound
from ..media import Kind
from ..storage import queries
from . import events
from .accounts import Accounts
from .conversation import Conversation
from .presence import Presence
from .push import Push
from .requests import Requests
from .sandbox import Sandbox
from .webhooks import Webhooks


class MedreqService(Accounts, Requests, Conversation, Sandbox, Presence, Webhooks, Push):
    # --- delivery (§5) ------------------------------------------------------------------------

    async def events_after(
        self, account_id: int, after: int, *, before: int | None = None, limit: int = 1000
    ) -> list[tuple[int, str]]:
        """Stored events of an account after `after` (and before `before`), rendered for sending."""
        stored = await self.store.read(
            lambda c: queries.events_after(c, account_id, after, before=before, limit=limit)
        )
        metrics.events_replayed(len(stored))
        return [(event_id, events.render(text, self.media)) for event_id, text in stored]

    async def last_event_id(self, account_id: int) -> int:
        return await self.store.read(lambda c: queries.last_event_id(c, account_id))

    # --- media (§3) ---------------------------------------------------------------------------

    async def media_file(
        self,
        kind: Kind,
        name: str,
        *,
        exp: str | None,
        sig: str | None,
        caller_token: Callable[[], str | None],
    ) -> Path:
        """The path of a stored file the caller may read: a valid signature, or a participant's token."""
        path = self.media.path(kind, name)
        token = caller_token()
        try:
            self.media.check_signature(kind, name, exp, sig)
        except Forbidden:
            if not token:
                raise
            # a stale link from a participant's own app still opens with their token
            caller = await self.authenticate(token)
            owner = await self.store.read(lambda c: queries.request_by_media(c, kind, name))
            if owner is None or caller.id not in (owner.patient_id, owner.pharmacy_id):
                raise Forbidden("only the request's patient and pharmacy may read this file") from None
        if path is None:
            raise NotFound("no such file")
        return path
