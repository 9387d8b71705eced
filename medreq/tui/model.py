"""The inbox's state, with no UI and no I/O: requests by id, filters, counters, live events,
and each request's message thread (messages, the patient's read receipt, their typing).

The Textual app renders an `Inbox`; REST pages and WebSocket events both go through
`upsert` / `apply` / `add_messages`, which are idempotent, so a replayed event or a re-read
page never duplicates a row or a message nor moves a request back to ``PENDING``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from medreq.client import (
    Event,
    MessageEvent,
    NewRequestEvent,
    ReadEvent,
    RequestCancelledEvent,
    RequestChosenEvent,
    RequestOut,
    RequestUpdatedEvent,
    TypingEvent,
)
from medreq.protocol import MessageOut, PartyOut

Clock = Callable[[], datetime]
STATUSES = ("PENDING", "ACCEPTED", "REJECTED", "CANCELLED")
#: the status filters `f` cycles through (None: every status)
FILTERS: tuple[str | None, ...] = (None, *STATUSES)
#: how long "… is typing" stays without a new `typing` event (a lost `stop` must not leave it on)
TYPING_SHOWN = timedelta(seconds=6)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(created: str | None, now: datetime) -> str:
    """A short age for a table cell: ``now``, ``45s``, ``12m``, ``3h``, ``2d``."""
    when = parse_time(created)
    if when is None:
        return "?"
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 10:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Message:
    """One message of a request's thread."""

    id: int
    author: int  # the account id that wrote it (``from`` on the wire)
    text: str
    created_at: str | None

    @classmethod
    def from_model(cls, message: MessageOut) -> Message:
        """From a thread entry of `RequestDetail` (``GET /medicine/request/{id}/``)."""
        return cls(message.id, message.from_, message.text, message.created_at)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Message | None:
        """From a thread entry of ``GET /medicine/request/{id}/`` or an ``ack``; None if malformed."""
        ident, author = data.get("id"), data.get("from")
        if not isinstance(ident, int) or not isinstance(author, int):
            return None
        created = data.get("created_at")
        return cls(ident, author, str(data.get("text", "")), created if isinstance(created, str) else None)


@dataclass
class Inbox:
    """Every request this pharmacy knows of, plus what the table shows of them."""

    clock: Clock = utcnow
    #: this pharmacy's account id: its own messages are "You", receipts are the patient's
    me: int | None = None
    requests: dict[int, RequestOut] = field(default_factory=dict)
    #: ids that arrived live and have not been looked at yet (highlighted in the table)
    fresh: set[int] = field(default_factory=set)
    status_filter: str | None = None
    search: str = ""
    #: request id → message id → message
    threads: dict[int, dict[int, Message]] = field(default_factory=dict)
    #: request id → when the patient last marked it read (their latest receipt)
    seen_at: dict[int, datetime] = field(default_factory=dict)
    #: request id → until when "… is typing" shows
    typing_until: dict[int, datetime] = field(default_factory=dict)

    def upsert(self, request: RequestOut) -> bool:
        """Add or replace a request read over REST; True when it was not known before."""
        known = self.requests.get(request.id)
        if known is not None and known.status != "PENDING" and request.status == "PENDING":
            return False  # an older read: an answered request never goes back to PENDING
        if known is not None and known.status == "CANCELLED" and request.status != "CANCELLED":
            return False  # nor a cancelled one to open (the choice of another pharmacy came live)
        if known is not None and known.chosen and not request.chosen:
            return False  # nor a chosen one to not chosen
        self.requests[request.id] = request
        return known is None

    def merge(self, requests: Iterable[RequestOut]) -> list[int]:
        """Upsert a page; the ids that are new."""
        return [r.id for r in requests if self.upsert(r)]

    def apply(self, event: Event) -> int | None:
        """Apply one live event; the id of the request it changed (None if nothing changed)."""
        if isinstance(event, NewRequestEvent):
            if event.request_id in self.requests:
                return None
            self.requests[event.request_id] = _from_new_request(event, self.clock())
            self.fresh.add(event.request_id)
            return event.request_id
        if isinstance(event, RequestCancelledEvent):
            known = self.requests.get(event.request_id)
            reason = event.reason or "patient_cancelled"
            if known is None or (known.status == "CANCELLED" and known.cancel_reason == reason):
                return None
            update = {"status": "CANCELLED", "cancel_reason": reason, "chosen": False}
            self.requests[event.request_id] = known.model_copy(update=update)
            return event.request_id
        if isinstance(event, RequestChosenEvent):
            known = self.requests.get(event.request_id)
            if known is None or known.chosen:
                return None
            self.requests[event.request_id] = known.model_copy(update={"chosen": True})
            return event.request_id
        if isinstance(event, RequestUpdatedEvent):
            known = self.requests.get(event.request_id)
            if known is None or event.status not in STATUSES or known.status == event.status:
                return None
            self.requests[event.request_id] = known.model_copy(update={"status": event.status})
            return event.request_id
        if isinstance(event, MessageEvent):
            known = self.requests.get(event.request_id)
            if known is None or event.message_id is None or event.from_ is None:
                return None
            message = Message(event.message_id, event.from_, event.text, event.timestamp)
            if not self.add_messages(event.request_id, [message]):
                return None  # replayed: counted once
            self.typing_until.pop(event.request_id, None)  # they finished typing it
            self.requests[event.request_id] = known.model_copy(update={"unread": known.unread + 1})
            return event.request_id
        if isinstance(event, ReadEvent):
            when = parse_time(event.timestamp)
            if event.by == self.me or when is None or event.request_id not in self.requests:
                return None
            if event.request_id in self.seen_at and self.seen_at[event.request_id] >= when:
                return None
            self.seen_at[event.request_id] = when
            return event.request_id
        if isinstance(event, TypingEvent):
            if event.from_ == self.me or event.request_id not in self.requests:
                return None
            if event.state == "start":
                self.typing_until[event.request_id] = self.clock() + TYPING_SHOWN
            elif self.typing_until.pop(event.request_id, None) is None:
                return None
            return event.request_id
        return None

    # --- threads --------------------------------------------------------------------------------

    def add_messages(
        self, request_id: int, messages: Iterable[Message | MessageOut | Mapping[str, Any]]
    ) -> int:
        """Add messages to a request's thread (from a detail read, an ack or an event); how many
        were new."""
        thread = self.threads.setdefault(request_id, {})
        added = 0
        for entry in messages:
            if isinstance(entry, Message):
                message: Message | None = entry
            elif isinstance(entry, MessageOut):
                message = Message.from_model(entry)
            else:
                message = Message.from_wire(entry)
            if message is not None and message.id not in thread:
                thread[message.id] = message
                added += 1
        return added

    def thread(self, request_id: int) -> list[Message]:
        """The request's messages, oldest first."""
        return sorted(self.threads.get(request_id, {}).values(), key=lambda m: m.id)

    def mine(self, message: Message) -> bool:
        return message.author == self.me

    def seen(self, request_id: int, message: Message) -> bool:
        """Whether the patient has read this message of ours (their receipt came after it)."""
        receipt = self.seen_at.get(request_id)
        written = parse_time(message.created_at)
        return self.mine(message) and receipt is not None and written is not None and written <= receipt

    def is_typing(self, request_id: int) -> bool:
        """Whether the patient is typing on this request, as of now."""
        until = self.typing_until.get(request_id)
        return until is not None and self.clock() < until

    def mark_read(self, request_id: int) -> bool:
        """The request was looked at: nothing unread any more; True when that changed something."""
        known = self.requests.get(request_id)
        if known is None or not known.unread:
            return False
        self.requests[request_id] = known.model_copy(update={"unread": 0})
        return True

    # --- what the table shows -------------------------------------------------------------------

    def visible(self) -> list[RequestOut]:
        """The requests passing the filter and search, newest first."""
        needle = self.search.strip().casefold()
        rows = [
            r
            for r in self.requests.values()
            if (self.status_filter is None or r.status == self.status_filter)
            and (not needle or needle in r.patient.name.casefold())
        ]
        return sorted(rows, key=lambda r: r.id, reverse=True)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for request in self.requests.values():
            counts[request.status] = counts.get(request.status, 0) + 1
        return counts

    def cycle_filter(self) -> str | None:
        self.status_filter = FILTERS[(FILTERS.index(self.status_filter) + 1) % len(FILTERS)]
        return self.status_filter

    def is_open(self, request_id: int) -> bool:
        """Whether the request can still be answered."""
        request = self.requests.get(request_id)
        return request is not None and request.status == "PENDING"


def _from_new_request(event: NewRequestEvent, now: datetime) -> RequestOut:
    """A table row from a ``new_request`` event (the detail pane reads the full request later)."""
    stamp = event.timestamp or now.isoformat()
    return RequestOut(
        id=event.request_id,
        patient=PartyOut(id=event.patient_id or 0, name=event.patient_name or "?", phone=event.patient_phone),
        pharmacy=PartyOut(id=0, name=""),
        quantity=event.quantity or 1,
        medicine_name=event.medicine_name,
        note=event.note,
        image_url=event.image_url,
        status="PENDING",
        created_at=stamp,
        updated_at=stamp,
        unread=1,  # the new_request itself
        asked_pharmacies=event.asked_pharmacies,
    )
