"""What every part of the service shares: its collaborators, the caller, and event emission."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy.engine import Connection

from .. import auth
from ..config import Settings
from ..errors import Conflict, MedreqError, NotFound
from ..hub import Hub
from ..media import MediaStore
from ..storage import Store, Tx, queries, webhooks
from . import events
from .directory import Directory
from .events import Outbox

log = logging.getLogger("medreq.service")


@dataclass(frozen=True)
class Caller:
    id: int
    role: str
    name: str

    @property
    def is_patient(self) -> bool:
        return self.role == "patient"

    @property
    def is_pharmacy(self) -> bool:
        return self.role == "pharmacy"


class RequestRecord(SimpleNamespace):
    """A request row plus `patient_name`, `patient_phone` and `pharmacy_name`."""


class ServiceBase:
    def __init__(
        self, settings: Settings, store: Store, hub: Hub, media: MediaStore, tokens: auth.TokenIssuer
    ) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.media = media
        self.tokens = tokens
        self.directory = Directory(store)
        # wrong passwords for usernames that do not exist: username → (failures, held until)
        self._unknown_logins: dict[str, tuple[int, float]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` after the caller has its answer; a failure is logged, not lost."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    def outbox(self) -> Outbox:
        return Outbox(self.hub, self.media)

    def emit(self, tx: Tx, outbox: Outbox, account_id: int, event: events.Event) -> None:
        """Store `event` for `account_id` in this transaction; publish it after the commit.

        An account with a webhook and no live connection on this worker also gets a row in the
        webhook outbox, in the same transaction (PROTOCOL.md §6); the deliverer skips it if the
        account turns out to be connected on another worker when the row comes due."""
        event_id, text = tx.append_event(account_id, event)
        outbox.add(account_id, event_id, text)
        info = self.directory.get_in(tx.conn, account_id)
        if info is None or not (info.webhook or info.push) or self.hub.connected_here(account_id):
            return
        if info.webhook:
            webhooks.enqueue(tx.conn, account_id, event_id, event.type, text)
        if info.push:
            for subscription_id in webhooks.subscription_ids(tx.conn, account_id):
                webhooks.enqueue(
                    tx.conn, account_id, event_id, event.type, text, channel="push", subscription_id=subscription_id
                )

    def named(self, conn: Connection, row: Any) -> RequestRecord:
        """A request row with its parties' names, from the directory instead of a join."""
        patient = self.directory.get_in(conn, row.patient_id)
        pharmacy = self.directory.get_in(conn, row.pharmacy_id)
        assert patient is not None  # foreign keys
        assert pharmacy is not None
        return RequestRecord(
            **row._asdict(),  # SQLAlchemy's Row and the store's named tuples alike
            patient_name=patient.name,
            patient_phone=patient.phone,
            pharmacy_name=pharmacy.name,
        )

    async def visible_request(self, caller: Caller, request_id: int) -> Any:
        """A request the caller takes part in; NotFound for everyone else (no existence leak)."""
        row = await self.store.read(lambda c: queries.request(c, request_id))
        if row is None or caller.id not in (row.patient_id, row.pharmacy_id):
            raise NotFound(f"request {request_id} not found")
        return row

    async def why_unchanged(self, caller: Caller, request_id: int) -> MedreqError:
        """The error for a conditional update that matched nothing (the slow, rare path).

        A request the caller takes no part in is NotFound, exactly like one that does not
        exist (docs/protocol.md §3), so its id cannot be probed."""
        row = await self.store.read(lambda c: queries.request(c, request_id))
        if row is None or caller.id not in (row.patient_id, row.pharmacy_id):
            return NotFound(f"request {request_id} not found")
        return Conflict(f"request {request_id} is already {row.status}")
