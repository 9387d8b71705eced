"""What the parts of the service share: the `Caller`, an `Upload`, an `Offer`, and `Core`
(event emission through the pending, request rows with their parties' names, and which requests
a caller may see). Parts get a `Core` instead of inheriting from a common base."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy.engine import Connection

from ..hub import Hub
from ..media import MediaStore
from ..protocol import dumps
from ..protocol.errors import Conflict, MedreqError, NotFound
from ..storage import Store, Tx, queries, webhooks
from ..storage.pgfast import EVENT_ID_MARK, HotEvent, Stored, Template
from . import events
from .directory import Directory
from .events import PendingEvents


@dataclass(frozen=True)
class Caller:
    id: int
    role: str
    name: str
    #: when the caller's token series began with a password sign-in (Unix seconds, `auth_time`)
    auth_time: int = 0

    @property
    def is_patient(self) -> bool:
        return self.role == "patient"

    @property
    def is_pharmacy(self) -> bool:
        return self.role == "pharmacy"


@dataclass(frozen=True)
class Upload:
    """A file as a transport receives it: its bytes as they arrive, and what the client said it is.

    The service saves it (bounded, its type sniffed from the bytes, never taken from the name or
    the declared type), uses it, and removes it again when the change fails or is a replay."""

    chunks: AsyncIterator[bytes]
    filename: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """What an answer may offer (docs/protocol.md §3, groups), each validated by the transport's model:
    a price (a decimal string with two places), its ISO 4217 currency (None: the server's
    default, when there is a price), when it is ready (ISO 8601 in UTC)."""

    price: str | None = None
    currency: str | None = None
    ready_at: str | None = None


class RequestRecord(SimpleNamespace):
    """A request row plus `patient_name`, `patient_phone` and `pharmacy_name`."""


class Core:
    """The helpers every part that changes a request or its thread uses."""

    def __init__(
        self, store: Store, hub: Hub, media: MediaStore, directory: Directory, bell: asyncio.Event | None = None
    ) -> None:
        self._store = store
        self._hub = hub
        self._media = media
        self._directory = directory
        self._bell = bell  # wakes the deliverer (service/outbound/deliverer.py) after a commit that queued rows

    def pending_events(self) -> PendingEvents:
        return PendingEvents(self._hub, self._media, self._bell)

    def emit(self, tx: Tx, pending: PendingEvents, account_id: int, event: events.Event) -> None:
        """Store `event` for `account_id` in this transaction; publish it after the commit.

        An account with a webhook and no live connection on this worker also gets a row in the
        webhook pending, in the same transaction (docs/protocol.md §5); the deliverer skips it if the
        account turns out to be connected on another worker when the row comes due."""
        event_id, text = tx.append_event(account_id, event)
        self._emitted(tx, pending, account_id, event, event_id, text)

    def emit_all(self, tx: Tx, pending: PendingEvents, sends: Sequence[tuple[int, events.Event]]) -> None:
        """`emit` for several events of one change (a group's): each account's counter bumped once
        and the events stored by one insert (`Tx.append_events`); published in the order given.
        A single event takes `emit`'s statements, a little cheaper for one."""
        if len(sends) == 1:
            self.emit(tx, pending, *sends[0])
            return
        for (account_id, event), (event_id, text) in zip(sends, tx.append_events(sends), strict=True):
            self._emitted(tx, pending, account_id, event, event_id, text)

    def _emitted(
        self, tx: Tx, pending: PendingEvents, account_id: int, event: events.Event, event_id: int, text: str
    ) -> None:
        """After an event is stored: publish it after the commit, and queue its webhook and push
        rows when its account is offline here with either."""
        pending.add(account_id, event_id, text)
        info = self._directory.get_in(tx.conn, account_id)
        if info is None or not (info.webhook or info.push) or self._hub.connected_here(account_id):
            return
        if info.webhook:
            webhooks.enqueue(tx.conn, account_id, event_id, event.type, text)
            pending.queued_deliveries = True
        if info.push and events.notifies(event, account_id):
            pending.queued_deliveries = True
            for subscription_id in webhooks.subscription_ids(tx.conn, account_id):
                webhooks.enqueue(
                    tx.conn, account_id, event_id, event.type, text, channel="push", subscription_id=subscription_id
                )

    async def hot_event(self, account_id: int, event: events.Event, *, row_key: str | None = None) -> HotEvent:
        """`emit` for the PostgreSQL fast path (storage/pgfast.py), before its statement runs: the
        event's text cut at its ids, and the outbox rows `emit` would queue with it. The event is
        built with `ROW_ID_MARK` as the new row's id where `row_key` names that field."""
        template = Template.cut(dumps(event.build(EVENT_ID_MARK)), row_key)
        info = await self._directory.get(account_id)
        if info is None or not (info.webhook or info.push) or self._hub.connected_here(account_id):
            return HotEvent(account_id, event.type, template)
        push = info.push and events.notifies(event, account_id)
        return HotEvent(account_id, event.type, template, webhook=info.webhook, push=push)

    @staticmethod
    def stored(pending: PendingEvents, hot: Sequence[HotEvent], stored: Sequence[Stored]) -> None:
        """What `emit` does after its insert, for events the fast path stored: published after
        the commit, and the deliverer woken if outbox rows were queued."""
        for event, done in zip(hot, stored, strict=True):
            pending.add(done.account_id, done.event_id, done.text)
            if event.webhook or event.push:
                pending.queued_deliveries = True

    async def record(self, row: Any) -> RequestRecord:
        """`named` outside a transaction: the parties' names from the directory."""
        return _with_names(
            row, await self._directory.get(row.patient_id), await self._directory.get(row.pharmacy_id)
        )

    def named(self, conn: Connection, row: Any) -> RequestRecord:
        """A request row with its parties' names, from the directory instead of a join."""
        return _with_names(
            row, self._directory.get_in(conn, row.patient_id), self._directory.get_in(conn, row.pharmacy_id)
        )

    async def visible_request(self, caller: Caller, request_id: int) -> Any:
        """A request the caller takes part in; NotFound for everyone else (no existence leak)."""
        row = await self._store.read(lambda c: queries.request(c, request_id))
        if row is None or caller.id not in (row.patient_id, row.pharmacy_id):
            raise NotFound(f"request {request_id} not found")
        return row

    async def other_party(self, caller: Caller, request_id: int) -> int:
        """The other party of a request the caller takes part in; NotFound as `visible_request`.
        On the PostgreSQL fast path one prepared statement reads only the two ids."""
        if self._store.fast is None:
            row = await self.visible_request(caller, request_id)
            parties = (int(row.patient_id), int(row.pharmacy_id))
        else:
            found = await self._store.fast.request_parties(request_id)
            if found is None or caller.id not in found:
                raise NotFound(f"request {request_id} not found")
            parties = found
        return parties[1] if caller.id == parties[0] else parties[0]

    async def why_unchanged(self, caller: Caller, request_id: int) -> MedreqError:
        """The error for a conditional update that matched nothing (the slow, rare path).

        A request the caller takes no part in is NotFound, exactly like one that does not
        exist (docs/protocol.md §3), so its id cannot be probed."""
        row = await self._store.read(lambda c: queries.request(c, request_id))
        if row is None or caller.id not in (row.patient_id, row.pharmacy_id):
            return NotFound(f"request {request_id} not found")
        return Conflict(f"request {request_id} is already {row.status}")


def _with_names(row: Any, patient: Any, pharmacy: Any) -> RequestRecord:
    assert patient is not None  # foreign keys
    assert pharmacy is not None
    return RequestRecord(
        **row._asdict(),  # SQLAlchemy's Row and the store's named tuples alike
        patient_name=patient.name,
        patient_phone=patient.phone,
        pharmacy_name=pharmacy.name,
    )
