"""The thread around a request: messages, typing, read receipts (docs/protocol.md §3–§4, beyond)."""

from __future__ import annotations

from typing import Any

from ..hub import Hub
from ..protocol import MessagePostedOut, dumps
from ..protocol.errors import Invalid
from ..storage import Store, Tx, queries, utcnow
from ..storage.pgfast import ROW_ID_MARK
from . import events
from .base import Caller, Core
from .views import iso, message_posted


class Conversation:
    def __init__(self, core: Core, store: Store, hub: Hub) -> None:
        self._core = core
        self._store = store
        self._hub = hub

    async def post_message(self, caller: Caller, request_id: int, text: str) -> MessagePostedOut:
        """A thread message from one party; the other gets `message`."""
        other = await self._core.other_party(caller, request_id)
        pending = self._core.pending_events()
        fast = self._store.fast
        if fast is not None:  # one statement (storage/pgfast.py)
            now = utcnow()
            event = events.message(request_id, caller.id, text, ROW_ID_MARK, iso(now) or "")
            hot = await self._core.hot_event(other, event, row_key="message_id")
            row, done = await fast.post_message(request_id, sender_id=caller.id, text=text, created_at=now, event=hot)
            self._core.stored(pending, [hot], [done])
            await pending.publish()
            return message_posted(row)

        def post(tx: Tx) -> Any:
            stored = tx.insert_message(request_id=request_id, sender_id=caller.id, text=text)
            stamp = iso(stored.created_at) or ""
            self._core.emit(tx, pending, other, events.message(request_id, caller.id, text, stored.id, stamp))
            return stored

        stored = await self._store.write(post)
        await pending.publish()
        return message_posted(stored)

    async def typing(self, caller: Caller, request_id: int, state: str) -> None:
        """Tell the other party someone is typing: not stored, not replayed, no event_id."""
        other = await self._core.other_party(caller, request_id)
        event = events.typing(request_id, caller.id, state, iso(utcnow()) or "")
        await self._hub.publish(other, None, dumps(event.build(None)))

    async def mark_read(self, caller: Caller, request_id: int, up_to_event_id: int) -> dict[str, Any]:
        """Record how far the caller has read a request's events; the other party gets `read`."""
        other = await self._core.other_party(caller, request_id)
        pending = self._core.pending_events()

        def mark(tx: Tx) -> int | None:
            if up_to_event_id > queries.last_event_id(tx.conn, caller.id):
                return None
            stored = tx.set_read_mark(caller.id, request_id, up_to_event_id)
            if stored == up_to_event_id:
                stamp = iso(utcnow()) or ""
                self._core.emit(tx, pending, other, events.read(request_id, caller.id, stored, stamp))
            return stored

        stored = await self._store.write(mark)
        if stored is None:
            raise Invalid(
                "up_to_event_id: is beyond your last event",
                fields={"up_to_event_id": "beyond your last event"},
            )
        await pending.publish()
        return {"up_to_event_id": stored}
