"""The inbox's state, with no UI and no I/O: requests by id, filters, counters, live events.

The Textual app renders an `Inbox`; REST pages and WebSocket events both go through
`upsert` / `apply`, which are idempotent, so a replayed event or a re-read page never
duplicates a row nor moves a request back to ``PENDING``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from medreq.client import (
    Event,
    MessageEvent,
    NewRequestEvent,
    RequestCancelledEvent,
    RequestOut,
    RequestUpdatedEvent,
)
from medreq.protocol import PartyOut

Clock = Callable[[], datetime]
STATUSES = ("PENDING", "ACCEPTED", "REJECTED", "CANCELLED")
#: the status filters `f` cycles through (None: every status)
FILTERS: tuple[str | None, ...] = (None, *STATUSES)


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


@dataclass
class Inbox:
    """Every request this pharmacy knows of, plus what the table shows of them."""

    clock: Clock = utcnow
    requests: dict[int, RequestOut] = field(default_factory=dict)
    #: ids that arrived live and have not been looked at yet (highlighted in the table)
    fresh: set[int] = field(default_factory=set)
    status_filter: str | None = None
    search: str = ""

    def upsert(self, request: RequestOut) -> bool:
        """Add or replace a request read over REST; True when it was not known before."""
        known = self.requests.get(request.id)
        if known is not None and known.status != "PENDING" and request.status == "PENDING":
            return False  # an older read: an answered request never goes back to PENDING
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
        if isinstance(event, RequestUpdatedEvent | RequestCancelledEvent):
            status = "CANCELLED" if isinstance(event, RequestCancelledEvent) else event.status
            known = self.requests.get(event.request_id)
            if known is None or status not in STATUSES or known.status == status:
                return None
            self.requests[event.request_id] = known.model_copy(update={"status": status})
            return event.request_id
        if isinstance(event, MessageEvent):
            known = self.requests.get(event.request_id)
            if known is None:
                return None
            self.requests[event.request_id] = known.model_copy(update={"unread": known.unread + 1})
            return event.request_id
        return None

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
    )
