"""Delivery (docs/protocol.md §3 "Media", §5): what a live connection is sent, and the files
links point to.

A socket subscribes to its account's events (the hub calls its `deliver`), replays stored events
past an id (`events_after`, rendered with media links freshly signed for the account, and a
`new_request` whose request is now CANCELLED `withdrawn`), and learns where the account's events
end (`last_event_id`).

A media file is served for a valid signed link, which names the account it was issued to, or for
a participant's token with a stale link; either way only while that account may still see it
(`may_see`, asked at every fetch): the request's patient, or its pharmacy until the request is
CANCELLED, with an active account (docs/protocol.md §3 "Media", §8 "Minimum necessary").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from ..hub import Hub, Sink
from ..media import KIND_BY_PREFIX, MediaStore
from ..protocol.errors import Forbidden, NotFound
from ..storage import Store, queries
from ..telemetry import metrics
from . import events
from .accounts import Accounts


@dataclass(frozen=True)
class MediaFile:
    path: Path
    content_type: str
    headers: dict[str, str]  # what it is served with (MediaStore.response_headers)


class Delivery:
    def __init__(self, store: Store, hub: Hub, media: MediaStore, accounts: Accounts) -> None:
        self._store = store
        self._hub = hub
        self._media = media
        self._accounts = accounts

    async def subscribe(self, account_id: int, connection: Sink) -> None:
        """`connection.deliver` gets the account's events from now on, from any worker."""
        await self._hub.subscribe(account_id, connection)

    async def unsubscribe(self, account_id: int, connection: Sink) -> None:
        await self._hub.unsubscribe(account_id, connection)

    async def events_after(
        self, account_id: int, after: int, *, before: int | None = None, limit: int = 1000
    ) -> list[tuple[int, str]]:
        """Stored events of an account after `after` (and before `before`), rendered for sending."""
        if self._store.fast is not None:  # one prepared statement (storage/pgfast.py)
            stored = await self._store.fast.events_after(account_id, after, before=before, limit=limit)
        else:
            stored = await self._store.read(
                lambda c: queries.events_after(c, account_id, after, before=before, limit=limit)
            )
        metrics.events_replayed(len(stored))
        withdrawn = await self.withdrawn_events(account_id, stored)
        rendered = []
        for event_id, text in stored:
            sent = events.withdrawn(text) if event_id in withdrawn else text
            rendered.append((event_id, events.render(sent, self._media, to=account_id)))
        return rendered

    async def withdrawn_events(self, account_id: int, stored: list[tuple[int, str]]) -> set[int]:
        """Which of the account's stored events (`(event_id, text)`, in order) are `new_request`s
        of a request now CANCELLED: one read, and only when there is a `new_request` among them."""
        if not any(text.startswith(events.NEW_REQUEST_PREFIX) for _, text in stored):
            return set()
        first, last = stored[0][0], stored[-1][0]
        return await self._store.read(lambda c: queries.cancelled_new_requests(c, account_id, first, last))

    async def last_event_id(self, account_id: int) -> int:
        return await self._store.read(lambda c: queries.last_event_id(c, account_id))

    async def media_file(
        self,
        collection: str,
        name: str,
        *,
        to: str | None,
        exp: str | None,
        sig: str | None,
        caller_token: Callable[[], str | None],
    ) -> MediaFile:
        """A stored file the caller may read (`collection` is the URL's: `prescriptions`,
        `pharmacy-audio`): a valid signature for an account, or a participant's token, and that
        account still allowed to see the file."""
        kind = KIND_BY_PREFIX.get(collection)
        if kind is None:
            raise NotFound("no such media collection")
        path = self._media.path(kind, name)
        token = caller_token()
        try:
            account_id = self._media.check_signature(kind, name, to, exp, sig)
        except Forbidden:
            if not token:
                raise
            # a stale link from a participant's own app still opens with their token
            account_id = (await self._accounts.authenticate(token)).id
        if path is None:
            raise NotFound("no such file")

        def read(c: Connection) -> tuple[Any, Any]:
            return queries.request_by_media(c, kind, name, account_id), queries.account(c, account_id)

        owner, account = await self._store.read(read)
        if not may_see(owner, account):
            raise Forbidden("this link's account may not read this file")
        return MediaFile(path, self._media.content_type(name), self._media.response_headers(name))


def may_see(request: Any, account: Any) -> bool:
    """Whether `account` (a row, or None once deleted) may see the files of `request` (its ids
    and status, or None): its patient always, its pharmacy until the request is CANCELLED, for
    whatever reason; an account that is not active, never."""
    if request is None or account is None or account.status != "active":
        return False
    if account.id == request.patient_id:
        return True
    return bool(account.id == request.pharmacy_id and request.status != "CANCELLED")
