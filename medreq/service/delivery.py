"""Delivery (docs/protocol.md §3 "Media", §5): what a live connection is sent, and the files
links point to.

A socket subscribes to its account's events (the hub calls its `deliver`), replays stored events
past an id (`events_after`, rendered with freshly signed media links), and learns where the
account's events end (`last_event_id`). A media file is served to anyone holding a valid signed
link, and to the request's own patient or pharmacy with a stale link and their token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import metrics
from ..hub import Hub, Sink
from ..media import KIND_BY_PREFIX, MediaStore
from ..protocol.errors import Forbidden, NotFound
from ..storage import Store, queries
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
        return [(event_id, events.render(text, self._media)) for event_id, text in stored]

    async def last_event_id(self, account_id: int) -> int:
        return await self._store.read(lambda c: queries.last_event_id(c, account_id))

    async def media_file(
        self,
        collection: str,
        name: str,
        *,
        exp: str | None,
        sig: str | None,
        caller_token: Callable[[], str | None],
    ) -> MediaFile:
        """A stored file the caller may read (`collection` is the URL's: `prescriptions`,
        `pharmacy-audio`): a valid signature, or a participant's token."""
        kind = KIND_BY_PREFIX.get(collection)
        if kind is None:
            raise NotFound("no such media collection")
        path = self._media.path(kind, name)
        token = caller_token()
        try:
            self._media.check_signature(kind, name, exp, sig)
        except Forbidden:
            if not token:
                raise
            # a stale link from a participant's own app still opens with their token
            caller = await self._accounts.authenticate(token)
            owner = await self._store.read(lambda c: queries.request_by_media(c, kind, name))
            if owner is None or caller.id not in (owner.patient_id, owner.pharmacy_id):
                raise Forbidden("only the request's patient and pharmacy may read this file") from None
        if path is None:
            raise NotFound("no such file")
        return MediaFile(path, self._media.content_type(name), self._media.response_headers(name))
