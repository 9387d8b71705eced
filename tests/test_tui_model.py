"""The inbox state without a UI: live events, REST pages and thread messages merge idempotently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from medreq.client import (
    MessageEvent,
    NewRequestEvent,
    ReadEvent,
    RequestCancelledEvent,
    RequestOut,
    RequestUpdatedEvent,
    TypingEvent,
)
from medreq.protocol import PartyOut
from medreq.tui.media import inspect
from medreq.tui.model import TYPING_SHOWN, Inbox, age

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


def at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat()


def test_thread_merges_detail_reads_acks_and_live_messages_once() -> None:
    inbox = Inbox(clock=lambda: NOW, me=2)
    inbox.upsert(request(5))
    detail = [{"id": 1, "from": 10, "text": "Is it in stock?", "created_at": at(0)}]
    assert inbox.add_messages(5, detail) == 1
    assert inbox.add_messages(5, detail) == 0  # the detail read again
    assert inbox.add_messages(5, [{"id": 2, "from": 2, "text": "Yes", "created_at": at(5)}]) == 1  # our ack
    assert inbox.add_messages(5, [{"text": "no id"}]) == 0  # malformed: ignored
    event = MessageEvent(
        event_id=7, request_id=5, message_id=3, text="Thanks", timestamp=at(9), **{"from": 10}
    )
    assert inbox.apply(event) == 5
    assert inbox.apply(event) is None  # replayed after a reconnect: not counted twice
    assert inbox.requests[5].unread == 1
    thread = inbox.thread(5)
    assert [(m.id, m.text) for m in thread] == [(1, "Is it in stock?"), (2, "Yes"), (3, "Thanks")]
    assert [inbox.mine(m) for m in thread] == [False, True, False]
    assert (
        inbox.apply(MessageEvent(event_id=8, request_id=99, message_id=4, text="?", **{"from": 10})) is None
    )


def test_the_patients_read_receipt_marks_our_earlier_messages_seen() -> None:
    inbox = Inbox(clock=lambda: NOW, me=2)
    inbox.upsert(request(5))
    inbox.add_messages(5, [
        {"id": 1, "from": 2, "text": "Ready at 5", "created_at": at(0)},
        {"id": 2, "from": 10, "text": "OK", "created_at": at(3)},
        {"id": 3, "from": 2, "text": "Bring the card", "created_at": at(10)},
    ])  # fmt: skip
    first, theirs, later = inbox.thread(5)
    assert not inbox.seen(5, first)
    assert (
        inbox.apply(ReadEvent(event_id=4, request_id=5, by=2, up_to_event_id=1, timestamp=at(20))) is None
    )  # ours
    assert not inbox.seen(5, later)
    assert inbox.apply(ReadEvent(event_id=5, request_id=5, by=10, up_to_event_id=3, timestamp=at(5))) == 5
    assert inbox.seen(5, first) and not inbox.seen(5, later)
    assert not inbox.seen(5, theirs)  # only our messages carry "Seen"
    assert (
        inbox.apply(ReadEvent(event_id=6, request_id=5, by=10, up_to_event_id=2, timestamp=at(4))) is None
    )  # older
    assert inbox.apply(ReadEvent(event_id=7, request_id=5, by=10, up_to_event_id=4, timestamp=at(11))) == 5
    assert inbox.seen(5, later)


def test_typing_shows_until_stop_a_message_or_its_time_runs_out() -> None:
    now = [NOW]
    inbox = Inbox(clock=lambda: now[0], me=2)
    inbox.upsert(request(5))
    start = TypingEvent(request_id=5, state="start", **{"from": 10})
    assert inbox.apply(TypingEvent(request_id=5, state="start", **{"from": 2})) is None  # our own
    assert inbox.apply(start) == 5 and inbox.is_typing(5)
    assert inbox.apply(TypingEvent(request_id=5, state="stop", **{"from": 10})) == 5
    assert not inbox.is_typing(5)
    inbox.apply(start)
    inbox.apply(
        MessageEvent(event_id=3, request_id=5, message_id=1, text="Hi", timestamp=at(1), **{"from": 10})
    )
    assert not inbox.is_typing(5)  # the message they were typing arrived
    inbox.apply(start)
    now[0] = NOW + TYPING_SHOWN + timedelta(seconds=1)  # a lost `stop`
    assert not inbox.is_typing(5)
