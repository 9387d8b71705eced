"""The inbox state without a UI: live events and REST pages merge idempotently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from medreq.client import NewRequestEvent, RequestCancelledEvent, RequestOut, RequestUpdatedEvent
from medreq.protocol import PartyOut
from medreq.tui.media import inspect
from medreq.tui.model import Inbox, age

from .conftest import png

NOW = datetime(2026, 2, 24, 18, 30, tzinfo=UTC)


def request(rid: int, status: str = "PENDING", name: str = "Alice") -> RequestOut:
    return RequestOut(
        id=rid,
        patient=PartyOut(id=10, name=name),
        pharmacy=PartyOut(id=2, name="P"),
        quantity=1,
        status=status,
        created_at=NOW.isoformat(),
        updated_at=NOW.isoformat(),
    )


def test_replayed_new_request_is_not_duplicated_nor_reopened() -> None:
    inbox = Inbox(clock=lambda: NOW)
    event = NewRequestEvent(event_id=1, request_id=5, patient_name="Alice", quantity=2)
    assert inbox.apply(event) == 5
    assert inbox.apply(RequestUpdatedEvent(event_id=2, request_id=5, status="ACCEPTED")) == 5
    assert inbox.apply(event) is None  # replayed after a reconnect
    assert inbox.upsert(request(5, "PENDING")) is False  # an older REST read
    assert inbox.requests[5].status == "ACCEPTED"
    assert inbox.counts() == {"PENDING": 0, "ACCEPTED": 1, "REJECTED": 0, "CANCELLED": 0}


def test_filter_search_and_order() -> None:
    inbox = Inbox(clock=lambda: NOW)
    assert inbox.merge([request(1, name="Bob"), request(3, name="alice b"), request(2, "REJECTED")]) == [
        1,
        3,
        2,
    ]
    assert [r.id for r in inbox.visible()] == [3, 2, 1]
    inbox.search = "ALICE"
    assert [r.id for r in inbox.visible()] == [3, 2]
    inbox.search = ""
    assert inbox.cycle_filter() == "PENDING"
    assert [r.id for r in inbox.visible()] == [3, 1]
    inbox.apply(RequestCancelledEvent(event_id=4, request_id=3))
    assert [r.id for r in inbox.visible()] == [1]
    assert not inbox.is_open(3)


def test_age_and_media_info() -> None:
    assert age((NOW - timedelta(seconds=3)).isoformat(), NOW) == "now"
    assert age((NOW - timedelta(minutes=5)).isoformat(), NOW) == "5m"
    assert age((NOW - timedelta(hours=26)).isoformat(), NOW) == "1d"
    assert inspect(png(640, 480)).describe().startswith("PNG 640×480 px")
    assert inspect(b"%PDF-1.7 ...").kind == "PDF"
